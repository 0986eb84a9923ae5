#!/usr/bin/env bash
# The self-correcting margin against the mock vendor (one exact rolling window of 50 per
# second, bench/margin.sh has the long runs and the figures):
#   jitter: the vendor counts each request 0..40 ms after it arrives; the pool agrees on
#           50/1s at the default margin (20 ms).
#   told2x: the pool is told 100/1s; the vendor allows 50/1s and sends every header.
# Asserted, exactly: every request answered and every 429 in the shared table; the margin
# in effect is one the control law can reach without narrowing (none happens within 64 s):
# 20 ms widened k times, f(m) = m + max(m/2, 1 ms), capped at 100 ms; it is the
# configured margin if no 429 came. Throughput and 429 counts are printed only.
# usage: margin_vendor.sh VENDOR_POOL RATELIMITCTL MOCK_VENDOR_PY
set -euo pipefail
pool=$1 ctl=$2 vendor=$3
table=/dev/shm/rl-margin-vendor-$$ out=$(mktemp -d) vpid=
trap '[ -n "$vpid" ] && kill "$vpid" 2>/dev/null; rm -rf "$out" "$table"' EXIT
scenario() { # NAME SEED JITTER_MS RULES
    rm -f "$table"
    : >"$out/vendor"
    python3 "$vendor" --seed "$2" --sliding 50 1 --delay-jitter "$3" --max-seconds 60 \
        >"$out/vendor" &
    vpid=$! port=
    for _ in $(seq 300); do # its "port N" line is the ready signal (bounded: 30 s)
        port=$(sed -n 's/^port //p' "$out/vendor" 2>/dev/null || true)
        [ -n "$port" ] && break
        kill -0 "$vpid" 2>/dev/null || { echo "the mock vendor exited before it listened"; exit 1; }
        sleep 0.1
    done
    [ -n "$port" ] || { echo "the mock vendor did not listen within 30 s"; exit 1; }
    "$pool" --port "$port" --mode shared --rules "$4" --seconds 8 --workers 12 \
        --table "$table" --bucket vendor >"$out/pool"
    "$ctl" --table "$table" show vendor --json >"$out/show"
    kill "$vpid"
    wait "$vpid" || true
    vpid=
    python3 - "$1" "$out/vendor" "$out/pool" "$out/show" <<'PY'
import json, re, sys
name = sys.argv[1]
vendor = json.loads(open(sys.argv[2]).read().splitlines()[-1])
sent, ok, throttled, failed = map(int, re.search(
    r"sent (\d+), answered 200: (\d+), answered 429: (\d+), failed: (\d+)",
    open(sys.argv[3]).read()).groups())
b = json.loads(open(sys.argv[4]).read())["bucket"]
m = b["margin"]
ps = vendor["per_second"]
print(f"{name}: {ok} ok, {throttled} 429s; 429s per second {[x[1] for x in ps]}; "
      f"margin {m['effective']} ({m['reason']}), delay p99 {m['delay_p99']}")
assert failed == 0 and ok + throttled == sent, "every request was answered 200 or 429"
assert (vendor["ok"], vendor["throttled"]) == (ok, throttled), "the vendor saw the same"
assert b["counters"]["reported_429"] == throttled, "every 429 reached the shared table"
assert m["configured_ns"] == 20_000_000 and m["ceiling_ns"] == 100_000_000
reachable, x = {20_000_000}, 20_000
for _ in range(8):
    x = min(100_000, x + max(x // 2, 1000))
    reachable.add(x * 1000)
assert m["effective_ns"] in reachable, (m["effective_ns"], sorted(reachable))
assert m["effective_ns"] >= m["configured_ns"], "never below the configured margin"
if throttled == 0:
    assert m["learned_ns"] == 0 and m["reason"] == "configured", "widens only on 429s"
assert m["delay_p99_ns"] > 0, "rl_call measured the delays"
PY
}
scenario jitter foil-secret 40 "50/1s"
scenario told2x hourly-pro 0 "100/1s"
