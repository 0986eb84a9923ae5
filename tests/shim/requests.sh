#!/usr/bin/env bash
# tests/shim/requests.sh CLIENT SHIM MOCK_VENDOR RATELIMITCTL: a client that keeps its
# connection alive, run under `ratelimitctl exec` on a route that counts requests, against
# tests/mock_vendor.py over plain HTTP. The vendor allows 1 request per 0.5 s (di-tier2,
# time-scaled 8x) and answers a refused one with a 429 and Retry-After: 1; the bucket allows
# 100/s, far too many, so the vendor's 429s are what paces the client. Checked exactly:
#   - the bucket admitted as many units as the vendor counted requests (one per request,
#     none per connection);
#   - after each 429 the client's next request arrives no earlier than Retry-After later
#     (the client is sequential: it reads each answer before it writes the next request);
#   - at least one 429 was seen, so that the check above checked something;
#   - each response went to rl_report with its request's decision instant: the bucket
#     measured delays, and a 429 its rules admitted widened its margin.
# CLIENT: curl, requests, urllib3, http.client, php-streams, php-curl, ruby, node, or pool:
# 3 requests.Session processes at once, where a 429 heard by one pauses all: after a 429,
# until its Retry-After instant, at most the other 2 requests (written before it was
# heard) arrive. forget: one request, then the numbers of routed sockets reused for pipes
# (dup2 over one, a close and a new pipe): what is written to them takes no unit.
set -euo pipefail
client=$1 shim=$2 mock=$3 ctl=$4
N=6 # requests per client (the pool: 4 in each of 3 processes)
py=/usr/bin/python3 # Debian's, with requests and urllib3 (not a version manager's shim)

work=$(mktemp -d /dev/shm/rl-shim-requests.XXXXXX)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $client: $*" >&2
    [ -e "$work/table" ] && "$ctl" -t "$work/table" show v >&2
    [ -e "$work/log" ] && cat "$work/log" >&2
    exit 1
}
need() { command -v "$1" >/dev/null || { echo "$1 is not installed: skipped"; exit 77; }; }
case $client in
curl) need curl ;;
requests | urllib3 | http.client) "$py" -c "import ${client%%.*}" 2>/dev/null ||
    { echo "python3 has no $client: skipped"; exit 77; } ;;
php-*) need php ;;
ruby) need ruby ;;
node) need node ;;
forget) ;;
pool) "$py" -c "import requests" 2>/dev/null || { echo "python3 has no requests: skipped"; exit 77; } ;;
*) fail "unknown client" ;;
esac

: >"$work/server.out"
"$py" "$mock" --seed di-tier2 --scale 8 --max-seconds 60 --log "$work/log" >>"$work/server.out" \
    2>>"$work/server.err" &
server=$!
port=""
for _ in $(seq 300); do # its "port N" line is the ready signal (bounded: 30 s)
    port=$(sed -n 's/^port //p' "$work/server.out" 2>/dev/null || true)
    [ -n "$port" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
[ -n "$port" ] || fail "the mock vendor did not start"
cat >"$work/ratelimit.conf" <<EOF
table $work/table
bucket v 100/1s
route 127.0.0.1:$port v count requests
EOF
url=http://127.0.0.1:$port

pool=()
run() { "$ctl" exec --preload "$shim" --config "$work/ratelimit.conf" -- "$@"; }
case $client in
curl) # several URLs on one connection; the third a POST with Expect: 100-continue
    head -c 5000 /dev/zero >"$work/body"
    o=(-s -w '%{http_code}\n' --max-time 20 -o /dev/null)
    run curl "${o[@]}" "$url/1" -o /dev/null "$url/2" \
        --next "${o[@]}" -H 'Expect: 100-continue' --data-binary "@$work/body" "$url/3" \
        --next "${o[@]}" "$url/4" -o /dev/null "$url/5" -o /dev/null "$url/6" ;;
requests)
    run "$py" -c 'import requests, sys
s = requests.Session()
for i in range(int(sys.argv[2])):
    r = s.post(sys.argv[1] + "/%d" % i, data=b"x" * 100) if i == 2 else s.get(sys.argv[1] + "/%d" % i)
    print(r.status_code)' "$url" "$N" ;;
urllib3)
    run "$py" -c 'import urllib3, sys
pool = urllib3.PoolManager(maxsize=1, retries=False)
for i in range(int(sys.argv[2])):
    print(pool.request("GET", sys.argv[1] + "/%d" % i).status)' "$url" "$N" ;;
http.client)
    run "$py" -c 'import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
for i in range(int(sys.argv[2])):
    if i == 3:  # a 4 MiB body: the socket (non-blocking, with a timeout) takes it in parts
        c.request("POST", "/%d" % i, body=b"x" * (4 << 20))
    else:
        c.request("GET", "/%d" % i)
    r = c.getresponse()
    r.read()
    print(r.status)' "$port" "$N" ;;
php-streams) # file_get_contents (a connection each), then one kept-alive stream socket
    run php -r '$u = $argv[1]; $n = (int)$argv[2];
$ctx = stream_context_create(["http" => ["ignore_errors" => true]]);
for ($i = 0; $i < 2; $i++) { file_get_contents("$u/$i", false, $ctx); echo explode(" ", $http_response_header[0])[1], "\n"; }
$s = stream_socket_client(str_replace("http://", "tcp://", $u), $e, $es, 20);
for ($i = 2; $i < $n; $i++) {
    fwrite($s, "GET /$i HTTP/1.1\r\nHost: x\r\n\r\n");
    $status = explode(" ", fgets($s))[1]; $len = 0;
    while (($l = fgets($s)) !== "\r\n") if (stripos($l, "content-length:") === 0) $len = (int)substr($l, 15);
    fread($s, $len); echo $status, "\n";
}' "$url" "$N" ;;
php-curl)
    run php -r '$h = curl_init(); curl_setopt($h, CURLOPT_RETURNTRANSFER, true);
for ($i = 0; $i < (int)$argv[2]; $i++) { curl_setopt($h, CURLOPT_URL, $argv[1] . "/$i"); curl_exec($h);
    echo curl_getinfo($h, CURLINFO_RESPONSE_CODE), "\n"; }' "$url" "$N" ;;
node) # an agent that keeps its one socket alive
    run node -e 'const http = require("http");
const agent = new http.Agent({keepAlive: true, maxSockets: 1});
(async () => { for (let i = 0; i < +process.argv[2]; i++) await new Promise((ok, no) =>
  http.get(process.argv[1] + "/" + i, {agent}, r => { r.resume(); r.on("end", () => { console.log(r.statusCode); ok(); }); }).on("error", no));
  agent.destroy(); })();' "$url" "$N" ;;
forget)
    run "$py" -c 'import os, socket, sys
port, get = int(sys.argv[1]), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
a = socket.create_connection(("127.0.0.1", port))
a.sendall(get)
print(a.recv(4096).split()[1].decode())
r, w = os.pipe()
os.dup2(w, a.fileno())  # the routed socket is gone: its number is the pipe now
os.write(a.fileno(), get)
b = socket.create_connection(("127.0.0.1", port))
n = b.fileno()
b.close()
r2, w2 = os.pipe()  # takes the lowest free number: the closed socket`s
assert n in (r2, w2), (n, r2, w2)
os.write(w2, get)' "$port" ;;
pool) # a file each: three writers of one file interleave their lines (PYTHONUNBUFFERED=1
    # makes print write the status and the newline apart)
    for k in 1 2 3; do
        run "$py" -c 'import requests, sys
s = requests.Session()
for i in range(int(sys.argv[2])):
    print(s.get(sys.argv[1] + "/%d" % i).status_code)' "$url" $((N / 3 * 2)) >"$work/out.$k" &
        pool+=($!)
    done
    for p in "${pool[@]}"; do wait "$p" || exit 1; done
    cat "$work/out.1" "$work/out.2" "$work/out.3" ;;
ruby)
    run ruby -rnet/http -e 'Net::HTTP.start("127.0.0.1", ARGV[0].to_i) do |h|
  ARGV[1].to_i.times { |i| puts h.request(Net::HTTP::Get.new("/#{i}")).code }
end' "$port" "$N" ;;
esac >"$work/out" 2>"$work/err" || fail "the client failed: $(cat "$work/err")"

kill -TERM "$server" || fail "the mock vendor stopped early: $(cat "$work/server.out")"
wait "$server" || true
server=""
[ -z "$(grep -v '^ratelimit-preload: ' "$work/err" || true)" ] || fail "stderr: $(cat "$work/err")"
grep -q 'ratelimit-preload: ' "$work/err" && fail "the shim complained: $(cat "$work/err")"
[ "$client" = pool ] && N=12
[ "$client" = forget ] && N=1
[ "$(grep -c . "$work/out")" -eq "$N" ] || fail "the client printed $(cat "$work/out")"
requests=$(wc -l <"$work/log")
units=$("$ctl" -t "$work/table" show v | sed -n 's/^ *admitted .*requests, \([0-9]*\) units.*/\1/p')
echo "$client: statuses $(tr '\n' ' ' <"$work/out"); vendor counted $requests requests;" \
    "the bucket admitted $units units"
[ "$requests" -eq "$N" ] || fail "the vendor counted $requests requests, not $N"
[ "$units" = "$requests" ] || fail "the bucket admitted $units units for $requests requests"
"$ctl" -t "$work/table" show v --json | "$py" -c 'import json, sys
m = json.load(sys.stdin)["bucket"]["margin"]
assert m["delay_p99_ns"] > 0, "no delay measured: %s" % m
assert int(sys.argv[1]) == 1 or m["learned_ns"] > m["configured_ns"], "no widening: %s" % m' \
    "$N" || fail "the responses did not carry their decision instants"
in_flight=0
[ "$client" = pool ] && in_flight=2
"$py" - "$work/log" "$in_flight" <<'PY' || fail "a request came before its Retry-After instant"
import sys
rows = [[float(x) for x in l.split()] for l in open(sys.argv[1])]
in_flight = int(sys.argv[2])
for i, (t, status, retry, *_) in enumerate(rows):
    if status == 429:
        early = [r for r in rows[i + 1:] if r[0] < t + retry]
        print("429 at %.3f, Retry-After %d: %d requests before its instant" % (t, retry, len(early)))
        assert len(early) <= in_flight, "%d requests within Retry-After of a 429" % len(early)
assert len(rows) == 1 or any(r[1] == 429 for r in rows), "the vendor answered no 429"
PY
