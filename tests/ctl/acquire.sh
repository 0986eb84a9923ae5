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

# Blocking: waits for the turn (the window is 2s + 20ms margin), then exit 0.
start=$(now_ms)
run 0 acquire --timeout 5s slow
took=$(($(now_ms) - start))
[ "$took" -ge 300 ] && [ "$took" -lt 6000 ] || fail "blocking acquire took ${took}ms"

# A turn beyond the timeout: exit 2 at once, nothing reserved.
run 0 acquire hourly
start=$(now_ms)
run_err 2 '^ratelimitctl: acquire hourly: timed out: next unit in 1h, beyond the 100ms timeout$' \
    acquire --timeout 100ms hourly
took=$(($(now_ms) - start))
[ "$took" -lt 1000 ] || fail "a timed-out acquire waited ${took}ms"
run_err 2 'timed out: next unit in 1h, beyond the 1m timeout$' acquire hourly
run 0 show --json hourly
check_json 'assert d["bucket"]["counters"]["admitted"] == 1, "a timeout reserved a turn"'

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
assert c["admitted"] == 3 and c["rejected"] == 2 and c["waited"] == 1, c
assert c["waited_ns"] > 0
'
run 0 acquire --help
has 'default$'
has '^ +60s\);'

