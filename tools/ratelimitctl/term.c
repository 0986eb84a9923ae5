/*
 * term.c - the terminal of `watch`: keys without echo or line buffering, the
 * alternate screen, and the signals that must not leave the terminal in that state.
 *
 * While the view is up, SIGINT, SIGTERM, SIGHUP, SIGTSTP and SIGWINCH are blocked except
 * inside ppoll() (no race between a check and the wait); their handlers only set flags.
 * SIGINT/SIGTERM/SIGHUP end the view: the caller restores the terminal, then
 * ctl_term_reraise() dies of the signal as if it had not been caught. SIGTSTP restores the
 * terminal, stops, and takes it again when continued.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "ctl.h"

static const int caught[] = {SIGINT, SIGTERM, SIGHUP, SIGTSTP, SIGWINCH};

static struct termios saved;
static bool active;
static volatile sig_atomic_t fatal, stop;

/* SIGWINCH only has to interrupt ppoll(): the next frame takes the new size. */
static void on_signal(int sig)
{
    if (sig == SIGTSTP)
        stop = 1;
    else if (sig != SIGWINCH)
        fatal = sig;
}

static void caught_set(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
        sigaddset(set, caught[i]);
}

static void handlers_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
        sigaction(caught[i], &sa, NULL);
}

/* No echo, no line buffering; signals keys (Ctrl-C, Ctrl-Z) still work. */
static int screen_take(void)
{
    struct termios raw = saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) < 0)
        return -1;
    active = true;
    fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, cursor hidden */
    fflush(stdout);
    return 0;
}

int ctl_term_enter(void)
{
    sigset_t set;
    if (tcgetattr(STDIN_FILENO, &saved) < 0)
        return -1;
    caught_set(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
    handlers_install();
    return screen_take();
}

void ctl_term_leave(void)
{
    if (!active)
        return;
    fputs("\033[?25h\033[?1049l", stdout); /* cursor shown, main screen back */
    fflush(stdout);
    /* TCSADRAIN, not TCSAFLUSH: what the user typed after q (the next command) is the
     * shell's, not ours to discard. */
    tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
    active = false;
}

/* Deliver sig with its default action now: the caller has restored the terminal. */
static void default_action(int sig)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    signal(sig, SIG_DFL);
    raise(sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

void ctl_term_reraise(void)
{
    if (fatal)
        default_action(fatal);
}

/* Ctrl-Z: give the terminal back, stop, and take it again when continued. */
static void suspend(void)
{
    stop = 0;
    ctl_term_leave();
    default_action(SIGTSTP);
    /* Continued: SIGTSTP is blocked again once our handler is back. */
    sigset_t set;
    caught_set(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
    handlers_install();
    screen_take();
}

/* True if the key read is q (quit), or the terminal is gone. One byte a read: what was
 * typed after the q stays in the terminal, for the shell. */
static bool read_quit(void)
{
    char c;
    ssize_t n = read(STDIN_FILENO, &c, 1);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        return true;
    return n > 0 && (c == 'q' || c == 'Q');
}

/* Wait up to ns for a key or a signal: true to quit (q, or SIGINT, SIGTERM, SIGHUP), false
 * to draw the next frame (the time is up, another key, a resize, back from a stop). */
bool ctl_term_wait(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    sigset_t none;
    sigemptyset(&none);
    int n = ppoll(&p, 1, &ts, &none);
    if (fatal)
        return true;
    if (stop)
        suspend();
    return n > 0 && read_quit();
}

void ctl_term_size(int fd, int *rows, int *cols)
{
    struct winsize ws;
    *rows = 24;
    *cols = 80;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        *rows = ws.ws_row;
        *cols = ws.ws_col;
    }
}
