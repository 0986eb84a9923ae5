#!/usr/bin/env bash
# ctl-delete: `ratelimitctl delete NAME|PATTERN` and `apply --prune`: deleted names are free
# again, a parent goes after its children, a pattern deletes children first, and --prune
# deletes what the file no longer names, after every other change.
source "$(dirname "${BASH_SOURCE[0]}")/../ctl/lib.sh" "$@"

printf 'bucket a 10/s\nbucket a/b 5/s parent a\nbucket c 3/s\ntemplate t/* 2/s\n' >"$work/one.conf"
printf 'bucket a 10/s\ntemplate t/* 2/s\n' >"$work/two.conf"
run 0 apply "$work/one.conf"
run 0 acquire t/x
run 0 acquire t/y
run 0 delete c
[ "$(cat "$out")" = "deleted c" ] || fail "delete c printed something else"
run 4 show c
run 4 delete a
grep -q "bucket 'a' is the parent of 'a/b': delete it first" "$err" || fail "parent refusal"
run 0 delete 'a*'
[ "$(cat "$out")" = $'deleted a/b\ndeleted a' ] || fail "a pattern deletes children first"
run 0 define a 7/s
run 0 show a
grep -q '7/1s' "$out" || fail "a deleted name can be defined again"
run 3 delete
run 0 apply "$work/one.conf" # a is 7/s: switched back; a/b and c made again
run 0 apply --prune "$work/two.conf"
grep -q '^deleted a/b: not in the config$' "$out" || fail "--prune deletes a/b"
grep -q '^deleted c: not in the config$' "$out" || fail "--prune deletes c"
grep -q 'deleted t/' "$out" && fail "--prune keeps the tenants of a template the file keeps"
run 0 list
[ "$(awk 'NR > 1 {print $1}' "$out" | tr '\n' ' ')" = "a t/* t/x t/y " ] || fail "what --prune left"
run 0 delete 't/*'
[ "$(cat "$out")" = $'deleted t/*\ndeleted t/x\ndeleted t/y' ] ||
    [ "$(sort "$out" | tr '\n' ' ')" = "deleted t/* deleted t/x deleted t/y " ] ||
    fail "a template's pattern deletes it and its tenants"
run 0 info --json
# 9 buckets: a, a/b, c, t/*, t/x, t/y, then a, a/b and c again; 8 deleted, a is left: the
# records of the deleted ones are free (reused by the next creations).
check_json 'assert d["deleted"] == 8 and d["buckets"] == 1, d
assert d["records_free"] == d["capacity"] - 1, d
assert d["records_spare"] >= 5, d
assert d["arena_reclaimable"] + d["arena_free"] > 0, d'
run 0 define n/quiet 3/1h
run 0 define n/busy 3/1h
run 0 acquire n/busy
run 0 delete --idle 1m 'n/*'
[ "$(cat "$out")" = "expired n/quiet" ] || fail "--idle expires the quiet bucket only"
run 0 show n/busy
run 3 delete --idle never 'n/*'
echo "ctl-delete: ok"
