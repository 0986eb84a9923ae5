#!/usr/bin/env bash
# A wall-clock jump changes no decision: decisions read CLOCK_MONOTONIC only; a fixed
# window's alignment follows the wall clock (re-aligned when it drifted by more than 1 ms),
# carrying the window's count as a debt. And a table made while the wall clock was wrong (at
# boot, before NTP) is re-aligned by the first process with the right clock. libfaketime
# moves CLOCK_REALTIME (and not the monotonic clock) for ratelimitctl, as `date -s` would.
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

# The header's alignment (wall_offset_ns, at byte 80: src/shm_format.h): bit 0 is its
# generation's parity.
offset() { od -An -t d8 -j 80 -N 8 "$RATELIMIT_TABLE" | tr -d ' '; }
rm -f "$RATELIMIT_TABLE"
jump -1s "$ctl" define late 2/1h fixed margin 0 >/dev/null
jump -1s "$ctl" acquire late --nowait
made=$(offset)
[ $((made & 1)) -eq 0 ] || { echo "a new table's alignment has parity 1"; exit 1; }
jump -1s "$ctl" acquire late --nowait
[ "$(offset)" = "$made" ] || { echo "a process with the table's clock re-aligned it"; exit 1; }
rc=0
"$ctl" acquire late --nowait 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || { echo "the window's two units were not carried over (exit $rc)"; exit 1; }
now=$(offset) moved=$((now - made))
[ $((now & 1)) -eq 1 ] || { echo "the right clock did not re-align the table ($made, $now)"; exit 1; }
# Moved by the second libfaketime took off, to within the 1 ms a re-alignment tolerates.
[ "$moved" -gt 999000000 ] && [ "$moved" -lt 1001000000 ] ||
    { echo "re-aligned by $moved ns, expected 1 s"; exit 1; }
echo "ok: a table made with the wall clock 1 s behind was re-aligned, its window's count kept"
