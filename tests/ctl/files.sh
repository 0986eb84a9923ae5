#!/usr/bin/env bash
# ctl-files: what the table file cannot do to ratelimitctl. With stderr closed, a
# diagnostic does not land in the table. A FIFO at the path is refused at once. On a full
# tmpfs, define and apply fail with a message (no SIGBUS) and apply changes nothing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

# stderr closed: the table must not take descriptor 2.
run 0 define foo 1/1h
run 0 acquire foo
rc=0
"$CTL" acquire --timeout 0 foo >/dev/null 2>&- </dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "acquire with stderr closed: exit $rc, expected 2 (rejected)"
[ "$(head -c 8 "$RATELIMIT_TABLE")" = LRTIMLT1 ] || fail "the table header was overwritten"
run 0 list
has '^foo +1/1h'

# A FIFO: every command returns at once with the reason.
rm -f "$RATELIMIT_TABLE"
mkfifo "$RATELIMIT_TABLE"
for cmd in list info "stats --prometheus" "define x 1/1s"; do
    rc=0
    # shellcheck disable=SC2086
    timeout 20 "$CTL" $cmd >"$out" 2>"$err" </dev/null || rc=$?
    [ "$rc" -ne 124 ] || fail "ratelimitctl $cmd hangs on a FIFO"
    [ "$rc" -ne 0 ] || fail "ratelimitctl $cmd accepted a FIFO"
    grep -q "is a FIFO, not a table" "$err" || fail "ratelimitctl $cmd: no reason given"
done
rm -f "$RATELIMIT_TABLE"

# A 256 KiB tmpfs in a private mount namespace.
if ! unshare -m true 2>/dev/null; then
    echo "SKIP: the tmpfs part needs root and unshare -m" >&2
    exit 0
fi
small=$work/small
mkdir "$small"
cat >"$work/inner.sh" <<'INNER'
set -u
CTL=$1 small=$2 work=$3
mount -t tmpfs -o size=256k tmpfs "$small" || exit 77
export RATELIMIT_TABLE=$small/t
status() { "$@" >"$work/out" 2>"$work/err" </dev/null; echo $?; }
echo "define $(status "$CTL" define big 100000/1h)"
cat "$work/err"
"$CTL" list >"$work/list" 2>&1
# The table exists (an empty config made it), so apply itself must find the room missing.
printf 'table %s\ncapacity 16\n' "$small/u" >"$work/conf"
"$CTL" apply "$work/conf" >/dev/null 2>&1
printf 'table %s\ncapacity 16\nbucket first 10/1s\nbucket big 100000/1h\nbucket last 10/1s\n' \
    "$small/u" >"$work/conf"
echo "apply $(status "$CTL" apply "$work/conf")"
cat "$work/err"
RATELIMIT_TABLE=$small/u "$CTL" list --json >"$work/list2" 2>&1
umount "$small"
INNER
rc=0
unshare -m bash "$work/inner.sh" "$CTL" "$small" "$work" >"$work/log" 2>&1 || rc=$?
[ "$rc" -ne 77 ] || { echo "SKIP: cannot mount a tmpfs" >&2; exit 0; }
cp "$work/log" "$out"
has '^define [1-9]'
! grep -Eq '^(define|apply) (1[3-9][0-9])' "$out" || fail "killed by a signal"
has '^ratelimitctl: define big: table .*/t: the file system is full: [0-9]+ more bytes are needed'
has '^apply [1-9]'
has '^ratelimitctl: apply .*: table .*/u: the file system is full'
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["buckets"] == [], d
' "$work/list2" || fail "apply on a full tmpfs left buckets: $(cat "$work/list2")"
