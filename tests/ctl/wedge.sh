#!/usr/bin/env bash
# ctl-wedge: valid calls never wedge a bucket (issue 13, item 4). 145 units of 1/366d put
# the GCRA word 145 years ahead; two blocking acquires of 145 more used to push it past
# 2^63, into the frozen bit: every acquire then failed "policy switch is damaged", reset
# did not cure it and show reported the wrong state. Now such a turn is refused (exit 2,
# nothing reserved) and the bucket stays as it was.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

run 0 define w '1/366d burst 145'
run 0 acquire --nowait --cost 145 w
# Blocking, at the same time: each refused at once (timeout(1) only guards against a hang).
timeout 30 "$CTL" acquire --timeout forever --cost 145 w >"$work/a1" 2>&1 </dev/null &
p1=$!
timeout 30 "$CTL" acquire --timeout forever --cost 145 w >"$work/a2" 2>&1 </dev/null &
p2=$!
for p in $p1 $p2; do
    rc=0
    wait "$p" || rc=$?
    [ "$rc" -eq 2 ] || fail "a blocking acquire exited $rc, expected 2: $(cat "$work"/a1 "$work"/a2)"
done
grep -Eq 'timed out: 145 units in [0-9]+d, too far ahead to reserve$' "$work/a1" ||
    fail "first blocking acquire said: $(cat "$work/a1")"
grep -Eq 'too far ahead to reserve$' "$work/a2" || fail "second blocking acquire said: $(cat "$work/a2")"

# The bucket is sound: refusals, not damage; show reports the 145 units.
run_err 1 '^ratelimitctl: acquire w: rejected: next unit in 366d$' acquire --nowait w
run 0 show --json w
check_json '
r = d["bucket"]["rules"][0]
assert r["used"] == 145 and r["remaining"] == 0, r
assert d["bucket"]["counters"]["admitted"] == 1, d["bucket"]["counters"]'
run 0 reset w
run 0 acquire --nowait --cost 145 w
echo "ok"
