"""Per-request host state: a request's limits and capabilities on its C call state.

An ``Invocation`` is what host functions see.  Its base, ``_hostcall.Call``, holds what
the C host functions need: the resource table of the instance the guest runs on, the
wall-clock deadline and cancellation, the response head once ``response-outparam.set``
ran (``head``: status, headers, body sink, error), and the time spent in host and
guest code.  The same object serves a guest running on the event loop's thread
(*inline*: the request body is complete and nothing needs the network) or on a worker
thread (*threaded*: the body streams in, outgoing HTTP waits on the loop).  Blocking
waits (poll, blocking reads) are bounded by the deadline and end in a trap.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from edgenode.functions._hostcall import Call

__all__ = ["Invocation", "Limits", "Capabilities"]


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
                 kv: Any = None, kv_stores: dict[str, int] | None = None,
                 env: dict[str, str] | None = None) -> None:
        #: ``outbound(authority) -> upstream name | None`` and the call itself (see http_host)
        self.outbound = outbound
        self.variables = variables or {}
        self.kv = kv
        #: store label -> size limit
        self.kv_stores = kv_stores or {}
        self.env = env or {}


class Invocation(Call):
    """Host state for one request (or, in reuse mode, one request on a reused instance)."""

    def __init__(self, *, limits: Limits, caps: Capabilities, logger: logging.Logger, name: str,
                 loop: asyncio.AbstractEventLoop | None, threaded: bool) -> None:
        super().__init__(limits.timeout, threaded, limits.max_body_bytes)
        self.limits = limits
        self.caps = caps
        self.log = logger
        self.name = name
        self.loop = loop
        #: key-value stores open now (Spin's store table is bounded)
        self.kv_open = 0
