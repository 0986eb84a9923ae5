#!/usr/bin/env bash
# ctl-expire: a template's `expire` in the config and in `define`; list, show and info show
# it; `ratelimitctl expire [--dry-run]` deletes the idle tenants only; apply carries a new
# expiry to the template and the tenants made from it.
source "$(dirname "${BASH_SOURCE[0]}")/../ctl/lib.sh" "$@"

printf 'bucket org 100/1m\ntemplate t/* 5/20ms margin 0 expire 20ms parent org\n' >"$work/one.conf"
printf 'bucket org 100/1m\ntemplate t/* 5/20ms margin 0 expire 1h parent org\n' >"$work/two.conf"
run 0 apply "$work/one.conf"
has '^created template t/\* 5/20ms margin 0ms expire 20ms parent org$'
run 0 acquire t/quiet
run 0 define 'long/*' 5/1h expire 20ms
run 0 acquire long/busy
run 0 list
has '^t/\* +5/20ms margin 0ms expire 20ms '
has '^t/quiet +5/20ms margin 0ms expire 20ms '
has '^org +100/1m  '
run 0 list --json
check_json 'b = {x["name"]: x for x in d["buckets"]}
assert b["t/*"]["expire_ns"] == 20000000 and b["t/quiet"]["expire_ns"] == 20000000, b
assert b["org"]["expire_ns"] == 0 and b["long/busy"]["expire_ns"] == 20000000, b'
run 0 show t/quiet
has '^  expire +20ms: deleted once unused for its longest window plus that$'
run 0 show --json 't/*'
check_json 'assert d["bucket"]["expire_ns"] == 20000000, d'
sleep 0.1 # t/quiet idle for 20 ms + 20 ms; long/busy counts its unit for an hour
run 0 expire --dry-run
[ "$(cat "$out")" = "due t/quiet" ] || fail "the dry run names the idle tenant only"
run 0 show t/quiet
run 0 expire 't/*'
[ "$(cat "$out")" = "expired t/quiet" ] || fail "expire deletes the idle tenant only"
run 4 show t/quiet
run 0 show long/busy
run 0 info --json
check_json 'assert d["expired"] == 1 and d["expired_auto"] == 1, d'
run 0 stats --prometheus
has '^ratelimit_table_buckets_expired_auto\{table="[^"]*"\} 1$'
run 0 acquire t/other
run 0 apply "$work/two.conf"
has '^updated template t/\*: 5/20ms margin 0ms expire 20ms -> 5/20ms margin 0ms expire 1h$'
has '^updated t/other \(made from t/\*\): .* -> 5/20ms margin 0ms expire 1h$'
run 0 apply "$work/two.conf"
has '^unchanged: all of it'
run_err 3 "'expire' is for templates" define plain 5/s expire 1h
run_err 3 "expire '0s': expected 1ms to 49d" define 'x/*' 5/s expire 0s
run_err 3 "'expire' is given twice" define 'x/*' 5/s expire 1h expire 2h
run 0 define 'x/*' 5/s parent org expire 1h
run_err 4 "already exists with other rules, expiry or parent" define 'x/*' 5/s parent org
printf 'bucket a 1/s expire 1h\n' >"$work/bad.conf"
run 1 check-config "$work/bad.conf"
grep -q "bad.conf:1:14: 'expire' is for templates" "$out" "$err" || fail "check-config reports it"
echo "ctl-expire: ok"
