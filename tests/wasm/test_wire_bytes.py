"""Filters see header bytes exactly as they came off the wire, and what they set goes
out byte for byte: UTF-8 and obs-text values through a real node, between raw sockets
(wire_bytes.wat compares and copies values)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import pytest

from edgenode.config import StageConfig

WAT = Path(__file__).parent / "wat"
COOKIE = "a=＜script＞".encode()  # full-width angle brackets: UTF-8 EF BC 9C / EF BC 9E
ORIGIN_REPLY = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n"
                b"X-Origin-Utf8: ok-\xe2\x9c\x93\r\nX-Origin-Obs: \xe9\xff\r\n\r\nok")


class RawOrigin:
    """Records each request head as bytes and answers with ``ORIGIN_REPLY``."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                writer.write(ORIGIN_REPLY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def raw_origin() -> AsyncIterator[RawOrigin]:
    origin = RawOrigin()
    origin.server = await asyncio.start_server(origin.handle, "127.0.0.1", 0)
    yield origin
    origin.server.close()
    await origin.server.wait_closed()


@pytest.fixture
def origin_url(raw_origin: RawOrigin) -> str:  # the node in tests/conftest.py proxies to it
    assert raw_origin.server is not None
    return f"http://127.0.0.1:{raw_origin.server.sockets[0].getsockname()[1]}"


@pytest.fixture
def node_chain() -> list[StageConfig]:
    return [StageConfig("wasm", "wire-bytes", {"module": str(WAT / "wire_bytes.wat")})]


def fields(head: bytes) -> dict[bytes, bytes]:
    out = {}
    for line in head.split(b"\r\n")[1:]:
        if line:
            name, _, value = line.partition(b":")
            out[name.strip().lower()] = value.strip()
    return out


async def test_header_bytes_pass_filters_unchanged_both_ways(node, raw_origin: RawOrigin) -> None:  # type: ignore[no-untyped-def]
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(b"GET /w HTTP/1.1\r\nHost: bytes.test\r\nCookie: " + COOKIE
                 + b"\r\nX-Obs: caf\xe9 \x80\xff\r\nConnection: close\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200")
    sent = fields(raw_origin.heads[-1])
    assert sent[b"cookie"] == COOKIE  # untouched by the node
    assert sent[b"x-cookie-match"] == b"yes"  # the filter saw the client's exact bytes
    assert sent[b"x-obs-copy"] == b"caf\xe9 \x80\xff"  # obs-text copied byte for byte
    assert sent[b"x-filter-set"] == b"\xc3\xa9t\xe9"  # a value set by the filter, as given
    got = fields(head)
    assert got[b"x-resp-match"] == b"yes"  # the origin's UTF-8 value, as sent
    assert got[b"x-origin-obs"] == b"\xe9\xff" and got[b"x-origin-obs-copy"] == b"\xe9\xff"
    assert got[b"x-cookie-echo"] == COOKIE
