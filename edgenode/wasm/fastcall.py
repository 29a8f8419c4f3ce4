"""Unchecked wasmtime call paths: guest calls, host callbacks and guest memory.

wasmtime-py's ``Func.__call__`` and ``Linker.define_func`` type-check every value in
Python (18-70 µs per call); the C API's *unchecked* entry points with preallocated
``wasmtime_val_raw`` arrays cost 1-3 µs.  Everything here trusts the signatures that
``engine.py`` checked once at load time.  Owners (Store, memory structs, CFUNCTYPE
objects) are kept referenced by the objects that use their raw pointers.
"""

from __future__ import annotations

import ctypes
import logging
import struct
import sys
from typing import Callable

from wasmtime import Trap, WasmtimeError
from wasmtime import _bindings as B

__all__ = ["CallBuffers", "GuestFunc", "GuestMemory", "GuestTrap", "MemoryFault", "HostTrap", "host_callback",
           "export_get"]

#: the same library without GIL release, for C calls that return in nanoseconds
_NOGIL_DLL = ctypes.PyDLL(B.dll._name)


def _raw_fn(name: str, restype: object, *argtypes: object, quick: bool = False) -> object:
    """A private ctypes binding taking plain ints: no per-call pointer type checks.

    ``quick`` calls keep the GIL (saves a release/re-acquire, ~0.2 µs); guest calls
    must release it, or the epoch ticker thread could never interrupt a runaway guest.
    """
    fn = (_NOGIL_DLL if quick else B.dll)[name]  # a fresh function object, not the shared one
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


_VP, _SZ = ctypes.c_void_p, ctypes.c_size_t
_call_unchecked = _raw_fn("wasmtime_func_call_unchecked", _VP, _VP, _VP, _VP, _SZ, _VP)
_set_deadline = _raw_fn("wasmtime_context_set_epoch_deadline", None, _VP, ctypes.c_uint64, quick=True)
_mem_data = B._wasmtime_memory_data
_mem_size = _raw_fn("wasmtime_memory_data_size", _SZ, _VP, _VP, quick=True)
#: (context, instance, name, name length, extern out) -> found; all plain addresses
export_get = _raw_fn("wasmtime_instance_export_get", ctypes.c_bool, _VP, _VP, ctypes.c_char_p, _SZ,
                     _VP, quick=True)
_trap_new = B._wasmtime_trap_new
_TrapPtr = ctypes.POINTER(B.wasm_trap_t)
_ErrPtr = ctypes.POINTER(B.wasmtime_error_t)
_byref = ctypes.byref
_addressof = ctypes.addressof
_string_at = ctypes.string_at
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_RAW_SLOT = ctypes.sizeof(B.wasmtime_val_raw)  # 16: i32 args sit at every 16th byte
_I32 = ctypes.c_int32
_log = logging.getLogger("edgenode.wasm")
_MADV_POPULATE_WRITE = 23


def _libc_madvise() -> Callable[[int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = (_VP, _SZ, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


_madvise = _libc_madvise()


class GuestTrap(Exception):
    """A guest call trapped (unreachable, out-of-bounds, deadline, proc_exit, host trap)."""


class HostTrap(Exception):
    """Raised inside a host function to trap the calling guest with this message."""


class MemoryFault(Exception):
    """A guest pointer/size pair falls outside linear memory."""


MAX_SLOTS = 12  # the widest export the host calls takes 5 args; main/_start take <= 2


class CallBuffers:
    """Raw argument arrays shared by all exports of one instance.

    Guest calls into one instance never overlap except for the allocator, which a
    host function may call while a callback runs, so it gets a second array.
    """

    __slots__ = ("raw", "raw_addr", "i32", "nraw", "nraw_addr", "ni32", "trap", "trap_addr")

    def __init__(self) -> None:
        self.raw = (B.wasmtime_val_raw * MAX_SLOTS)()
        self.raw_addr = _addressof(self.raw)
        self.i32 = (_I32 * (MAX_SLOTS * _RAW_SLOT // 4)).from_buffer(self.raw)
        self.nraw = (B.wasmtime_val_raw * MAX_SLOTS)()
        self.nraw_addr = _addressof(self.nraw)
        self.ni32 = (_I32 * (MAX_SLOTS * _RAW_SLOT // 4)).from_buffer(self.nraw)
        self.trap = _VP()
        self.trap_addr = _addressof(self.trap)


class GuestFunc:
    """One exported function, called through ``wasmtime_func_call_unchecked``.

    All exports the host calls take and return i32 only; arguments are written
    through an int32 view of the instance's raw array (no ctypes objects per value).
    """

    __slots__ = ("name", "_ctx", "_func", "_func_addr", "_buf", "_n", "_has_result",
                 "deadline_ticks", "epoch")

    def __init__(self, ctx: object, func: B.wasmtime_func_t, name: str, nparams: int,
                 nresults: int, deadline_ticks: int, epoch: bool, buffers: CallBuffers) -> None:
        if max(nparams, nresults) > MAX_SLOTS:
            raise ValueError(f"export {name} has too many parameters")
        self.name = name
        self._ctx = ctx if isinstance(ctx, int) else ctypes.cast(ctx, _VP).value
        self._func = func
        self._func_addr = _addressof(func)
        self._buf = buffers
        self._n = max(nparams, nresults, 1)
        self._has_result = nresults > 0
        self.deadline_ticks = deadline_ticks
        self.epoch = epoch

    def _check(self, err: int | None, exc: type[Exception]) -> None:
        trap_holder = self._buf.trap
        if trap_holder.value:
            trap = Trap._from_ptr(ctypes.cast(trap_holder.value, _TrapPtr))
            trap_holder.value = None
            raise exc(f"{self.name}: {trap.message}")
        if err:
            raise exc(f"{self.name}: {WasmtimeError._from_ptr(ctypes.cast(err, _ErrPtr))}")

    def __call__(self, *args: int) -> int:
        buf = self._buf
        i32 = buf.i32
        k = 0
        for v in args:
            i32[k] = v
            k += 4
        if self.epoch:
            _set_deadline(self._ctx, self.deadline_ticks)
        err = _call_unchecked(self._ctx, self._func_addr, buf.raw_addr, self._n, buf.trap_addr)
        if err or buf.trap.value:
            self._check(err, GuestTrap)
        return i32[0] if self._has_result else 0

    def nested(self, *args: int) -> int:
        """Call from inside a host function: keeps the outer call's deadline."""
        buf = self._buf
        i32 = buf.ni32
        k = 0
        for v in args:
            i32[k] = v
            k += 4
        err = _call_unchecked(self._ctx, self._func_addr, buf.nraw_addr, self._n, buf.trap_addr)
        if err or buf.trap.value:
            self._check(err, HostTrap)
        return i32[0] if self._has_result else 0


class GuestMemory:
    """Linear memory as a memoryview over its fixed base address.

    The engine runs with ``memory_may_move = False`` (engine.py), so the base never
    moves and memory only grows: the cached view stays valid and a cached size is a
    safe lower bound.  Only an access past the cached size asks wasmtime again (one C
    call), so the common host call does no size query at all.
    """

    __slots__ = ("_ctx", "_mem", "_mem_ref", "_ctx_addr", "_mem_addr", "size", "view", "stale", "base")

    def __init__(self, ctx: object, mem: B.wasmtime_memory_t) -> None:
        self._ctx = ctx
        self._mem = mem
        self._mem_ref = _byref(mem)
        self._ctx_addr = ctypes.cast(ctx, _VP).value
        self._mem_addr = _addressof(mem)
        self.size = -1
        self.base = 0
        self.view: memoryview = memoryview(b"")
        #: ask for the current size on the next refresh() (callers that need it exact)
        self.stale = True
        self.refresh()

    def refresh(self) -> memoryview:
        if not self.stale:
            return self.view
        self.stale = False
        size = _mem_size(self._ctx_addr, self._mem_addr)
        if size != self.size:
            base = self.base = ctypes.cast(_mem_data(self._ctx, self._mem_ref), ctypes.c_void_p).value or 0
            self.view = memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B") if size else memoryview(b"")
            self.size = size
        return self.view

    def fits(self, end: int) -> bool:
        """Whether bytes up to ``end`` exist (re-reads the size only past the cached one)."""
        if end <= self.size:
            return True
        self.stale = True
        self.refresh()
        return end <= self.size

    def read(self, ptr: int, size: int) -> bytes:
        if ptr + size > self.size and not self.fits(ptr + size):
            raise MemoryFault(f"read of {size} bytes at {ptr:#x} past memory end {self.size:#x}")
        return bytes(self.view[ptr:ptr + size])

    def write(self, ptr: int, data: bytes) -> None:
        end = ptr + len(data)
        if end > self.size and not self.fits(end):
            raise MemoryFault(f"write of {len(data)} bytes at {ptr:#x} past memory end {self.size:#x}")
        self.view[ptr:end] = data

    def write_u32(self, ptr: int, value: int) -> None:
        if ptr + 4 > self.size and not self.fits(ptr + 4):
            raise MemoryFault(f"u32 store at {ptr:#x} past memory end")
        _U32.pack_into(self.view, ptr, value & 0xFFFFFFFF)

    def write_u64(self, ptr: int, value: int) -> None:
        if ptr + 8 > self.size and not self.fits(ptr + 8):
            raise MemoryFault(f"u64 store at {ptr:#x} past memory end")
        _U64.pack_into(self.view, ptr, value & 0xFFFFFFFFFFFFFFFF)

    def read_u32(self, ptr: int) -> int:
        if ptr + 4 > self.size and not self.fits(ptr + 4):
            raise MemoryFault(f"u32 load at {ptr:#x} past memory end")
        return _U32.unpack_from(self.view, ptr)[0]

    def prefault(self, limit: int) -> None:
        """Make the first ``limit`` bytes resident and writable without changing them.

        A fresh instance's first stores into each page otherwise take a page fault
        (~1-5 µs each) on the request path; pooled instances pay it in idle time.
        MADV_POPULATE_WRITE needs Linux 5.14+; elsewhere this is a no-op.
        """
        if _madvise is None:
            return
        self.stale = True
        self.refresh()
        if self.size > 0:
            _madvise(self.base, min(self.size, limit), _MADV_POPULATE_WRITE)

    def release(self) -> None:
        self.view = memoryview(b"")
        self.size = -1
        self.stale = True


def _new_trap(message: str) -> int:
    data = message.encode("utf-8", "replace")
    return ctypes.cast(_trap_new(data, len(data)), ctypes.c_void_p).value or 0


HostFn = Callable[[tuple[int, ...]], int | None]
_CALLBACK = ctypes.CFUNCTYPE(_SZ, _VP, _VP, _VP, _SZ)


def _arg_struct(params: str) -> struct.Struct:
    """i32 params unpack unsigned, i64 signed, each from a 16-byte raw slot."""
    return struct.Struct("<" + "".join("I12x" if c == "i" else "q8x" for c in params))


def host_callback(name: str, params: str, fn: HostFn, has_result: bool,
                  fault_code: int) -> tuple[object, object]:
    """Wrap ``fn(args) -> int`` as a ``wasmtime_func_unchecked_callback_t``.

    Returns (C callback for the linker, Python CFUNCTYPE object); keep both alive.
    A guest pointer outside memory returns ``fault_code`` (INVALID_MEMORY_ACCESS for
    proxy_*, EFAULT for WASI); a ``HostTrap`` or any unexpected exception becomes a
    trap of the calling guest, never an exception crossing the C boundary.
    """
    unpack = _arg_struct(params).unpack
    size = len(params) * _RAW_SLOT
    from_address = _I32.from_address

    def cb(env: int, caller: int, raw: int, n: int) -> int:
        try:
            result = fn(unpack(_string_at(raw, size)) if size else ())
            if has_result:
                from_address(raw).value = result
            return 0
        except MemoryFault:
            from_address(raw).value = fault_code
            return 0
        except HostTrap as exc:
            return _new_trap(str(exc))
        except BaseException as exc:  # noqa: BLE001 - must not cross into C
            _log.exception("host function %s failed", name)
            return _new_trap(f"host function {name} failed: {exc!r}")

    py_cb = _CALLBACK(cb)
    return ctypes.cast(py_cb, B.wasmtime_func_unchecked_callback_t), py_cb
