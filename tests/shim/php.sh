#!/usr/bin/env bash
# tests/shim/php.sh MODE SHIM MOCK_VENDOR RATELIMITCTL: PHP reaches the vendor through the
# preload shim, as its users run it (README "PHP and php-fpm"). PHP loads its extensions with
# RTLD_DEEPBIND, so curl_exec's connects reach the shim only through deepbind.c.
#   cli      php -r: curl_exec and file_get_contents, one connection per request each
#   fpm      nginx -> php-fpm (default pool settings: clear_env = yes; 8 children, as
#            www-data when run as root) started by `ratelimitctl exec --config`, with the
#            documented env[RATELIMIT_CONFIG]; each request does one curl_exec to the vendor
#   cleared  the same pool without env[RATELIMIT_CONFIG]: the shim finds no config, says so
#            in syslog (the children's stderr is /dev/null), and the table shows that no
#            process attached
# The invariant, exactly: every request the vendor saw took a unit (the bucket's admitted
# count equals the vendor's request count). The fpm mode also prints the vendor's 429s and
# the share of its budget used: measured, not asserted. Skipped (77) without php, php-curl,
# php-fpm or nginx.
set -euo pipefail
mode=$1 shim=$2 mock=$3 ctl=$4
py=$(python3 -c 'import sys; print(sys.executable)')
fpm_bin=$(command -v php-fpm8.2 || command -v php-fpm || ls /usr/sbin/php-fpm* 2>/dev/null | head -n 1 || true)
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
command -v php >/dev/null && php -r 'exit(function_exists("curl_init") ? 0 : 1);' ||
    { echo "SKIP: php with the curl extension is not installed"; exit 77; }
if [ "$mode" != cli ] && { [ -z "$fpm_bin" ] || [ ! -x "$nginx_bin" ]; }; then
    echo "SKIP: php-fpm or nginx is not installed"; exit 77
fi

work=$(mktemp -d /dev/shm/rl-shim-php.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    for f in fpm.log nginx.err syslog.txt; do
        [ -s "$work/$f" ] && { echo "--- $f" >&2; tail -n 20 "$work/$f" >&2; }
    done
    [ -e "$work/table" ] && "$ctl" -t "$work/table" show vendor >&2
    exit 1
}
free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # wait_port PORT: until something listens there (at most 300 tries, 30 s)
    for _ in $(seq 300); do
        "$py" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
            "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# The vendor: Foundry's 200 per rolling 60 s, time-scaled 15x: 200 per 4 s, 50 per second.
: >"$work/server.out"
"$py" "$mock" --seed foundry --scale 15 --max-seconds 120 >>"$work/server.out" &
server=$!
pids+=("$server")
vport=""
for _ in $(seq 300); do # its "port N" line is the ready signal (bounded: 30 s)
    vport=$(sed -n 's/^port //p' "$work/server.out" 2>/dev/null || true)
    [ -n "$vport" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
[ -n "$vport" ] || fail "the mock vendor did not start"

# The bucket: the vendor's budget, with a margin for the delay between an admission and the
# vendor's count (as tests/shim/vendor.sh).
cat >"$work/ratelimit.conf" <<EOF
table $work/table
bucket vendor 200/4s margin 150ms
route 127.0.0.1:$vport vendor
EOF
chmod 644 "$work/ratelimit.conf"

stop_vendor() { # stop the vendor; $stats: its JSON statistics line
    kill -TERM "$server"
    wait "$server" || true
    stats=$(tail -n 1 "$work/server.out")
}
admitted() {
    "$ctl" -t "$work/table" show vendor | sed -n 's/^ *admitted *\([0-9]*\) requests.*/\1/p'
}
field() { "$py" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

if [ "$mode" = cli ]; then
    export RATELIMIT_CONFIG=$work/ratelimit.conf
    url="http://127.0.0.1:$vport/"
    out=$(RATELIMIT_DEBUG=1 "$ctl" exec -- php -r '
        $n = 0;
        for ($i = 0; $i < 5; $i++) {
            $c = curl_init($argv[1]);
            curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
            curl_setopt($c, CURLOPT_FORBID_REUSE, true);
            curl_exec($c);
            $n += curl_getinfo($c, CURLINFO_HTTP_CODE) == 200;
            curl_close($c);
        }
        for ($i = 0; $i < 3; $i++)
            $n += file_get_contents($argv[1]) !== false;
        echo "ok $n\n";' "$url" 2>"$work/php.err") || fail "php failed: $(cat "$work/php.err")"
    [ "$out" = "ok 8" ] || fail "php: expected 'ok 8', got '$out'"
    grep -q 'curl.so was loaded with RTLD_DEEPBIND: [0-9]* of its calls redirected' "$work/php.err" ||
        fail "RATELIMIT_DEBUG did not report the redirected DEEPBIND load: $(cat "$work/php.err")"
    grep -q "debug: pid [0-9]*: config $work/ratelimit.conf, table $work/table, 1 route" \
        "$work/php.err" || fail "RATELIMIT_DEBUG did not say what the process got"
    stop_vendor
    echo "server: $stats"
    [ "$(field "$stats" requests)" -eq 8 ] || fail "the vendor saw $(field "$stats" requests), not 8"
    [ "$(admitted)" -eq 8 ] || fail "the bucket admitted $(admitted), not 8: curl_exec bypassed the shim"
    "$ctl" -t "$work/table" show vendor | grep -q '^shim: 1 process attached' ||
        fail "show does not count the php process"
    # exec --check: what php would get, and a probe connect through the shim.
    "$ctl" exec --check -- php >"$work/check.out" || fail "exec --check: $(cat "$work/check.out")"
    grep -q "^config   $work/ratelimit.conf: 1 route$" "$work/check.out" &&
        grep -q "^route    127.0.0.1:$vport -> bucket vendor$" "$work/check.out" &&
        grep -q '^command  .*: dynamically linked: the shim is loaded$' "$work/check.out" &&
        grep -q '^probe    a connect through the shim took one unit' "$work/check.out" ||
        fail "exec --check: $(cat "$work/check.out")"
    # A library that is not the shim: the probe tells.
    rc=0
    "$ctl" exec --check --preload "$(php -r 'echo PHP_BINARY;')" -- php >"$work/check.out" || rc=$?
    [ "$rc" -eq 4 ] && grep -q '^probe    a connect through the shim took no unit' "$work/check.out" ||
        fail "exec --check with no shim (exit $rc): $(cat "$work/check.out")"
    exit 0
fi

# ------------------------------------------------------------------ php-fpm behind nginx
fport=$(free_port)
nport=$(free_port)
user_lines="" nginx_user=""
if [ "$(id -u)" -eq 0 ] && id www-data >/dev/null 2>&1; then
    user_lines=$'user = www-data\ngroup = www-data'
    nginx_user="user www-data;"
    chown www-data "$work" # the children create the table there
fi
mkdir -p "$work/www" "$work/nginx"
cat >"$work/www/index.php" <<EOF
<?php
\$c = curl_init("http://127.0.0.1:$vport/");
curl_setopt(\$c, CURLOPT_RETURNTRANSFER, true);
curl_setopt(\$c, CURLOPT_TIMEOUT, 60);
curl_exec(\$c);
echo curl_getinfo(\$c, CURLINFO_HTTP_CODE), "\n";
EOF
chmod -R a+rX "$work/www"
# The syslog socket: the children's stderr is /dev/null, so the shim's lines go here.
"$py" - "$work/log.sock" "$work/syslog.txt" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(4096).decode(errors="replace") + "\n")
        f.flush()
PY
pids+=($!)
for _ in $(seq 300); do # bound before any child can write to it (at most 30 s)
    [ -S "$work/log.sock" ] && break
    sleep 0.1
done
[ -S "$work/log.sock" ] || fail "the syslog listener did not start"
env_lines="env[RATELIMIT_SYSLOG_SOCKET] = $work/log.sock"
[ "$mode" = fpm ] && env_lines+=$'\n'"env[RATELIMIT_CONFIG] = $work/ratelimit.conf"
cat >"$work/fpm.conf" <<EOF
[global]
pid = $work/fpm.pid
error_log = $work/fpm.log
daemonize = no
[app]
$user_lines
listen = 127.0.0.1:$fport
pm = static
pm.max_children = 8
$env_lines
EOF
cat >"$work/nginx.conf" <<EOF
$nginx_user
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    fastcgi_temp_path $work/nginx/fastcgi;
    proxy_temp_path $work/nginx/proxy;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$nport;
        location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $work/www/index.php;
            fastcgi_pass 127.0.0.1:$fport;
            fastcgi_read_timeout 90s;
        }
    }
}
EOF
[ "$mode" = cleared ] && "$ctl" apply "$work/ratelimit.conf" >/dev/null # the table to use
# As the README shows: the config is checked and the shim preloaded by ratelimitctl.
"$ctl" exec --config "$work/ratelimit.conf" -- "$fpm_bin" -F -y "$work/fpm.conf" \
    2>>"$work/fpm.log" &
pids+=($!)
"$nginx_bin" -p "$work" -c "$work/nginx.conf" -e "$work/nginx.err" &
pids+=($!)
wait_port "$fport" || fail "php-fpm did not start"
wait_port "$nport" || fail "nginx did not start"

# The clients: 16 loops through nginx for RUN seconds, then each finishes its request.
RUN=${RUN:-9}
[ "$mode" = cleared ] && RUN=1
"$py" - "$nport" "$RUN" >"$work/clients.out" <<'PY' || fail "the clients failed"
import collections, sys, threading, time, urllib.request
port, run = int(sys.argv[1]), float(sys.argv[2])
codes, lock = collections.Counter(), threading.Lock()
stop = time.monotonic() + run
def loop():
    while time.monotonic() < stop:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=120) as r:
                code = r.read().decode().strip()
        except Exception as e:
            code = "error " + type(e).__name__
        with lock:
            codes[code] += 1
threads = [threading.Thread(target=loop) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(" ".join("%s:%d" % kv for kv in sorted(codes.items())))
PY
clients=$(cat "$work/clients.out")
stop_vendor
echo "server: $stats"
echo "clients (vendor status as PHP saw it): $clients"
requests=$(field "$stats" requests)

if [ "$mode" = cleared ]; then
    [ "$requests" -gt 0 ] || fail "no request reached the vendor"
    [ "$(admitted)" -eq 0 ] || fail "the bucket admitted units though no config reached the pool"
    "$ctl" -t "$work/table" show vendor | grep -q '^shim: no process has attached' ||
        fail "show does not say that no process attached through the shim"
    if [ ! -e /etc/ratelimit.conf ]; then
        # The line was sent before the clients ended; the listener writes it down when it
        # gets to it (a loaded machine may delay that): wait for it, at most 30 s.
        for _ in $(seq 300); do
            grep -q 'ratelimit-shim\[[0-9]*\]: cannot open config /etc/ratelimit.conf' \
                "$work/syslog.txt" 2>/dev/null && break
            sleep 0.1
        done
        grep -q 'ratelimit-shim\[[0-9]*\]: cannot open config /etc/ratelimit.conf' "$work/syslog.txt" ||
            fail "syslog did not get the missing config"
    fi
    echo "syslog: $(head -n 1 "$work/syslog.txt")"
    exit 0
fi

adm=$(admitted)
"$ctl" -t "$work/table" show vendor | grep '^shim:'
[ "$adm" -eq "$requests" ] ||
    fail "the bucket admitted $adm units, the vendor saw $requests requests"
"$ctl" -t "$work/table" show vendor | grep -Eq '^shim: [0-9]+ process(es)? attached' ||
    fail "show does not count the pool's children"
"$py" - "$stats" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
rate = s["ok"] / s["span_s"] if s["span_s"] else 0.0
print("measured: %d requests, %d answered 429; the busiest 4 s window held %d of 200; "
      "%.1f ok per second over %.1f s, %.1f%% of the vendor's 50 per second"
      % (s["requests"], s["throttled"], s["most_in_window"][0], rate, s["span_s"], 2.0 * rate))
PY
