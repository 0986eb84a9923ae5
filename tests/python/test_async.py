"""acquire_async: waits never block the event loop; turns keep their order; a 429 voids
turns not yet come."""
import asyncio
import time

import pytest

import ratelimit


def test_waiting_tasks_leave_the_loop_running(table):
    b = table.define("a", "5/200ms margin 0ns")
    waiting = 0
    ticks_while_waiting = 0
    done = asyncio.Event()

    async def ticker():
        nonlocal ticks_while_waiting
        while not done.is_set():
            if waiting:
                ticks_while_waiting += 1
            await asyncio.sleep(0.005)

    async def one():
        nonlocal waiting
        waiting += 1
        d = await b.acquire_async(timeout=10)
        waiting -= 1
        assert ratelimit.now_ns() >= d.at_ns, "never before the turn"
        return d

    async def main():
        t = asyncio.create_task(ticker())
        ds = await asyncio.gather(*(one() for _ in range(15)))
        done.set()
        await t
        return ds

    ds = asyncio.run(main())
    assert all(d.admitted for d in ds)
    at = sorted(d.at_ns for d in ds)
    assert all(at[i + 5] >= at[i] + 200 * 10**6 for i in range(10)), "5 per 200 ms"
    assert [d.at_ns for d in ds] == at, "turns in the order the tasks asked"
    assert ticks_while_waiting > 0, "the loop ran other tasks while turns were awaited"


def test_timeout_reserves_nothing(table):
    b = table.define("a", "1/1h")

    async def main():
        await b.acquire_async()
        with pytest.raises(ratelimit.Timeout):
            await b.acquire_async(timeout=0.1)

    asyncio.run(main())
    assert b.info().counters.admitted == 1


def test_a_429_voids_a_turn_not_yet_come(table):
    b = table.define("a", "1/1s")

    async def main():
        await b.acquire_async()
        later = asyncio.create_task(b.acquire_async(timeout=10))
        await asyncio.sleep(0.05)  # the task has reserved its turn and awaits it
        b.report(429, {"Retry-After": "2"})
        return await later

    d = asyncio.run(main())
    info = b.info()
    assert d.admitted and info.feedback.last_429_ns < d.at_ns
    assert d.at_ns >= info.feedback.last_429_ns + 2 * 10**9, "taken again after the cool-down"
    assert info.counters.admitted == 2, "the voided turn is not counted"


def test_a_late_wake_takes_a_fresh_turn_if_one_is_free(table):
    """The loop is blocked past the turn (a busy event loop): the waiter wakes late and
    takes a fresh turn, free then; the late one stays counted, unused."""
    b = table.define("a", "2/2s margin 20ms")

    async def main():
        b.acquire(2)
        start = ratelimit.now_ns()
        waiter = asyncio.create_task(b.acquire_async(timeout=10))
        await asyncio.sleep(0)  # the task reserves its turn (2020 ms on) and awaits it
        time.sleep(2.2)  # blocks the loop past the turn
        return start, await waiter

    start, d = asyncio.run(main())
    assert d.admitted and d.at_ns >= start + 2200 * 10**6, "a fresh turn, after the block"
    assert b.info().counters.admitted == 2, "the first request (cost 2) and this one"
    assert not b.decide().admitted, "the late turn's unit stays counted"


def test_limit_async_forms(table):
    b = table.define("a", "3/1h")

    @b.limit()
    async def work():
        return 7

    async def main():
        async with b.limit() as d:
            assert d.admitted
        return await work()

    assert asyncio.run(main()) == 7
    assert b.info().counters.admitted == 2


def test_async_waiters_of_several_processes_share_the_window(table):
    """Property: asyncio tasks of 3 processes reserving at once. No window of the rule
    holds more than N turns, and each process's tasks get their turns in the order they
    asked."""
    import json
    import os
    from conftest import most_in_window

    b = table.define("p", "10/200ms margin 0ns")
    pipes = []
    for _ in range(3):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                async def main():
                    return await asyncio.gather(*(b.acquire_async(timeout=30)
                                                  for _ in range(20)))
                ats = [d.at_ns for d in asyncio.run(main())]
                os.write(w, json.dumps(ats).encode())
            finally:
                os._exit(0)
        os.close(w)
        pipes.append((pid, r))
    turns = []
    for pid, r in pipes:
        with os.fdopen(r) as f:
            ats = json.loads(f.read() or "[]")
        os.waitpid(pid, 0)
        assert len(ats) == 20, "a child failed"
        assert ats == sorted(ats), "a process's turns in the order its tasks asked"
        turns += ats
    assert most_in_window(turns, 200 * 10**6) <= 10
    assert b.info().counters.admitted == 60
