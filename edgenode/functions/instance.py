"""One guest instance and one call of its ``handle``: store, limits, instantiate, call.

A ``GuestInstance`` is a store plus an instance of a ``LoadedFunction`` (both made in C
by ``_hostcall.Instance``, with the instance's resource table).  Per-request isolation
makes a new one per request (nothing survives between requests, Spin's model); reuse
mode keeps one and calls ``handle`` again, until it traps.  ``run`` executes on
whatever thread calls it: the loop's for inline requests (the GIL stays held: the guest
runs like a C function), a worker's for threaded ones (the GIL is released while guest
code runs).
"""

from __future__ import annotations

import ctypes

from edgenode.functions._hostcall import Instance, Source, WasmError
from edgenode.functions.component import FunctionRuntime, LoadedFunction
from edgenode.functions.invocation import Invocation
from edgenode.http.messages import Request

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


def _addr(ptr: object) -> int:
    return ctypes.cast(ptr, ctypes.c_void_p).value or 0


class GuestInstance:
    __slots__ = ("loaded", "core", "memory_limit")

    def __init__(self, runtime: FunctionRuntime, loaded: LoadedFunction, memory_limit: int) -> None:
        self.loaded = loaded
        self.memory_limit = memory_limit
        try:
            self.core = Instance(_addr(runtime.engine.ptr()), _addr(loaded.linker.ptr()),
                                 _addr(loaded.component.ptr()), _addr(loaded.handle_index.ptr()), memory_limit,
                                 (runtime.engine, loaded.linker, loaded.component, loaded.handle_index))
        except WasmError as exc:
            raise GuestError(_kind(str(exc)), f"instantiation failed: {first_line(str(exc))}") from None

    @property
    def table(self) -> object:
        return self.core.table

    @property
    def calls(self) -> int:
        return self.core.calls

    @property
    def broken(self) -> bool:
        return bool(self.core.broken)

    @property
    def instantiate_s(self) -> float:
        return self.core.instantiate_s

    def run(self, inv: Invocation, request: Request, source: Source, ticks: int) -> None:
        """Call ``handle(request, outparam)``; raises ``GuestError`` on a trap or limit."""
        message = self.core.run(inv, request, source, ticks)
        if message is not None:
            kind = _kind(message)
            if inv.cancelled or "wall-clock timeout" in message:
                kind = "timeout"
            elif kind == "cpu" and inv.limits.timeout * 1000 <= inv.limits.cpu_ms:
                # epoch ticks are wall-clock and the deadline was the timeout's: this
                # interrupt is the timeout, whether it or the loop's own wait fired first
                raise GuestError("timeout", f"no response within the wall-clock timeout "
                                            f"({inv.limits.timeout:g}s): {first_line(message)}")
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
