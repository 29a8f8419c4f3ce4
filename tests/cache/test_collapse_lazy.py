"""A flight's waiters' future is made when the first waiter joins: the usual miss (no
waiter) makes and resolves none; waiters still get the leader's entry, or None when the
leader settles without one."""

from __future__ import annotations

import asyncio

from edgenode.cache.collapse import Collapser, Flight


async def test_a_leader_without_waiters_makes_no_future() -> None:
    collapser = Collapser()
    flight, none = collapser.join("k")
    assert flight is not None and none is None
    assert {name: getattr(flight, name) for name in Flight.__slots__} == {
        "_collapser": collapser, "key": "k", "future": None, "handed_off": False, "_leased": False,
        "resolved": False}
    assert len(collapser) == 1
    flight.done(None)
    assert flight.resolved and flight.future is None and len(collapser) == 0
    again, _ = collapser.join("k")  # the key's next miss leads a new flight
    assert again is not None and again is not flight


async def test_waiters_share_one_future_and_get_the_leaders_entry() -> None:
    collapser = Collapser()
    flight, _ = collapser.join("k")
    assert flight is not None
    _, first = collapser.join("k")
    _, second = collapser.join("k")
    assert first is not None and first is second is flight.future
    assert first.get_loop() is asyncio.get_running_loop()
    entry = object()
    flight.done(entry)  # type: ignore[arg-type]
    flight.done(None)  # resolved once: the second outcome is ignored
    assert await collapser.wait(first, 1.0) is entry
    assert len(collapser) == 0


async def test_settle_releases_waiters_unless_resolved_or_handed_off() -> None:
    collapser = Collapser()
    flight, _ = collapser.join("a")
    assert flight is not None
    _, fut = collapser.join("a")
    assert fut is not None
    flight.settle()  # the fetch raised: the waiters go to the origin themselves
    assert fut.done() and fut.result() is None and len(collapser) == 0

    teed, _ = collapser.join("b")
    assert teed is not None
    teed.handed_off = True  # a streamed body resolves it at its end
    teed.settle()
    assert not teed.resolved and len(collapser) == 1
    _, late = collapser.join("b")  # a waiter arriving while the body streams
    assert late is not None and not late.done()
    teed.done(None)
    assert late.result() is None and len(collapser) == 0


async def test_a_key_led_alone_gets_its_flight_when_a_waiter_joins() -> None:
    """A key led alone (the usual miss: None in the table) has no ``Flight`` until a
    waiter joins, which makes it unleased with the waiters' future; the leader's
    ``flight`` then answers that one, and its end takes the key out of the table."""
    collapser = Collapser()
    collapser.flights["k"] = None
    leader_none, fut = collapser.join("k")
    assert leader_none is None and fut is not None and not fut.done()
    flight = collapser.flights["k"]
    assert flight is not None and flight.future is fut and not flight._leased and not flight.resolved
    assert collapser.flight("k") is flight
    _, again = collapser.join("k")
    assert again is fut
    entry = object()
    flight.done(entry)  # type: ignore[arg-type]
    assert await collapser.wait(fut, 1.0) is entry and len(collapser) == 0

    collapser.flights["j"] = None
    made = collapser.flight("j")  # the leader's fetch needs one: made with no future
    assert collapser.flights["j"] is made and made.future is None and made.key == "j"
    made.settle()
    assert made.resolved and len(collapser) == 0
