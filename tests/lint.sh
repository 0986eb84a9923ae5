#!/usr/bin/env bash
# tests/lint.sh CHECK [ARGS]: static checks run as tests (see tests/meson.build).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
case "$1" in
atomics)
    # One door to atomics: <stdatomic.h> operations only in src/atomics.h.
    bad=$(grep -nE '\batomic_(load|store|fetch|compare|exchange|thread_fence)|__atomic_|__sync_' \
          src/*.c src/*.h | grep -v '^src/atomics.h:' || true)
    [ -z "$bad" ] || { echo "atomics outside src/atomics.h:"; echo "$bad"; exit 1; } ;;
header)
    # The public header compiles alone, as pedantic C11 and as C++. $2: the build tree's
    # include/, which holds the generated ratelimit-version.h.
    gen=${2:?usage: tests/lint.sh header BUILD_INCLUDE_DIR}
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    echo '#include "ratelimit.h"' > "$tmp/h.c"
    cc -std=c11 -pedantic -Wall -Wextra -Werror -Iinclude -I"$gen" -c "$tmp/h.c" -o "$tmp/h.o"
    cp "$tmp/h.c" "$tmp/h.cc"
    c++ -std=c++11 -pedantic -Wall -Wextra -Werror -Iinclude -I"$gen" -c "$tmp/h.cc" -o "$tmp/hh.o" ;;
symbols)
    # The shared library exports the public prefix only, and every public function.
    lib=$2
    bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDB]/ {print $3}' | grep -v '^rl_[a-z]' || true)
    [ -z "$bad" ] || { echo "exported outside rl_* (or internal rl__*): $bad"; exit 1; }
    for f in $(grep -oE '^[a-z].*\b(rl_[a-z_]+)\(' include/ratelimit.h | grep -oE 'rl_[a-z_]+\($' | tr -d '('); do
        nm -D --defined-only "$lib" | grep -qw "$f" || { echo "declared but not exported: $f"; exit 1; }
    done ;;
names)
    # Internal cross-file functions are rl__*: every rl_* function called anywhere is public.
    public=$(grep -oE '\brl_[a-z0-9][a-z0-9_]*\(' include/ratelimit.h | sort -u)
    used=$(git grep -ohE '\brl_[a-z0-9][a-z0-9_]*\(' -- '*.c' '*.h' | sort -u)
    bad=$(comm -13 <(echo "$public") <(echo "$used") || true)
    [ -z "$bad" ] || { echo "internal functions without the rl__ prefix:"; echo "$bad"; exit 1; } ;;
format)
    # clang-format is the layout authority.
    files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src include tools tests bench examples -name '*.[ch]')
    clang-format --dry-run -Werror $files ;;
*)
    echo "usage: tests/lint.sh atomics|header DIR|names|symbols LIB|format" >&2; exit 2 ;;
esac
