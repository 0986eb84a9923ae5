#!/usr/bin/env python3
"""bench/delay_split.py DIR: where the delay from decision to count goes, from a KEEP=DIR of
bench/margin_gunicorn.sh. DIR/decided holds the clients' admission instants, DIR/log the
mock vendor's lines (counted-at, status, retry, handled-at; CLOCK_MONOTONIC). Decisions and
arrivals are matched in order (sorted), which is exact while no request overtakes another.
Prints p50, p99, p99.9 and the maximum of decision -> arrival (the client's part: a late
wake-up, the send) and decision -> handler (what a vendor on this loaded host would count).
"""
import sys


def quantiles(xs):
    xs = sorted(xs)
    at = lambda p: xs[min(len(xs) - 1, int(len(xs) * p / 100))]
    return "p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, max %.1f ms" % tuple(
        1000 * v for v in (at(50), at(99), at(99.9), xs[-1]))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: delay_split.py DIR (a KEEP= directory of margin_gunicorn.sh)")
    d = sys.argv[1]
    rows = [line.split() for line in open(d + "/log")]
    decided = sorted(int(w[0]) / 1e9 for w in (line.split() for line in open(d + "/decided"))
                     if w and w[0] != "0")
    counted = sorted(float(r[0]) for r in rows)
    handled = sorted(float(r[3]) for r in rows if len(r) > 3)
    n = min(len(decided), len(counted))
    if not n:
        sys.exit("delay_split.py: no requests in %s" % d)
    print("%d requests; decision -> arrival: %s" % (n, quantiles(
        [a - t for a, t in zip(counted, decided)])))
    if handled:
        print("%d requests; decision -> handler: %s" % (n, quantiles(
            [h - t for h, t in zip(handled, decided)])))


if __name__ == "__main__":
    main()
