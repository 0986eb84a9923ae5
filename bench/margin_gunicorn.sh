#!/usr/bin/env bash
# bench/margin_gunicorn.sh [SECONDS [WORKERS [JITTER_MS [RULES [SEED]]]]]: the self-correcting
# margin with a real gunicorn pool at the default settings. gunicorn (WORKERS sync workers,
# default 8) runs examples/python/gunicorn_app.py: each request draws one unit from the
# shared bucket "vendor" (RULES, default 50/1s, the default margin) through
# ratelimit.requests.Adapter and calls the mock vendor (tests/mock_vendor.py --sliding 50 1:
# an exact rolling window of 50 per second, in SEED's shape, default foil-secret:
# X-RateLimit-Limit/Remaining on every answer, Retry-After on a 429; hourly-pro adds
# X-RateLimit-Reset, epoch seconds; the count of each request delayed by 0..JITTER_MS ms,
# default 0). RULES 100/1s with SEED hourly-pro: a pool told twice what the vendor allows. 24 client threads keep every
# worker busy for SECONDS (default 60). The machine's own background load is the rest of
# the delay. Prints the utilization of the vendor's budget after the first 10 s and after
# the margin's last widening, 429s per 1,000 requests in 5 s slices, and the margin the
# table learned. The vendor counts each request at its packet's kernel arrival
# (COUNT_AT=arrival, the default): a remote vendor's count is not delayed by this host's
# load. COUNT_AT=handler counts it when the mock's handler thread runs here, which adds the
# mock's own stalls on a loaded host. KEEP=DIR keeps the vendor's log (arrivals) and the
# clients' admission instants there (bench/delay_split.py reads them). Not a test: it
# measures (README "Benchmarks").
# Needs the build (build/python, build/tools/ratelimitctl) and /usr/bin/python3 with
# gunicorn and requests.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60} workers=${2:-8} jitter=${3:-0} rules=${4:-50/1s} seed=${5:-foil-secret}
py=/usr/bin/python3
ctl=${CTL:-$top/build/tools/ratelimitctl/ratelimitctl}
pypath=${PYPATH:-$top/build/python}
work=$(mktemp -d /dev/shm/margin-gunicorn.XXXXXX)
vpid="" apid=""
cleanup() {
    [ -n "$apid" ] && kill "$apid" 2>/dev/null
    [ -n "$vpid" ] && kill "$vpid" 2>/dev/null
    [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$work"/log "$work"/decided "$KEEP"/ 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
"$py" "$top/tests/mock_vendor.py" --seed "$seed" --sliding 50 1 --delay-jitter "$jitter" \
    --count-at "${COUNT_AT:-arrival}" --max-seconds $((secs + 60)) --log "$work/log" >"$work/vendor" &
vpid=$!
port=""
for _ in $(seq 300); do
    port=$(sed -n 's/^port //p' "$work/vendor" 2>/dev/null || true)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "the mock vendor did not start" >&2; exit 1; }
"$ctl" --table "$work/table" define vendor "$rules" >/dev/null
RATELIMIT_TABLE=$work/table RATELIMIT_BUCKET=vendor VENDOR_URL=http://127.0.0.1:$port/ \
    PYTHONPATH=$pypath "$py" -m gunicorn --chdir "$top/examples/python" -w "$workers" -k sync \
    -b "unix:$work/app.sock" --log-level warning gunicorn_app:app 2>"$work/app.err" &
apid=$!
for _ in $(seq 300); do
    [ -S "$work/app.sock" ] && break
    sleep 0.1
done
[ -S "$work/app.sock" ] || { echo "gunicorn did not start: $(cat "$work/app.err")" >&2; exit 1; }
"$py" - "$work/app.sock" "$secs" "$work/decided" >"$work/clients" <<'PY'
import http.client, json, socket, sys, threading, time
sock, secs = sys.argv[1], float(sys.argv[2])
stop_at, counts, lock, decided = time.monotonic() + secs, {}, threading.Lock(), []
def client():
    while time.monotonic() < stop_at:
        c = http.client.HTTPConnection("localhost", timeout=60)
        c.sock = socket.socket(socket.AF_UNIX)
        c.sock.connect(sock)
        c.request("GET", "/")
        body = json.loads(c.getresponse().read())
        c.close()
        status = str(body["status"])
        with lock:
            counts[status] = counts.get(status, 0) + 1
            decided.append((body.get("at_ns", 0), status))
threads = [threading.Thread(target=client) for _ in range(24)]
for t in threads:
    t.start()
for t in threads:
    t.join(secs + 120)
print(json.dumps(counts))
with open(sys.argv[3], "w") as f:
    f.writelines("%d %s\n" % d for d in sorted(decided))
PY
"$ctl" --table "$work/table" show vendor --json >"$work/show"
kill "$apid"; wait "$apid" || true; apid=""
kill "$vpid"; wait "$vpid" || true; vpid=""
"$py" - "$work/vendor" "$work/show" "$work/clients" "$secs" "$workers" "$jitter" "$rules" \
    "$seed" <<'PY'
import json, os, sys
v = json.loads(open(sys.argv[1]).read().splitlines()[-1])
show, clients = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
secs, workers, jitter, rules, seed = sys.argv[4:9]
ps = v["per_second"][:-1]  # the last second is partial
def util(rows):
    return sum(ok for ok, _ in rows) / (50 * len(rows)) if rows else 0
slices = []
for i in range(0, len(ps), 5):
    ok = sum(x[0] for x in ps[i:i + 5]); bad = sum(x[1] for x in ps[i:i + 5])
    slices.append("%d" % round(1000 * bad / max(ok + bad, 1)))
last_bad = max([i for i, (_, bad) in enumerate(ps) if bad], default=-1)
after = ps[last_bad + 1:]
m = show["bucket"]["margin"]
print("gunicorn %s workers, bucket %s, vendor %s shape, %s s, jitter %s ms, load %.1f: utilization %.3f after 10 s, "
      "%.3f over the %d s after the last 429; 429s per 1000 per 5 s: %s; total %d ok, %d 429s "
      "(%.1f per 1000 after 10 s); clients %s; margin %s (%s), delay p99 %s, recommended %s"
      % (workers, rules, seed, secs, jitter, os.getloadavg()[0], util(ps[10:]), util(after), len(after),
         " ".join(slices), v["ok"], v["throttled"],
         1000 * sum(b for _, b in ps[10:]) / max(sum(o + b for o, b in ps[10:]), 1),
         clients, m["effective"], m["reason"], m["delay_p99"], m["recommended"]))
PY
