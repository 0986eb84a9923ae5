#!/usr/bin/env bash
# ctl-feedback: templates, and what the vendor's answers impose (a cool-down after a 429, a
# tightened budget), as list, show, stats, watch and acquire show them.
# Usage: feedback.sh RATELIMITCTL REPORT (tests/ctl/report.c).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
REPORT=$2

# Templates: defined with a "/*" name, shown as such, buckets made from them on acquire.
run 0 define 'tenant/*' 5/1h
run_err 3 "define: bucket name 'bad:x!' has '!'" define 'bad:x!/*' 5/1s
run 0 list
has '^tenant/\* +5/1h +0/5 +5 +template$'
run 0 show 'tenant/*'
has '^  template +buckets tenant/\.\.\. are made from it on first use$'
run_err 4 "show: no template named 'nope/\*'" show 'nope/*'
run 0 acquire --nowait tenant/acme
run 0 list --json
check_json '
b = {x["name"]: x for x in d["buckets"]}
assert b["tenant/*"]["template"] is True and b["tenant/acme"]["template"] is False
assert b["tenant/acme"]["policy"] == "5/1h" and b["tenant/acme"]["rules"][0]["used"] == 1
'
run 0 watch --once
has '^tenant/\* +- +- +template: 5/1h$'
has '^tenant/acme +4 '

# A 429 with Retry-After: the bucket pauses; everything shows it.
run 0 define foundry 10/1m
"$REPORT" foundry 429 30 || fail "report 429"
run 0 list foundry
has '^foundry +10/1m +0/10 +0 +(2[0-9]|30)s$'
run 0 show foundry
has '^  cool-down +(2[0-9]|30)s left, after a 429 \(0 in a row without Retry-After\)$'
has '^  reported 429 +1$'
run 0 show --json foundry
check_json '
f = d["bucket"]["feedback"]
assert 25e9 < f["cooldown_ns"] <= 30e9 and f["last_429_ns"] > 0 and not f["tightened"], f
assert d["bucket"]["remaining"] == 0 and d["bucket"]["counters"]["reported_429"] == 1
'
run_err 1 'acquire foundry: rejected: next unit in (2[0-9]|30)s$' acquire --nowait foundry
run 0 stats --prometheus
has '^ratelimit_reported_429_total\{bucket="foundry"\} 1$'
has '^ratelimit_cooldown_seconds\{bucket="foundry"\} (2[0-9]|30)\.[0-9]{9}$'
has '^ratelimit_cooldown_seconds\{bucket="tenant/acme"\} 0\.000000000$'
run 0 stats foundry
has '^foundry +0 +0 +1 +0 +0s +0 +0 +1 +20ms +-$'

# The server says less is left than we think: the bucket is tightened until its reset.
run 0 define api 100/1m
"$REPORT" api 200 "" 2 60 || fail "report 200"
run 0 show api
has '^  server says +2 remaining until its reset in (5[0-9]s|1m)$'
run 0 acquire --nowait --cost 2 api
run 0 list api
has '^api +100/1m +2/100 +0 +(5[0-9]s|1m)$'
run 0 list --json api
check_json '
f = d["buckets"][0]["feedback"]
assert f["tightened"] is True and f["server_remaining"] == 0, f
assert 50e9 < f["server_reset_ns"] <= 60e9
'

# The margin: acquire prints the decision instant, report takes it back. A 429 the rules
# admitted widens the margin once: 20ms -> 30ms; show, list and stats say so.
run 0 define margin 100/1s
run 0 show margin
has '^  margin +20ms, configured \(widens up to 100ms after 429s the rules admitted\)$'
run 0 acquire --print-decided margin
at=$(cat "$out")
[[ $at =~ ^[0-9]+$ ]] || fail "acquire --print-decided printed '$at'"
run 0 report margin --status 429 --decided "$at" --max-cooldown 1ms
run 0 report margin --status 429 --decided "$at" --max-cooldown 1ms
run 0 show margin
has '^  margin +30ms, learned: the server answered 429 to requests the rules admitted$'
has '^  delay +.* p99 from decision to response; recommended margin [0-9]+ms$'
run 0 list --json margin
check_json '
m = d["buckets"][0]["margin"]
assert m["effective_ns"] == 30000000 and m["reason"] == "learned", m
assert m["configured_ns"] == 20000000 and m["delay_p99_ns"] > 0, m
assert m["recommended_ns"] % 5000000 == 0 and m["recommended_ns"] > m["delay_p99_ns"], m
'
run_err 3 "report: --decided 'soon': expected the ns printed by acquire --print-decided" \
    report margin --status 200 --decided soon
