#!/usr/bin/env bash
# ctl-cli: help, version, and every kind of bad command line: one line on stderr and the
# documented exit status (3 usage, 4 error).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

# Global help and version. The help lists the commands from the same table that dispatches
# them: the list is read from the help, must be the commands this test knows (a new
# command gets its tests here), and each one listed must run.
known="list show stats watch info define reset delete expire resize acquire report check-config apply exec help"
for opt in --help -h help; do
    run 0 "$opt"
    has '^Usage: ratelimitctl \[--table PATH\] COMMAND'
    has '^Exit status:'
    listed=$(sed -n '/^Commands:$/,/^$/s/^  \([a-z-]*\) .*/\1/p' "$out" | tr '\n' ' ')
    [ "$listed" = "$known " ] || fail "$opt lists commands '$listed', expected '$known '"
    cp "$out" "$work/help"
done
run_err 3 "help: unknown command 'bogus'" help bogus
run_err 3 'help: expected at most one COMMAND' help list show

# Every command's help, before or after other arguments, without touching any table; and
# 'ratelimitctl help COMMAND' prints the same.
for cmd in $known; do
    for args in "$cmd --help" "$cmd -h" "--table /nonexistent/x $cmd --help" "help $cmd"; do
        # shellcheck disable=SC2086
        run 0 $args
        has "^Usage: ratelimitctl $cmd"
        has '^Exit status'
        [ ! -s "$err" ] || fail "$args wrote to stderr"
        [ "$(awk '{ if (length($0) > n) n = length($0) } END { print n }' "$out")" -le 80 ] ||
            fail "$args: help lines longer than 80 columns"
        cp "$out" "$work/help-$cmd-${args##* }"
    done
    cmp -s "$work/help-$cmd---help" "$work/help-$cmd-$cmd" ||
        fail "'help $cmd' differs from '$cmd --help'"
done
[ "$(awk '{ if (length($0) > n) n = length($0) } END { print n }' "$work/help")" -le 80 ] ||
    fail "the global help has lines longer than 80 columns"
[ ! -e "$RATELIMIT_TABLE" ] || fail "help created a table"

# Usage errors: exit 3.
run_err 3 'no command given' 
run_err 3 "unknown command 'bogus'" bogus
run_err 3 "unknown option '--bogus'" --bogus
run_err 3 "option '--table' needs a value" --table
run_err 3 "list: bad option '--bogus'" list --bogus
run_err 3 "list: unknown option '-x'" list -x
run_err 3 'list: expected at most one PATTERN' list a b
run_err 3 'show: expected one bucket NAME' show
run_err 3 "show: bucket name 'a b' has ' ' at 2" show 'a b'
run_err 3 "show: bucket name 'a//b' must not" show a//b
run_err 3 "acquire: --timeout '5x': column 2: expected a duration unit" acquire --timeout 5x x
run_err 3 "acquire: --timeout '5s9': column 3: unexpected '9'" acquire --timeout 5s9 x
run_err 3 "acquire: option '--timeout' needs a value" acquire x --timeout
run_err 3 "acquire: --cost '0' is too small" acquire --cost 0 x
run_err 3 "acquire: --cost 'many' is invalid" acquire --cost many x
run_err 3 'acquire: --nowait and --timeout exclude each other' acquire --nowait --timeout 1s x
run_err 3 'acquire: expected one bucket NAME' acquire a b
run_err 3 "define: rule text '200/6x', column 6: expected a duration unit" define x 200/6x
run_err 3 "define: rule text '200/1m burst', column 13: expected a burst size" \
    define x 200/1m burst
run_err 3 "define: rule text '200/1m bogus', column 8: unexpected 'bogus'" define x 200/1m bogus
run_err 3 "define: rule text '0/1s', column 1: rule 1: a limit of 0" define x 0/1s
run_err 3 'define: expected a bucket NAME and RULES' define x
run_err 3 "define: --mode '0666': a table must never be world-writable" define --mode 0666 x 1/s
run_err 3 "define: --mode '0755': only read and write bits" define --mode 0755 x 1/s
run_err 3 "define: --mode 'rw': expected an octal file mode" define --mode rw x 1/s
run_err 3 "define: --capacity '0' is too small" define --capacity 0 x 1/s
run_err 3 'reset: expected bucket names, or --all' reset
run_err 3 'reset: --all takes at most one PATTERN' reset --all a b
run_err 3 'stats: --json and --prometheus exclude each other' stats --json --prometheus
run_err 3 "watch: --interval 'soon': column 1: expected a duration unit" watch --interval soon
run_err 3 'watch: --interval must be longer than 0' watch --interval 0
run_err 3 "info: unexpected argument 'x'" info x
[ ! -e "$RATELIMIT_TABLE" ] || fail "a usage error created a table"

# Errors: exit 4. No table yet: the read-only and the changing commands say so.
for cmd in list stats info "show x" "reset x" "reset --all" "acquire x" "watch --once" \
    "report x --status 200"; do
    # shellcheck disable=SC2086
    run_err 4 "cannot open table $RATELIMIT_TABLE: No such file or directory" $cmd
done
run_err 4 "cannot open table /dev/shm/rl-ctl-none-$$" --table /dev/shm/rl-ctl-none-$$ list

# Unknown buckets, and a file that is not a table.
run 0 define foundry 200/60s
run_err 4 "show nope: no bucket named 'nope'" show nope
run_err 4 "acquire nope: no bucket named 'nope'" acquire --nowait nope
run_err 4 "define x: bucket 'x': parent 'nope' does not exist" define x 1/s parent nope
not_table=$work/not-a-table
head -c 8192 /dev/zero >"$not_table"
run_err 4 "not a ratelimit table" --table "$not_table" list
