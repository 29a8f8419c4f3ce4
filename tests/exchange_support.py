"""Comparing an ``Exchange`` a maker made with the one its reference made, slot by slot."""

from __future__ import annotations

from typing import Any

from edgenode.pipeline.exchange import Exchange


def slots(cls: type) -> list[str]:
    """Every slot of ``cls``, from the class and its bases."""
    return [name for c in cls.__mro__ for name in getattr(c, "__slots__", ())]


def assert_same_exchange(made: Any, expected: Any, identical: bool = False) -> None:
    """``made`` holds what ``expected`` holds in every ``Exchange`` slot: made after it from
    the same id counter and clocks, its own empty dicts, the rest equal (``identical``: the
    same objects, or equal values of one type)."""
    for name in slots(Exchange):
        got, want = getattr(made, name), getattr(expected, name)
        if name == "id":
            assert got + 1 == want  # the next of the same counter
        elif name in ("start", "start_wall"):
            assert type(got) is float and got <= want
        elif name in ("timings", "props"):
            assert got == want == {} and got is not want
        elif identical:
            assert got is want or (type(got) is type(want) and got == want), name
        else:
            assert got == want, name
