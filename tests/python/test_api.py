"""The Python API over a table: exceptions, decisions, waits, reports, calls, info."""
import os
import threading
import time

import pytest
import requests.structures

import ratelimit


def test_every_error_code_has_its_exception(table):
    codes = {}
    for name, code, message in ratelimit._core._error_table():
        cls = ratelimit._types.ERRORS[name]
        assert issubclass(cls, ratelimit.Error)
        assert (cls.code, cls.name) == (code, name)
        codes[code] = cls
    assert len(codes) == 17
    assert issubclass(ratelimit.Timeout, TimeoutError)
    assert issubclass(ratelimit.PermissionDenied, PermissionError)
    assert issubclass(ratelimit.InvalidName, ValueError)


def test_errors_carry_the_detail(table, table_path):
    with pytest.raises(ratelimit.NotFound) as e:
        table.bucket("nope")
    assert e.value.code == -5 and e.value.name == "RL_ENOENT"
    assert "nope" in e.value.detail and table_path in e.value.detail
    with pytest.raises(ratelimit.ParseError) as e:
        table.define("x", "3/1q")
    assert "column 4" in e.value.detail and "3/1q" in str(e.value)
    with pytest.raises(ratelimit.InvalidName):
        table.define("bad name", "1/s")
    table.define("x", "3/1s")
    with pytest.raises(ratelimit.Exists):
        table.define("x", "4/1s")
    with pytest.raises(ratelimit.CostTooHigh) as e:
        table.bucket("x").try_acquire(4)
    assert "'x'" in e.value.detail
    with pytest.raises(ratelimit.NotFound):
        ratelimit.Table(table_path + "-missing", create=False)


def test_try_acquire_takes_exactly_the_budget(table):
    b = table.define("five", "5/1h")
    assert [b.try_acquire() for _ in range(7)] == [True] * 5 + [False] * 2
    b.reset()
    assert b.try_acquire(cost=3) and b.try_acquire(2) and not b.try_acquire()
    d = b.decide()
    assert not d.admitted and d.wait_ns > 3000 * 10**9 and d.remaining == 0
    info = b.info()
    assert (info.counters.admitted, info.counters.admitted_units) == (7, 10)
    assert info.counters.rejected == 4 and info.counters.resets == 1


def test_bad_arguments(table):
    b = table.define("b", "5/1h")
    for bad in (0, -1, 2**32, "x", 1.5):
        with pytest.raises((ValueError, TypeError)):
            b.try_acquire(bad)
    with pytest.raises(TypeError):
        b.try_acquire(1, 2)
    with pytest.raises(TypeError):
        b.try_acquire(weight=1)
    with pytest.raises(ValueError):
        b.acquire(timeout=-1)
    with pytest.raises(ratelimit.InvalidArgument):
        b.report(42, {})


def test_acquire_waits_for_the_turn_and_times_out_reserving_nothing(table):
    b = table.define("w", "2/300ms margin 0ns")
    first = b.acquire()
    b.acquire()
    third = b.acquire(timeout=5)
    assert third.admitted and third.at_ns >= first.at_ns + 300 * 10**6
    assert time.monotonic_ns() >= third.at_ns, "acquire returned at its turn, not before"
    slow = table.define("slow", "1/1h")
    slow.acquire()
    with pytest.raises(ratelimit.Timeout) as e:
        slow.acquire(timeout=0.05)
    assert "'slow'" in e.value.detail
    assert slow.info().counters.admitted == 1


def test_limit_as_context_manager_and_decorator(table):
    b = table.define("l", "3/1h")
    with b.limit() as d:
        assert d.admitted

    @b.limit(cost=2)
    def work(x):
        return x * 2

    assert work(21) == 42
    assert b.info().counters.admitted_units == 3
    with pytest.raises(ratelimit.Timeout):
        with b.limit(timeout=0):
            pass


def test_report_reads_headers_of_any_mapping_case_insensitively(table):
    b = table.define("r", "100/1m")
    fb = b.report(429, {"RETRY-AFTER": "7"})
    assert 6 * 10**9 < fb.cooldown_ns <= 7 * 10**9
    b.reset()
    fb = b.report(429, [("retry-after", b"3")])
    assert 2 * 10**9 < fb.cooldown_ns <= 3 * 10**9
    b.reset()
    cid = requests.structures.CaseInsensitiveDict({"X-RateLimit-Remaining": "4",
                                                   "x-ratelimit-reset": "30"})
    fb = b.report(200, cid)
    assert fb.tightened and fb.cooldown_ns == 0
    assert b.info().feedback.server_remaining <= 4
    b.reset()
    fb = b.report(200, {"RateLimit": '"default";r=0;t=5', "Retry-After": "junk"})
    assert fb.ignored & ratelimit.IGNORED_RETRY_AFTER
    assert ratelimit.response_fields(200, {"ratelimit-policy": '"d";q=100;w=60'})[6] == \
        '"d";q=100;w=60'

    class Response:  # an aiohttp/urllib3-like response: .status and .headers
        status = 429
        headers = {"Retry-After": "1"}

    b.reset()
    assert b.report(Response()).cooldown_ns > 0
    assert b.info().counters.reported_429 == 3


def test_call_retries_429s_and_reports_each(table):
    b = table.define("c", "100/1m")
    answers = iter([(429, {"Retry-After": "0"}), (200, {})])
    assert b.call(lambda: next(answers), attempts=3) == (200, {})
    assert b.info().counters.reported_429 == 1
    with pytest.raises(ratelimit.Limited) as e:
        b.call(lambda: (429, {"retry-after": "0"}), attempts=2)
    assert e.value.response == (429, {"retry-after": "0"})
    assert b.info().counters.reported_429 == 3

    def boom():
        raise KeyError("from fn")

    with pytest.raises(KeyError):
        b.call(boom)


def test_templates(table):
    tenants = table.define_template("tenant/*", "2/1h")
    acme = tenants.get("acme")
    assert acme.name == "tenant/acme" and tenants.get("tenant/acme").name == "tenant/acme"
    assert table.get("tenant/bob").try_acquire()
    assert acme.try_acquire() and acme.try_acquire() and not acme.try_acquire()
    with pytest.raises(ratelimit.InvalidArgument):
        tenants.try_acquire()
    with pytest.raises(ratelimit.InvalidArgument):
        acme.get("x")


def test_info_is_a_dataclass(table):
    table.define("parent", "1000/1h")
    b = table.define("child", "10/1m burst 5, 100/1h fixed", parent="parent")
    b.try_acquire(2)
    info = b.info()
    assert isinstance(info, ratelimit.BucketInfo)
    assert (info.name, info.parent, info.is_template) == ("child", "parent", False)
    assert [r.kind for r in info.rules] == ["gcra", "fixed"]
    assert info.rules[1].used == 2 and info.rules[1].limit == 100
    assert info.counters.admitted == 1 and info.feedback.cooldown_ns == 0


def test_from_config_applies_and_reports_problems(tmp_path, table_path):
    conf = tmp_path / "rl.conf"
    conf.write_text("table %s\nbucket foundry 200/60s\n" % table_path)
    with ratelimit.Table.from_config(str(conf)) as t:
        assert any("created foundry" in n for n in t.notes)
        assert t.path == table_path and t.bucket("foundry").try_acquire()
    bad = tmp_path / "bad.conf"
    bad.write_text("bucket x 3/1q\n")
    with pytest.raises(ratelimit.ParseError) as e:
        ratelimit.Table.from_config(str(bad))
    assert "bad.conf:1:" in e.value.detail


def test_readonly_table_refuses_decisions(table, table_path):
    table.define("b", "1/1s")
    with ratelimit.Table(table_path, readonly=True) as ro:
        with pytest.raises(ratelimit.PermissionDenied):
            ro.bucket("b").try_acquire()


def test_gil_released_while_waiting_and_close_refused_meanwhile(table_path):
    t = ratelimit.Table(table_path)
    b = t.define("g", "1/1500ms")
    b.acquire()
    done = []
    waiter = threading.Thread(target=lambda: done.append(b.acquire(timeout=10)))
    waiter.start()
    for _ in range(1000):  # this thread runs while the other sleeps in acquire
        if b.info().counters.waited >= 1:
            break
        time.sleep(0.01)
    assert b.info().counters.waited == 1
    if waiter.is_alive():
        with pytest.raises(RuntimeError):
            t.close()
    waiter.join(30)
    assert done and done[0].admitted
    t.close()
    with pytest.raises(ValueError):
        b.try_acquire()
    t.close()  # again: nothing


def test_fork_children_share_the_bucket(table):
    b = table.define("f", "10/1h")
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            os._exit(sum(b.try_acquire() for _ in range(5)))
        pids.append(pid)
    total = sum(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids)
    assert total == 10 and b.info().counters.admitted == 10


def test_a_429_with_its_decision_widens_the_margin_once(table):
    table.define("wide", "100/1s")
    b = table.bucket("wide")
    d = b.acquire()
    assert not b.report(429, {"Retry-After": "0"}).widened, "no decision: no widening"
    fb = b.report(429, {"Retry-After": "0"}, decision=d)
    assert fb.widened, "a 429 to a request the rules admitted widens the margin"
    assert not b.report(429, {"Retry-After": "0"}, decision=d).widened, \
        "the same decision, already counted: once"
    assert not b.report(200, {}, decision=d).widened


def test_a_tenant_handle_follows_its_tenant_across_expiry(table):
    """A handle from get() follows its tenant once the template's expiry removed it: the next
    call makes it anew with its full budget. A handle from bucket() (a lookup) does not."""
    tenants = table.define_template("tenant/*", "3/10ms margin 0", expire=0.01)
    acme = tenants.get("acme")
    looked_up = table.bucket("tenant/acme")
    assert acme.try_acquire() and acme.try_acquire()
    # Other tenants' creations sweep it away once idle (bounded: a hang guard of 30 s).
    deadline = time.monotonic() + 30
    made = 0
    while time.monotonic() < deadline:
        try:
            table.bucket("tenant/acme")
        except ratelimit.NotFound:
            break
        table.get("tenant/other%d" % made)
        made += 1
        time.sleep(0.001)
    else:
        pytest.fail("tenant/acme did not expire after %d creations" % made)
    with pytest.raises(ratelimit.NotFound):
        looked_up.try_acquire()
    assert [acme.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert table.bucket("tenant/acme").info().rules[0].used == 3


def test_define_template_checks_its_expiry(table):
    with pytest.raises(ratelimit.InvalidArgument):
        table.define_template("tenant/*", "3/1s", expire=100 * 86400)
