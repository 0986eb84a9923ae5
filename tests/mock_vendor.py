#!/usr/bin/env python3
"""mock_vendor.py - a local stand-in for the vendor APIs in shared/seeds, for tests and the demo.

It enforces a seed's policy exactly, counting each request when it arrives, time-scaled by
--scale (100 turns "200 per rolling 60 s" into "200 per rolling 600 ms"), and answers a
refused request with that vendor's 429 shape (status, headers, body). Loopback only, and it
stops by itself after --max-seconds. It prints "port N" on stdout once listening, and on
exit one JSON line of statistics: requests, ok, throttled (429s), and the most requests
seen in any window of each policy rule (which must never exceed the rule's limit for a
client that respects it).

--log FILE writes one line per request of ours as it is answered: the instant it was
counted at (CLOCK_MONOTONIC seconds), the status, the Retry-After it got (0 for none) and
the instant its handler counted it.

--count-at arrival (with --sliding, plain TCP) counts each request at its first packet's
kernel arrival time (SO_TIMESTAMPNS) plus its --delay-jitter, however late the handler
thread runs: what a remote vendor, whose count our host's load cannot delay, would see.
The default counts it when its handler runs, which on a loaded host adds this process's
own scheduling stalls to the delay.

--other-rate R makes "other clients" of the same account (Foundry sums every key of an
organization) use R requests per scaled second, so a perfect local limiter still sees
429s and must reconcile with the server's headers.

--sliding N SECONDS replaces the seed's rules by one exact rolling window of N per SECONDS
(not time-scaled), answered in the seed's shape. --delay-jitter MS delays the *count* of
each request by a random 0..MS ms (the handler sleeps before deciding): the delay between a
client's decision and the server's count, which the client's margin must cover. The
summary's "per_second" lists [ok, throttled] per second since the first request.
"""
import argparse
import bisect
import json
import math
import random
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python 3.11 lacks the name


class Sliding:
    """At most n in any rolling window of t seconds (exact: keeps every arrival).

    A window is (x - t, x]. Arrivals may come out of order (--count-at arrival stamps each
    request with its packet's arrival, and handler threads count in any order): a new one
    at `now` is taken only if every window holding it keeps at most n. The worst such
    window ends at `now` or at a later arrival less than t after it."""

    HORIZON = 10.0  # arrivals kept this long beyond their window: the most out of order

    def __init__(self, n, t):
        self.n, self.t, self.log, self.most, self.newest = n, t, [], 0, -math.inf

    def _count(self, x):
        """Arrivals in the window (x - t, x]."""
        return bisect.bisect_right(self.log, x) - bisect.bisect_right(self.log, x - self.t)

    def _worst(self, now):
        """The most arrivals in any window that would hold one more at now."""
        ends = [now] + self.log[bisect.bisect_left(self.log, now):
                                bisect.bisect_left(self.log, now + self.t)]
        return max(self._count(x) for x in ends)

    def admits(self, now):
        """(ok, wait): would one more at now keep the rule; else how long until it might."""
        if self._worst(now) < self.n:
            return True, 0.0
        return False, self.reset_in(now)

    def try_take(self, now):
        ok, wait = self.admits(now)
        if ok:
            bisect.insort(self.log, now)
            self.most = max(self.most, self._worst(now))
            self.newest = max(self.newest, now)
            cut = bisect.bisect_right(self.log, self.newest - self.t - self.HORIZON)
            del self.log[:cut]
        return ok, wait

    def remaining(self, now):
        return max(0, self.n - self._count(now))

    def reset_in(self, now):
        """Until the oldest arrival in the window ending at now leaves it."""
        i = bisect.bisect_right(self.log, now - self.t)
        return self.log[i] + self.t - now if i < len(self.log) and self.log[i] <= now else 0.0


class Bucket:
    """Token bucket: n per t seconds sustained, burst b (GCRA)."""

    def __init__(self, n, t, b):
        self.i, self.tau, self.tat, self.most = t / n, (b - 1) * t / n, 0.0, 0
        self.b, self.n, self.t = b, n, t

    def try_take(self, now):
        base = max(self.tat, now)
        if base - now > self.tau + 1e-9:
            return False, base - now - self.tau
        self.tat = base + self.i
        return True, 0.0

    def remaining(self, now):
        return max(0, int((now + self.tau + self.i - max(self.tat, now)) / self.i + 1e-9))

    def reset_in(self, now):
        return max(0.0, self.tat - now)


# Each seed: rules per route, and how it answers. Limits from shared/seeds/*.txt.
SEEDS = {
    "foundry": {"rules": lambda s: [Sliding(200, 60 / s)], "shape": "foundry"},
    "ti-standard": {"rules": lambda s: [Bucket(120, 60 / s, 20)], "shape": "ti"},
    "hourly-pro": {"rules": lambda s: [Sliding(1000, 3600 / s), Sliding(100, 60 / s)],
                   "shape": "hourly"},
    "foil-secret": {"rules": lambda s: [Sliding(600, 60 / s)], "shape": "foil"},
    "di-tier2": {"rules": lambda s: [Bucket(1, 4 / s, 1)], "shape": "di"},
}


def body_for(shape, retry):
    if shape == "ti":
        return {"error": "rate_limit_exceeded",
                "message": "Request rate limit reached. Retry after %d seconds." % retry,
                "retryAfter": retry}
    if shape == "hourly":
        return {"error": {"code": "rate_limit_exceeded",
                          "message": "API rate limit exceeded. Please retry after %d seconds."
                          % retry, "retry_after": retry}}
    if shape == "foil":
        return {"error": {"code": "rate_limit.exceeded", "status": 429, "retryable": True,
                          "message": "Rate limit exceeded for this API key."}}
    return {"message": "Too Many Requests"}


class Vendor:
    def __init__(self, seed, scale, sliding=None):
        self.seed, self.scale = SEEDS[seed], scale
        self.rules = [Sliding(int(sliding[0]), sliding[1])] if sliding else self.seed["rules"](scale)
        self.per_second = []
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "ok": 0, "throttled": 0, "other_ok": 0}
        self.first = self.last = None  # arrival of the first and last request of ours
        self.log = None  # --log: a file, one line per request of ours
        self.per_second_from = None  # the instant per_second[0] starts

    def decide(self, other=False, at=None):
        """Count one arrival (at `at`, CLOCK_MONOTONIC seconds; default now); returns
        (ok, headers, body) in the seed's shape."""
        with self.lock:
            now = time.monotonic() if at is None else at
            waits = [w for ok, w in (self._peek(r, now) for r in self.rules) if not ok]
            if not waits:
                for r in self.rules:
                    r.try_take(now)
            key = "other_ok" if other else "ok"
            if not other:
                self.stats["requests"] += 1
                self.first = now if self.first is None else min(self.first, now)
                self.last = now if self.last is None else max(self.last, now)
            if waits:
                self.stats["throttled"] += 0 if other else 1
            else:
                self.stats[key] += 1
            if not other:
                if self.per_second_from is None:
                    self.per_second_from = now
                second = max(0, int(now - self.per_second_from))  # an earlier count: second 0
                while len(self.per_second) <= second:
                    self.per_second.append([0, 0])
                self.per_second[second][1 if waits else 0] += 1
            answer = self._answer(not waits, max(waits, default=0.0), now)
            if self.log and not other:
                handled = time.monotonic() if at is not None else now
                self.log.write("%.6f %d %s %.6f\n"
                               % (now, answer[0], answer[1].get("Retry-After", 0), handled))
                self.log.flush()
            return answer

    @staticmethod
    def _peek(rule, now):
        """Would the rule admit now? (without taking)"""
        if isinstance(rule, Sliding):
            return rule.admits(now)
        base = max(rule.tat, now)
        return (base - now <= rule.tau + 1e-9, base - now - rule.tau)

    def _answer(self, ok, wait, now):
        shape = self.seed["shape"]
        first = self.rules[0]
        headers = {}
        if shape in ("ti", "hourly", "foil"):
            headers["X-RateLimit-Limit"] = str(first.n)
            headers["X-RateLimit-Remaining"] = str(min(r.remaining(now) for r in self.rules))
        if shape in ("ti", "hourly"):
            reset = max(r.reset_in(now) for r in self.rules)
            headers["X-RateLimit-Reset"] = str(int(time.time() + math.ceil(reset)))
        if ok:
            return 200, headers, {"ok": True}
        retry = max(1, math.ceil(wait))  # whole seconds, never early
        if shape != "foundry":
            headers["Retry-After"] = str(retry)
        return 429, headers, body_for(shape, retry)

    def summary(self):
        out = dict(self.stats)
        out["most_in_window"] = [r.most if isinstance(r, Sliding) else None for r in self.rules]
        out["limits"] = [r.n for r in self.rules]
        out["span_s"] = (self.last - self.first) if self.first is not None else 0.0
        out["per_second"] = self.per_second
        return out


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: connections stay open between requests (every answer has a Content-Length),
    # as real vendor APIs keep them; a client that sends "Connection: close" gets one request.
    protocol_version = "HTTP/1.1"

    def setup(self):
        if self.server.count_at_arrival:
            self.rbufsize = 0  # no buffer in this process: the kernel's holds the next request
        super().setup()

    def handle_one_request(self):
        self.arrival = None
        if self.server.count_at_arrival:
            self.arrival = self._arrival()
        super().handle_one_request()

    def _arrival(self):
        """When the next request's first byte came in (CLOCK_MONOTONIC seconds), from its
        packet's kernel timestamp: the instant a remote vendor would count it, however late
        this process gets to run. None if the client closed."""
        try:
            data, anc, _, _ = self.connection.recvmsg(1, socket.CMSG_SPACE(16), socket.MSG_PEEK)
        except OSError:
            return None
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                sec, ns = struct.unpack("qq", raw[:16])
                return time.monotonic() - (time.time() - (sec + ns / 1e9))
        return None if not data else time.monotonic()

    def do_GET(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # a request body (POST) is read, never interpreted
        if self.path == "/__stats":
            return self._send(200, {}, self.server.vendor.summary())
        at = None
        jitter = random.uniform(0, self.server.jitter_ms) / 1000 if self.server.jitter_ms else 0
        if self.arrival is not None:
            at = self.arrival + jitter
            time.sleep(max(0.0, at - time.monotonic()))
        elif jitter:
            time.sleep(jitter)
        status, headers, body = self.server.vendor.decide(at=at)
        self._send(status, headers, body)

    do_POST = do_GET

    def _send(self, status, headers, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


def other_clients(vendor, rate, stop):
    """Other integrations on the same account: `rate` requests per scaled second."""
    period = 1.0 / rate
    while not stop.wait(period):
        vendor.decide(other=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", choices=sorted(SEEDS), default="foundry")
    ap.add_argument("--scale", type=float, default=100.0)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--other-rate", type=float, default=0.0)
    ap.add_argument("--sliding", nargs=2, type=float, metavar=("N", "SECONDS"),
                    help="one exact rolling window of N per SECONDS instead of the seed's")
    ap.add_argument("--delay-jitter", type=float, default=0.0, metavar="MS",
                    help="delay counting each request by a random 0..MS ms")
    ap.add_argument("--count-at", choices=("handler", "arrival"), default="handler",
                    help="count a request when its handler runs (default) or at its packet's "
                         "kernel arrival time (with --sliding; not with --tls)")
    ap.add_argument("--log", metavar="FILE",
                    help="one line per request: counted-at status retry handled-at")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"),
                    help="serve HTTPS with this certificate and key (PEM files)")
    args = ap.parse_args()
    if args.sliding and (args.sliding[0] < 1 or args.sliding[1] <= 0):
        ap.error("--sliding: N must be at least 1 and SECONDS positive")
    if args.delay_jitter < 0:
        ap.error("--delay-jitter: MS must not be negative")
    if args.count_at == "arrival" and (not args.sliding or args.tls):
        ap.error("--count-at arrival: needs --sliding (its rule takes arrivals out of order) "
                 "and plain TCP (a TLS record has no arrival time per request)")
    vendor = Vendor(args.seed, args.scale, args.sliding)
    if args.log:
        vendor.log = open(args.log, "w")
    server = Server(("127.0.0.1", args.port), Handler)
    server.jitter_ms = args.delay_jitter
    server.count_at_arrival = args.count_at == "arrival"
    if server.count_at_arrival:
        # On the listening socket: accepted ones inherit it, and while one socket asks for
        # them the kernel stamps every packet as it comes in, a new connection's first one
        # too (with none, a packet has no stamp and would be counted when read).
        server.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*args.tls)
        ctx.set_alpn_protocols(["http/1.1"])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.vendor = vendor
    stop = threading.Event()
    if args.other_rate > 0:
        threading.Thread(target=other_clients, args=(vendor, args.other_rate * args.scale, stop),
                         daemon=True).start()
    timer = threading.Timer(args.max_seconds, server.shutdown)
    timer.daemon = True
    timer.start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("port %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        stop.set()
        print(json.dumps(vendor.summary()), flush=True)


if __name__ == "__main__":
    sys.exit(main())
