#!/usr/bin/env python3
"""mock_vendor.py - a local stand-in for the vendor APIs in shared/seeds, for tests and the demo.

It enforces a seed's policy exactly, counting each request when it arrives, time-scaled by
--scale (100 turns "200 per rolling 60 s" into "200 per rolling 600 ms"), and answers a
refused request with that vendor's 429 shape (status, headers, body). Loopback only, and it
stops by itself after --max-seconds. It prints "port N" on stdout once listening, and on
exit one JSON line of statistics: requests, ok, throttled (429s), and the most requests
seen in any window of each policy rule (which must never exceed the rule's limit for a
client that respects it).

--log FILE writes one line per request of ours as it is answered: its arrival
(CLOCK_MONOTONIC seconds), the status, and the Retry-After it got (0 for none).

--other-rate R makes "other clients" of the same account (Foundry sums every key of an
organization) use R requests per scaled second, so a perfect local limiter still sees
429s and must reconcile with the server's headers.
"""
import argparse
import collections
import json
import math
import signal
import socketserver
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sliding:
    """At most n in any rolling window of t seconds (exact: keeps every arrival)."""

    def __init__(self, n, t):
        self.n, self.t, self.log, self.most = n, t, collections.deque(), 0

    def _expire(self, now):
        while self.log and self.log[0] <= now - self.t:
            self.log.popleft()

    def try_take(self, now):
        self._expire(now)
        if len(self.log) >= self.n:
            return False, self.log[0] + self.t - now
        self.log.append(now)
        self.most = max(self.most, len(self.log))
        return True, 0.0

    def remaining(self, now):
        self._expire(now)
        return self.n - len(self.log)

    def reset_in(self, now):
        self._expire(now)
        return self.log[0] + self.t - now if self.log else 0.0


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
    def __init__(self, seed, scale):
        self.seed, self.scale = SEEDS[seed], scale
        self.rules = self.seed["rules"](scale)
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "ok": 0, "throttled": 0, "other_ok": 0}
        self.first = self.last = None  # arrival of the first and last request of ours
        self.log = None  # --log: a file, one line per request of ours

    def decide(self, other=False):
        """Count one arrival; returns (ok, headers, body) in the seed's shape."""
        with self.lock:
            now = time.monotonic()
            waits = [w for ok, w in (self._peek(r, now) for r in self.rules) if not ok]
            if not waits:
                for r in self.rules:
                    r.try_take(now)
            key = "other_ok" if other else "ok"
            if not other:
                self.stats["requests"] += 1
                self.first = now if self.first is None else self.first
                self.last = now
            if waits:
                self.stats["throttled"] += 0 if other else 1
            else:
                self.stats[key] += 1
            answer = self._answer(not waits, max(waits, default=0.0), now)
            if self.log and not other:
                self.log.write("%.6f %d %s\n" % (now, answer[0], answer[1].get("Retry-After", 0)))
                self.log.flush()
            return answer

    @staticmethod
    def _peek(rule, now):
        """Would the rule admit now? (without taking)"""
        if isinstance(rule, Sliding):
            rule._expire(now)
            return (len(rule.log) < rule.n, rule.reset_in(now))
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
        return out


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: connections stay open between requests (every answer has a Content-Length),
    # as real vendor APIs keep them; a client that sends "Connection: close" gets one request.
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # a request body (POST) is read, never interpreted
        if self.path == "/__stats":
            return self._send(200, {}, self.server.vendor.summary())
        status, headers, body = self.server.vendor.decide()
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
    ap.add_argument("--log", metavar="FILE", help="one line per request: arrival status retry")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"),
                    help="serve HTTPS with this certificate and key (PEM files)")
    args = ap.parse_args()
    vendor = Vendor(args.seed, args.scale)
    if args.log:
        vendor.log = open(args.log, "w")
    server = Server(("127.0.0.1", args.port), Handler)
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
