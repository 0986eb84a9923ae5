#!/usr/bin/env bash
# Reconciliation against a vendor that also serves "other clients" of the same account:
# the mock Thought Industries API (120/min burst 20, time-scaled 20x) while other clients
# use a quarter of it. The pool's bucket knows nothing of them; it learns from the 429s
# and X-RateLimit-* headers it reports (rl_call) and pauses together. Asserted: no request
# failed, every 429 reached the shared table, the other clients caused some. How few 429s
# and how much of the budget the pool used depend on the machine's load: printed only.
# usage: other_clients.sh VENDOR_POOL RATELIMITCTL MOCK_VENDOR_PY
set -euo pipefail
pool=$1 ctl=$2 vendor=$3
table=/dev/shm/rl-other-clients-$$ out=$(mktemp -d) vpid=
trap '[ -n "$vpid" ] && kill "$vpid" 2>/dev/null; rm -rf "$out" "$table"' EXIT
# The vendor's "port N" line is its ready signal; wait for it (bounded: 30 s), not for a
# fixed time. The file exists before the vendor starts, so reading it never fails.
: >"$out/vendor"
python3 "$vendor" --seed ti-standard --scale 20 --max-seconds 100 --other-rate 0.5 >"$out/vendor" &
vpid=$! port=
for _ in $(seq 300); do
    port=$(sed -n 's/^port //p' "$out/vendor" 2>/dev/null || true)
    [ -n "$port" ] && break
    kill -0 "$vpid" 2>/dev/null || { echo "the mock vendor exited before it listened"; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { echo "the mock vendor did not listen within 30 s"; exit 1; }
"$pool" --port "$port" --mode shared --rules "120/3s burst 20 margin 50ms" --seconds 6 \
    --workers 16 --table "$table" --bucket ti >"$out/pool"
"$ctl" --table "$table" show ti --json >"$out/show"
kill "$vpid"
wait "$vpid" || true
vpid=
python3 - "$out/vendor" "$out/pool" "$out/show" <<'PY'
import json, re, sys
vendor = json.loads(open(sys.argv[1]).read().splitlines()[-1])
m = re.search(r"sent (\d+), answered 200: (\d+), answered 429: (\d+), failed: (\d+)",
              open(sys.argv[2]).read())
sent, ok, throttled, failed = map(int, m.groups())
show = json.loads(open(sys.argv[3]).read())
reported = show["bucket"]["counters"]["reported_429"]
budget = 20 + 40 * 6            # burst, then 120 per 3 s for 6 s
ours = budget - vendor["other_ok"]
print(f"pool: {sent} sent, {ok} ok, {throttled} 429s; others took {vendor['other_ok']}; "
      f"pool used {100 * ok / max(ours, 1):.0f}% of what they left; {reported} 429s reported")
assert failed == 0, "requests failed"
assert reported == throttled, "every 429 reached the shared table"
assert throttled > 0, "the other clients should have caused some 429s"
assert ok + throttled == sent, "every request was answered 200 or 429"
assert (vendor["ok"], vendor["throttled"]) == (ok, throttled), "the vendor saw the same answers"
PY
