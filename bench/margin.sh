#!/usr/bin/env bash
# The self-correcting margin against the mock vendor (one exact rolling window of 50 per
# second): a preforked pool (examples/vendor_pool, rl_call) at the default settings.
#   plain    the pool and the vendor agree on 50/1s; the host's own load is the only delay
#   jitter   the vendor counts each request 0..40 ms after it arrives (--delay-jitter 40)
#   told2x   the pool is told 100/s; the vendor allows 50/s and sends all its headers
# The vendor counts each request at its packet's kernel arrival (COUNT_AT=arrival, the
# default), as a remote vendor would; COUNT_AT=handler counts it when its handler thread
# runs on this host, which adds the mock's own scheduling stalls.
# Prints per scenario: utilization of the vendor's budget after the first 10 s, 429s per
# 1,000 requests in 5 s slices, and the margin the table learned.
# usage: bench/margin.sh VENDOR_POOL RATELIMITCTL MOCK_VENDOR_PY [SECONDS]
set -euo pipefail
pool=$1 ctl=$2 vendor=$3 secs=${4:-30}
out=$(mktemp -d) vpid=
trap '[ -n "$vpid" ] && kill "$vpid" 2>/dev/null; rm -rf "$out" /dev/shm/rl-bench-margin-$$' EXIT
run() { # NAME SEED JITTER_MS RULES
    local name=$1 seed=$2 jitter=$3 rules=$4 table=/dev/shm/rl-bench-margin-$$ port=
    rm -f "$table"
    : >"$out/vendor"
    python3 "$vendor" --seed "$seed" --sliding 50 1 --delay-jitter "$jitter" \
        --count-at "${COUNT_AT:-arrival}" --max-seconds $((secs + 30)) >"$out/vendor" &
    vpid=$!
    for _ in $(seq 300); do
        port=$(sed -n 's/^port //p' "$out/vendor" 2>/dev/null || true)
        [ -n "$port" ] && break
        sleep 0.1
    done
    "$pool" --port "$port" --mode shared --rules "$rules" --seconds "$secs" --workers 16 \
        --table "$table" --bucket vendor >"$out/pool"
    "$ctl" --table "$table" show vendor --json >"$out/show"
    kill "$vpid"; wait "$vpid" || true; vpid=
    python3 - "$name" "$out/vendor" "$out/show" <<'PY'
import json, sys
name, v, show = sys.argv[1], json.loads(open(sys.argv[2]).read().splitlines()[-1]), \
    json.load(open(sys.argv[3]))
ps = v["per_second"][:-1]          # the last second is partial
steady = ps[10:]
util = sum(ok for ok, _ in steady) / (50 * len(steady)) if steady else 0
slices = []
for i in range(0, len(ps), 5):
    ok = sum(x[0] for x in ps[i:i + 5]); bad = sum(x[1] for x in ps[i:i + 5])
    slices.append("%d" % round(1000 * bad / max(ok + bad, 1)))
m = show["bucket"]["margin"]
print("%-7s utilization %.3f (after 10 s); 429s per 1000 per 5 s: %s; total %d ok, %d 429s; "
      "margin %s (%s), delay p99 %s, recommended %s" % (name, util, " ".join(slices), v["ok"],
      v["throttled"], m["effective"], m["reason"], m["delay_p99"], m["recommended"]))
PY
}
run plain foil-secret 0 "50/1s"
run jitter foil-secret 40 "50/1s"
run told2x hourly-pro 0 "100/1s"
