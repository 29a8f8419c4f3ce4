"""The stored record written in C (``cache/_record.c``) against ``marshal``, which wrote it
before and still reads it: the same values back, and stores written either way served."""

from __future__ import annotations

import marshal
import math
import operator
import random
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, istr

from edgenode.cache import codec, lmdb_store
from edgenode.cache._record import RecordWriter
from edgenode.cache.codec import FIELDS, decode, decode_record, encode
from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.policy import Entry, build_entry
from edgenode.config import CacheConfig

NOW = 1_800_000_000.0


class Box:
    __slots__ = ("a", "b")


WRITE = RecordWriter(Box, ("a", "b"))


def box(a: Any, b: Any = None) -> Box:
    x = Box()
    x.a, x.b = a, b
    return x


def same(x: Any, y: Any) -> bool:
    """Equal, with NaN equal to itself and the types compared too."""
    if type(x) is not type(y):
        return False
    if isinstance(x, float):
        return (math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x) == math.copysign(1, y))
    if isinstance(x, (tuple, list)):
        return len(x) == len(y) and all(same(a, b) for a, b in zip(x, y))
    return x == y


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(12 if depth < 3 else 8)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, 1, -1, 2**31 - 1, -2**31, rng.randrange(-2**31, 2**31)])
    if kind == 2:
        return rng.choice([0.0, -0.0, math.inf, -math.inf, math.nan, rng.uniform(-1e12, 1e12)])
    if kind == 3:
        return "".join(chr(rng.randrange(128)) for _ in range(rng.choice([0, 1, 30, 255, 256, 300])))
    if kind == 4:  # Latin-1, beyond, and lone surrogates (marshal writes them "surrogatepass")
        return "".join(chr(rng.choice([rng.randrange(128, 256), rng.randrange(256, 0x10FFFF),
                                       rng.randrange(0xD800, 0xE000), 65]))
                       for _ in range(rng.randrange(40)))
    if kind == 5:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 5000])))
    if kind in (6, 7):
        return rng.choice(["Content-Type", "text/plain", ""])
    if kind in (8, 9):
        return tuple(random_value(rng, depth + 1) for _ in range(rng.choice([0, 2, 7])))
    if kind == 10:
        return tuple(None for _ in range(300))
    return [random_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 10]))]


def test_every_plain_value_reads_back_as_marshal_wrote_it() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        a, b = random_value(rng), random_value(rng)
        got = marshal.loads(WRITE(box(a, b)))
        assert same(got, (a, b)) and same(got, marshal.loads(marshal.dumps((a, b), 4))), (a, b)


def test_a_string_written_twice_is_a_back_reference() -> None:
    """The record's repeats (the key and URL, the ETag beside its field) cost 5 bytes, as
    marshal's did; past the table's capacity strings are written whole, read the same."""
    held = "https://example.com/" + "a" * 40
    many = ["%06d-distinct" % i for i in range(200)]
    record = WRITE(box((held, held, held), many + many))
    got = marshal.loads(record)
    assert got == ((held, held, held), many + many) and got[0][0] is got[0][1] is got[0][2]
    assert len(WRITE(box((held, held)))) == len(WRITE(box((held,)))) + 5
    assert len(WRITE(box((held, held)))) <= len(marshal.dumps(((held, held), None), 4))


@pytest.mark.parametrize("value", [2**31, -2**31 - 1, 10**40, istr("Host"), [("a", istr("b"))],
                                   CIMultiDict(a="1"), {"a": 1}, (((((1,),),),),), bytearray(b"x"), 1j])
def test_what_it_cannot_write_is_a_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        WRITE(box(value))


def test_an_unset_slot_or_another_type_is_refused() -> None:
    with pytest.raises(AttributeError, match="b"):
        x = Box()
        x.a = 1
        WRITE(x)
    with pytest.raises(TypeError):
        WRITE(object())
    with pytest.raises(TypeError):
        RecordWriter(Box, ("a", "c"))
    with pytest.raises(TypeError):
        RecordWriter(Entry, ("age",))  # a method, not a slot


def entry(path: str, **headers: str) -> Entry:
    h = CIMultiDict({"Cache-Control": "max-age=60", "Date": "Fri, 15 Jan 2027 08:00:00 GMT",
                     "ETag": '"v1"', "Surrogate-Key": "k1 k2", "Vary": "Accept-Encoding",
                     "X-Note": "café ✓"})
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    url = f"http://example.com{path}"
    return build_entry(key=url, url=url, status=200, reason="OK", resp_headers=h, body=b"body",
                       req_headers=CIMultiDict({"Accept-Encoding": "gzip"}), request_time=NOW,
                       response_time=NOW, heuristic_fraction=0.1, heuristic_max=86400)


#: the records every earlier node wrote: marshal of the fields (``build_entry``'s plain pairs)
_OLD_FIELDS = operator.attrgetter(*FIELDS)


def old_encode(e: Entry) -> bytes:
    return marshal.dumps(_OLD_FIELDS(e), 4)


def test_an_entry_reads_back_field_for_field_either_way() -> None:
    e = entry("/a")
    assert encode(e) != old_encode(e)  # no back-references: a different byte string
    for record in (encode(e), old_encode(e)):
        back = decode(decode_record(record), e.body)
        for name in FIELDS + ("body",):
            assert getattr(back, name) == getattr(e, name), name
        assert back.proto == e.proto


def test_entries_the_c_writer_leaves_to_marshal_are_stored_as_before() -> None:
    e = entry("/b")
    e.headers = [(istr(k), v) for k, v in e.headers]  # names a multidict made
    e.trailers = CIMultiDict({"X-Sum": "1"})
    back = decode(decode_record(encode(e)), e.body)
    assert back.headers == [(str(k), v) for k, v in e.headers] and back.trailers == e.trailers
    assert all(type(k) is str for k, _ in back.headers)


def test_the_fallback_takes_only_what_the_writer_leaves() -> None:
    """``RecordWriter(cls, fields, fallback)``: an entry with a value it does not write goes
    to ``fallback`` (codec.encode's marshal path); other errors are not handed over."""
    seen: list[Entry] = []

    def fallback(e: Entry) -> bytes:
        seen.append(e)
        return b"fallback"

    write = RecordWriter(Entry, FIELDS, fallback)
    usual = entry("/c")
    assert write(usual) == RecordWriter(Entry, FIELDS)(usual) and seen == []
    usual.trailers = CIMultiDict({"X-Sum": "1"})
    assert write(usual) == b"fallback" and seen == [usual]
    with pytest.raises(AttributeError):
        write(Entry())
    with pytest.raises(TypeError):
        write(usual, usual)
    assert seen == [usual]


def test_a_store_written_by_the_previous_encoder_is_served(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A store the previous code wrote (marshal's records, the same FORMAT) is not wiped:
    its objects are served as they were stored, and new ones stored beside them."""
    def open_at() -> SharedStore:
        return SharedStore(CacheConfig(), tmp_path / "c", clock=lambda: NOW)

    with monkeypatch.context() as m:
        m.setattr(lmdb_store, "encode", old_encode)
        store = open_at()
        old = [entry(f"/old{i}") for i in range(5)]
        assert all(store.put(e) for e in old)
        store.close()
    store = open_at()
    req = CIMultiDict({"Accept-Encoding": "gzip"})
    for e in old:
        got, _ = store.lookup(e.key, req)
        assert got is not None and got.headers == e.headers and got.wire == e.wire
        assert got.fresh_until == e.fresh_until and got.vary == e.vary and got.etag == e.etag
    new = entry("/new")
    assert codec.encode(new) != old_encode(new) and store.put(new)
    store.close()
    store = open_at()
    assert store.stats()["entries"] == 6
    got, _ = store.lookup(new.key, req)
    assert got is not None and got.headers == new.headers and got.variant == new.variant
    store.close()


def test_the_stored_value_is_the_heads_layout() -> None:
    """``codec.pack`` (C) against the head's ``struct`` layout it writes (``>24sIB``), on
    bodies either side of ``INLINE_BODY``, and read back by ``unpack``."""
    rng = random.Random(24)
    for _ in range(300):
        oid = rng.randbytes(24)
        record = marshal.dumps((rng.random(), "k" * rng.randint(0, 300)), 4)
        body = rng.randbytes(rng.choice((0, 1, codec.INLINE_BODY - 1, codec.INLINE_BODY, codec.INLINE_BODY + 1)))
        inline = len(body) <= codec.INLINE_BODY
        value = codec.pack(oid, record, body, codec.INLINE_BODY)
        assert value == codec._HEAD.pack(oid, len(record), int(inline)) + record + (body if inline else b"")
        back_oid, back, rest = codec.unpack(value)
        assert back_oid == oid and back.values == marshal.loads(record)
        assert rest == (body if inline else None)
    with pytest.raises(ValueError):
        codec.pack(b"short", b"", b"", codec.INLINE_BODY)
    with pytest.raises(TypeError):
        codec.pack(bytes(24), "a str", b"", codec.INLINE_BODY)
