"""The collapser keeps the running loop between misses (no ``getpid`` system call per
miss) and asks for it again once that loop has stopped."""

from __future__ import annotations

import asyncio

from edgenode.cache.collapse import Collapser


def test_a_flight_belongs_to_the_loop_that_runs_now():
    collapser = Collapser()

    async def lead_and_follow(key: str) -> tuple[asyncio.AbstractEventLoop, bool]:
        flight, none = collapser.join(key)
        assert flight is not None and none is None
        leader_none, fut = collapser.join(key)  # a second miss of the key waits for the first
        assert leader_none is None and fut is not None
        flight.done(None)
        assert await collapser.wait(fut, 1.0) is None
        return asyncio.get_running_loop(), fut.get_loop() is asyncio.get_running_loop()

    first, same_first = asyncio.run(lead_and_follow("k1"))
    second, same_second = asyncio.run(lead_and_follow("k2"))  # a new loop: the kept one has stopped
    assert first is not second
    assert same_first and same_second
