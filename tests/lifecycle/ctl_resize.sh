#!/usr/bin/env bash
# ctl-resize: `ratelimitctl resize --capacity N` carries every bucket's usage into a larger
# file at the same path, and leaves deleted buckets out (a compaction).
source "$(dirname "${BASH_SOURCE[0]}")/../ctl/lib.sh" "$@"

run 0 define --capacity 8 a 5/1h
run 0 define b 3/1h
run 0 define gone 3/1h
run 0 acquire --cost 2 a
run 0 delete gone
run 3 resize
run 0 resize --capacity 64
[ "$(cat "$out")" = "resized $RATELIMIT_TABLE: capacity 8 -> 64, 2 buckets copied" ] ||
    fail "resize printed something else"
run 0 info --json
check_json 'assert d["capacity"] == 64 and d["buckets"] == 2 and d["deleted"] == 0, d
assert d["records_free"] == 62, d'
run 0 list
has '^a +5/1h +2/5 +3 '
has '^b +3/1h +0/3 +3 '
run 0 resize --capacity 64
has 'capacity 64 -> 64, 2 buckets copied'
echo "ctl-resize: ok"
