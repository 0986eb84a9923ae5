#!/usr/bin/env bash
# A wall-clock jump changes no decision: decisions read CLOCK_MONOTONIC only, and fixed
# windows use the wall-clock offset recorded once, at table creation. libfaketime moves
# CLOCK_REALTIME (and not the monotonic clock) for ratelimitctl, as `date -s` would.
# usage: clock.sh RATELIMITCTL
set -euo pipefail
ctl=$1
command -v faketime >/dev/null || { echo "faketime is not installed (tools/deps)"; exit 77; }
export RATELIMIT_TABLE=/dev/shm/rl-clock-$$
trap 'rm -f "$RATELIMIT_TABLE"' EXIT
jump() { FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "$1" "${@:2}"; }

"$ctl" define sliding 3/1h >/dev/null
"$ctl" define fixed 3/1h fixed >/dev/null
for b in sliding fixed; do
    for _ in 1 2 3; do "$ctl" acquire "$b" --nowait; done
    for offset in '+2d' '-1y' '+1h'; do
        # faketime must really move the wall clock for the check to mean anything
        faked=$(jump "$offset" date +%s) real=$(date +%s)
        [[ "$faked" =~ ^[0-9]+$ ]] && [ $((faked > real ? faked - real : real - faked)) -gt 3000 ] ||
            { echo "faketime did not move the wall clock by $offset ($faked vs $real)"; exit 1; }
        rc=0
        jump "$offset" "$ctl" acquire "$b" --nowait 2>/dev/null || rc=$?
        [ "$rc" -eq 1 ] || { echo "$b: a wall-clock jump of $offset changed the decision (exit $rc)"; exit 1; }
    done
done
echo "ok: wall-clock jumps of +2d, -1y and +1h changed no decision"
