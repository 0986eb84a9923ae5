#!/usr/bin/env bash
# ctl-watch: the live view in a real terminal (tmux, 80x24): rows and bars, new buckets
# appear, q quits, SIGTERM quits, Ctrl-Z suspends, and the terminal is restored every time;
# --once as text.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

command -v tmux >/dev/null || { echo "skipped: no tmux"; exit 77; }
sock=rlw$$
cleanup_hooks+=("tmux -L $sock kill-server 2>/dev/null")
export TERM=${TERM:-xterm}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds; fail after SECONDS. A guard
# against a hang, not a timing check: 30 s everywhere, so a loaded machine cannot fail it.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}
screen() { tmux -L "$sock" capture-pane -p -t "$1" >"$work/screen" 2>/dev/null; }
screen_has() { screen "$1" && grep -Eq -- "$2" "$work/screen"; }
session_gone() { ! tmux -L "$sock" has-session -t "$1" 2>/dev/null; }

# start NAME ARGS...: run `ratelimitctl watch ARGS` in a new 80x24 session; when it exits,
# its status goes to $work/NAME.rc and the terminal settings to $work/NAME.stty.
start() {
    local name=$1 cmd
    shift
    cmd=$(printf '%q ' "$CTL" watch "$@")
    tmux -L "$sock" new-session -d -s "$name" -x 80 -y 24 \
        "sh -c 'echo \$\$ > $work/$name.pid; exec $cmd'; echo \$? > $work/$name.rc; \
         stty -a > $work/$name.stty"
}
check_restored() {
    wait_for 30 test -s "$work/$1.stty" || fail "$1: the shell did not get its terminal back"
    grep -Eq '(^| )icanon( |$)' "$work/$1.stty" && grep -Eq '(^| )echo( |$)' "$work/$1.stty" ||
        fail "$1: terminal left without icanon/echo: $(cat "$work/$1.stty")"
}

run 0 define foundry 10/1m
run 0 define ti 1000/1h fixed, 100/1m
run 0 define ti/reporting 30/1m parent ti
for _ in 1 2 3 4 5 6 7 8; do run 0 acquire foundry; done

# Without a terminal, watch needs --once.
run_err 4 'watch: needs a terminal' watch

# The live view: title, header, a row per bucket with bars; lines fit 80 columns.
start live --interval 200ms
wait_for 30 screen_has live '^foundry ' || fail "live view did not show foundry"
screen live
grep -q 'ratelimitctl watch' "$work/screen" || fail "no title"
grep -Eq '^NAME +REMAIN +NEXT' "$work/screen" || fail "no header"
grep -Eq '^foundry +2 +now +10/1m \[#+\.+\] 8/10$' "$work/screen" || fail "foundry's bar"
grep -Eq '^ti/reporting +30 +now +30/1m \[\.+\] 0/30$' "$work/screen" || fail "ti/reporting"
grep -Eq '^ti +100 +now +(1000/1h fixed )?\[\.+\] 0/1k +(100/1m )?\[\.+\] 0/100$' \
    "$work/screen" || fail "ti's two bars"
[ "$(awk '{ if (length($0) > n) n = length($0) } END { print n }' "$work/screen")" -le 80 ] ||
    fail "a line is wider than 80 columns"

# A bucket defined meanwhile appears; q quits with status 0 and restores the terminal.
run 0 define late 5/1s
wait_for 30 screen_has live '^late ' || fail "a new bucket did not appear"

# The table deleted and made again under the watch: within about a second it shows the new
# file (and no bucket of the old one).
rm "$RATELIMIT_TABLE"
run 0 define reborn 5/1s
wait_for 30 screen_has live '^reborn ' || fail "the watch kept showing the deleted table"
screen live
! grep -q '^foundry ' "$work/screen" || fail "the old table's bucket is still shown"
run 0 define foundry 10/1m # the cases below watch it
tmux -L "$sock" send-keys -t live q
wait_for 30 test -s "$work/live.rc" || fail "q did not quit"
[ "$(cat "$work/live.rc")" = 0 ] || fail "watch exited $(cat "$work/live.rc") after q"
check_restored live
wait_for 30 session_gone live || fail "the session did not end"

# More buckets than rows: 24 lines at most, the rest counted.
for i in $(seq -w 1 30); do run 0 define "many/$i" 1/s; done
start many 'many/*'
wait_for 30 screen_has many 'more$' || fail "no '... N more' line"
screen many
grep -Eq '^(…|\.\.\.) 9 more$' "$work/screen" || fail "expected 21 rows and '... 9 more'"
[ "$(grep -c '^many/' "$work/screen")" -eq 21 ] || fail "expected 21 bucket rows"

# SIGTERM quits too, with the signal's status, and restores the terminal.
kill -TERM "$(cat "$work/many.pid")"
wait_for 30 test -s "$work/many.rc" || fail "SIGTERM did not end watch"
[ "$(cat "$work/many.rc")" = 143 ] || fail "watch exited $(cat "$work/many.rc") on SIGTERM"
check_restored many

# Ctrl-Z in an interactive shell: the terminal is given back while stopped, fg resumes.
tmux -L "$sock" new-session -d -s job -x 80 -y 24 "env PS1='$ ' bash --norc --noprofile -i"
tmux -L "$sock" send-keys -t job "$(printf '%q ' "$CTL" watch --interval 200ms foundry)" Enter
wait_for 30 screen_has job '^foundry ' || fail "job: no view"
tmux -L "$sock" send-keys -t job C-z
wait_for 30 screen_has job 'Stopped' || fail "Ctrl-Z did not stop watch"
tmux -L "$sock" send-keys -t job "stty -a > $work/job.stty" Enter
check_restored job
tmux -L "$sock" send-keys -t job fg Enter
wait_for 30 screen_has job '^NAME +REMAIN' || fail "fg did not bring the view back"
# q and the next command typed ahead, in one go: watch quits and the shell gets the command
# (watch leaving the screen used to discard it, which a loaded machine made likely).
tmux -L "$sock" send-keys -t job q "echo \$? > $work/job.rc" Enter
wait_for 30 test -s "$work/job.rc" || fail "q did not quit after fg, or the command typed after it was lost"
[ "$(cat "$work/job.rc")" = 0 ] || fail "watch exited $(cat "$work/job.rc") after fg and q"

# --once: one plain frame of at most 24 lines of 80 columns, no escape codes.
run 0 watch --once
[ "$(wc -l <"$out")" -eq 24 ] || fail "--once: expected 24 lines"
grep -Eq '^(…|\.\.\.) [0-9]+ more$' "$out" || fail "--once: no '... N more'"
! grep -q $'\033' "$out" || fail "--once wrote escape codes"
[ "$(awk '{ if (length($0) > n) n = length($0) } END { print n }' "$out")" -le 80 ] ||
    fail "--once: a line is wider than 80 columns"
run 0 watch --once 'foundry'
[ "$(wc -l <"$out")" -eq 3 ] || fail "--once foundry: expected title, header and one row"
run 0 watch --once 'nomatch*'
grep -q '^no bucket matches the pattern$' "$out" || fail "--once of no match"
