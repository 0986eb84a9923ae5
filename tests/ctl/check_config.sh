#!/usr/bin/env bash
# ctl-check-config: `ratelimitctl check-config [FILE]`, like `nginx -t`: a valid file gets a
# summary and exit 0; an invalid one every problem as FILE:LINE:COL on stderr and exit 1; a
# file that cannot be read exit 4. No table is ever touched.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
export RATELIMIT_TABLE=/dev/shm/rl-ctl-check-config-$$ # removed by lib.sh's trap
examples=$(dirname "${BASH_SOURCE[0]}")/../../examples/conf

good=$work/good.conf
cat >"$good" <<CONF
# a valid file: 5 buckets, 1 template, 2 routes
table $RATELIMIT_TABLE
mode 0640
capacity 32
bucket foundry 200/60s
bucket ti 120/1m burst 20
bucket ti/events 100/1m parent ti
bucket ti/reporting 30/1m parent ti
bucket hourly 1000/1h fixed, 100/1m margin 50ms
template tenant/* 10/1m parent foundry
route api.foundry.example:443 foundry wait 30s
route 10.0.0.0/8:8443 tenant/acme on-timeout pass
CONF
run 0 check-config "$good"
[ "$(head -n1 "$out")" = "$good: ok: 5 buckets, 1 template, 2 routes, table $RATELIMIT_TABLE" ] ||
    fail "the summary of a valid file"
[ ! -s "$err" ] || fail "a valid file wrote to stderr"
[ ! -e "$RATELIMIT_TABLE" ] || fail "check-config created a table"

# The default file: $RATELIMIT_CONFIG; the default table, said so; singulars.
one=$work/one.conf
printf 'bucket solo 5/1s\nroute api.example.com:443 solo\n' >"$one"
RATELIMIT_CONFIG=$one run 0 check-config
has "^$one: ok: 1 bucket, 0 templates, 1 route, table $RATELIMIT_TABLE \(from \\\$RATELIMIT_TABLE\)$"
(unset RATELIMIT_TABLE && RATELIMIT_CONFIG=$one run 0 check-config) || exit 1
has "^$one: ok: 1 bucket, .*, table /dev/shm/ratelimit \(the default\)$"
: >"$work/empty.conf"
run 0 check-config "$work/empty.conf"
has ': ok: 0 buckets, 0 templates, 0 routes, '

# The shipped examples are valid.
for f in "$examples"/*.conf; do
    run 0 check-config "$f"
    has "^$f: ok: [0-9]+ buckets?, "
done

# Three problems: all reported, in file order, as FILE:LINE:COL, then a count; exit 1.
bad=$work/bad.conf
cat >"$bad" <<CONF
table $RATELIMIT_TABLE
bucket foundry 200/6x
bucket child 1/s parent nope
frobnicate now
CONF
run 1 check-config "$bad"
[ ! -s "$out" ] || fail "an invalid file wrote to stdout"
[ "$(grep -Ec "^$bad:[0-9]+:[0-9]+: " "$err")" -eq 3 ] || fail "not 3 problem lines"
has "^$bad:2:21: expected a duration unit" "$err"
has "^$bad:3:25: unknown parent 'nope'" "$err"
has "^$bad:4:1: unknown keyword 'frobnicate'" "$err"
[ "$(tail -n 1 "$err")" = "ratelimitctl: check-config: $bad is invalid: 3 problems" ] ||
    fail "no count after the problems"
[ "$(wc -l <"$err")" -eq 4 ] || fail "more than the problems and the count on stderr"
printf 'bucket a 1/s\nbucket a 2/s\n' >"$work/dup.conf"
run 1 check-config "$work/dup.conf"
has "dup.conf:2:8: bucket 'a' is already defined at line 1" "$err"
has 'is invalid: 1 problem$' "$err"
[ ! -e "$RATELIMIT_TABLE" ] || fail "check-config created a table"

# Files that cannot be read: exit 4, naming them.
run_err 4 "^ratelimitctl: check-config: cannot open config $work/nope.conf: No such file" \
    check-config "$work/nope.conf"
run_err 4 "^ratelimitctl: check-config: cannot read config $work: Is a directory$" \
    check-config "$work"
RATELIMIT_CONFIG=$work/gone.conf run_err 4 "cannot open config $work/gone.conf" check-config

# Usage errors: exit 3.
run_err 3 'check-config: expected at most one FILE' check-config a b
run_err 3 'check-config: FILE must not be empty' check-config ''
run_err 3 "check-config: bad option '--bogus'" check-config --bogus
