"""Parsing a client connection's bytes with httptools (llhttp): heads, bodies, trailers,
the size limits, and malformed input answered with a 4xx after the requests before it.

Trailers: a chunked request's trailer fields (llhttp reports them through ``on_header``
after ``on_headers_complete``) end up on the request body's ``trailers`` before its
iterator ends; they get their own ``max_header_bytes`` budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import httptools
from multidict import CIMultiDict, getversion

from edgenode.config import ServerConfig
from edgenode.frontend._fasthit import HeadSink, bind_makers, bind_plain, client_exchange as native_client_exchange
from edgenode.frontend.dispatch import PIPELINE_DEPTH
from edgenode.http.error_reply import error_response
from edgenode.http.headers import parse_trailers
from edgenode.http.messages import FROM_BODY, Body, RawRequest, Request, raw_request
from edgenode.frontend.request_body import BadBody, RequestBody
from edgenode.frontend.request_head import METHODS, Reject, absolute_target, check_transfer_encoding
from edgenode.pipeline.exchange import (
    DECLINED, RAW_PLAIN, ClientExchange, Exchange, client_exchange, exchange_ids,
)
from edgenode.frontend.state import FrontEndState

__all__ = ["RequestParser", "PARSE_SLICE"]

log = logging.getLogger("edgenode.frontend")

#: a read larger than this is parsed in slices of it, so parsing can stop at a full queue
PARSE_SLICE = 4096

#: the front end's ``ClientExchange`` (and a filtered plain request's ``RawRequest`` with
#: it: ``FastHits._fast``) made in C, slots stored by offset (``_fasthit.c``), when
#: the classes' slots are the ones it stores; else by the Python makers, its reference
NATIVE_EXCHANGE: bool = bind_makers(RawRequest, ClientExchange, FROM_BODY, exchange_ids, RAW_PLAIN)
make_exchange = native_client_exchange if NATIVE_EXCHANGE else client_exchange
#: a declined plain GET/HEAD's ``Request`` (its fields made from the parsed pairs) and
#: exchange made in C too (``_fasthit.plain_exchange``: ``FastHits._fast``), with the
#: cache key the fast path made for it (``exchange.DECLINED``), when ``Request``'s slots
#: are the ones it stores; else ``_plain_head``'s Python makers
NATIVE_PLAIN: bool = NATIVE_EXCHANGE and bind_plain(Request, CIMultiDict, getversion, DECLINED)


class RequestParser:
    """The parsing part of a client connection (``http/connection.py``); httptools calls
    the ``on_*`` methods."""

    fe: FrontEndState
    cfg: ServerConfig
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    parser: httptools.HttpRequestParser
    client: tuple[str, int]
    local: tuple[str, int]
    closed: bool
    _dead: bool
    _current: Exchange | None
    _queue: deque[Exchange]
    _write_paused: bool
    _read_paused: bool
    _body: RequestBody | None
    _raw_headers: list[tuple[bytes, bytes]]
    #: the last complete head's target (the sink's ``url`` while a head is parsed)
    _url: bytes
    #: httptools' ``on_header`` (appends to its ``raw``, ``_raw_headers`` once the head is
    #: complete, and counts the field lines' bytes, its ``size``, against
    #: ``max_header_bytes``: ``_fields_too_large``), ``on_url`` (its ``url`` within
    #: ``max_request_line_bytes``: ``_target_too_long``) and ``on_message_begin`` (a new
    #: head: its ``in_head`` True until ``on_headers_complete``), and what the fast path
    #: and the version rule ask of the fields (``host``, ``incoming``, ``connection``,
    #: decided as they come); its ``complete`` (``on_message_complete``) calls
    #: ``_message_complete`` after a head with a body
    _sink: HeadSink
    #: what the open header section had accounted for before this read (0 outside one),
    #: and when its head's first read came (-1 outside a head)
    _mark: int
    _head_start: float
    #: the version of the fields multidict as ``_fields`` made it from ``_raw_headers``
    _parsed: int
    _fast_fields: CIMultiDict[str] | None
    #: the last head's raw pairs ``_fields`` decoded, and their text
    _last_raw: list[tuple[bytes, bytes]]
    _last_text: list[tuple[str, str]]

    def data_received(self, data: bytes) -> None:
        if self._dead:
            if self._linger_end:
                self._linger_last = self.loop.time()  # lingering: read and dropped
            return
        if len(data) > PARSE_SLICE and not self._slicing:
            self._parse(data)
            return
        sink = self._sink
        if sink.in_head:  # what the current header section had accounted for before this read
            self._mark = len(sink.url) + sink.size
        elif self._chunk_pending:
            self._mark = sink.size
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # llhttp stops after an Upgrade/CONNECT head; the request was dispatched as a
            # plain one (Upgrade is hop-by-hop), so keep parsing what follows it.
            offset = exc.args[0] if exc.args else len(data)
            self._seen = 0
            if not self._dead and offset < len(data):
                self.data_received(data[offset:])
            return
        except httptools.HttpParserError as exc:
            reject = exc.__context__
            if isinstance(reject, Reject):
                self._protocol_error(reject.status, reject.message)
            else:
                self._protocol_error(400, f"malformed request: {exc}")
            return
        seen = self._seen
        self._seen = 0
        in_head = sink.in_head
        if in_head or self._chunk_pending:
            if in_head:
                if self._head_start < 0:
                    self._head_start = self.loop.time()  # the read that began this message
                seen += len(sink.url) + sink.size - self._mark  # the head so far
            else:
                seen += sink.size - self._mark  # the trailer fields so far
            # The read ended inside a header section (the head, or a chunked body's trailer
            # section).  Complete fields are counted per message (on_header), the target in
            # on_url; httptools keeps an unfinished field line to itself, so its bytes are
            # what this read held beyond what was accounted for (plus the whole of earlier
            # reads that accounted for nothing).
            self._partial = len(data) - seen if seen > 0 else self._partial + len(data)
            if sink.size + self._partial > self.cfg.max_header_bytes:
                part = "header" if in_head else "trailer"
                self._protocol_error(431, f"request {part} fields too large")

    def _parse(self, data: bytes) -> None:
        """Parse a large read a slice at a time, keeping what follows a full pipeline
        queue unparsed (reading stays paused until the queue has room again).

        A read can hold thousands of small pipelined requests; parsed at once, each would
        become a queued request object.  Inside a request body the rest is fed whole (a
        large upload is not cut into small pieces).
        """
        start, end = 0, len(data)
        while start < end and not self._dead:
            if len(self._queue) >= PIPELINE_DEPTH and self._body is None:
                self._unparsed = data[start:]
                self._pause_reading()
                return
            stop = end if self._body is not None else min(end, start + PARSE_SLICE)
            self._slicing = True
            try:
                self.data_received(data if start == 0 and stop == end else data[start:stop])
            finally:
                self._slicing = False
            start = stop

    def _parse_unparsed(self) -> None:
        """The pipeline queue has room again: parse the rest of the read it stopped."""
        self._parse_scheduled = False
        data, self._unparsed = self._unparsed, b""
        if data and not self._dead:
            self._parse(data)
            self.body_drained()

    def _target_too_long(self) -> None:
        """The sink's ``url_over``: the request target grew past ``max_request_line_bytes``."""
        raise Reject(414, f"request line longer than {self.cfg.max_request_line_bytes} bytes")

    def _fields_too_large(self) -> None:
        """The sink's ``over``: a field line took the section past ``max_header_bytes``."""
        part = "header block" if self._sink.in_head else "trailer section"
        raise Reject(431, f"request {part} larger than {self.cfg.max_header_bytes} bytes")

    def _general_head(self) -> None:
        """The sink's ``general`` (``HeadSink.headers_complete`` is httptools'
        ``on_headers_complete``): a head the sink did not find a plain keep-alive HTTP/1.1
        GET/HEAD with an origin-form target (those it hands to ``_fast`` itself): other
        methods and versions, a Connection field, one of ``NOT_PLAIN``, an absolute-form
        target.  A plain GET/HEAD among them (HTTP/1.0, a Connection field) still goes to
        ``_fast``: the one fast path."""
        sink = self._sink
        parser = self.parser
        raw_method = parser.get_method()
        method = METHODS.get(raw_method) or raw_method.decode("ascii")
        # without a Connection field, llhttp keeps only an HTTP/1.1 connection alive (every
        # version but 1.1, 1.0, 0.9 and 2.0 is a parse error): formatting the version is
        # the dearer call (``_fasthit.c``)
        keep_alive = parser.should_keep_alive()
        if keep_alive and not sink.connection:
            version = "1.1"
        else:
            version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise Reject(505, f"HTTP version {version} is not supported")
        if (method == "GET" or method == "HEAD") and sink.host is not None and sink.url.startswith(b"/"):
            self._fast(method == "GET", version, keep_alive)
            return
        # the head is over: its target and fields for the request, its bytes counted in this
        # read's (``data_received``); ``_fast`` does the same for the heads it takes
        url = self._url = sink.url
        self._raw_headers = sink.raw
        # the head's bytes in this read (method, version, line ends: roughly)
        self._seen += len(url) + sink.size + 16 - self._mark
        self._mark = 0
        self._head_start = -1.0
        self._request_head(method, version, keep_alive, None)

    def _request_head(self, method: str, version: str, keep_alive: bool, headers: CIMultiDict[str] | None) -> None:
        """A complete head that is not a plain GET/HEAD (those go to ``_fast``, and the
        ones it does not answer to ``_plain_head``): its request dispatched, or its
        4xx/5xx raised (``Reject``).  ``headers``: the fields, if already made."""
        if headers is None:
            headers = self._fields()
        url = self._url
        sink = self._sink
        if method == "CONNECT":
            raise Reject(405, "CONNECT is not supported")
        target = url.decode("latin-1")
        if not target.startswith("/"):
            target = absolute_target(method, target, headers)
        hosts = headers.getall("host", ())
        if len(hosts) > 1 or (version == "1.1" and not hosts):
            raise Reject(400, "exactly one Host header is required")
        if "transfer-encoding" in headers:
            check_transfer_encoding(headers.getall("transfer-encoding"), version)
            has_body = True
            self._n_head = len(self._raw_headers)
            sink.size = 0  # the trailer section has its own budget
        else:
            cl = headers.get("content-length")
            has_body = cl is not None and cl != "0"
        body: RequestBody | None = None
        if has_body:
            expect = version == "1.1" and headers.get("expect", "").lower() == "100-continue"
            body = self._body = RequestBody(self, expect)
            sink.body_done = self._message_complete  # this message's end has work
        self._dispatch(self._exchange(method, target, headers, version, keep_alive, body))

    def _exchange(self, method: str, target: str, headers: CIMultiDict[str] | None, version: str,
                  keep_alive: bool, reader: RequestBody | None = None,
                  new_id: bool = False) -> Exchange:
        """The request and its exchange, with the request id the origin, the filters and
        the response carry (the fast path's filtered hits with an id of their own make theirs
        here too, and the others when the C maker is not bound: ``NATIVE_EXCHANGE``;
        ``new_id``: the caller knows the fields hold no X-Request-Id).  ``headers`` None (with
        ``new_id``, no body): a ``RawRequest`` over the parsed pairs, its multidict made
        only if something reads it.  ``keep_alive`` and ``reader``: the front end's, on
        the exchange (``Exchange.keep_alive``, ``Exchange.reader``)."""
        body: Body = b"" if reader is None else reader
        incoming = None if headers is None or new_id else headers.get("x-request-id")
        raw: list[tuple[bytes, bytes]] | None = None
        if headers is None or (body == b"" and getversion(headers) == self._parsed):  # fields as parsed
            raw = self._raw_headers
        if incoming is None:
            ids = self.fe.request_ids  # ``RequestIds.new``, formatted as bytes first (ASCII)
            wire = b"%s%x" % (ids.prefix, next(ids.count))
            rid = wire.decode()
            if headers is not None:
                headers.add("X-Request-Id", rid)  # (absent) the origin and the filters see it too
            if raw is not None:
                raw.append((b"X-Request-Id", wire))
        else:
            assert headers is not None
            rid = self.fe.request_ids.pick(incoming)
            if rid is not incoming or len(headers.getall("x-request-id")) > 1:
                headers.popall("x-request-id")
                headers["X-Request-Id"] = rid
                raw = None
        if headers is None:
            assert raw is not None
            request: Request = raw_request(method, target, raw, version)
        else:
            request = Request(method, target, headers, body, version)
            if raw is not None:  # the parsed bytes, for an origin head written from them
                request.raw = (getversion(headers), raw)
        # RFC 9110 §15.2: no 1xx to an HTTP/1.0 client
        interim = self.send_interim if version == "1.1" else None
        return make_exchange(request, self.client, self.local, keep_alive, reader, rid, interim)

    def _fields(self) -> CIMultiDict[str]:
        """The head's fields as text.  A keep-alive client mostly repeats its fields from
        one request to the next, so their decoded text is kept per connection and reused
        while the raw pairs are equal (decoding is most of this multidict's cost)."""
        raw = self._raw_headers
        if raw != self._last_raw:
            self._last_raw = raw.copy()  # (``_exchange`` may append the request id to raw)
            self._last_text = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw]
        fields = CIMultiDict(self._last_text)
        self._parsed = getversion(fields)  # (an absolute-form target then replaces Host)
        return fields

    def on_body(self, chunk: bytes) -> None:
        self._seen += len(chunk)
        self._chunk_pending = False
        if self._body is not None:
            self._body.feed(chunk)

    def on_chunk_header(self) -> None:
        # until data follows, this may be the last chunk: its trailer section comes next
        self._seen += 6  # size line and the CRLF after the data: roughly
        self._chunk_pending = True
        self._mark = 0
        self._partial = 0

    def _message_complete(self) -> None:
        """The sink's ``body_done``: the end of a message with a body (a message without
        one leaves nothing to do at its end: no chunk, trailer section or body)."""
        self._sink.body_done = None
        self._chunk_pending = False
        self._mark = 0  # (a trailer section's)
        body = self._body
        if body is not None:
            n = self._n_head
            if n:
                self._n_head = 0
                if len(self._raw_headers) > n:
                    body.trailers = parse_trailers(self._raw_headers[n:])
            body.finish()
            self._body = None

    def _protocol_error(self, status: int, message: str) -> None:
        """Answer a malformed request after the ones already in flight, then close."""
        if self._dead:
            return
        self._dead = True
        self._sink.in_head = False
        if self._body is not None:
            self._body.fail(BadBody(status, f"bad request body: {message}"))
            self._body = None
        if not self._read_paused and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        method = "-"
        url = self._sink.url  # the target so far (a 414's, or the head's before a 4xx)
        if url:  # llhttp reports DELETE (method 0) when no method was parsed
            method = self.parser.get_method().decode("ascii", "replace")
        target = url.decode("latin-1")[:200] or "-"
        request = Request(method, target, CIMultiDict())
        exchange = Exchange(request, self.client, self.local)
        exchange.request_id = self.fe.request_ids.new()
        exchange.error = error_response(status, message, close=True)
        self._dispatch(exchange)
