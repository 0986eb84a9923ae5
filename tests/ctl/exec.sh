#!/usr/bin/env bash
# ctl-exec: `ratelimitctl exec` runs an unmodified program under the preload shim: its
# LD_PRELOAD and RATELIMIT_CONFIG are set, its connections to a route take units, and the
# third connect through a 2/1h bucket with `wait 0` fails with ETIMEDOUT. Loopback only.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
export RATELIMIT_TABLE=/dev/shm/rl-ctl-exec-$$ # removed by lib.sh's trap
conf=$work/ratelimit.conf

# The environment the command gets; an existing LD_PRELOAD is kept, after the shim.
cat >"$conf" <<CONF
table $RATELIMIT_TABLE
bucket api 2/1h
CONF
LD_PRELOAD=libc.so.6 run 0 exec --config "$conf" -- sh -c 'echo "$LD_PRELOAD|$RATELIMIT_CONFIG"'
has "^/.*/libratelimit-preload\.so:libc\.so\.6\|$conf$"

# Connections: the program listens on loopback, writes the route to its port into the
# config, then connects three times (the shim reads the config at the first connect).
cat >"$work/client.py" <<'PY'
import errno, socket, sys
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
port = srv.getsockname()[1]
with open(sys.argv[1], "a") as f:
    f.write(f"route 127.0.0.1:{port} api wait 0 on-timeout fail\n")
for i in range(3):
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", port))
        print("connected")
    except OSError as e:
        print("refused " + errno.errorcode.get(e.errno, str(e.errno)))
    c.close()
PY
run 0 exec --config "$conf" -- python3 "$work/client.py" "$conf"
[ "$(grep -c '^connected$' "$out")" -eq 2 ] || fail "expected 2 connections to pass"
has '^refused ETIMEDOUT$'
run 0 show api --json
check_json 'assert d["bucket"]["counters"]["admitted"] == 2'

# Errors: an invalid config stops before the command; missing command or shim; exec failures.
echo "bucket broken 0/1s" >"$work/bad.conf"
run 1 exec --config "$work/bad.conf" -- true
grep -q 'bad.conf:1:' "$err" || fail "the config's problem is not named"
run_err 3 'expected a COMMAND' exec
run_err 4 'preload shim' exec --preload "$work/none.so" -- true
run 127 exec -- "$work/no-such-command"
run 126 exec -- "$work"
echo "ok: exec"
