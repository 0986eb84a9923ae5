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
# Churn of new names fills the index with tombstones (a new name reuses one only on its
# own probe path): info says so, and what rebuilds it. Rounds of 60 new names, each applied
# and pruned again, until fewer than a quarter of the 128 slots are empty (bounded: 40).
conf=$(dirname "$out")/churn.conf
empty=126
for round in $(seq 40); do
    { echo "table $RATELIMIT_TABLE"; echo "bucket a 5/1h"; echo "bucket b 3/1h"
      for i in $(seq 60); do echo "bucket churn$round-$i 1/1h"; done; } >"$conf"
    run 0 apply "$conf"
    { echo "table $RATELIMIT_TABLE"; echo "bucket a 5/1h"; echo "bucket b 3/1h"; } >"$conf"
    run 0 apply --prune "$conf"
    run 0 info --json
    last=$empty
    empty=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["index_empty"])' "$out")
    [ "$empty" -le "$last" ] || fail "round $round: $empty empty slots, $last before: a slot emptied"
    [ "$empty" -lt 32 ] && break
done
echo "ctl-resize: $round rounds of churn, $empty empty slots"
[ "$empty" -lt 32 ] || fail "40 rounds of churn left $empty empty slots"
run 0 info
has "^index +128 slots, $empty never used \\(new names' lookups walk far: 'ratelimitctl resize' rebuilds it\\)\$"
run 0 stats --prometheus
has "^ratelimit_table_index_empty_slots\\{table=\".*\"\\} $empty\$"
run 0 resize --capacity 64
run 0 info
has '^index +128 slots, 126 never used$'
echo "ctl-resize: ok"
