"""Shared helpers for the data-plane tests (tests/http and tests/proxy).

Real sockets on 127.0.0.1 with ephemeral ports: an aiohttp origin, scriptable raw-socket
origins for faults, a raw client that shows exactly what went over the wire, and
``start_node`` to run FrontEnd + Upstream for a Config.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import httptools
from aiohttp import web

from edgenode.config import Config, parse_config
from edgenode.http.messages import Response
from edgenode.frontend.server import FrontEnd
from edgenode.pipeline.exchange import Exchange
from edgenode.proxy.upstream import Upstream

#: every wait in these tests is bounded by this (a hang fails instead of blocking CI)
BOUND = 10.0


# --- client side -------------------------------------------------------------------
@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    complete: bool
    header_list: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


class _Collector:
    def __init__(self) -> None:
        self.responses: list[RawResponse] = []
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self.parser: httptools.HttpResponseParser | None = None

    def on_message_begin(self) -> None:
        self._headers, self._body = [], []
        self.responses.append(RawResponse(0, {}, b"", False))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        r = self.responses[-1]
        assert self.parser is not None
        r.status = self.parser.get_status_code()
        r.header_list = list(self._headers)
        r.headers = {k.lower(): v for k, v in self._headers}

    def on_body(self, chunk: bytes) -> None:
        self._body.append(chunk)
        self.responses[-1].body = b"".join(self._body)

    def on_message_complete(self) -> None:
        self.responses[-1].complete = True


def parse_responses(data: bytes) -> list[RawResponse]:
    """Parse every response in ``data``; an unfinished one has ``complete=False``.

    Interim 1xx responses are kept in the list too.
    """
    collector = _Collector()
    parser = httptools.HttpResponseParser(collector)
    collector.parser = parser
    try:
        parser.feed_data(data)
    except httptools.HttpParserError:
        pass
    return collector.responses


class RawClient:
    """A TCP client that writes exact bytes and reads what the server sends back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_until_close(self) -> bytes:
        """Everything up to EOF (or a reset)."""
        chunks = []
        try:
            while True:
                chunk = await asyncio.wait_for(self.reader.read(65536), BOUND)
                if not chunk:
                    break
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)

    async def read_head(self) -> tuple[int, dict[str, str]]:
        """One response head (status, lower-cased headers); the body stays unread."""
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), BOUND)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def read_response(self) -> RawResponse:
        """One complete response with a Content-Length or chunked body."""
        status, headers = await self.read_head()
        if "content-length" in headers:
            body = await asyncio.wait_for(
                self.reader.readexactly(int(headers["content-length"])), BOUND)
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size = int((await asyncio.wait_for(self.reader.readline(), BOUND)).strip(), 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await asyncio.wait_for(self.reader.readexactly(size + 2), BOUND))
            body = b"".join(p[:-2] for p in parts)
        else:
            body = b""
        return RawResponse(status, headers, body, True)

    async def is_closed(self) -> bool:
        """True when the server closed the connection (reads EOF within BOUND)."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), BOUND)
        except ConnectionResetError:
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def exchange_raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection and return all bytes until the server closes."""
    client = await RawClient.connect(port)
    try:
        await client.send(data)
        return await client.read_until_close()
    finally:
        await client.close()


async def get(port: int, path: str = "/", headers: dict[str, str] | None = None,
              method: str = "GET") -> RawResponse:
    """One request on a fresh connection (Connection: close), parsed."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test.local", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    raw = await exchange_raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode())
    responses = parse_responses(raw)
    assert responses, f"no response, got {raw[:200]!r}"
    return responses[-1]


# --- origins -----------------------------------------------------------------------
async def start_aiohttp(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


class RawOrigin:
    """A scriptable TCP origin for faults (garbage, resets, silence, slow bytes)."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> RawOrigin:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0)


def abort_writer(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset rather than a FIN (SO_LINGER 0: a plain close sends a FIN
    when no received byte is left unread)."""
    sock = writer.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# --- the node ----------------------------------------------------------------------
@dataclass
class Node:
    config: Config
    frontend: FrontEnd
    upstream: Upstream
    completed: list[tuple[Exchange, Response]]

    @property
    def port(self) -> int:
        return self.frontend.port

    async def close(self) -> None:
        await self.frontend.shutdown(1.0)
        await self.upstream.close()


def node_config(origins: dict[str, dict[str, Any]], **top: Any) -> Config:
    data: dict[str, Any] = {"origins": origins, "chain": []}
    data.update(top)
    return parse_config(data)


async def start_node(config: Config, handler: Callable[[Upstream], Any] | None = None) -> Node:
    """FrontEnd + Upstream for ``config`` on an ephemeral port of 127.0.0.1.

    ``handler`` may wrap the upstream (e.g. a stage under test); default: the upstream.
    """
    upstream = Upstream(config)
    completed: list[tuple[Exchange, Response]] = []
    fe = FrontEnd(handler(upstream) if handler else upstream, config.server,
                  on_complete=lambda ex, resp: completed.append((ex, resp)))
    await fe.start("127.0.0.1", 0)
    return Node(config, fe, upstream, completed)
