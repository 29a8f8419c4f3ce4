"""Field names kept by their text (``http/_fields.c``): the origin client's callback
hands out one str per name an origin repeats, and the stored fields' lower-case names
are made once per name, yet every answer is the one ``str.lower`` and a Latin-1 decode
give, whatever names share a slot of the table."""

from __future__ import annotations

import random

from edgenode.http._fields import Latin1Pairs, field_block, lower_names


def _names(rng: random.Random, count: int) -> list[str]:
    """ASCII names of few lengths and letters, so that many share a slot."""
    return ["".join(rng.choice("aAbB-") for _ in range(rng.randint(1, 4))) for _ in range(count)]


def test_a_repeated_name_is_one_str():
    first: list[tuple[str, str]] = []
    second: list[tuple[str, str]] = []
    Latin1Pairs(first)(b"Content-Type", b"text/plain")
    Latin1Pairs(second)(b"Content-Type", b"text/html")
    assert first[0][0] == "Content-Type" and first[0][0] is second[0][0]
    assert type(first[0][0]) is str and (first[0][1], second[0][1]) == ("text/plain", "text/html")


def test_names_sharing_slots_read_and_lower_as_python_does():
    rng = random.Random(9111)
    pool = _names(rng, 300) + ["X-\xe9t\xe9", "\xc9TAG", "Date", "date", "DATE"]
    for _ in range(20_000):
        raw = rng.choice(pool).encode("latin-1")
        target: list[tuple[str, str]] = []
        Latin1Pairs(target)(raw, b"v")
        name = target[0][0]
        assert name == raw.decode("latin-1") and type(name) is str
        names: set[str] = set()
        stored, _, _ = field_block([(name, "v")], frozenset({"date"}), names)
        assert names == {name.lower()} == lower_names([(name, "v")])
        assert stored == ([] if name.lower() == "date" else [(name, "v")])
