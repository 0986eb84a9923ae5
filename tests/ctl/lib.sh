# shellcheck shell=bash
# tests/ctl/lib.sh - sourced by every ctl test: `source lib.sh "$@"` with the path of
# ratelimitctl as $1. Each test gets its own table, removed on exit.
set -euo pipefail

CTL=$1
# RATELIMITCTL_WRAPPER (e.g. "valgrind -q --error-exitcode=99 ..."), when set, runs every
# `run` under it: tools/check runs some of these tests under valgrind this way.
read -r -a wrapper <<<"${RATELIMITCTL_WRAPPER:-}"
export RATELIMIT_TABLE=/dev/shm/rl-ctl-$$
work=$(mktemp -d)
out=$work/out
err=$work/err
cleanup_hooks=()

cleanup() {
    local hook
    for hook in "${cleanup_hooks[@]+"${cleanup_hooks[@]}"}"; do
        eval "$hook" || true
    done
    rm -f "$RATELIMIT_TABLE"
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    [ -s "$out" ] && { echo "--- stdout:"; cat "$out"; } >&2
    [ -s "$err" ] && { echo "--- stderr:"; cat "$err"; } >&2
    exit 1
}

# run CODE ARGS...: run ratelimitctl ARGS with stdin closed; stdout in $out, stderr in $err;
# its exit status must be CODE.
run() {
    local want=$1 rc=0
    shift
    "${wrapper[@]+"${wrapper[@]}"}" "$CTL" "$@" >"$out" 2>"$err" </dev/null || rc=$?
    [ "$rc" -eq "$want" ] || fail "ratelimitctl $*: exit $rc, expected $want"
}

# run_err CODE PATTERN ARGS...: like run, and stderr must be one line starting with
# "ratelimitctl: " that matches the extended regex PATTERN.
run_err() {
    local want=$1 pattern=$2
    shift 2
    run "$want" "$@"
    [ "$(wc -l <"$err")" -eq 1 ] || fail "ratelimitctl $*: stderr is not one line"
    grep -q '^ratelimitctl: ' "$err" || fail "ratelimitctl $*: stderr lacks the prefix"
    grep -Eq -- "$pattern" "$err" || fail "ratelimitctl $*: stderr does not match /$pattern/"
    [ ! -s "$out" ] || fail "ratelimitctl $*: wrote to stdout on error"
}

# has PATTERN [FILE]: FILE (default $out) has a line matching the extended regex.
has() {
    grep -Eq -- "$1" "${2:-$out}" || fail "no line matches /$1/ in ${2:-stdout}"
}

# check_json PYTHON: $out is one JSON document, bound to `d`; PYTHON asserts on it.
check_json() {
    python3 - "$out" "$1" <<'PY' || fail "JSON check failed: $1"
import json, sys
with open(sys.argv[1]) as f:
    text = f.read()
assert text.endswith("\n") and text.count("\n") == 1, "not one line"
d = json.loads(text)
exec(sys.argv[2])
PY
}
