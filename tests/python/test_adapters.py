"""The HTTP client adapters against the mock vendor: each request waits for its turn, each
response (429s included) is reported to the shared bucket."""
import asyncio
import time

import httpx
import pytest
import requests
import urllib3.connection

import ratelimit
import ratelimit.httpx
import ratelimit.requests


def test_requests_adapter_limits_each_request_of_a_session(table, vendor_factory):
    vendor = vendor_factory("foundry")
    b = table.define("v", "5/1h")
    s = requests.Session()
    s.mount(vendor.url, ratelimit.requests.Adapter(b, timeout=0.05))
    statuses = [s.get(vendor.url + "x").status_code for _ in range(5)]
    assert statuses == [200] * 5
    with pytest.raises(ratelimit.Timeout):
        s.get(vendor.url + "x")
    assert vendor.stop()["requests"] == 5, "the refused request was never sent"


def test_requests_adapter_rechecks_a_stale_admission_at_the_send(table, vendor_factory,
                                                                monkeypatch):
    """A connect that takes 60 ms (a slow handshake, a preempted process) makes the turn
    taken before it stale (margin 40 ms: late past 20 ms): the connection's first send
    takes a fresh turn. The stale unit stays counted, so of 3 units the session sends 2."""
    connect = urllib3.connection.HTTPConnection.connect

    def slow_connect(self):
        time.sleep(0.06)
        connect(self)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", slow_connect)
    vendor = vendor_factory("foundry")
    b = table.define("v", "3/1h margin 40ms")
    s = requests.Session()
    s.mount(vendor.url, ratelimit.requests.Adapter(b, timeout=0.05))
    before = time.monotonic_ns()
    r = s.get(vendor.url + "x")
    assert r.status_code == 200
    assert r.ratelimit_decision.at_ns >= before + 60_000_000, "the fresh turn, after the connect"
    assert b.info().counters.admitted == 1, "one request: the stale turn is unused"
    assert s.get(vendor.url + "x").status_code == 200  # keep-alive: no connect, not stale
    with pytest.raises(ratelimit.Timeout):
        s.get(vendor.url + "x")
    assert b.info().counters.admitted == 2
    assert vendor.stop()["requests"] == 2


def test_recheck(table):
    b = table.define("r", "2/1h margin 60s")
    d = b.acquire()
    assert b.recheck(d) is d, "30 s of lateness allowed: the admission stands"
    b.acquire()
    refused = b.decide()
    assert not refused.admitted
    with pytest.raises(ratelimit.InvalidArgument):
        b.recheck(refused)
    late = table.define("late", "2/1h margin 2ms")
    d = late.acquire()
    time.sleep(0.01)
    fresh = late.recheck(d, timeout=0)
    assert fresh.admitted and fresh.at_ns >= d.at_ns + 10_000_000
    assert late.recheck(fresh, timeout=0) is fresh, "both units counted: no fresh turn"
    c = late.info().counters
    assert (c.admitted, c.rejected) == (1, 0)


def test_requests_adapter_reports_429s(table, vendor_factory):
    vendor = vendor_factory("di-tier2", scale=2)  # 1 per 2 s, Retry-After on a 429
    b = table.define("v", "100/1s")  # looser than the vendor: it learns from the 429s
    s = requests.Session()
    s.mount(vendor.url, ratelimit.requests.Adapter(b))
    r1, r2 = s.get(vendor.url), s.get(vendor.url)
    assert (r1.status_code, r2.status_code) == (200, 429)
    assert r2.ratelimit_decision.admitted
    info = b.info()
    assert info.counters.reported_429 == 1 and info.feedback.cooldown_ns > 0
    # attempts=2: the 429 is retried after the pool's pause (Retry-After: 2 s).
    s.mount(vendor.url, ratelimit.requests.Adapter(b, attempts=2))
    assert s.get(vendor.url).status_code == 200
    summary = vendor.stop()
    assert summary["throttled"] == b.info().counters.reported_429


def test_requests_adapter_keeps_urllib3_from_retrying_429s(table, vendor_factory):
    """max_retries=3 (urllib3's Retry(3)) would resend a 429 with Retry-After inside one
    send, uncharged and unreported: the adapter turns that off, and refuses a Retry that
    retries 429s by status."""
    from urllib3.util.retry import Retry
    with pytest.raises(ValueError, match="attempts"):
        ratelimit.requests.Adapter(table.define("w", "1/1s"),
                                   max_retries=Retry(total=3, status_forcelist=[429]))
    vendor = vendor_factory("di-tier2", scale=2)  # 1 per 2 s, Retry-After on a 429
    b = table.define("v", "100/1s")
    s = requests.Session()
    s.mount(vendor.url, ratelimit.requests.Adapter(b, max_retries=3))
    assert [s.get(vendor.url).status_code for _ in range(2)] == [200, 429]
    assert b.info().counters.reported_429 == 1
    assert vendor.stop()["requests"] == 2, "the 429 was not sent again by urllib3"


def test_httpx_transport(table, vendor_factory):
    vendor = vendor_factory("di-tier2", scale=2)
    b = table.define("v", "100/1s")
    with httpx.Client(transport=ratelimit.httpx.Transport(b)) as c:
        assert [c.get(vendor.url).status_code for _ in range(2)] == [200, 429]
    with httpx.Client(transport=ratelimit.httpx.Transport(b, attempts=3)) as c:
        r = c.get(vendor.url)
        assert r.status_code == 200 and r.extensions["ratelimit_decision"].admitted
    assert vendor.stop()["throttled"] == b.info().counters.reported_429 >= 1


def test_httpx_async_transport(table, vendor_factory):
    vendor = vendor_factory("foundry", scale=20)
    b = table.define("v", "4/300ms margin 0ns")

    async def main():
        t = ratelimit.httpx.AsyncTransport(b)
        async with httpx.AsyncClient(transport=t) as c:
            rs = await asyncio.gather(*(c.get(vendor.url) for _ in range(8)))
        return rs

    rs = asyncio.run(main())
    assert [r.status_code for r in rs] == [200] * 8
    at = sorted(r.extensions["ratelimit_decision"].at_ns for r in rs)
    assert at[4] >= at[0] + 300 * 10**6, "the second four waited for the window"
    assert vendor.stop()["requests"] == 8


def test_httpx_transports_recheck_a_stale_admission_at_the_send(table, vendor_factory,
                                                                monkeypatch):
    """As for requests: a 60 ms connect makes the turn stale (margin 40 ms); httpcore's
    trace event for the headers rechecks it. A trace the caller set still runs, and is the
    request's again afterwards. The async transport takes a fresh turn only if one is free
    at once (the connect blocks the loop here, as a busy loop would)."""
    import httpcore.backends.auto
    import httpcore.backends.sync
    connect = httpcore.backends.sync.SyncBackend.connect_tcp
    aconnect = httpcore.backends.auto.AutoBackend.connect_tcp

    def slow_connect(self, *a, **kw):
        time.sleep(0.06)
        return connect(self, *a, **kw)

    async def slow_aconnect(self, *a, **kw):
        time.sleep(0.06)
        return await aconnect(self, *a, **kw)

    monkeypatch.setattr(httpcore.backends.sync.SyncBackend, "connect_tcp", slow_connect)
    monkeypatch.setattr(httpcore.backends.auto.AutoBackend, "connect_tcp", slow_aconnect)
    vendor = vendor_factory("foundry")
    b = table.define("v", "3/1h margin 40ms")
    seen = []

    def user_trace(name, info):
        seen.append(name)

    with httpx.Client(transport=ratelimit.httpx.Transport(b, timeout=0.05)) as c:
        request = c.build_request("GET", vendor.url + "x", extensions={"trace": user_trace})
        before = time.monotonic_ns()
        r = c.send(request)
        assert r.status_code == 200
        assert r.extensions["ratelimit_decision"].at_ns >= before + 60_000_000
        assert "http11.send_request_headers.started" in seen, "the caller's trace ran"
        assert request.extensions["trace"] is user_trace
        assert b.info().counters.admitted == 1, "one request: the stale turn is unused"
        assert c.get(vendor.url + "x").status_code == 200  # keep-alive: not stale
        with pytest.raises(ratelimit.Timeout):
            c.get(vendor.url + "x")
    a = table.define("a", "3/1h margin 40ms")

    async def main():
        async with httpx.AsyncClient(transport=ratelimit.httpx.AsyncTransport(a)) as c:
            before = time.monotonic_ns()
            r = await c.get(vendor.url + "x")
            return before, r

    before, r = asyncio.run(main())
    assert r.status_code == 200
    assert r.extensions["ratelimit_decision"].at_ns >= before + 60_000_000
    assert a.info().counters.admitted == 1
    assert vendor.stop()["requests"] == 3


def test_requests_adapter_reopens_a_connection_closed_while_a_fresh_turn_was_awaited(
        table, monkeypatch):
    """The recheck awaits a fresh turn (1010 ms) on a connection the server closes when idle
    for 0.2 s: it is opened again before the request goes out, so every request is
    answered; without that the first one failed (RemoteDisconnected). The 0.8 s between
    the server's close and the check absorb a server thread the machine delays."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 0.2  # idle keep-alive connections are closed after 0.2 s

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    served.start()
    connect = urllib3.connection.HTTPConnection.connect

    def slow_connect(self):
        connect(self)
        time.sleep(0.03)  # past half the 10 ms margin: the turn is stale at the send

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", slow_connect)
    try:
        b = table.define("v", "1/1s margin 10ms")
        s = requests.Session()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        s.mount(url, ratelimit.requests.Adapter(b, timeout=5))
        statuses = [s.get(url).status_code for _ in range(3)]
        assert statuses == [200] * 3
    finally:
        server.shutdown()
        served.join(5)
        server.server_close()
