"""One guest instance and one call of its ``handle``: store, limits, instantiate, call.

A ``GuestInstance`` is a store plus an instance of a ``LoadedFunction``.  Per-request
isolation makes a new one per request (nothing survives between requests, Spin's
model); reuse mode keeps one and calls ``handle`` again, until it traps.  ``run``
executes on whatever thread calls it (the loop's for inline requests, a worker's for
threaded ones): it binds the invocation to the thread so host functions find it.
"""

from __future__ import annotations

import ctypes
import time

from wasmtime import Store, WasmtimeError
from wasmtime import _bindings as B

from edgenode.functions.capi import call_handler
from edgenode.functions.component import FunctionRuntime, LoadedFunction, current
from edgenode.functions.http_host import IncomingRequest, ResponseOutparam
from edgenode.functions.invocation import Invocation
from edgenode.functions.table import ResourceTable

__all__ = ["GuestInstance", "GuestError", "first_line"]


class GuestError(Exception):
    """The guest trapped or hit a limit; ``kind`` is trap, cpu, memory or timeout."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def first_line(message: str) -> str:
    """The cause of a wasmtime error, without the guest backtrace: the last line of its
    ``Caused by`` chain (the host's trap message, ``wasm trap: ...``), else its first line."""
    text = message.strip()
    if not text:
        return "trap"
    head, sep, causes = text.partition("Caused by:")
    if sep:
        lines = [ln.strip() for ln in causes.strip().splitlines() if ln.strip()]
        if lines:
            last = lines[-1]
            return last.split(": ", 1)[1] if last[:1].isdigit() and ": " in last else last
    return head.strip().splitlines()[0]


class GuestInstance:
    __slots__ = ("loaded", "store", "ctx", "func", "func_addr", "table", "instantiate_s", "calls",
                 "broken", "memory_limit")

    def __init__(self, runtime: FunctionRuntime, loaded: LoadedFunction, memory_limit: int) -> None:
        t0 = time.perf_counter()
        self.loaded = loaded
        self.memory_limit = memory_limit
        self.store = Store(runtime.engine)
        self.store.set_limits(memory_size=memory_limit)
        self.store.set_epoch_deadline(1 << 40)  # instantiation runs no guest code worth bounding
        self.ctx = ctypes.cast(self.store._context(), ctypes.c_void_p).value or 0
        self.table = ResourceTable()
        try:
            instance = loaded.linker.instantiate(self.store, loaded.component)
        except WasmtimeError as exc:
            raise GuestError(_kind(str(exc)), f"instantiation failed: {first_line(str(exc))}") from None
        func = instance.get_func(self.store, loaded.handle_index)
        if func is None:
            raise GuestError("trap", "the handler export is not a function")
        self.func = func
        self.func_addr = ctypes.addressof(func._func)
        self.instantiate_s = time.perf_counter() - t0
        self.calls = 0
        self.broken = False

    def run(self, inv: Invocation, request: IncomingRequest, ticks: int) -> None:
        """Call ``handle(request, outparam)``; raises ``GuestError`` on a trap or limit."""
        inv.table = self.table
        table = self.table
        first = table.next_rep
        req_rep = table.add(request)
        out_rep = table.add(ResponseOutparam())
        prev = current.inv
        current.inv = inv
        try:
            self.store.set_epoch_deadline(ticks)
            self.calls += 1
            t0 = time.perf_counter()
            err = call_handler(self.func_addr, self.ctx, (req_rep, IncomingRequest.TYPE),
                               (out_rep, ResponseOutparam.TYPE))
            inv.guest_s += time.perf_counter() - t0 - inv.host_s
        finally:
            current.inv = prev
            table.forget_from(first)
        if err:
            self.broken = True  # an instance that trapped may not be entered again
            exc = WasmtimeError._from_ptr(ctypes.cast(err, ctypes.POINTER(B.wasmtime_error_t)))
            message = str(exc)
            kind = _kind(message)
            if inv.cancelled or "wall-clock timeout" in message:
                kind = "timeout"
            raise GuestError(kind, first_line(message))


def _kind(message: str) -> str:
    low = message.lower()
    if "interrupt" in low:
        return "cpu"
    if "memory" in low and ("limit" in low or "grow" in low or "out of bounds" not in low and "allocat" in low):
        return "memory"
    if "max_body_bytes" in low:
        return "body"
    return "trap"
