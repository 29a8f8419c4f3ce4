"""How a stored response's metadata is laid out on disk (the lmdb store's records).

Every ``Entry`` field except the body and what is rebuilt from the rest (the header
multidict a hit copies, the fast path's pre-serialised answer) is kept, in the order
of ``FIELDS``, as one ``marshal`` record, so decoding is a single C call.  ``FORMAT``
names the layout: it changes whenever ``Entry`` gains, loses or reorders a field, and
a store written in another format is wiped rather than misread.
"""

from __future__ import annotations

import hashlib
import marshal
from typing import Any

from multidict import CIMultiDict

from edgenode.cache.policy import Entry

__all__ = ["FORMAT", "FIELDS", "encode", "decode", "decode_record", "StoreRecord"]

#: bump when the meaning of a field changes without its name changing
CODEC_VERSION = 1
#: derived from other fields when decoding (the body is kept in its own record)
_DERIVED = frozenset({"body", "proto", "hit"})
FIELDS: tuple[str, ...] = tuple(f for f in Entry.__slots__ if f not in _DERIVED)
FORMAT = "edgenode-cache/{}/{}".format(
    CODEC_VERSION, hashlib.sha256(" ".join(FIELDS).encode()).hexdigest()[:16])
_TRAILERS = FIELDS.index("trailers")
_HEADERS = FIELDS.index("headers")
_MARSHAL_VERSION = 4


class StoreRecord:
    """An entry's metadata as stored: the field values, in ``FIELDS`` order."""

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


def encode(entry: Entry) -> bytes:
    """The metadata record of ``entry`` (ValueError when a field cannot be stored)."""
    values = [getattr(entry, f) for f in FIELDS]
    if values[_TRAILERS] is not None:
        values[_TRAILERS] = _fields(values[_TRAILERS].items())
    values[_HEADERS] = _fields(values[_HEADERS])
    return marshal.dumps(tuple(values), _MARSHAL_VERSION)


def _fields(pairs: Any) -> list[tuple[str, str]]:
    """Plain ``str`` pairs (multidict names are a ``str`` subclass marshal refuses)."""
    return [(str(k), str(v)) for k, v in pairs]


def decode_record(data: bytes | memoryview) -> StoreRecord:
    return StoreRecord(marshal.loads(data))


def decode(record: StoreRecord, body: bytes) -> Entry:
    """An ``Entry`` equal to the one encoded, with ``body`` (the stored one, or b"" when
    only the metadata is wanted)."""
    e = Entry()
    for name, value in zip(FIELDS, record.values):
        setattr(e, name, value)
    if e.trailers is not None:
        e.trailers = CIMultiDict(e.trailers)
    e.body = body
    e.proto = CIMultiDict(e.headers)
    e.hit = None
    return e
