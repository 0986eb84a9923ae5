#!/usr/bin/env bash
# ctl-perm: read-only inspection by another user; changes (also report and apply, even
# apply --dry-run) refused with exit 5.
# Needs root (to act as two users); skipped (77) otherwise.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root"; exit 77; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_nobody "$CTL" --version >/dev/null 2>&1 || { echo "skipped: nobody cannot run $CTL"; exit 77; }

# run_as_nobody CODE ARGS...: like run, as user nobody.
run_as_nobody() {
    local want=$1 rc=0
    shift
    as_nobody env RATELIMIT_TABLE="$RATELIMIT_TABLE" "$CTL" "$@" >"$out" 2>"$err" </dev/null ||
        rc=$?
    [ "$rc" -eq "$want" ] || fail "as nobody: ratelimitctl $*: exit $rc, expected $want"
}
one_line() {
    [ "$(wc -l <"$err")" -eq 1 ] && grep -Eq "^ratelimitctl: $1" "$err" || fail "stderr: $1"
}

# A root table readable by all: nobody inspects it, and cannot change it.
run 0 define --mode 0644 foundry 200/60s
run 0 define child 10/1s parent foundry
run 0 acquire foundry
run_as_nobody 0 list
grep -Eq '^foundry +200/1m +1/200 ' "$out" || fail "nobody's list"
run_as_nobody 0 show child
run_as_nobody 0 stats --prometheus
run_as_nobody 0 info
run_as_nobody 0 watch --once
grep -q foundry "$out" || fail "nobody's watch --once"
run_as_nobody 5 reset foundry
one_line "reset: cannot open $RATELIMIT_TABLE: Permission denied$"
run_as_nobody 5 reset --all
run_as_nobody 5 acquire --nowait foundry
one_line "acquire: cannot open $RATELIMIT_TABLE: Permission denied$"
run_as_nobody 5 define other 1/s
run_as_nobody 5 report foundry --status 429 --retry-after 30
one_line "report: cannot open $RATELIMIT_TABLE: Permission denied$"
chmod 0755 "$work"
conf=$work/ratelimit.conf
printf 'table %s\nbucket foundry 100/60s\n' "$RATELIMIT_TABLE" >"$conf"
chmod 0644 "$conf"
run_as_nobody 0 check-config "$conf"
run_as_nobody 5 apply "$conf"
one_line "apply $conf: cannot open $RATELIMIT_TABLE: Permission denied$"
run_as_nobody 5 apply --dry-run "$conf"
one_line "apply $conf: cannot open $RATELIMIT_TABLE: Permission denied$"
run 0 list foundry
grep -Eq '^foundry +200/1m ' "$out" || fail "nobody's apply changed the rules"
run 0 stats --json
check_json 'assert d["buckets"][1]["counters"] == {"admitted": 1, "admitted_units": 1,
    "rejected": 0, "waited": 0, "waited_ns": 0, "waited_time": "0s", "dry_run_rejected": 0,
    "resets": 0, "reported_429": 0}, "nobody changed the table"'

# A private table: nobody cannot even read it.
chmod 0600 "$RATELIMIT_TABLE"
run_as_nobody 5 list
one_line "list: cannot open $RATELIMIT_TABLE: Permission denied$"
run_as_nobody 5 show foundry

# A table of another user: root may read it, but does not trust it for changes.
rm -f "$RATELIMIT_TABLE"
run_as_nobody 0 define --mode 0644 mine 5/1s
run 0 list
run_err 5 "reset: $RATELIMIT_TABLE is owned by uid 65534, not by you or root" reset mine
run_err 5 "apply $conf: $RATELIMIT_TABLE is owned by uid 65534, not by you or root" apply "$conf"
run_err 5 "apply $conf: $RATELIMIT_TABLE is owned by uid 65534" apply --dry-run "$conf"
run_err 5 "report: $RATELIMIT_TABLE is owned by uid 65534" report mine --status 429
