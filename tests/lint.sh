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
layers)
    # The core's files form a DAG: no file calls (directly or through an inline function
    # of a header) a function of a file that calls it back. With -v, print the edges.
    python3 - "${2:-}" <<'PY'
import re, sys, glob, os
def text(path):
    # Comments and literals go in one pass: "/*" may sit in a string, '"' in a char.
    tok = r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
    return re.sub(tok, lambda m: '\n' * m.group(0).count('\n') or ' ', open(path).read(), flags=re.S)
call = re.compile(r'\b(rl_[a-z0-9_]+)\s*\(')
inline = {}  # header inline function -> the functions it calls
for h in glob.glob('src/*.h'):
    for m in re.finditer(r'^static inline [^;{]*?\b(rl_[a-z0-9_]+)\([^;{]*\{(.*?)^\}', text(h), re.M | re.S):
        inline[m.group(1)] = set(call.findall(m.group(2)))
owner, calls = {}, {}
for c in sorted(glob.glob('src/*.c')):
    f, s = os.path.basename(c), text(c)
    for m in re.finditer(r'^(?!static)[a-z][^;()]*?\b(rl_[a-z0-9_]+)\([^;]*?\)\s*\{', s, re.M):
        owner[m.group(1)] = f
    todo, seen = set(call.findall(s)), set()
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo |= inline.get(n, set())
    calls[f] = seen
edges = {f: sorted({owner[n] for n in ns if n in owner and owner[n] != f}) for f, ns in calls.items()}
if sys.argv[1] == '-v':
    for f in sorted(edges):
        print(f, '->', ' '.join(edges[f]))
state, path = {}, []
def visit(f):
    state[f] = 1
    path.append(f)
    for g in edges[f]:
        if state.get(g) == 1:
            sys.exit('cycle: ' + ' -> '.join(path[path.index(g):] + [g]))
        if g not in state:
            visit(g)
    path.pop()
    state[f] = 2
for f in sorted(edges):
    if f not in state:
        visit(f)
PY
    ;;
format)
    # clang-format is the layout authority.
    files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src include tools tests bench examples -name '*.[ch]')
    clang-format --dry-run -Werror $files ;;
*)
    echo "usage: tests/lint.sh atomics|header DIR|names|symbols LIB|layers [-v]|format" >&2; exit 2 ;;
esac
