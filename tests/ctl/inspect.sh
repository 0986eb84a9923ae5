#!/usr/bin/env bash
# ctl-inspect: define buckets, then list, show, info and reset them, as text and JSON.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

# define creates the table (mode and capacity), is idempotent, refuses other rules.
run 0 define --capacity 16 --mode 0640 foundry 200/60s
[ ! -s "$out" ] && [ ! -s "$err" ] || fail "define printed something"
[ "$(stat -c %a "$RATELIMIT_TABLE")" = 640 ] || fail "table mode is not 0640"
run 0 define foundry 200/1m
run_err 4 "define foundry: bucket 'foundry' already exists with other rules" define foundry 100/1m
run 0 define ti 1000/1h fixed, 100/1m
run 0 define ti/reporting 30/1m parent ti
run 0 define tok 120/1h burst 20 margin 50ms
run 0 define shadow '5/1s dry-run'
run 0 acquire --cost 5 ti/reporting
run 0 acquire tok

# info
run 0 info
has '^table +'"$RATELIMIT_TABLE"'$'
has '^capacity +16 buckets$'
has '^buckets +5 defined, 11 free, 0 deleted \(0 expired, 0 automatically\)$'
run 0 info --json
check_json '
assert d["table"] == "'"$RATELIMIT_TABLE"'"
assert d["capacity"] == 16 and d["buckets"] == 5 and d["layout_version"] >= 1
assert 0 < d["arena_used"] <= d["arena_bytes"] < d["file_bytes"]
assert isinstance(d["age_ns"], int) and isinstance(d["age"], str)
'

# list: a header, one line per bucket sorted by name, canonical rules, used/limit.
run 0 list
[ "$(wc -l <"$out")" -eq 6 ] || fail "list: expected a header and 5 lines"
has '^NAME +RULES +USED +REMAINING +NEXT$'
has '^foundry +200/1m +0/200 +200 +now$'
has '^ti +1000/1h fixed, 100/1m +5/1k, 5/100 +95 +now$'
has '^ti/reporting +30/1m +5/30 +25 +now$'
has '^tok +120/1h burst 20 margin 50ms +1/20 '
has '^shadow +5/1s dry-run '
[ "$(awk 'NR > 1 { print $1 }' "$out" | tr '\n' ' ')" = "foundry shadow ti ti/reporting tok " ] ||
    fail "list is not sorted by name"
run 0 list 'ti*'
[ "$(awk 'NR > 1 { print $1 }' "$out" | tr '\n' ' ')" = "ti ti/reporting " ] || fail "list 'ti*'"
run 0 list 'nomatch*'
[ "$(wc -l <"$out")" -eq 1 ] || fail "list of no match: expected the header only"

run 0 list --json
check_json '
assert d["table"] == "'"$RATELIMIT_TABLE"'"
names = [b["name"] for b in d["buckets"]]
assert names == ["foundry", "shadow", "ti", "ti/reporting", "tok"], names
b = {b["name"]: b for b in d["buckets"]}
keys = {"name", "parent", "template", "policy", "margin_ns", "dry_run", "expire_ns", "expire",
        "remaining",
        "next_free_ns", "next_free", "rules", "feedback", "margin"}
feedback_keys = {"cooldown_ns", "cooldown", "backoff", "last_429_ns", "tightened",
                 "server_remaining", "server_reset_ns", "server_reset"}
rule_keys = {"rule", "kind", "limit", "period_ns", "burst", "used", "remaining",
             "next_free_ns", "next_free"}
for x in d["buckets"]:
    assert set(x) == keys, set(x) ^ keys
    for r in x["rules"]:
        assert set(r) == rule_keys, set(r) ^ rule_keys
    assert set(x["feedback"]) == feedback_keys, set(x["feedback"]) ^ feedback_keys
    assert x["template"] is False and x["feedback"]["tightened"] is False
assert b["foundry"]["parent"] is None and b["ti/reporting"]["parent"] == "ti"
assert b["foundry"]["policy"] == "200/1m" and b["foundry"]["margin_ns"] == 20000000
assert b["ti"]["rules"][0] == {"rule": "1000/1h fixed", "kind": "fixed", "limit": 1000,
    "period_ns": 3600 * 10**9, "burst": 0, "used": 5, "remaining": 995, "next_free_ns": 0,
    "next_free": "0s"}, b["ti"]["rules"][0]
assert b["ti"]["rules"][1]["kind"] == "sliding" and b["ti"]["remaining"] == 95
assert b["tok"]["rules"][0]["kind"] == "gcra" and b["tok"]["rules"][0]["burst"] == 20
assert b["tok"]["margin_ns"] == 50000000
assert b["tok"]["margin"]["effective_ns"] == 50000000, b["tok"]["margin"]
assert b["tok"]["margin"]["reason"] == "configured" and b["tok"]["margin"]["learned_ns"] == 0
assert b["shadow"]["margin"]["ceiling_ns"] == 100000000, "a tenth of 1s"
assert b["shadow"]["dry_run"] is True and b["foundry"]["dry_run"] is False
'
run 0 list --json 'nomatch*'
check_json 'assert d["buckets"] == []'

# show: the bucket, its chain, its counters.
run 0 show ti/reporting
has '^bucket ti/reporting$'
has '^  rules +30/1m$'
has '^  rule 1 +30/1m \(sliding\): 5 of 30 used, 25 remaining, next unit now$'
has '^parent ti$'
has '^  rule 2 +100/1m \(sliding\): 5 of 100 used, 95 remaining, next unit now$'
has '^chain ti/reporting -> ti$'
has '^  admitted +1 requests, 5 units$'
has '^  resets +0$'
run 0 show --json ti/reporting
check_json '
assert set(d) == {"table", "bucket", "ancestors", "chain_remaining", "chain_next_free_ns",
                  "chain_next_free", "shim"}, set(d)
assert d["shim"]["attaches"] == 0 and d["shim"]["last_pid"] == 0
assert d["bucket"]["name"] == "ti/reporting" and d["bucket"]["parent"] == "ti"
assert [a["name"] for a in d["ancestors"]] == ["ti"]
assert d["chain_remaining"] == 25
c = d["bucket"]["counters"]
assert c == {"admitted": 1, "admitted_units": 5, "rejected": 0, "waited": 0, "waited_ns": 0,
             "waited_time": "0s", "dry_run_rejected": 0, "resets": 0, "reported_429": 0}, c
assert d["ancestors"][0]["counters"]["admitted_units"] == 5
'
run 0 show --json foundry
check_json 'assert d["ancestors"] == [] and d["chain_remaining"] == 200'

# reset: named buckets, then --all with a pattern; counters are kept.
run 0 reset ti/reporting
[ ! -s "$out" ] && [ ! -s "$err" ] || fail "reset printed something"
run 0 show --json ti/reporting
check_json '
assert d["bucket"]["remaining"] == 30 and d["bucket"]["rules"][0]["used"] == 0
assert d["bucket"]["counters"]["resets"] == 1 and d["bucket"]["counters"]["admitted"] == 1
assert d["ancestors"][0]["remaining"] == 95, "a reset does not reach the parent"
'
run_err 4 "reset nope: no bucket named 'nope'" reset nope ti
run 0 show --json ti
check_json 'assert d["bucket"]["remaining"] == 100 and d["bucket"]["counters"]["resets"] == 1'
run 0 reset --all 't*'
run 0 stats --json
check_json '
r = {b["name"]: b["counters"]["resets"] for b in d["buckets"]}
assert r == {"foundry": 0, "shadow": 0, "ti": 2, "ti/reporting": 2, "tok": 1}, r
'
run 0 reset --all
run 0 reset --all 'nomatch*'

# The table fills up: a clear error.
for i in $(seq 6 16); do run 0 define "b$i" 1/s; done
run_err 4 'define b17: .*full' define b17 1/s
