#!/usr/bin/env bash
# man-conf-examples: every config example in ratelimit.conf(5) (each .nf block of EXAMPLES
# that is not a shell command) passes 'ratelimitctl check-config'.
# Usage: man_conf.sh RATELIMITCTL MAN_PAGE
set -euo pipefail
ctl=$1 page=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" '
    /^\.SH / { in_ex = ($2 == "EXAMPLES") }
    in_ex && /^\.nf$/ { n++; file = dir "/example" n ".conf"; next }
    in_ex && /^\.fi$/ { file = ""; next }
    file != "" { gsub(/\\-/, "-"); print > file }
' "$page"
n=0
for f in "$tmp"/example*.conf; do
    grep -Eq '^(ratelimitctl|systemctl) ' "$f" && continue
    n=$((n + 1))
    "$ctl" check-config "$f" >/dev/null || { echo "FAIL: example $f:"; cat "$f"; exit 1; }
done
[ "$n" -ge 4 ] || { echo "FAIL: only $n config examples found"; exit 1; }
echo "ok: $n examples"
