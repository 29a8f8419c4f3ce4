"""Answers for plain GET/HEAD requests straight from the parser callback (fresh cache hits).

A producer that can answer some requests synchronously with pre-serialised bytes (the
cache, for a fresh hit: see ``FastPath``) gets every *plain* GET/HEAD (no body, none of
``headers.NOT_PLAIN``, origin-form target, one Host) that arrives while nothing else is in
flight on the connection: no Request, Exchange, task or coroutine is made, and the
response leaves in one ``transport.write`` with the loop iteration's other answers
(``Batch.send``: after the iteration's reads, so the socket writes run back to back).
When it declines, the request takes the general path unchanged.

Behind Proxy-Wasm filters (``FastPath.filtered``: the chain's leading stages open a
stream around the rest, then the cache) a plain request cannot be answered before the
filters' hooks ran (they may rewrite it, reply, pause), so it is marked plain
(``Exchange.plain``, ``_fast``) and runs its chain in the loop iteration's
batch like any request: there the cache answers it from the entry's kept answer without
checking the fields again (``CacheStage.hit_response``), and the answer leaves as bytes
with the batch's others (``ResponseWriter._write_wire``).
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Callable

from multidict import CIMultiDict, getversion

from edgenode.config import ServerConfig
from edgenode.http.messages import Prebuilt, Response
from edgenode.frontend._fasthit import HeadSink, filtered_exchange, plain_exchange
from edgenode.frontend.request_parser import NATIVE_EXCHANGE, NATIVE_PLAIN
from edgenode.frontend.response_writer import status_line
from edgenode.frontend.state import FastPath, FrontEndState
from edgenode.pipeline.exchange import RAW_PLAIN, Exchange, declined_key

if TYPE_CHECKING:
    import httptools

__all__ = ["FastPath", "FastHits", "fast_prefix"]

log = logging.getLogger("edgenode.frontend")


#: fast-path heads (up to the request id) kept per ``Prebuilt`` for GET, keep-alive, HTTP/1.1
#: answers with bodies up to FAST_MEMO_BODY bytes (written with the head in one buffer), at
#: most FAST_MEMO_ENTRIES of them (cleared when full)
FAST_MEMO_BODY = 8192
FAST_MEMO_ENTRIES = 256


def fast_prefix(hit: Prebuilt) -> bytes:
    """The head ``Connection._head`` writes for ``hit`` as a Response with ``wire_head``,
    up to its per-request fields (X-Request-Id, Connection); the fast path never answers
    with a stored X-Request-Id (the general path replaces it: ``CacheStage.fast_hit``)."""
    return b"%s%sContent-Length: %d\r\n" % (status_line(hit.status, hit.reason), hit.block,
                                               len(hit.body))


class FastHits:
    """The fast-hit part of a client connection (``http/connection.py``)."""

    fe: FrontEndState
    cfg: ServerConfig
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    parser: httptools.HttpRequestParser
    client: tuple[str, int]
    local: tuple[str, int]
    closed: bool
    _closing: bool
    _dead: bool
    _url: bytes
    _raw_headers: list[tuple[bytes, bytes]]
    _sink: HeadSink
    _fast_fields: CIMultiDict[str] | None
    _idle_since: float
    _timer: asyncio.TimerHandle | None

    def _fields(self) -> CIMultiDict[str]: ...
    #: Dispatcher's: a parsed request run in order
    _dispatch: Callable[[Exchange], None]
    #: ResponseWriter's (stubs here would shadow them)
    _flush_held: Callable[[], None]
    _send_large: Callable[[bytes, bytes], None]

    def _arm_timer(self, delay: float) -> None: ...
    def _exchange(self, method: str, target: str, headers: CIMultiDict[str] | None, version: str,
                  keep_alive: bool, reader: None = None, new_id: bool = False) -> Exchange: ...
    #: Dispatcher's: the request being answered
    _current: Exchange | None
    #: ResponseWriter's
    send_interim: Callable[[Response], None]

    def _fast_fields_once(self) -> CIMultiDict[str]:
        fields = self._fast_fields
        if fields is None:
            fields = self._fast_fields = self._fields()
        return fields

    def _fast(self, get: bool, version: str = "1.1", keep_alive: bool = True) -> None:
        """A complete plain GET (``get``) or HEAD head with an origin-form target: answered
        from the fast path right here, else the general path (``_plain_head``).  The sink calls
        it for a keep-alive HTTP/1.1 head (``HeadSink.headers_complete``: one Python frame
        from the parser to the cache's answer), ``_general_head`` for the others
        (``version``, ``keep_alive``: the parser's answers).

        Answered only with nothing in flight on this connection, so the answer is in order,
        and not while the transport asks us to stop writing (a client that pipelines
        without reading gets the general path's pace, not a burst of answers per read).
        The bytes are the ones ``_write_bytes_response`` writes for the equivalent
        ``Response`` with ``wire_head`` set (tests/proxy/test_proxy_hit_wire.py holds
        the two paths to that).
        """
        # the head is over, as in ``_general_head`` (written out: no frame between the
        # parser and the cache's answer)
        sink = self._sink
        url = self._url = sink.url
        self._raw_headers = sink.raw
        self._seen += len(url) + sink.size + 16 - self._mark
        self._mark = 0
        self._head_start = -1.0
        self._fast_fields = None
        method = "GET" if get else "HEAD"
        fast = self.fe.fast_path
        if fast is None or self._current is not None or self._dead or self._write_paused:
            self._plain_head(method, version, keep_alive, None, None)
            return
        # none of NOT_PLAIN, one Host, at most one X-Request-Id (the general path answers
        # 400 to a repeated Host and replaces repeated ids): the sink decided as they came
        incoming = sink.incoming
        if fast.filtered:  # marked plain, run in the batch (see ``_filtered_exchange``)
            fe = self.fe
            if incoming is None and NATIVE_EXCHANGE:  # the usual one, its objects in one C call
                ids = fe.request_ids
                interim = self.send_interim if version == "1.1" else None  # as ``_exchange``
                exchange = filtered_exchange(method, url, sink.raw, sink.host, version, keep_alive,
                                             ids.prefix, ids.count, self.client, self.local, interim)
            else:
                exchange = self._filtered_exchange(method, version, keep_alive, incoming is None)
            fe.filtered_started += 1
            # ``Dispatcher._start``'s steps for it: nothing is in flight, writing is not
            # paused (checked above), it has no error and no body
            self._current = exchange
            fe.batch.add(self)
            return
        fields = self._fast_fields_once  # (this call's: it names the request to the fast path)
        try:  # counted as written: nothing below declines it
            hit = fast.answer(url, sink.host, fields, get and not self.closed, perf_counter())
        except Exception:  # a bug there must not turn into a 400 from the parser
            log.exception("fast path lookup failed for %r", url[:200])
            hit = None
        if hit is None:
            self._plain_head(method, version, keep_alive, self._fast_fields, fields)
            return
        keep_alive = keep_alive and not self._closing
        body = hit.body
        if incoming is None and keep_alive and get and version == "1.1" and len(body) <= FAST_MEMO_BODY:
            # the common answer (on an open connection: a closed one is ``_dead``, declined
            # above): its head up to the request id's number is kept until ``hit`` changes,
            # and the id is formatted straight into the bytes held for the loop iteration's
            # flush, in one C call
            ids = self.fe.request_ids
            memo = self.fe.fast_memo
            prefix = memo.get(hit, b"")
            if prefix == b"":
                if len(memo) >= FAST_MEMO_ENTRIES:
                    memo.clear()
                prefix = memo[hit] = fast_prefix(hit) + b"X-Request-Id: " + ids.prefix
            self.fe.batch.send_kept(self.transport, prefix, next(ids.count), body)
        elif not self.closed:
            self._fast_write(hit, incoming, keep_alive, get, version)
        if self.closed:
            return
        if not keep_alive:
            self._dead = True
            self._flush_held()
            self.transport.close()  # type: ignore[union-attr]
            return
        self._idle_since = self.loop.time()
        if self._timer is None:
            self._arm_timer(min(self.cfg.keepalive_timeout, self.cfg.request_timeout))

    def _plain_head(self, method: str, version: str, keep_alive: bool,
                    headers: CIMultiDict[str] | None, asked: Callable[[], CIMultiDict[str]] | None) -> None:
        """A plain GET/HEAD head the fast path did not answer: dispatched on the general
        path.  What ``_request_head`` checks the sink has decided already (none of
        ``NOT_PLAIN``: no body or framing; one Host; an origin-form target), so nothing
        there could refuse it, and the request id is new unless one came (``incoming``).
        ``headers``: the fields, if the fast path made them.  ``asked``: the ``fields``
        callable the fast path was asked with and declined (the usual miss), None when it
        was not asked (no fast path, or one that may not answer now).  When it declined,
        the exchange is marked plain at its fields' version (``Exchange.plain``), so the
        cache skips the field checks the sink made, and it carries the cache key the fast
        path made for it (``Exchange.cache_key``: ``exchange.declined_key``); otherwise the
        general path checks everything.  The usual one (no fields made, no incoming id)
        has its objects made in one C call (``_fasthit.plain_exchange``: ``NATIVE_PLAIN``,
        which marks it and takes the key); ``_fields``, ``_exchange`` and ``declined_key``
        are its reference (tests/frontend/test_plain_exchange.py)."""
        new_id = self._sink.incoming is None
        if headers is None and new_id and NATIVE_PLAIN:  # the usual miss: its objects in one C call
            ids = self.fe.request_ids
            interim = self.send_interim if version == "1.1" else None  # as ``_exchange``
            exchange = plain_exchange(method, self._url, self._raw_headers, version, keep_alive,
                                      ids.prefix, ids.count, self.client, self.local, interim, asked)
            if self._current is None and not self._write_paused:
                # ``_dispatch`` -> ``_start``'s steps for it: it has no error and no body
                self._current = exchange
                self.fe.batch.add(self)
            else:
                self._dispatch(exchange)
            return
        if headers is None:
            headers = self._fields()
        target = self._url.decode("latin-1")
        exchange = self._exchange(method, target, headers, version, keep_alive, None, new_id)
        if asked is not None:  # the sink found none of NOT_PLAIN
            exchange.plain = getversion(exchange.request.headers)
            exchange.cache_key = declined_key(asked)
        self._dispatch(exchange)

    def _fast_write(self, hit: Prebuilt, incoming: bytes | None, keep_alive: bool, get: bool,
                    version: str) -> None:
        """Write a fast hit's answer other than the common kept one (an incoming request
        id, HTTP/1.0, a close, a HEAD, a larger body): its head formatted per request."""
        ids = self.fe.request_ids
        body = hit.body
        head = fast_prefix(hit)
        rid = ids.pick(incoming.decode("latin-1")) if incoming is not None else ids.new()
        if not keep_alive:
            conn = b"Connection: close\r\n"
        elif version == "1.0":
            conn = b"Connection: keep-alive\r\n"
        else:
            conn = b""
        head = data = b"%sX-Request-Id: %s\r\n%s\r\n" % (head, rid.encode(), conn)
        if get and body:
            data = head + body if len(body) <= 65536 else None
        if data is None:  # a large body: not copied behind the head
            self._send_large(head, body)
        else:  # with the loop iteration's other answers (``Batch.send``)
            self.fe.batch.send(self.transport, data)  # type: ignore[arg-type]

    def _filtered_exchange(self, method: str, version: str, keep_alive: bool,
                           new_id: bool) -> Exchange:
        """The ``Exchange`` of a plain GET/HEAD behind filters (as ``_exchange`` makes every
        request's), marked plain, when ``_fast`` does not make it in C: it runs in the loop
        iteration's batch like any request (``Dispatcher``), where the filters' hooks and
        the cache's kept answer (``CacheStage.hit_response``, which trusts the mark while
        the filters leave the fields alone) run back to back with the batch's other
        requests, and a kept-bytes answer leaves with its other answers (``_write_wire``).
        ``new_id``: the request carries no X-Request-Id (the node makes one): then the
        request is a ``RawRequest``, its fields multidict made only if a filter or stage
        reads it (the host core and ``hit_response`` read the parsed pairs), and while it is
        not made the fields are the ones found plain here.  ``_fast`` makes those objects
        in one C call (``_fasthit.filtered_exchange``: ``NATIVE_EXCHANGE``); these Python
        makers are the reference it is held equal to
        (tests/frontend/test_filtered_exchange.py)."""
        if new_id:
            exchange = self._exchange(method, self._url.decode("latin-1"), None, version, keep_alive,
                                      None, True)
            exchange.plain = RAW_PLAIN
            exchange.parsed = (self._url, self._sink.host)
            return exchange
        headers = self._fields()
        exchange = self._exchange(method, self._url.decode("latin-1"), headers, version, keep_alive)
        exchange.plain = getversion(headers)  # checked in ``_fast``: none of NOT_PLAIN
        return exchange
