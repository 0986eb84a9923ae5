#!/usr/bin/env bash
# ctl-stats: counters as text, JSON and the Prometheus text exposition format, checked line
# by line as a node_exporter textfile collector would parse it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

run 0 define foundry 200/60s
run 0 define ti 1000/1h fixed, 100/1m
run 0 define ti/reporting 30/1m parent ti
run 0 define tok 2/1m burst 2 margin 0
for _ in 1 2 3; do run 0 acquire foundry; done
run 0 acquire --cost 4 ti/reporting
run 0 acquire --nowait --cost 2 tok
run 1 acquire --nowait tok
run 0 reset tok

# Text: a header and one line per bucket.
run 0 stats
has '^NAME +ADMITTED +UNITS +REJECTED +WAITED +WAIT +DRY-RUN +RESETS +429S$'
has '^foundry +3 +3 +0 +0 +0s +0 +0 +0$'
has '^ti/reporting +1 +4 +0 +0 +0s +0 +0 +0$'
has '^tok +1 +2 +1 +0 +0s +0 +1 +0$'
run 0 stats 'ti*'
[ "$(wc -l <"$out")" -eq 4 ] || fail "stats 'ti*': expected a header, 2 lines and the shim line"

# JSON.
run 0 stats --json
check_json '
b = {x["name"]: x for x in d["buckets"]}
assert list(b) == ["foundry", "ti", "ti/reporting", "tok"], list(b)
for x in d["buckets"]:
    assert set(x) == {"name", "counters"}
assert b["foundry"]["counters"] == {"admitted": 3, "admitted_units": 3, "rejected": 0,
    "waited": 0, "waited_ns": 0, "waited_time": "0s", "dry_run_rejected": 0, "resets": 0,
    "reported_429": 0}
assert b["tok"]["counters"]["rejected"] == 1 and b["tok"]["counters"]["resets"] == 1
assert b["ti"]["counters"]["admitted_units"] == 4
'

# Prometheus: syntax of every line, families contiguous, then values.
check_prometheus() {
    python3 - "$out" "$1" <<'PY' || fail "Prometheus check failed"
import re, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n"), "no final newline"
name = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
label = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:\\[\\"n]|[^"\\\n])*"'
sample = re.compile(rf"({name})(?:\{{({label}(?:,{label})*)\}})? (\S+)$")
types, helps, done, samples, current = {}, set(), set(), {}, None
for line in text.splitlines():
    if line.startswith("# HELP "):
        fam = line.split(" ")[2]
        assert re.fullmatch(name, fam) and fam not in helps, line
        helps.add(fam)
        continue
    if line.startswith("# TYPE "):
        _, _, fam, typ = line.split(" ")
        assert fam in helps and fam not in types and typ in ("counter", "gauge"), line
        assert typ != "counter" or fam.endswith("_total"), line
        types[fam] = typ
        if current:
            done.add(current)
        current = fam
        continue
    m = sample.match(line)
    assert m, "bad line: " + line
    fam, labels, value = m.groups()
    assert fam == current and fam not in done, "family not contiguous: " + line
    float(value)
    key = fam + "{" + (labels or "") + "}"
    assert key not in samples, "duplicate series: " + line
    samples[key] = float(value)
exec(sys.argv[2])
PY
}
run 0 stats --prometheus
check_prometheus '
s = samples
assert s["ratelimit_admitted_total{bucket=\"foundry\"}"] == 3
assert s["ratelimit_admitted_units_total{bucket=\"ti/reporting\"}"] == 4
assert s["ratelimit_rejected_total{bucket=\"tok\"}"] == 1
assert s["ratelimit_resets_total{bucket=\"tok\"}"] == 1
assert s["ratelimit_waited_seconds_total{bucket=\"foundry\"}"] == 0
assert s["ratelimit_remaining{bucket=\"foundry\",rule=\"200/1m\"}"] == 197
assert s["ratelimit_remaining{bucket=\"ti\",rule=\"100/1m\"}"] == 96
assert s["ratelimit_used{bucket=\"ti\",rule=\"1000/1h fixed\"}"] == 4
assert s["ratelimit_limit{bucket=\"tok\",rule=\"2/1m burst 2\"}"] == 2
assert s["ratelimit_next_free_seconds{bucket=\"foundry\",rule=\"200/1m\"}"] == 0
assert s["ratelimit_table_buckets{table=\"'"$RATELIMIT_TABLE"'\"}"] == 4
for fam in ("ratelimit_admitted_total", "ratelimit_rejected_total",
            "ratelimit_waited_seconds_total", "ratelimit_resets_total", "ratelimit_remaining"):
    assert fam in types, fam
'
grep -q '^ratelimit_waited_seconds_total{bucket="foundry"} 0\.000000000$' "$out" ||
    fail "waited seconds are not exact decimals"

# A rule repeated in one bucket is one series; label values are escaped (the table path).
odd=$work/'odd"table\name'
run 0 --table "$odd" define twice 5/1s, 5/1s
run 0 --table "$odd" stats --prometheus
check_prometheus '
key = "ratelimit_limit{bucket=\"twice\",rule=\"5/1s\"}"
assert samples[key] == 5
assert len([k for k in samples if k.startswith("ratelimit_table_capacity{")]) == 1
'
grep -qF 'table="'"$work"'/odd\"table\\name"}' "$out" || fail "label value not escaped"
run 0 --table "$odd" stats --json
check_json 'assert d["table"].endswith("/odd\"table\\name"), d["table"]'
rm -f "$odd"
