"""How a stored response is laid out on disk (the lmdb store's object records).

Every ``Entry`` field except the body and what is rebuilt from the rest (the header
multidict a hit copies, the fast path's pre-serialised answer) is kept, in the order
of ``FIELDS``, as one ``marshal`` record, so decoding is a single C call.  The usual
entry's record is written by ``_record.RecordWriter`` (C: the entry's slots read by
offset, marshal's encoding, repeated strings as back-references without marshal's
per-record hash table); one with values it leaves alone goes to ``marshal.dumps``, and
``marshal.loads`` reads both.  Fields whose values are not plain data (a multidict, a
named tuple) have a converter each way in ``_CONVERTERS``.  An object's value in the
store (``pack``) is a short head (the object id, the record's length, whether the body
follows), the record, and a body of at most ``INLINE_BODY`` bytes, so a small object is
one value: one B-tree row written per miss instead of two.  ``FORMAT`` names the layout:
it changes whenever ``Entry`` gains, loses or reorders a field or ``CODEC_VERSION`` is
bumped, and a store written in another format is wiped rather than misread.
"""

from __future__ import annotations

import hashlib
import marshal
import operator
import struct
from typing import Any, Callable

from multidict import CIMultiDict

from edgenode.cache._record import RecordWriter, pack_value
from edgenode.cache.policy import Entry
from edgenode.cache.ranges import Partial

__all__ = ["FORMAT", "FIELDS", "INLINE_BODY", "encode", "decode", "decode_record", "StoreRecord",
           "pack", "unpack", "repack"]

#: bump when the meaning of a field changes without its name changing, or the store's
#: values or databases are laid out differently (2: objects in LRU order with small
#: bodies inline, one totals record)
CODEC_VERSION = 2
#: bodies up to this size are kept in the object's value (a refresh or an LRU promotion
#: then rewrites them too: cheap at this size); larger ones in a record of their own
INLINE_BODY = 4096
#: derived from other fields when decoding (the body is kept in its own record)
_DERIVED = frozenset({"body", "proto", "hit"})
FIELDS: tuple[str, ...] = tuple(f for f in Entry.__slots__ if f not in _DERIVED)
FORMAT = "edgenode-cache/{}/{}".format(
    CODEC_VERSION, hashlib.sha256(" ".join(FIELDS).encode()).hexdigest()[:16])
_MARSHAL_VERSION = 4


def _pairs(pairs: Any) -> list[tuple[str, str]]:
    """Plain ``str`` pairs (multidict names are a ``str`` subclass marshal refuses)."""
    return [(str(k), str(v)) for k, v in pairs]


#: field -> (to plain data, back); None values are stored as None
_CONVERTERS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "trailers": (lambda t: _pairs(t.items()), CIMultiDict),
    "partial": (lambda p: (p.length, p.spans), lambda v: Partial(*v)),
}
_CONVERTED = [(FIELDS.index(name), to, back) for name, (to, back) in _CONVERTERS.items() if name in FIELDS]
_CONVERTED_AT = tuple(i for i, _, _ in _CONVERTED)


class StoreRecord:
    """An entry's metadata as stored: the field values, in ``FIELDS`` order (plain data)."""

    __slots__ = ("values",)

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values

    def __getattr__(self, name: str) -> Any:
        """The stored value of the Entry field ``name`` (``record.key``, ``record.size``)."""
        try:
            return self.values[_INDEX[name]]
        except KeyError:
            raise AttributeError(name) from None


_INDEX = {name: i for i, name in enumerate(FIELDS)}
_HEADERS = _INDEX["headers"]
#: the stored fields of an entry, in ``FIELDS`` order, in one call
_GET_FIELDS = operator.attrgetter(*FIELDS)


def _encode_any(entry: Entry) -> bytes:
    """``encode`` for an entry with values the C writer leaves to marshal."""
    values: tuple[Any, ...] = _GET_FIELDS(entry)
    for i in _CONVERTED_AT:
        if values[i] is not None:  # (a trailer or a partial response: rare)
            converted = list(values)
            for j, to, _ in _CONVERTED:
                if converted[j] is not None:
                    converted[j] = to(converted[j])
            values = tuple(converted)
            break
    try:  # ``build_entry`` makes the stored fields plain ``str`` pairs: no pass over them
        return marshal.dumps(values, _MARSHAL_VERSION)
    except ValueError:
        plain = list(values)
        plain[_HEADERS] = _pairs(plain[_HEADERS])
        return marshal.dumps(tuple(plain), _MARSHAL_VERSION)


#: ``encode(entry)``: the metadata record of ``entry`` in one C call (marshal's encoding, no
#: hash table per record); an entry with a trailer multidict, a ``Partial`` or an ``istr``
#: name goes to ``_encode_any`` (ValueError when a field cannot be stored)
encode = RecordWriter(Entry, FIELDS, _encode_any)


def decode_record(data: bytes | memoryview) -> StoreRecord:
    return StoreRecord(marshal.loads(data))


def decode(record: StoreRecord, body: bytes) -> Entry:
    """An ``Entry`` equal to the one encoded, with ``body`` (the stored one, or b"" when
    only the metadata is wanted)."""
    e = Entry()
    values = list(record.values)
    for i, _, back in _CONVERTED:
        if values[i] is not None:
            values[i] = back(values[i])
    for name, value in zip(FIELDS, values):
        setattr(e, name, value)
    e.body = body
    e.proto = CIMultiDict(e.headers)
    e.hit = None
    return e


#: an object value's head: its 24-byte id, the record's length, 1 when the body follows
_HEAD = struct.Struct(">24sIB")
_HEAD_SIZE = _HEAD.size


#: ``pack(oid, record, body, INLINE_BODY)``: the stored value of an object: head, metadata
#: record, and the body when it is small (``INLINE_BODY``; a larger one is stored on its
#: own under the object id), in one C call (``_HEAD``'s layout, one allocation)
pack = pack_value


def unpack(value: bytes | memoryview) -> tuple[bytes, StoreRecord, bytes | memoryview | None]:
    """``(oid, record, inline body or None)`` of a stored value."""
    oid, size, inline = _HEAD.unpack_from(value)
    end = _HEAD_SIZE + size
    record = StoreRecord(marshal.loads(value[_HEAD_SIZE:end]))
    return oid, record, value[end:] if inline else None


def repack(value: bytes | memoryview, record: bytes) -> bytes:
    """``value`` with its metadata replaced by ``record`` (its body kept)."""
    oid, size, inline = _HEAD.unpack_from(value)
    rest = bytes(value[_HEAD_SIZE + size:]) if inline else b""
    return _HEAD.pack(oid, len(record), inline) + record + rest
