"""A whole entry's answer made in one C call (``_entry.EntryAnswer``, the cache stage's
``entry_answer``) against the Python it stands in for (``CacheStage._whole_answer``):
slot by slot on generated entries, its fields the request's own, and the cases it leaves
to Python."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from multidict import CIMultiDict, getversion

from edgenode.cache._entry import EntryAnswer
from edgenode.cache.directives import format_http_date
from edgenode.cache.policy import Entry, build_entry
from edgenode.cache.stage import CacheStage
from edgenode.cache.storing import entry_answer
from edgenode.http.messages import FROM_BODY, PrebuiltResponse, Response

NOW = 1_700_000_000.0


def _entry(rng: random.Random) -> Entry:
    fields = [("Content-Type", rng.choice(("text/plain", "té"))), ("Cache-Control", "max-age=600"),
              ("Date", format_http_date(NOW - rng.choice((0, 3, 100))))]
    if rng.random() < 0.2:
        fields.append(("Age", rng.choice(("5", "1000000", "x"))))
    headers = CIMultiDict(fields)
    trailers = CIMultiDict([("Digest", "sha-256=abc")]) if rng.random() < 0.1 else None
    return build_entry(key="k", url="http://a/x", status=rng.choice((200, 203, 404)),
                       reason=rng.choice(("OK", "", "Fine")), resp_headers=headers,
                       body=rng.randbytes(rng.choice((0, 10, 1024))), req_headers=CIMultiDict(),
                       request_time=NOW - 1.0, response_time=NOW, heuristic_fraction=0.1,
                       heuristic_max=86400.0, trailers=trailers, fields=fields)


def _slots(resp: Response) -> dict[str, Any]:
    out = {name: getattr(resp, name) for cls in type(resp).__mro__ for name in getattr(cls, "__slots__", ())}
    out["headers"] = list(resp.headers.items())
    out["wire_head"] = None if resp.wire_head is None else resp.wire_head[1]  # (versions differ)
    trailers = out["_trailers"]
    if isinstance(trailers, CIMultiDict):
        out["_trailers"] = list(trailers.items())
    return out


def test_generated_entries_are_answered_as_the_python_does() -> None:
    rng = random.Random(9211)
    made = 0
    for _ in range(3_000):
        entry = _entry(rng)
        if rng.random() < 0.1:
            entry.wire = None
        now = NOW + rng.choice((0.0, 0.4, 7.9, 3600.0, -50.0, 1e16, math.inf, math.nan))
        cache_status = rng.choice(("edgenode; fwd=uri-miss; stored", "edgenode; hit; ttl=5", "n\u20ac; hit"))
        x_cache = rng.choice(("MISS", "HIT", "STALE"))
        head = rng.random() < 0.2
        try:
            theirs = CacheStage._whole_answer(entry, now, cache_status, x_cache, head)
        except OverflowError:  # (an infinite Age: the Python raises, the C leaves it to it)
            assert entry_answer(entry, now, cache_status, x_cache, head) is None
            continue
        ours = entry_answer(entry, now, cache_status, x_cache, head)
        if ours is None:
            assert (entry.wire is None or entry.trailers is not None or now >= 1e15
                    or cache_status.startswith("n\u20ac"))
            continue
        made += 1
        assert type(ours) is PrebuiltResponse
        assert ours.wire_head is not None and ours.wire_head[0] == getversion(ours.headers)
        assert _slots(ours) == _slots(theirs)
    assert made > 1_000


def test_the_answer_is_the_requests_own() -> None:
    entry = _entry(random.Random(1))
    entry.trailers = None
    entry.wire = entry.wire or b""
    proto = list(entry.proto.items())
    resp = entry_answer(entry, NOW + 2.0, "edgenode; hit; ttl=598", "HIT", False)
    assert resp is not None and resp.headers is not entry.proto
    resp.headers["X-Edited"] = "1"  # a filter's edit
    assert list(entry.proto.items()) == proto
    assert resp.headers["Age"] == str(int(entry.age(NOW + 2.0))) and resp._trailers is FROM_BODY and resp.fields is None
    assert resp.body is entry.body
    assert entry_answer(entry, NOW, "s", "HIT", True).body == b""  # type: ignore[union-attr]


def test_classes_it_cannot_fill_are_refused() -> None:
    class Slotted(Response):
        __slots__ = ("extra",)
        __init__ = object.__init__  # type: ignore[assignment]

    with pytest.raises(TypeError):
        EntryAnswer(Entry, Slotted, FROM_BODY, getversion)
    with pytest.raises(TypeError):  # a Python __init__ it would skip
        EntryAnswer(Entry, Response, FROM_BODY, getversion)
    assert entry_answer(object(), NOW, "s", "HIT", False) is None


@pytest.mark.parametrize("age", [0.0, 0.99, 1.0, 9.9, 10.0, 99.5, 100.0, 12345.6, 1e14 + 3.0, -7.0])
def test_the_age_is_the_python_ones_digits(age: float) -> None:
    """The C writes the Age's digits itself (``decimal``): as ``str(int(max(0, age)))``."""
    entry = _entry(random.Random(5))
    entry.trailers = None
    entry.wire = entry.wire or b""
    now = entry.response_time - entry.age0 + age
    ours = entry_answer(entry, now, "edgenode; hit; ttl=5", "HIT", False)
    theirs = CacheStage._whole_answer(entry, now, "edgenode; hit; ttl=5", "HIT", False)
    assert ours is not None and ours.headers["Age"] == str(int(max(0.0, entry.age(now))))
    assert _slots(ours) == _slots(theirs)
