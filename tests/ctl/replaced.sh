#!/usr/bin/env bash
# ctl-replaced: info and list warn when, by the time they are done, the path no longer
# names the table they read (deleted or replaced meanwhile). Made deterministic by a pipe:
# list's output is larger than the pipe, so list blocks writing it, with the table open,
# until the test has deleted the table and reads on.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

name=$(printf 'b%.0s' $(seq 1 50))
for i in $(seq 1 1000); do echo "bucket $name-$i 10/1m"; done >"$work/config"
run 0 apply "$work/config"
mkfifo "$work/pipe"
"$CTL" list >"$work/pipe" 2>"$err" &
pid=$!
exec 3<"$work/pipe"
read -r header <&3
[[ "$header" == NAME* ]] || fail "list printed '$header' first"
rm "$RATELIMIT_TABLE"
cat <&3 >"$out"
exec 3<&-
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || fail "list exited $rc"
[ "$(wc -l <"$out")" -eq 1000 ] || fail "list did not print the 1000 buckets"
grep -q "^ratelimitctl: list: warning: table $RATELIMIT_TABLE was deleted" "$err" ||
    fail "list did not warn that the table was deleted"

# Replaced: info opens the new file, which is the one the path names: no warning.
run 0 define other 1/1s
run 0 info
[ ! -s "$err" ] || fail "info warned about the table the path names"
echo "ok: list warned about the table deleted while it read it"
