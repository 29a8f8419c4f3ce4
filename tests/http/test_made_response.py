"""``made_response`` makes the same object ``Response.__init__`` would, slot by slot,
without a Python ``__init__``; the origin client's heads are made by it."""

from __future__ import annotations

import asyncio

import pytest
from multidict import CIMultiDict, getversion

from dataplane_support import RawOrigin, read_request_head
from edgenode.config import OriginConfig
from edgenode.http.client import OriginPool
from edgenode.http.messages import FROM_BODY, PrebuiltResponse, Request, Response, made_response


def _slots() -> list[str]:
    """Every slot a ``Response`` has, from its class and its bases."""
    return [name for cls in Response.__mro__ for name in getattr(cls, "__slots__", ())]


@pytest.mark.parametrize(("status", "body", "reason"), [(200, b"abc", "OK"), (404, b"", ""), (204, b"", "No")])
def test_the_makers_response_is_the_classs_slot_by_slot(status: int, body: bytes, reason: str) -> None:
    headers = CIMultiDict([("Content-Type", "text/plain"), ("X-A", "1")])
    made = made_response(status, headers, body, reason, None, FROM_BODY)
    expected = Response(status, headers, body, reason)
    assert type(made) is PrebuiltResponse and isinstance(made, Response)
    for name in _slots():  # a slot ``Response`` gains must be stored by ``made_response`` too
        assert getattr(made, name) == getattr(expected, name), name
    assert made._trailers is FROM_BODY and made.trailers is None and repr(made) == repr(expected)


def test_known_fields_and_trailers_are_stored_as_given() -> None:
    headers = CIMultiDict([("A", "1")])
    trailers = CIMultiDict([("Digest", "x")])
    fields = (getversion(headers), [("A", "1")])
    made = made_response(200, headers, b"x", "", fields, trailers)
    assert made.fields is fields and made.trailers is trailers
    made.trailers = None
    assert made.trailers is None


def test_its_class_call_runs_no_python_init() -> None:
    assert PrebuiltResponse.__init__ is object.__init__
    with pytest.raises(TypeError):
        PrebuiltResponse(200)  # type: ignore[call-arg]  # only the maker fills one


async def test_the_origin_clients_head_is_made_by_it_with_its_plain_pairs() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"e\"\r\n"
                     b"Content-Length: 5\r\n\r\nhello")
        await writer.drain()
        await reader.read()

    origin = await RawOrigin(answer).start()
    pool = OriginPool(OriginConfig(name="t", url=f"http://127.0.0.1:{origin.port}", host="127.0.0.1",
                                   port=origin.port))
    try:
        resp = await pool.request(Request("GET", "/", CIMultiDict({"Host": "t"})))
        assert type(resp) is PrebuiltResponse and (resp.status, resp.reason, resp.body) == (200, "", b"hello")
        assert resp.wire_head is None and resp.trailers is None
        assert resp.fields == (getversion(resp.headers), [("Content-Type", "text/plain"), ("ETag", '"e"'),
                                                          ("Content-Length", "5")])
    finally:
        await pool.close()
        await origin.close()
