#!/usr/bin/env bash
# ctl-fds: run with fd 0, 1 or 2 closed, ratelimitctl opens /dev/null there first, so the
# table it opens next never becomes its stdin, stdout or stderr: a message it prints (the
# refusal of acquire --nowait) must not land in the table.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

run 0 define foo '1/1h burst 1'
run 0 acquire --nowait foo
head -c 8 "$RATELIMIT_TABLE" >"$work/magic"

# closed REDIRECTION CODE ARGS...: ratelimitctl ARGS with that fd closed exits CODE; then
# the table starts as before and foo is still there.
closed() {
    local redir=$1 want=$2 rc=0
    shift 2
    case $redir in
    '0<&-') "$CTL" "$@" 0<&- >"$out" 2>"$err" || rc=$? ;;
    '1>&-') "$CTL" "$@" 1>&- 2>"$err" </dev/null || rc=$? ;;
    '2>&-') "$CTL" "$@" 2>&- >"$out" </dev/null || rc=$? ;;
    all) "$CTL" "$@" 0<&- 1>&- 2>&- || rc=$? ;;
    esac
    [ "$rc" -eq "$want" ] || fail "ratelimitctl $* $redir: exit $rc, expected $want"
    head -c 8 "$RATELIMIT_TABLE" | cmp -s - "$work/magic" ||
        fail "ratelimitctl $* $redir: the table no longer starts with its magic"
    run 0 show foo
    has '^bucket foo$'
}

for redir in '0<&-' '1>&-' '2>&-' all; do
    closed "$redir" 1 acquire --nowait foo # refused: a line on stderr
    closed "$redir" 0 list                 # a table on stdout
    closed "$redir" 4 show nope            # an error on stderr
done
run 0 define bar '1/1h burst 1'
closed '1>&-' 0 acquire --nowait bar # admitted
run 0 stats
has '^bar +1 +1 +0 '
has '^foo +1 +1 +4 '
