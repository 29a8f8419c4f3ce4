"""An origin's ``Connection: keep-alive`` (nginx and Apache send it on every response):
the forwarded response loses Connection and Keep-Alive and keeps its plain pairs, so the
cache's usual miss (the C decision and entry) takes it; a Connection naming another field
still strips that field on the general path."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from multidict import CIMultiDict, getversion

from edgenode.cache import storing
from edgenode.cache.directives import format_http_date
from edgenode.config import StageConfig
from edgenode.http.messages import Response
from edgenode.proxy.forwarding import forward_response
from tests.conftest import node_config
from tests.http.dataplane_support import RawOrigin, get, read_request_head

BODY = b"x" * 1024


def _sent(pairs: list[tuple[str, str]]) -> Response:
    h = CIMultiDict(pairs)
    resp = Response(200, h)
    resp.fields = (getversion(h), list(pairs))
    return forward_response(resp, "1.1 edge")


@pytest.mark.parametrize("connection", ["keep-alive", "Keep-Alive", "close", "keep-alive, close", " keep-alive ,"])
def test_connection_naming_no_field_keeps_the_plain_pairs(connection: str) -> None:
    out = _sent([("Server", "nginx"), ("Connection", connection), ("ETag", '"1"'),
                 ("Keep-Alive", "timeout=5")])
    assert out.fields is not None and out.fields[0] == getversion(out.headers)
    assert out.fields[1] == list(out.headers.items()) == [
        ("Server", "nginx"), ("ETag", '"1"'), ("Via", "1.1 edge")]


def test_connection_naming_a_field_takes_the_general_path() -> None:
    pairs = [("Connection", "keep-alive, X-Secret"), ("X-Secret", "s"), ("ETag", '"1"')]
    out = _sent(pairs)
    assert out.fields is None
    assert dict(out.headers) == {"ETag": '"1"', "Via": "1.1 edge"}


@pytest.mark.parametrize("other", [("Transfer-Encoding", "chunked"), ("Via", "1.0 o"), ("Upgrade", "h2c")])
def test_other_hop_by_hop_fields_beside_connection_take_the_general_path(other: tuple[str, str]) -> None:
    out = _sent([("Connection", "keep-alive"), other, ("ETag", '"1"')])
    assert out.fields is None
    assert "Connection" not in out.headers


def _answer(connection: str, extra: str = "") -> Any:
    """nginx's answer to a static file, with ``extra`` fields."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request_head(reader)
            head = (f"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: {format_http_date(time.time())}\r\n"
                    f"Content-Type: application/octet-stream\r\nContent-Length: {len(BODY)}\r\n"
                    f"Connection: {connection}\r\nKeep-Alive: timeout=60\r\nETag: \"5f-400\"\r\n"
                    f"Cache-Control: public, max-age=3600\r\nAccept-Ranges: bytes\r\n{extra}\r\n")
            writer.write(head.encode() + BODY)
            await writer.drain()

    return answer


async def _node_against(answer: Any, run_node: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, RawOrigin, list[int]]:
    general: list[int] = []
    python_path = storing.OriginStoring._from_origin

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        general.append(1)
        return python_path(self, *args, **kwargs)

    monkeypatch.setattr(storing.OriginStoring, "_from_origin", counted)
    origin = await RawOrigin(answer).start()
    node = await run_node(node_config(f"http://127.0.0.1:{origin.port}", chain=[StageConfig("cache", "cache")]))
    return node, origin, general


async def test_keep_alive_origin_takes_the_usual_miss(run_node: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    node, origin, general = await _node_against(_answer("keep-alive"), run_node, monkeypatch)
    try:
        await get(node.port, "/warm")  # (the usual miss reads Cache-Control's parse from a memo)
        general.clear()
        first = await get(node.port, "/a")
        second = await get(node.port, "/a")
    finally:
        await origin.close()
    assert first.status == second.status == 200 and first.body == second.body == BODY
    assert general == []  # stored by the usual miss, not the general path
    assert "MISS" in first.headers["x-cache"] and "HIT" in second.headers["x-cache"]
    for resp in (first, second):
        assert "keep-alive" not in resp.headers
        assert resp.headers.get("connection", "close").lower() == "close"  # the client's own
        assert resp.headers["etag"] == '"5f-400"' and "via" in resp.headers
    assert origin.connections == 1  # the pooled connection was kept


async def test_connection_naming_a_field_strips_it(run_node: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    node, origin, general = await _node_against(_answer("keep-alive, X-Secret", "X-Secret: s\r\n"),
                                                run_node, monkeypatch)
    try:
        first = await get(node.port, "/b")
        second = await get(node.port, "/b")
    finally:
        await origin.close()
    assert len(general) == 1
    assert first.body == second.body == BODY and "HIT" in second.headers["x-cache"]
    for resp in (first, second):
        assert "x-secret" not in resp.headers and "keep-alive" not in resp.headers
