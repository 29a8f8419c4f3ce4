"""Connections to one Redis server: asyncio streams, one request in flight per connection.

A connection authenticates (``AUTH``) and selects its database (``SELECT``) once, when
it opens; a request then writes the caller's raw RESP command and reads exactly one
reply frame.  Keeping one request per connection means a timed-out or failed request
only ever closes its own connection (a late reply can never be taken for the next
request's), and the pool's size bounds the load a worker puts on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from edgenode.redis.resp import RespError, encode_command, error_text, frame_end, is_error

__all__ = ["RedisPool", "RedisTarget", "RedisCallError", "RedisTimeout"]

_READ = 64 * 1024
#: a reply larger than this closes the connection and fails the call
MAX_REPLY_BYTES = 64 * 1024 * 1024


class RedisCallError(Exception):
    """The command could not be completed: connect, auth, I/O or protocol failure."""


class RedisTimeout(RedisCallError):
    """No complete reply within the call's timeout."""


@dataclass(frozen=True)
class RedisTarget:
    """Where and as whom to connect; pools are shared per distinct target."""

    host: str
    port: int
    username: str = ""
    password: str = ""
    db: int = 0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()

    async def request(self, query: bytes) -> bytes:
        self.writer.write(query)
        await self.writer.drain()
        while True:
            end = frame_end(self.buffer)
            if end >= 0:
                frame = bytes(self.buffer[:end])
                del self.buffer[:end]
                return frame
            if len(self.buffer) > MAX_REPLY_BYTES:
                raise RedisCallError(f"reply larger than {MAX_REPLY_BYTES} bytes")
            chunk = await self.reader.read(_READ)
            if not chunk:
                raise RedisCallError("connection closed by the server")
            self.buffer += chunk

    def close(self) -> None:
        self.writer.close()


class RedisPool:
    """Up to ``max_connections`` connections to ``target``; callers queue beyond that."""

    def __init__(self, target: RedisTarget, *, connect_timeout: float = 1.0,
                 max_connections: int = 16) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False
        #: connections opened so far (tests and metrics)
        self.opened = 0

    async def call(self, query: bytes, timeout: float) -> bytes:
        """Send one raw RESP command and return the raw reply frame (an error reply is a
        reply).  Raises RedisTimeout past ``timeout`` seconds (connecting included) and
        RedisCallError for anything else that goes wrong."""
        if self._closed:
            raise RedisCallError("redis pool closed")
        try:
            async with asyncio.timeout(timeout):
                async with self._slots:
                    conn = self._idle.pop() if self._idle else await self._open()
                    try:
                        reply = await conn.request(query)
                    except BaseException:
                        conn.close()
                        raise
                    if self._closed:
                        conn.close()
                    else:
                        self._idle.append(conn)
                    return reply
        except TimeoutError:
            raise RedisTimeout(f"no reply within {timeout * 1000:.0f} ms") from None
        except (OSError, RespError, asyncio.IncompleteReadError) as exc:
            raise RedisCallError(f"{type(exc).__name__}: {exc}") from None

    async def _open(self) -> _Connection:
        t = self.target
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(t.host, t.port)
        except TimeoutError:
            raise RedisCallError(f"connect to {t.host}:{t.port} timed out") from None
        except OSError as exc:
            raise RedisCallError(f"connect to {t.host}:{t.port} failed: {exc.strerror or exc}") from None
        self.opened += 1
        conn = _Connection(reader, writer)
        try:
            if t.password:
                auth = (encode_command("AUTH", t.username, t.password) if t.username
                        else encode_command("AUTH", t.password))
                await self._expect_ok(conn, auth, "AUTH")
            if t.db:
                await self._expect_ok(conn, encode_command("SELECT", t.db), "SELECT")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    async def _expect_ok(conn: _Connection, command: bytes, what: str) -> None:
        reply = await conn.request(command)
        if is_error(reply):
            raise RedisCallError(f"{what} refused: {error_text(reply)}")

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            with contextlib.suppress(OSError, ConnectionError):
                await conn.writer.wait_closed()
