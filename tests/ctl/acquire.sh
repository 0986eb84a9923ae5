#!/usr/bin/env bash
# ctl-acquire: acquire from shell scripts: exit 0 admitted, 1 rejected (--nowait), 2 timed
# out, 4 a cost that can never be admitted; the wait on stderr; blocking waits its turn.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

now_ms() { date +%s%3N; }

run 0 define slow 2/2s
run 0 define hourly 1/1h
run 0 define plan 3/1m
run 0 define plan/child 10/1m parent plan

# --nowait: admitted while the budget allows, then rejected with the wait on stderr.
run 0 acquire --nowait slow
[ ! -s "$out" ] && [ ! -s "$err" ] || fail "an admitted acquire printed something"
run 0 acquire --nowait slow
run_err 1 '^ratelimitctl: acquire slow: rejected: next unit in [0-9.]+(ms|s)$' acquire --nowait slow
run_err 1 'rejected: 2 units in [0-9.]+(ms|s)$' acquire --nowait --cost 2 slow

# Blocking: waits for the turn (the window is 2s + 20ms margin), then exit 0. The turn is
# next_free after an instant no earlier than `start`; the acquire cannot end before that
# (a lower bound, so a busy machine cannot break it; 1 ms for date's truncation).
start=$(now_ms)
run 0 show --json slow
next_ms=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["bucket"]["next_free_ns"] // 1000000)' "$out")
run 0 acquire --timeout 5s slow
took=$(($(now_ms) + 1 - start))
[ "$took" -ge "$next_ms" ] || fail "blocking acquire ended ${took}ms after the show, its turn was ${next_ms}ms ahead"

# A turn beyond the timeout: exit 2 at once, nothing reserved, no wait counted. (One that
# slept through its timeout first would make the second, of the default 1m, outlast the
# test's limit.)
run 0 acquire hourly
run_err 2 '^ratelimitctl: acquire hourly: timed out: next unit in 1h, beyond the 100ms timeout$' \
    acquire --timeout 100ms hourly
run_err 2 'timed out: next unit in 1h, beyond the 1m timeout$' acquire hourly
run 0 show --json hourly
check_json '
c = d["bucket"]["counters"]
assert c["admitted"] == 1 and c["waited"] == 0, "a timeout reserved a turn: %s" % c
'

# A cost no rule can ever admit.
run_err 4 "acquire slow: cost 3 exceeds what bucket 'slow' can ever admit" acquire --cost 3 slow

# Parent chains: all or nothing.
run 0 acquire --nowait --cost 2 plan/child
run_err 1 'rejected: 2 units in' acquire --nowait --cost 2 plan/child
run 0 show --json plan/child
check_json '
assert d["bucket"]["rules"][0]["used"] == 2, "a refused request consumed units"
assert d["ancestors"][0]["remaining"] == 1
c = d["bucket"]["counters"]
assert c["admitted"] == 1 and c["admitted_units"] == 2 and c["rejected"] == 1, c
'

# Counters of blocking waits, and the default timeout in the help.
run 0 stats --json slow
check_json '
c = d["buckets"][0]["counters"]
assert c["admitted"] == 3 and c["rejected"] == 2, c
# The blocking acquire waited unless the machine was slower than its turn: either way the
# time reserved ahead goes with the count.
assert c["waited"] <= 1 and (c["waited"] == 1) == (c["waited_ns"] > 0), c
'
run 0 acquire --help
has 'default$'
has '^ +60s\);'

