"""acquire_async: waits never block the event loop; turns keep their order; a 429 voids
turns not yet come."""
import asyncio

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
