"""How a stored response's metadata is laid out on disk (the lmdb store's records).

Every ``Entry`` field except the body and what is rebuilt from the rest (the header
multidict a hit copies, the fast path's pre-serialised answer) is kept, in the order
of ``FIELDS``, as one ``marshal`` record, so decoding is a single C call.  Fields whose
values are not plain data (a multidict, a named tuple) have a converter each way in
``_CONVERTERS``.  ``FORMAT`` names the layout: it changes whenever ``Entry`` gains,
loses or reorders a field, and a store written in another format is wiped rather than
misread.
"""

from __future__ import annotations

import hashlib
import marshal
import operator
from typing import Any, Callable

from multidict import CIMultiDict

from edgenode.cache.policy import Entry
from edgenode.cache.ranges import Partial

__all__ = ["FORMAT", "FIELDS", "encode", "decode", "decode_record", "StoreRecord"]

#: bump when the meaning of a field changes without its name changing
CODEC_VERSION = 1
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
    "headers": (_pairs, list),
    "trailers": (lambda t: _pairs(t.items()), CIMultiDict),
    "partial": (lambda p: (p.length, p.spans), lambda v: Partial(*v)),
}
_CONVERTED = [(FIELDS.index(name), to, back) for name, (to, back) in _CONVERTERS.items() if name in FIELDS]


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
#: the stored fields of an entry, in ``FIELDS`` order, in one call
_GET_FIELDS = operator.attrgetter(*FIELDS)


def encode(entry: Entry) -> bytes:
    """The metadata record of ``entry`` (ValueError when a field cannot be stored)."""
    values = list(_GET_FIELDS(entry))
    for i, to, _ in _CONVERTED:
        if values[i] is not None:
            values[i] = to(values[i])
    return marshal.dumps(tuple(values), _MARSHAL_VERSION)


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
