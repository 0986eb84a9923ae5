#!/usr/bin/env bash
# bench/shim_pool429.sh [SECONDS [MODE...]]: a pool of 8 Python processes, each looping
# over one requests.Session, against tests/mock_vendor.py allowing 50 requests per rolling
# second (foil-secret, time-scaled 5x: 600 per 12 s), while the config says 100/s: twice
# what the vendor allows. MODE: none (no shim), connections (the route counts
# connections), requests (it counts requests and hears the 429s). Prints, per mode, the
# requests sent, the 429s and the units the bucket admitted. Not a test: it measures.
# SEED=foundry SCALE=15 instead: 200 per rolling 4 s, and 429s without any header (the
# pool then backs off exponentially).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
shift || true
modes=${*:-none connections requests}
py=/usr/bin/python3
ctl=$top/build/tools/ratelimitctl/ratelimitctl
shim=$top/build/src/shim/libratelimit-preload.so
work=$(mktemp -d /dev/shm/rl-pool429.XXXXXX)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
for mode in $modes; do
    rm -f "$work"/*
    "$py" "$top/tests/mock_vendor.py" --seed "${SEED:-foil-secret}" --scale "${SCALE:-5}" --max-seconds $((secs + 30)) \
        >"$work/server.out" &
    server=$!
    until grep -q '^port ' "$work/server.out"; do sleep 0.05; done
    port=$(sed -n 's/^port //p' "$work/server.out" 2>/dev/null || true)
    count=""
    [ "$mode" = requests ] && count="count requests"
    printf 'table %s\nbucket v 100/1s\nroute 127.0.0.1:%s v %s\n' "$work/table" "$port" \
        "$count" >"$work/conf"
    run=()
    [ "$mode" != none ] && run=("$ctl" exec --preload "$shim" --config "$work/conf" --)
    pids=()
    for i in $(seq 8); do
        "${run[@]}" "$py" -c 'import requests, sys, time
s, end, n = requests.Session(), time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    s.get(sys.argv[1]); n += 1' "http://127.0.0.1:$port/" "$secs" &
        pids+=($!)
    done
    wait "${pids[@]}"
    kill -TERM "$server"
    wait "$server" || true
    server=""
    stats=$(tail -n 1 "$work/server.out")
    units="-"
    [ -e "$work/table" ] && units=$("$ctl" -t "$work/table" show v |
        sed -n 's/^ *admitted .*requests, \([0-9]*\) units.*/\1/p')
    "$py" -c 'import json, sys
s = json.loads(sys.argv[1])
print("%-12s requests %6d  ok %6d  429s %6d (%4.1f%%)  units %s" % (sys.argv[2], s["requests"],
      s["ok"], s["throttled"], 100.0 * s["throttled"] / max(1, s["requests"]), sys.argv[3]))' \
        "$stats" "$mode" "$units"
done
