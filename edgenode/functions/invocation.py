"""Per-request host state: resources, body pipes, the response head, limits, waiting.

An ``Invocation`` is what host functions see.  It does no wasmtime calls itself, so the
same object serves a guest running on the event loop's thread (*inline*: the request
body is complete and nothing needs the network) or on a worker thread (*threaded*: the
body streams in, outgoing HTTP waits on the loop).  Bodies move through ``ByteSource``
(guest reads) and ``ByteSink`` (guest writes); blocking waits are bounded by the
request's wall-clock deadline and end in a trap when it passes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import Any, Callable

from multidict import CIMultiDict

from edgenode.functions.capi import GuestTrap
from edgenode.functions.table import ResourceTable

__all__ = ["ByteSource", "ByteSink", "Invocation", "Limits", "ResponseHead", "Capabilities"]


class Limits:
    """Per-function limits (``FunctionOptions`` fills them from the stage config)."""

    __slots__ = ("memory_bytes", "cpu_ms", "timeout", "max_body_bytes")

    def __init__(self, memory_bytes: int = 128 << 20, cpu_ms: float = 1000.0, timeout: float = 30.0,
                 max_body_bytes: int = 16 << 20) -> None:
        self.memory_bytes = memory_bytes
        self.cpu_ms = cpu_ms
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes


class Capabilities:
    """What a function may use beyond computing: all empty/None means denied."""

    __slots__ = ("outbound", "variables", "kv", "kv_stores", "env")

    def __init__(self, outbound: Callable[..., Any] | None = None, variables: dict[str, str] | None = None,
                 kv: Any = None, kv_stores: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        #: ``outbound(authority) -> upstream name | None`` and the call itself (see http_host)
        self.outbound = outbound
        self.variables = variables or {}
        self.kv = kv
        self.kv_stores = kv_stores
        self.env = env or {}


class Waker:
    """Wakes a guest blocked in ``poll``/``block`` when something it may wait on changes."""

    __slots__ = ("_cond",)

    def __init__(self) -> None:
        self._cond = threading.Condition()

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait(self, ready: Callable[[], bool], until: float) -> bool:
        with self._cond:
            while not ready():
                left = until - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True


class ByteSource:
    """Bytes the guest reads: complete up front (inline) or fed chunk by chunk (threaded)."""

    __slots__ = ("_chunks", "eof", "error", "_waker", "trailers")

    def __init__(self, data: bytes | None = None, waker: Waker | None = None) -> None:
        self._chunks: deque[bytes] = deque()
        if data:
            self._chunks.append(data)
        self.eof = data is not None
        self.error: str | None = None
        self._waker = waker
        self.trailers: CIMultiDict[str] | None = None

    # producer side (event loop)
    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        if self._waker is not None:
            self._waker.notify()

    def finish(self, trailers: CIMultiDict[str] | None = None, error: str | None = None) -> None:
        self.trailers = trailers
        self.error = error
        self.eof = True
        if self._waker is not None:
            self._waker.notify()

    # consumer side (guest)
    def ready(self) -> bool:
        return bool(self._chunks) or self.eof

    def read(self, n: int) -> bytes | None:
        """Up to ``n`` bytes now (b"" if none yet); None at the end of the stream."""
        chunks = self._chunks
        if not chunks:
            return None if self.eof else b""
        first = chunks[0]
        if len(first) <= n:
            chunks.popleft()
            return first
        chunks[0] = first[n:]
        return first[:n]


class ByteSink:
    """Bytes the guest writes: collected (inline, outgoing requests) or relayed to the loop."""

    __slots__ = ("parts", "size", "limit", "_relay", "closed")

    def __init__(self, limit: int, relay: Callable[[bytes | None], None] | None = None) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.limit = limit
        self._relay = relay
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise GuestTrap("write to a finished body")
        self.size += len(data)
        if self.size > self.limit:
            raise GuestTrap(f"body exceeds the function's max_body_bytes ({self.limit})")
        if self._relay is not None:
            self._relay(data)
        else:
            self.parts.append(data)

    def close(self) -> None:
        self.closed = True
        if self._relay is not None:
            self._relay(None)

    def data(self) -> bytes:
        return b"".join(self.parts)


class ResponseHead:
    """What ``response-outparam.set`` delivered: a status + headers, or an error code."""

    __slots__ = ("status", "headers", "error", "body")

    def __init__(self, status: int, headers: CIMultiDict[str], body: ByteSink | None,
                 error: str | None = None) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.error = error


class Invocation:
    """Host state for one request (or, in reuse mode, one request on a reused instance)."""

    def __init__(self, *, limits: Limits, caps: Capabilities, logger: logging.Logger, name: str,
                 loop: asyncio.AbstractEventLoop | None, threaded: bool) -> None:
        self.table = ResourceTable()
        self.limits = limits
        self.caps = caps
        self.log = logger
        self.name = name
        self.loop = loop
        self.threaded = threaded
        self.waker = Waker()
        self.deadline = time.monotonic() + limits.timeout
        #: set once by response-outparam.set; ``on_head`` tells the stage (threaded mode)
        self.head: ResponseHead | None = None
        self.on_head: Callable[[ResponseHead], None] | None = None
        #: relay for response body chunks (threaded mode), None: collect in the sink
        self.body_relay: Callable[[bytes | None], None] | None = None
        #: time spent in host functions, for the host-overhead figures
        self.host_s = 0.0
        self.host_calls = 0
        #: time in guest code (the handle call minus host functions)
        self.guest_s = 0.0
        self.cancelled = False

    def check(self) -> None:
        if self.cancelled:
            raise GuestTrap("request cancelled")
        if time.monotonic() > self.deadline:
            raise GuestTrap(f"wall-clock timeout ({self.limits.timeout:g}s)")

    def wait(self, ready: Callable[[], bool], until: float | None = None) -> None:
        """Block until ``ready()`` (threaded), or trap when it cannot become true."""
        if ready():
            return
        end = self.deadline if until is None else min(until, self.deadline)
        if not self.threaded:
            # inline: only time passes, so only a timer can become ready
            if until is None:
                raise GuestTrap("the guest blocked on something that can never become ready "
                                "(inline execution)")
            left = end - time.monotonic()
            if left > 0:
                time.sleep(left)
            if not ready():
                self.check()
            return
        if not self.waker.wait(lambda: ready() or self.cancelled, end):
            self.check()
        self.check()

    def set_head(self, head: ResponseHead) -> None:
        self.head = head
        if self.on_head is not None:
            self.on_head(head)
