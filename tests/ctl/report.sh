#!/usr/bin/env bash
# ctl-report: `ratelimitctl report`, a shell script telling the pool what the vendor
# answered: a 429 pauses every process, 429s without Retry-After back off, a success
# resets the count, a smaller remaining budget tightens the bucket, hostile header values
# are ignored (and said so) by the library, never trusted.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
export RATELIMIT_TABLE=/dev/shm/rl-ctl-report-$$ # removed by lib.sh's trap

run 0 define foundry 10/1m
run 0 define api 100/1m
run 0 define hostile 100/1m
run 0 define 'tenant/*' 5/1h

# A 429 with Retry-After: the whole pool pauses; acquire and show see it.
run 0 report foundry --status 429 --retry-after 30
has '^foundry: paused for 30s \(Retry-After\)$'
[ "$(wc -l <"$out")" -eq 1 ] || fail "report 429: not one line"
[ ! -s "$err" ] || fail "report 429 wrote to stderr"
run_err 1 '^ratelimitctl: acquire foundry: rejected: next unit in (2[0-9]|30)s$' \
    acquire --nowait foundry
run 0 show --json foundry
check_json '
f = d["bucket"]["feedback"]
assert 25e9 < f["cooldown_ns"] <= 30e9 and f["last_429_ns"] > 0 and f["backoff"] == 0, f
assert d["bucket"]["counters"]["reported_429"] == 1
'
run 0 report foundry --json --status 429 --retry-after 20
check_json '
assert d == {"bucket": "foundry", "status": 429, "cooldown_ns": 20000000000, "cooldown": "20s",
    "cause": "retry-after", "backoff": 0, "tightened": False, "server_remaining": 0,
    "server_reset_ns": 0, "server_reset": "0s", "ignored": []}, d
'

# An HTTP-date, and a pause longer than --max-cooldown allows.
date=$(date -u -d '+90 sec' '+%a, %d %b %Y %H:%M:%S GMT')
run 0 report foundry --status 429 --retry-after "$date"
has '^foundry: paused for 1m(2[0-9]|30)s \(Retry-After\)$'
run 0 report foundry --status 429 --retry-after 3600 --max-cooldown 5s
has '^foundry: paused for 5s \(Retry-After, capped\)$'

# 429s without Retry-After: a backoff counted over the pool; a success resets the count.
run 0 report api --status 429
has '^api: backoff attempt 1: paused for [0-9.]+(us|ms|s) \(no Retry-After\)$'
run 0 report api --status 429
has '^api: backoff attempt 2: '
run 0 report api --status 429 --json
check_json '
assert d["cause"] == "backoff" and d["backoff"] == 3 and d["cooldown_ns"] < 4e9, d
assert d["ignored"] == [] and d["tightened"] is False
'
run 0 show --json api
check_json 'assert d["bucket"]["feedback"]["backoff"] == 3, d["bucket"]["feedback"]'
run 0 report api --status 200
has '^api: not paused; the count of 429s in a row is reset$'
run 0 show --json api
check_json 'assert d["bucket"]["feedback"]["backoff"] == 0, d["bucket"]["feedback"]'
run 0 report api --status 429 --json
check_json 'assert d["backoff"] == 1, d'
run 0 report api --status 204 --json
check_json 'assert d["cause"] is None and d["cooldown_ns"] == 0 and d["backoff"] == 0, d'

# Statuses that pause nothing; a 503 pauses only with a Retry-After.
run 0 report api --status 404
has '^api: not paused: only a 429, or a 503 with Retry-After, pauses$'
run 0 report api --status 503
has '^api: not paused: only a 429'
run 0 report api --status 503 --retry-after 7
has '^api: paused for 7s \(Retry-After\)$'

# A 429 saying none remain until the reset pauses until then.
run 0 report api --status 429 --remaining 0 --reset 12
has '^api: paused for 12s \(until the server.s reset\)$'

# The server says less is left than the bucket thinks: tightened until its reset.
run 0 define tight 100/1m
run 0 report tight --status 200 --remaining 3 --reset 60
has '^tight: not paused'
has "^tight: tightened: 3 remain until the server's reset in (5[0-9]s|1m)$"
run 0 report tight --status 200 --ratelimit '"default";r=2;t=30' --json
check_json '
assert d["tightened"] is True and d["server_remaining"] == 2, d
assert 25e9 < d["server_reset_ns"] <= 31e9 and d["ignored"] == []
'
run 0 acquire --nowait --cost 2 tight
run_err 1 'acquire tight: rejected' acquire --nowait tight

# Hostile values go to the library as they are, which ignores them: exit 0, said so.
run 0 report hostile --status 200 --retry-after '-5' --remaining '1e9' \
    --reset '12; rm -rf /' --limit '99999999999999999999' --ratelimit $'r=1\x01\n' \
    --ratelimit-policy '"p";q=;w=%n%n%n'
has '^hostile: not paused'
has '^hostile: ignored malformed: Retry-After, X-RateLimit-Remaining, X-RateLimit-Reset, RateLimit, X-RateLimit-Limit$'
run 0 report hostile --json --status 429 --retry-after 'Mon, 99 Foo 2024 99:99:99 GMT' \
    --remaining ' 18446744073709551616 ' --reset ''
check_json '
assert d["ignored"] == ["Retry-After", "X-RateLimit-Remaining"], d["ignored"]
assert d["cause"] == "backoff" and d["backoff"] == 1, d
'
run 0 report hostile --status 429 --retry-after $'30\r'
has '^hostile: backoff attempt 2: '
has '^hostile: ignored malformed: Retry-After$'
run 0 report hostile --status 200 --retry-after '' --remaining '' --reset ''
[ "$(cat "$out")" = "hostile: not paused; the count of 429s in a row is reset" ] ||
    fail "empty values are not absent headers"

# A bucket made from its template on first report.
run 0 report tenant/acme --status 429 --retry-after 10
has '^tenant/acme: paused for 10s \(Retry-After\)$'
run 0 list --json 'tenant/*'
check_json '
b = {x["name"]: x for x in d["buckets"]}
assert b["tenant/acme"]["feedback"]["cooldown_ns"] > 5e9, b
'

# Usage errors (3) and errors (4).
run_err 3 "report: --status '000': expected an HTTP status, 100 to 599" \
    report foundry --status 000
run_err 3 "report: --status '600': expected an HTTP status" report foundry --status 600
run_err 3 "report: --status '4x9': expected an HTTP status" report foundry --status 4x9
run_err 3 'report: --status CODE is required' report foundry --retry-after 5
run_err 3 'report: expected one bucket NAME' report --status 429
run_err 3 'report: expected one bucket NAME' report a b --status 429
run_err 3 "report: option '--retry-after' needs a value" report foundry --status 429 --retry-after
run_err 3 'report: --max-cooldown must be longer than 0' report foundry --status 429 --max-cooldown 0
run_err 3 "report: --max-cooldown 'soon': column 1" report foundry --status 429 --max-cooldown soon
run_err 3 "report: bucket name 'tenant/\*' has '\*'" report 'tenant/*' --status 429
run_err 4 "report nope: no bucket named 'nope'" report nope --status 429
run_err 4 "report: cannot open table /dev/shm/rl-ctl-none-$$" \
    --table /dev/shm/rl-ctl-none-$$ report foundry --status 429
[ ! -e /dev/shm/rl-ctl-none-$$ ] || fail "report created a table"
