#!/usr/bin/env bash
# tests/shim/tls.sh CLIENT RATELIMITCTL MOCK_VENDOR [GNUTLS_CLIENT]: one program that knows
# nothing of ratelimit makes several HTTPS requests on one kept-alive connection to
# tests/mock_vendor.py --tls, under `ratelimitctl exec` with a route that counts requests.
#   pass   3 requests on a shimmed program whose route is elsewhere: all pass, none counted
#   count  4 requests, the vendor allows them all (Foundry, 200 per 60 s): the bucket admits
#          exactly one unit per request the vendor counted, none for the connection
#   429    2 requests, the vendor allows one per 4 s: the second is answered 429 with
#          Retry-After; the shim reports it, so the bucket is cooling down for the pool
# CLIENT: curl, http.client, requests, urllib3, aiohttp, php-curl, php-stream, ruby, gnutls;
# alpn checks the offer instead (below).
# Each vendor runs for at most 60 s and is stopped by its pid.
set -euo pipefail
py=/usr/bin/python3 # Debian's, with requests, urllib3 and aiohttp
# run_client N: the client's N requests to https://localhost:$port/, one status a line.
run_client() {
    local n=$1 url="https://localhost:$port/"
    case $client in
    curl) # Debian's curl is built with OpenSSL; several URLs share one connection
        local args=()
        for i in $(seq "$n"); do args+=(-o /dev/null "$url?$i"); done
        curl -k -s --max-time 20 -w '%{http_code}\n' "${args[@]}" ;;
    http.client | requests | urllib3 | aiohttp)
        "$py" - "$client" "$port" "$n" <<'PY' ;;
import ssl, sys
kind, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
url = "https://localhost:%d/" % port
if kind == "http.client":
    import http.client
    c = http.client.HTTPSConnection("localhost", port, context=ssl._create_unverified_context())
    for _ in range(n):
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        print(r.status)
elif kind == "requests":
    import requests, urllib3
    urllib3.disable_warnings()
    with requests.Session() as s:
        for _ in range(n):
            print(s.get(url, verify=False, timeout=20).status_code)
elif kind == "urllib3":
    import urllib3
    urllib3.disable_warnings()
    pool = urllib3.PoolManager(cert_reqs="CERT_NONE", assert_hostname=False)
    for _ in range(n):
        print(pool.request("GET", url, timeout=20, retries=False).status)
else:
    import asyncio, aiohttp
    async def main():
        async with aiohttp.ClientSession() as s:
            for _ in range(n):
                async with s.get(url, ssl=False) as r:
                    await r.read()
                    print(r.status)
    asyncio.run(main())
PY
    php-curl)
        php -r '$h = curl_init();
            curl_setopt_array($h, [CURLOPT_RETURNTRANSFER => true, CURLOPT_SSL_VERIFYPEER => false,
                CURLOPT_SSL_VERIFYHOST => 0, CURLOPT_TIMEOUT => 20]);
            for ($i = 0; $i < (int)$argv[2]; $i++) {
                curl_setopt($h, CURLOPT_URL, $argv[1]);
                if (curl_exec($h) === false) exit(1);
                echo curl_getinfo($h, CURLINFO_RESPONSE_CODE), "\n";
            }' "$url" "$n" ;;
    php-stream)
        php -r '$c = stream_context_create(["ssl" => ["verify_peer" => false,
                "verify_peer_name" => false], "http" => ["ignore_errors" => true, "timeout" => 20]]);
            for ($i = 0; $i < (int)$argv[2]; $i++) {
                if (file_get_contents($argv[1], false, $c) === false) exit(1);
                echo explode(" ", $http_response_header[0])[1], "\n";
            }' "$url" "$n" ;;
    ruby)
        ruby -rnet/http -ropenssl -e 'port, n = ARGV[0].to_i, ARGV[1].to_i
            Net::HTTP.start("localhost", port, use_ssl: true,
                            verify_mode: OpenSSL::SSL::VERIFY_NONE) do |h|
              n.times { puts h.get("/").code }
            end' "$port" "$n" ;;
    gnutls) "$gnutls_client" "$port" "$n" ;;
    alpn-python) # offers h2 first, as an HTTP/2-capable client would
        "$py" - "$port" <<'PY' ;;
import socket, ssl, sys
ctx = ssl._create_unverified_context()
ctx.set_alpn_protocols(["h2", "http/1.1"])
t = ctx.wrap_socket(socket.create_connection(("localhost", int(sys.argv[1]))),
                    server_hostname="localhost")
t.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
print(t.recv(4096).split()[1].decode())
PY
    *) echo "tls.sh: unknown client $client" >&2 && exit 2 ;;
    esac
}


if [ "$1" = --run ]; then # the client itself, under ratelimitctl exec
    client=$2 port=$3 gnutls_client=$5
    run_client "$4"
    exit
fi
client=$1 ctl=$2 mock=$3 gnutls_client=${4:-}
work=$(mktemp -d /dev/shm/rl-shim-tls.XXXXXX)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$work" # KEEP_WORK=1: keep it to look at
}
trap cleanup EXIT
fail() {
    echo "FAIL ($client): $*" >&2
    [ -e "$work/table" ] && "$ctl" -t "$work/table" show foundry >&2
    exit 1
}

# A runtime that is not installed is skipped (77), as is aiohttp without its module.
need=$client
case $client in
http.client | requests | urllib3 | aiohttp | alpn) need=$py ;;
php-*) need=php ;;
gnutls) need=${gnutls_client:-gnutls-client-not-built} ;;
esac
command -v "$need" >/dev/null || { echo "SKIP: $need is not installed"; exit 77; }
if [ "$client" = aiohttp ] || [ "$client" = requests ]; then
    "$py" -c "import $client" 2>/dev/null || { echo "SKIP: no python3-$client"; exit 77; }
fi
command -v openssl >/dev/null || { echo "SKIP: no openssl to make a certificate"; exit 77; }
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" \
    -days 1 -subj /CN=localhost 2>/dev/null || fail "openssl cannot make a certificate"

# scenario SEED N BUCKET_RULES [ROUTE]: a fresh vendor and table, the client's N requests
# under the shim; the route is localhost on the vendor's port unless ROUTE is given.
scenario() {
    local seed=$1 n=$2 rules=$3 route=${4:-}
    rm -f "$work/table"
    : >"$work/server.out" # before the server: the background job opens it later
    "$py" "$mock" --seed "$seed" --scale 1 --max-seconds 60 \
        --tls "$work/cert.pem" "$work/key.pem" >>"$work/server.out" &
    server=$!
    port=""
    for _ in $(seq 300); do # its "port N" line is the ready signal (bounded: 30 s)
        port=$(sed -n 's/^port //p' "$work/server.out" 2>/dev/null || true)
        [ -n "$port" ] && break
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || fail "the mock vendor did not start"
    cat >"$work/ratelimit.conf" <<CONF
table $work/table
bucket foundry $rules
route ${route:-localhost:$port} foundry count requests
CONF
    "$ctl" exec --config "$work/ratelimit.conf" -- \
        bash "$0" --run "$client" "$port" "$n" "$gnutls_client" >"$work/client.out" \
        2>"$work/client.err" || fail "the client failed: $(tail -n 5 "$work/client.err")"
    kill -TERM "$server"
    wait "$server" || true
    server=""
}

# check N UNITS STATUSES... : the client saw these statuses; the vendor counted N requests
# and the bucket admitted exactly UNITS units.
check() {
    local n=$1 units=$2
    shift 2
    local stats admitted
    stats=$(tail -n 1 "$work/server.out")
    [ "$(tr '\n' ' ' <"$work/client.out")" = "$* " ] ||
        fail "the client saw $(tr '\n' ' ' <"$work/client.out"), expected $*"
    admitted=$("$ctl" -t "$work/table" show --json foundry |
        "$py" -c 'import json, sys; print(json.load(sys.stdin)["bucket"]["counters"]["admitted_units"])')
    "$py" - "$stats" "$n" "$admitted" "$units" <<'PY' || fail "vendor $stats, bucket admitted $admitted"
import json, sys
s, n, admitted, units = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
assert s["requests"] == n, "the vendor counted %d requests, not %d" % (s["requests"], n)
assert admitted == units, "the bucket admitted %d units for %d requests" % (admitted, n)
PY
}

# alpn: a server that prefers h2 sees an offer without it from a client on a counted route
# (curl offers h2 by default; a Python client and the GnuTLS client are made to), and h2 from the same client
# without the shim. Prints the protocol the server chose, one connection.
alpn_once() { # alpn_once PRELOADED(0|1) CLIENT: the protocol the server chose
    : >"$work/alpn.out" # before the server: the background job opens it later
    "$py" - "$work/cert.pem" "$work/key.pem" >>"$work/alpn.out" <<'PY' &
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ctx.set_alpn_protocols(["h2", "http/1.1"])
ls = socket.create_server(("127.0.0.1", 0))
ls.settimeout(30)
print("port", ls.getsockname()[1], flush=True)
c, _ = ls.accept()
t = ctx.wrap_socket(c, server_side=True)
print("chose", t.selected_alpn_protocol(), flush=True)
try:
    t.recv(4096)
    t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    t.close()
except OSError:
    pass
PY
    server=$!
    port=""
    for _ in $(seq 300); do # its "port N" line is the ready signal (bounded: 30 s)
        port=$(sed -n 's/^port //p' "$work/alpn.out" 2>/dev/null || true)
        [ -n "$port" ] && break
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || fail "the ALPN server did not start"
    cat >"$work/ratelimit.conf" <<CONF
table $work/table
bucket foundry 1000/60s
route localhost:$port foundry count requests
CONF
    local run=(bash "$0" --run "$2" "$port" 1 "$gnutls_client")
    if [ "$1" = 1 ]; then
        "$ctl" exec --config "$work/ratelimit.conf" -- "${run[@]}" >/dev/null 2>&1 || true
    else
        "${run[@]}" >/dev/null 2>&1 || true
    fi
    wait "$server" || true
    server=""
    sed -n 's/^chose //p' "$work/alpn.out"
}

if [ "$client" = alpn ]; then
    for c in curl alpn-python ${gnutls_client:+gnutls}; do
        [ "$(alpn_once 0 "$c")" = h2 ] || fail "$c: without the shim the server chose $(alpn_once 0 "$c"), not h2"
        got=$(alpn_once 1 "$c")
        [ "$got" = http/1.1 ] || fail "$c: on a counted route the server chose '$got', not http/1.1"
    done
    echo "alpn: curl, Python and GnuTLS offer HTTP/1.1 only on a route that counts requests"
    exit 0
fi

scenario foundry 3 "1000/60s" 127.0.0.2:1 # a route elsewhere: HTTPS passes, uncounted
check 3 0 200 200 200
scenario foundry 4 "1000/60s"
check 4 4 200 200 200 200
scenario di-tier2 2 "100/1s"
check 2 2 200 429
json=$("$ctl" -t "$work/table" show --json foundry)
"$py" - "$json" <<'PY' || fail "no cool-down after the 429: $json"
import json, sys
b = json.loads(sys.argv[1])["bucket"]
assert b["counters"]["reported_429"] == 1, "reported_429 is %d" % b["counters"]["reported_429"]
assert b["feedback"]["cooldown_ns"] > 0, "the bucket is not cooling down"
PY
rc=0
"$ctl" -t "$work/table" acquire --nowait foundry >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "acquire --nowait during the cool-down exited $rc, not 1 (rejected)"
echo "$client: none elsewhere, one unit per request (4 and 2), the 429 paused the bucket"
