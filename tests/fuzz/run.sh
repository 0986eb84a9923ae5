#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS]: build the fuzzers with clang (libFuzzer, ASan, UBSan) in a
# temporary directory and run each for a fixed seed and a bounded number of runs, within
# SECONDS (default 20): the config and rule parsers over tests/fuzz/corpus and the shipped
# example configs; the table attach/validate path over a seed table it writes itself; the
# preload shim's HTTP/1.1 parser over tests/fuzz/http.
# Skips (exit 77) when clang or libFuzzer is missing (Debian: clang, libclang-rt-14-dev).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-20}
command -v clang >/dev/null || { echo "fuzz: clang is not installed: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# RATELIMIT_BUILD_INCLUDE: the build tree's include/, which holds the generated
# ratelimit-version.h (tests/fuzz/meson.build sets it).
gen=${RATELIMIT_BUILD_INCLUDE:-$top/build/include}
flags=(-std=c11 -D_GNU_SOURCE -g -O1 -fno-sanitize-recover=all -I"$top/include" -I"$gen"
       -I"$top/src")
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }' > "$tmp/probe.c"
clang -fsanitize=fuzzer "$tmp/probe.c" -o "$tmp/probe" 2>/dev/null ||
    { echo "fuzz: clang has no libFuzzer (libclang-rt-14-dev): skipped"; exit 77; }
# The library as an archive, so only the objects the harness needs are linked.
(cd "$tmp" && clang "${flags[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$top"/src/*.c "$top"/src/config/*.c)
ar rcs "$tmp/libratelimit.a" "$tmp"/*.o
for h in fuzz_config fuzz_table; do
    clang "${flags[@]}" -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
        "$top/tests/fuzz/$h.c" "$tmp/libratelimit.a" -lbsd -o "$tmp/$h"
done
clang "${flags[@]}" -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
    "$top/tests/fuzz/fuzz_http.c" "$top/src/shim/http.c" -o "$tmp/fuzz_http"
mkdir "$tmp/corpus" "$tmp/tables" "$tmp/http"
cp "$top"/tests/fuzz/corpus/* "$top"/examples/conf/*.conf "$tmp/corpus/"
cp "$top"/tests/fuzz/tables/* "$tmp/tables/" # tables that once crashed or hung
cp "$top"/tests/fuzz/http/* "$tmp/http/"
"$tmp/fuzz_config" -seed=1 -runs=300000 -max_total_time="$secs" -max_len=4096 -timeout=60 \
    -dict="$top/tests/fuzz/config.dict" -print_final_stats=1 "$tmp/corpus"
"$tmp/fuzz_table" -seed=1 -runs=100000 -max_total_time="$secs" -max_len=98304 -timeout=60 \
    -print_final_stats=1 "$tmp/tables"
"$tmp/fuzz_http" -seed=1 -runs=300000 -max_total_time="$secs" -max_len=4096 -timeout=60 \
    -dict="$top/tests/fuzz/http.dict" -print_final_stats=1 "$tmp/http"
rm -f /dev/shm/rl-fuzz-table-*
