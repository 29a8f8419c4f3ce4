"""Writing responses on a client connection: the head, a body in memory, a streamed body.

The head plus a ``bytes`` body leave in a single ``transport.write``; a streamed body is
written with flow control, and a body that breaks (raises, ends short of its
Content-Length) aborts the connection so the client never sees a complete-looking
truncated response.  Trailers (``Response.trailers``) go out whenever a response is sent
chunked, whatever the client's ``TE`` says (Envoy's HTTP/1 codec with trailers enabled
does the same; a chunked decoder must accept a trailer section); a ``bytes`` body that
carries trailers is sent chunked to an HTTP/1.1 client for that reason, and trailers are
dropped for HTTP/1.0 clients, HEAD, 204 and 304.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import AsyncIterator

from multidict import CIMultiDict, getversion

from edgenode.http.headers import DateCache, last_chunk
from edgenode.http.messages import FROM_BODY, Response, close_body
from edgenode.pipeline.exchange import Exchange
from edgenode.frontend.state import FrontEndState

__all__ = ["ResponseWriter", "BadHead", "status_line", "NO_BODY_STATUS"]

log = logging.getLogger("edgenode.frontend")

#: response statuses that never carry a body
NO_BODY_STATUS = frozenset({204, 304})
_status_lines: dict[tuple[int, str], bytes] = {}
DATE = DateCache()


def status_line(status: int, reason: str) -> bytes:
    key = (status, reason)
    line = _status_lines.get(key)
    if line is None:
        if not reason:
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = "Unknown"
        line = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
        if len(_status_lines) < 512:
            _status_lines[key] = line
    return line


class BadHead(Exception):
    """The handler's response head cannot be written (CR/LF or non-Latin-1 in a header)."""


class ResponseWriter:
    """The response-writing part of a client connection (``http/connection.py``)."""

    fe: FrontEndState
    transport: asyncio.Transport | None
    closed: bool
    _current: Exchange | None
    _write_paused: bool
    _drain_waiter: asyncio.Future[None] | None
    loop: asyncio.AbstractEventLoop

    def _flush_held(self) -> None:
        """Write what the batch holds before writing to the socket directly (order on the
        connection: ``Batch.send``)."""
        batch = self.fe.batch
        if batch.holding:
            batch.flush()

    def send_continue(self) -> None:
        if not self.closed:
            self._flush_held()
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]

    def send_interim(self, response: Response) -> None:
        """Write an interim (1xx) response ahead of the current request's final one.

        RFC 9110 §15.2: a proxy forwards the 1xx responses it receives.  A 100 Continue
        goes only to a client that asked for one and has not had it yet (``send_continue``
        answers ``Expect`` itself); 101 never (protocol switches are not supported).
        """
        current = self._current
        if self.closed or current is None or current.status:
            return  # the final response has begun: too late for an interim one
        status = response.status
        if status == 100:
            body = current.reader
            if body is None or not body.expect:
                return
            body.expect = False
        elif not 101 < status < 200:
            return
        lines = [f"{k}: {v}\r\n" for k, v in response.headers.items()
                 if k.lower() != "content-length"]
        text = "".join(lines)
        if text.count("\n") != len(lines) or text.count("\r") != len(lines):
            log.warning("interim %d response dropped: a header contains CR or LF", status)
            return
        try:
            head = status_line(status, response.reason) + text.encode("latin-1") + b"\r\n"
        except UnicodeEncodeError:
            log.warning("interim %d response dropped: a header is not Latin-1 text", status)
            return
        self._flush_held()
        self.transport.write(head)  # type: ignore[union-attr]


    async def _drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("client closed the connection")
        self._drain_waiter = self.loop.create_future()
        try:
            await self._drain_waiter
        finally:
            self._drain_waiter = None


    def _head(self, exchange: Exchange, response: Response, framing: str,
              keep_alive: bool) -> bytes:
        """Status line and header block; framing, Connection and X-Request-Id are ours to write."""
        headers = response.headers
        wire = response.wire_head
        rid = exchange.request_id
        if rid:
            framing += f"X-Request-Id: {rid}\r\n"
        if wire is not None and wire[0] == getversion(headers) and "x-request-id" not in headers:
            if not keep_alive:
                framing += "Connection: close\r\n"
            elif exchange.request.version == "1.0":
                framing += "Connection: keep-alive\r\n"
            return b"%s%s%s\r\n" % (status_line(response.status, response.reason), wire[1],
                                     framing.encode("latin-1"))
        if ("connection" in headers or "content-length" in headers or "transfer-encoding" in headers
                or (rid and "x-request-id" in headers)):
            headers = headers.copy()
            for name in ("connection", "content-length", "transfer-encoding"):
                headers.popall(name, None)
            if rid:
                headers.popall("x-request-id", None)
        lines = [f"{k}: {v}\r\n" for k, v in headers.items()]
        if "date" not in headers:
            lines.append(DATE.get_line())
        if framing:
            lines.append(framing)
        if not keep_alive:
            lines.append("Connection: close\r\n")
        elif exchange.request.version == "1.0":
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        n = len(lines) + framing.count("\n") - (1 if framing else 0)  # framing: our own lines
        if text.count("\n") != n or text.count("\r") != n:
            raise BadHead("a response header contains CR or LF")
        try:
            return status_line(response.status, response.reason) + text.encode("latin-1")
        except UnicodeEncodeError:
            raise BadHead("a response header is not Latin-1 text") from None

    def _write_wire(self, exchange: Exchange, response: Response, keep_alive: bool) -> bool:
        """Write a GET's full answer whose head is kept as bytes (``wire_head`` current: a
        cache hit, whatever filters added to it) in one buffer, as ``_write_bytes_response``
        would, without its general checks; False (nothing written): not such an answer.

        The bytes are ``_write_bytes_response``'s (tests/http/test_write_wire.py), formatted
        and held by ``Batch.send_wire`` in C: the status line's memo is read here, and no
        Python frame runs between this one and the held write.
        """
        wire = response.wire_head
        if wire is None:
            return False
        headers = response.headers
        status = response.status
        body = response.body
        if (type(body) is not bytes or status < 200 or status in NO_BODY_STATUS
                or response._trailers is not FROM_BODY or wire[0] != getversion(headers)
                or exchange.request.method != "GET" or "x-request-id" in headers
                or "connection" in headers or not keep_alive or exchange.request.version != "1.1"):
            return False
        exchange.status = status
        if not self.closed:
            reason = response.reason
            line = _status_lines.get((status, reason)) or status_line(status, reason)
            # the head's framing, the body and the held write (``_send_message``'s) in one C call
            self.fe.batch.send_wire(self.transport, line, wire[1], body, exchange.request_id)
            exchange.response_bytes = len(body)
        return True

    def _send_message(self, exchange: Exchange, status: int, head: bytes, body: bytes) -> None:
        """Write a head and its in-memory body: one buffer when small (one send), else the
        two without copying the body."""
        exchange.status = status
        if self.closed:
            return
        if len(body) <= 65536:
            self._send(head + body)
        else:
            self._send_large(head, body)
        exchange.response_bytes = len(body)

    def _send(self, data: bytes) -> None:
        """Write one buffer: with the batch's other writes when its steps are running or
        it holds writes (``Batch.send``; closing a connection flushes them first), else now."""
        batch = self.fe.batch
        if batch.running or batch.holding:
            batch.send(self.transport, data)  # type: ignore[arg-type]
        else:
            self.transport.write(data)  # type: ignore[union-attr]

    def _send_large(self, head: bytes, body: bytes) -> None:
        """Write a head and a large body without copying them into one buffer, after what
        the batch holds (order on the connection)."""
        self._flush_held()
        self.transport.writelines([head, body])  # type: ignore[union-attr]

    def _write_bytes_response(self, exchange: Exchange, response: Response,
                              keep_alive: bool, length_known: bool = True) -> bool:
        """Write a response whose body is in memory; return whether to keep the connection.

        ``length_known=False`` is for HEAD/304 answers to a streamed body of unknown
        length: no Content-Length is invented then.
        """
        status = response.status
        body: bytes = response.body  # type: ignore[assignment]
        headers = response.headers
        if status in NO_BODY_STATUS or status < 200:
            cl = headers.get("content-length") if status == 304 else None
            framing = f"Content-Length: {cl}\r\n" if cl is not None else ""
            body = b""
        elif exchange.request.method == "HEAD":
            cl = headers.get("content-length")
            if body or cl is None:
                framing = f"Content-Length: {len(body)}\r\n" if length_known else ""
            else:
                framing = f"Content-Length: {cl}\r\n"
            body = b""
        else:
            framing = f"Content-Length: {len(body)}\r\n"
        if keep_alive and "connection" in headers and "close" in headers.get("connection", "").lower():
            keep_alive = False
        head = self._head(exchange, response, framing, keep_alive)
        self._send_message(exchange, status, head, body)
        return keep_alive

    @staticmethod
    def _can_chunk(exchange: Exchange, response: Response) -> bool:
        status = response.status
        return (exchange.request.version == "1.1" and exchange.request.method != "HEAD"
                and status >= 200 and status not in NO_BODY_STATUS)

    def _write_bytes_chunked(self, exchange: Exchange, response: Response, keep_alive: bool,
                             trailers: CIMultiDict[str]) -> bool:
        """A ``bytes`` body with trailers: one chunk, then the trailer section."""
        if keep_alive and "close" in response.headers.get("connection", "").lower():
            keep_alive = False
        head = self._head(exchange, response, "Transfer-Encoding: chunked\r\n", keep_alive)
        exchange.status = response.status
        body: bytes = response.body  # type: ignore[assignment]
        if not self.closed:
            end = last_chunk(trailers)
            self._flush_held()
            if body:
                self.transport.writelines(  # type: ignore[union-attr]
                    [head, b"%x\r\n" % len(body), body, b"\r\n" + end])
            else:
                self.transport.write(head + end)  # type: ignore[union-attr]
            exchange.response_bytes = len(body)
        return keep_alive

    async def _write_stream_response(self, exchange: Exchange, response: Response,
                                     keep_alive: bool) -> bool:
        body: AsyncIterator[bytes] = response.body  # type: ignore[assignment]
        status = response.status
        exchange.status = status
        cl_text = response.headers.get("content-length")
        if status in NO_BODY_STATUS or status < 200 or exchange.request.method == "HEAD":
            await close_body(body)
            return self._write_bytes_response(
                exchange, Response(status, response.headers, b"", response.reason), keep_alive,
                length_known=False)
        length: int | None = None
        if cl_text is not None and cl_text.isdigit():
            length = int(cl_text)
            framing = f"Content-Length: {length}\r\n"
            chunked = False
        elif exchange.request.version == "1.1":
            framing = "Transfer-Encoding: chunked\r\n"
            chunked = True
        else:
            framing = ""
            chunked = False
            keep_alive = False
        if "close" in response.headers.get("connection", "").lower():
            keep_alive = False
        transport = self.transport
        assert transport is not None
        head = self._head(exchange, response, framing, keep_alive)
        if self.closed:
            await close_body(body)
            return False
        self._flush_held()
        transport.write(head)
        sent = 0
        finished = False
        try:
            async for chunk in body:
                if not chunk:
                    continue
                if self.closed:
                    break
                sent += len(chunk)
                if length is not None and sent > length:
                    raise ValueError(f"body longer than its Content-Length {length}")
                if chunked:
                    transport.writelines([b"%x\r\n" % len(chunk), chunk, b"\r\n"])
                else:
                    transport.write(chunk)
                if self._write_paused:
                    await self._drain()
            else:
                finished = True
        except ConnectionResetError:
            pass
        except Exception as exc:
            log.warning("response body for %s broke after %d bytes: %r",
                        exchange.request.target, sent, exc)
        finally:
            exchange.response_bytes = sent
            if not finished:
                await close_body(body)
        if finished and (length is None or sent == length):
            if chunked:
                transport.write(last_chunk(response.trailers))
            return keep_alive
        if finished:
            log.warning("response body for %s ended after %d of %s bytes",
                        exchange.request.target, sent, length)
        exchange.props["response_aborted"] = True
        transport.abort()
        return False
