#!/usr/bin/env bash
# ctl-apply: `ratelimitctl apply [--dry-run] [FILE]`: creates what the config defines, is a
# no-op the second time, updates changed rules, and changes nothing when the file is
# invalid or the change is refused; --dry-run says the same and changes nothing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
export RATELIMIT_TABLE=/dev/shm/rl-ctl-apply-$$ # removed by lib.sh's trap
other=/dev/shm/rl-ctl-apply-other-$$
cleanup_hooks+=("rm -f $other")

conf=$work/ratelimit.conf
write_conf() { # write_conf TI-RULES TEMPLATE-RULES: the config, its table ours
    cat >"$conf" <<CONF
table $RATELIMIT_TABLE
mode 0640
capacity 32
bucket foundry 200/60s
bucket ti $1
bucket ti/reporting 30/1m parent ti
template tenant/* $2
route api.foundry.example:443 foundry
CONF
}
# snapshot FILE: the table's buckets and rules (list --json, without the changing parts).
snapshot() {
    run 0 list --json
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for b in d["buckets"]:
    print(b["name"], b["parent"], b["template"], b["policy"])
' "$out" >"$1"
}

# --dry-run on a missing table: says what would be created, creates nothing.
write_conf '120/1m burst 20' 10/1m
run 0 apply --dry-run "$conf"
has '^dry run: created foundry 200/1m$'
has '^dry run: created template tenant/\* 10/1m$'
[ ! -e "$RATELIMIT_TABLE" ] || fail "apply --dry-run created the table"

# The first apply creates the table (with the file's mode) and everything in it.
run 0 apply "$conf"
cat >"$work/want" <<'OUT'
created foundry 200/1m
created ti 120/1m burst 20
created ti/reporting 30/1m parent ti
created template tenant/* 10/1m
OUT
diff -u "$work/want" "$out" >&2 || fail "the first apply's lines"
[ ! -s "$err" ] || fail "apply wrote to stderr"
[ "$(stat -c %a "$RATELIMIT_TABLE")" = 640 ] || fail "the table's mode is not the file's"
run 0 list --json
check_json '
b = {x["name"]: x for x in d["buckets"]}
assert sorted(b) == ["foundry", "tenant/*", "ti", "ti/reporting"], sorted(b)
assert b["ti"]["policy"] == "120/1m burst 20" and b["ti/reporting"]["parent"] == "ti"
assert b["tenant/*"]["template"] is True
'

# The second apply is a no-op: no created or updated lines, the same table.
run 0 acquire --nowait tenant/acme
run 0 acquire --nowait foundry
snapshot "$work/before"
run 0 apply "$conf"
! grep -Eq '^(created|updated) ' "$out" || fail "a second apply changed something"
has '^unchanged: all of it \(this config was applied and the table has not changed since\)$'
snapshot "$work/after"
diff -u "$work/before" "$work/after" >&2 || fail "a second apply changed the table"
run 0 show --json foundry
check_json 'assert d["bucket"]["rules"][0]["used"] == 1, "apply lost the usage counted"'

# A changed rule: --dry-run says so and changes nothing; apply updates it and the buckets
# made from a changed template; buckets the file does not mention are kept.
run 0 define extra 5/1s
write_conf '600/1m burst 100' 20/1m
run 0 apply --dry-run "$conf"
has '^dry run: updated ti: 120/1m burst 20 -> 600/1m burst 100$'
has '^dry run: updated tenant/acme \(made from tenant/\*\): 10/1m -> 20/1m$'
has '^dry run: kept extra: not in the config$'
snapshot "$work/after"
diff -u "$work/before" <(grep -v '^extra ' "$work/after") >&2 || fail "--dry-run changed the table"
run 0 apply "$conf"
has '^updated ti: 120/1m burst 20 -> 600/1m burst 100$'
has '^updated template tenant/\*: 10/1m -> 20/1m$'
has '^updated tenant/acme \(made from tenant/\*\): 10/1m -> 20/1m$'
has '^unchanged ti/reporting$'
has '^kept extra: not in the config$'
run 0 list --json
check_json '
b = {x["name"]: x for x in d["buckets"]}
assert b["ti"]["policy"] == "600/1m burst 100" and b["tenant/acme"]["policy"] == "20/1m"
assert b["extra"]["policy"] == "5/1s"
'

# An invalid file changes nothing: exit 1, its problems on stderr.
snapshot "$work/before"
bad=$work/bad.conf
printf 'table %s\nbucket foundry 1/1s\nbucket ti 1/1x\nbucket new 1/s parent nope\n' \
    "$RATELIMIT_TABLE" >"$bad"
run 1 apply "$bad"
[ ! -s "$out" ] || fail "an invalid file printed actions"
[ "$(grep -Ec "^$bad:[0-9]+:[0-9]+: " "$err")" -eq 2 ] || fail "not 2 problem lines"
has "^ratelimitctl: apply: $bad is invalid: 2 problems$" "$err"
run 1 apply --dry-run "$bad"
snapshot "$work/after"
diff -u "$work/before" "$work/after" >&2 || fail "an invalid file changed the table"

# A refused change (a bucket's parent cannot change) changes nothing either: exit 4, and
# --dry-run fails alike, naming the real table.
printf 'table %s\nbucket foundry 1/1s\nbucket ti/reporting 30/1m\nbucket new 1/s\n' \
    "$RATELIMIT_TABLE" >"$bad"
msg="apply $bad: bucket 'ti/reporting' has parent ti in $RATELIMIT_TABLE, the config \(line 3\)"
run_err 4 "^ratelimitctl: $msg says \(none\): a bucket's parent cannot change" apply "$bad"
run_err 4 "^ratelimitctl: $msg" apply --dry-run "$bad"
snapshot "$work/after"
diff -u "$work/before" "$work/after" >&2 || fail "a refused apply changed the table"

# No room: a full table refuses the whole file.
printf 'table %s\ncapacity 2\nbucket a 1/s\nbucket b 1/s\n' "$other" >"$work/small.conf"
run 0 apply "$work/small.conf"
printf 'table %s\nbucket a 1/s\nbucket b 1/s\nbucket c 1/s\n' "$other" >"$work/more.conf"
run_err 4 "table $other has room for 0 more buckets, the config adds 1" apply "$work/more.conf"
run_err 4 "table $other has room for 0 more buckets" apply --dry-run "$work/more.conf"
run 0 --table "$other" list --json
check_json 'assert [b["name"] for b in d["buckets"]] == ["a", "b"], d'

# The global --table wins over the file's table; $RATELIMIT_CONFIG is the default file.
rm -f "$other"
run 0 --table "$other" apply "$conf"
has '^created foundry 200/1m$'
run 0 --table "$other" list --json
check_json 'assert len(d["buckets"]) == 4, d'
RATELIMIT_CONFIG=$conf run 0 --table "$other" apply
! grep -Eq '^(created|updated) ' "$out" || fail "apply of \$RATELIMIT_CONFIG changed something"

# Errors: an unreadable file (4), usage (3).
run_err 4 "^ratelimitctl: apply: cannot open config $work/nope.conf: No such file" \
    apply "$work/nope.conf"
run_err 3 'apply: expected at most one FILE' apply a b
run_err 3 "apply: bad option '--force'" apply --force "$conf"
