"""Unchecked wasmtime call paths: instances, guest calls, host callbacks, guest memory, globals.

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
           "export_get", "NativeInstance", "EXTERN_SIZE", "EXTERN_OF", "GlobalState"]

#: the same library without GIL release, for C calls that return in nanoseconds
_NOGIL_DLL = ctypes.PyDLL(B.dll._name)


def _raw_fn(name: str, restype: object, *argtypes: object, quick: bool = False) -> object:
    """A private ctypes binding taking plain ints: no per-call pointer type checks
    (no ``argtypes`` at all: the caller passes ctypes objects).

    ``quick`` calls keep the GIL (saves a release/re-acquire, ~0.2 µs); guest calls
    must release it, or the epoch ticker thread could never interrupt a runaway guest.
    """
    fn = (_NOGIL_DLL if quick else B.dll)[name]  # a fresh function object, not the shared one
    fn.restype = restype
    if argtypes:
        fn.argtypes = argtypes
    return fn


_VP, _SZ = ctypes.c_void_p, ctypes.c_size_t
#: the same without argtypes, for prebuilt ctypes arguments (no per-call int conversion:
#: ~0.2 µs less per guest call)
_call_prebuilt = _raw_fn("wasmtime_func_call_unchecked", _VP)
_set_deadline = _raw_fn("wasmtime_context_set_epoch_deadline", None, _VP, ctypes.c_uint64, quick=True)
_mem_data = _raw_fn("wasmtime_memory_data", _VP, _VP, _VP, quick=True)
_mem_size = _raw_fn("wasmtime_memory_data_size", _SZ, _VP, _VP, quick=True)
#: (context, instance, name, name length, extern out) -> found; all plain addresses
export_get = _raw_fn("wasmtime_instance_export_get", ctypes.c_bool, _VP, _VP, ctypes.c_char_p, _SZ,
                     _VP, quick=True)
_store_new = _raw_fn("wasmtime_store_new", _VP, _VP, _VP, _VP, quick=True)
_store_context = _raw_fn("wasmtime_store_context", _VP, _VP, quick=True)
_store_limiter = _raw_fn("wasmtime_store_limiter", None, _VP, *(ctypes.c_int64,) * 5, quick=True)
_store_delete = _raw_fn("wasmtime_store_delete", None, _VP, quick=True)
# instantiation may run a start function: release the GIL like any guest call
_pre_instantiate = _raw_fn("wasmtime_instance_pre_instantiate", _VP, _VP, _VP, _VP, _VP)
_global_get = _raw_fn("wasmtime_global_get", None, _VP, _VP, _VP, quick=True)
_global_set = _raw_fn("wasmtime_global_set", _VP, _VP, _VP, _VP, quick=True)
_memory_grow = _raw_fn("wasmtime_memory_grow", _VP, _VP, _VP, ctypes.c_uint64, _VP, quick=True)
_memview = ctypes.pythonapi.PyMemoryView_FromMemory
_memview.restype = ctypes.py_object
_memview.argtypes = (_VP, ctypes.c_ssize_t, ctypes.c_int)
_PyBUF_WRITE = 0x200
EXTERN_SIZE = ctypes.sizeof(B.wasmtime_extern_t)
#: offset of the union (func/memory struct) inside a wasmtime_extern_t
EXTERN_OF = B.wasmtime_extern_t.of.offset
_trap_new = B._wasmtime_trap_new
_TrapPtr = ctypes.POINTER(B.wasm_trap_t)
_ErrPtr = ctypes.POINTER(B.wasmtime_error_t)
_addressof = ctypes.addressof
_string_at = ctypes._string_at  # what ctypes.string_at calls, minus a Python frame per host call
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
    host function may call while a callback runs, so it gets a second array.  A
    closed instance's buffers are recycled (``take``/``give``): nothing in them
    outlives a call.
    """

    __slots__ = ("raw", "i32", "nraw", "ni32", "trap", "trap_addr", "raw_ref", "nraw_ref", "trap_ref")
    _spare: list["CallBuffers"] = []

    def __init__(self) -> None:
        self.raw = (B.wasmtime_val_raw * MAX_SLOTS)()
        self.i32 = (_I32 * (MAX_SLOTS * _RAW_SLOT // 4)).from_buffer(self.raw)
        self.nraw = (B.wasmtime_val_raw * MAX_SLOTS)()
        self.ni32 = (_I32 * (MAX_SLOTS * _RAW_SLOT // 4)).from_buffer(self.nraw)
        self.trap = _VP()
        self.trap_addr = _addressof(self.trap)
        self.raw_ref = ctypes.byref(self.raw)
        self.nraw_ref = ctypes.byref(self.nraw)
        self.trap_ref = ctypes.byref(self.trap)

    @classmethod
    def take(cls) -> "CallBuffers":
        spare = cls._spare
        return spare.pop() if spare else cls()

    def give(self) -> None:
        """Return these buffers for another instance (their owner never calls again)."""
        if len(self._spare) < 64:
            self._spare.append(self)


class GuestFunc:
    """One exported function, called through ``wasmtime_func_call_unchecked``.

    All exports the host calls take and return i32 only; arguments are written
    through an int32 view of the instance's raw array (no ctypes objects per value).
    ``func_addr`` is the address of the export's ``wasmtime_func_t``; ``owner`` keeps
    the memory holding it alive.
    """

    __slots__ = ("name", "_ctx", "_owner", "_buf", "_has_result", "deadline_ticks", "_tick",
                 "_set_at", "_argv", "_nargv")

    def __init__(self, ctx: int, func_addr: int, owner: object, name: str, nparams: int,
                 nresults: int, deadline_ticks: int, buffers: CallBuffers, tick: list[int]) -> None:
        """``tick``: the engine's tick counter (``WasmEngine.tick``), advanced before each
        epoch increment.  A call in the same tick as this export's last deadline set
        reuses that deadline: it is the same absolute epoch (saves a C call per call)."""
        if max(nparams, nresults) > MAX_SLOTS:
            raise ValueError(f"export {name} has too many parameters")
        self.name = name
        self._ctx = ctx
        self._owner = owner
        self._buf = buffers
        self._has_result = nresults > 0
        self.deadline_ticks = deadline_ticks
        self._tick = tick
        self._set_at = -1
        # prebuilt arguments of wasmtime_func_call_unchecked (ctx, func, args, count, trap)
        head, n = (_VP(ctx), _VP(func_addr)), _SZ(max(nparams, nresults, 1))
        self._argv = (*head, buffers.raw_ref, n, buffers.trap_ref)
        self._nargv = (*head, buffers.nraw_ref, n, buffers.trap_ref)

    def set_deadline(self, ticks: int) -> None:
        """Use ``ticks`` from the next call on (start-up calls get a longer deadline)."""
        self.deadline_ticks = ticks
        self._set_at = -1

    def _check(self, err: int | None, exc: type[Exception]) -> None:
        self._set_at = -1  # a deadline trap leaves the deadline behind: set it anew
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
        tick = self._tick[0]
        if tick != self._set_at:
            _set_deadline(self._ctx, self.deadline_ticks)
            self._set_at = tick
        err = _call_prebuilt(*self._argv)
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
        err = _call_prebuilt(*self._nargv)
        if err or buf.trap.value:
            self._check(err, HostTrap)
        return i32[0] if self._has_result else 0


class NativeInstance:
    """A wasmtime Store holding one instance, made through the C API alone.

    wasmtime-py's Store/InstancePre/Instance objects cost ~10 µs of Python per
    instance; per-request isolation makes one per stream.  ``delete()`` drops the
    store (with the pooling allocator that returns the slot); it also runs when the
    object is collected without it.
    """

    __slots__ = ("store", "ctx", "instance", "inst_addr", "__weakref__")

    def __init__(self, engine_ptr: int, pre_ptr: int, memory_limit: int, deadline_ticks: int,
                 buffers: CallBuffers) -> None:
        store = self.store = _store_new(engine_ptr, None, None)
        ctx = self.ctx = _store_context(store)
        _store_limiter(store, memory_limit, -1, -1, -1, -1)
        _set_deadline(ctx, deadline_ticks)
        inst = self.instance = B.wasmtime_instance_t()
        self.inst_addr = _addressof(inst)
        err = _pre_instantiate(pre_ptr, ctx, self.inst_addr, buffers.trap_addr)
        if err or buffers.trap.value:
            message = ""
            if buffers.trap.value:
                message = Trap._from_ptr(ctypes.cast(buffers.trap.value, _TrapPtr)).message
                buffers.trap.value = None
            if err:
                message = str(WasmtimeError._from_ptr(ctypes.cast(err, _ErrPtr)))
            self.delete()
            raise WasmtimeError(message)

    def delete(self) -> None:
        store, self.store = self.store, None
        if store:
            _store_delete(store)

    def __del__(self) -> None:
        self.delete()


class GuestMemory:
    """Linear memory as a memoryview over its fixed base address.

    The engine runs with ``memory_may_move = False`` (engine.py), so the base never
    moves and memory only grows: the cached view stays valid and a cached size is a
    safe lower bound.  Only an access past the cached size asks wasmtime again (one C
    call), so the common host call does no size query at all.
    """

    __slots__ = ("_ctx_addr", "_mem_addr", "_owner", "size", "view", "stale", "base")

    def __init__(self, ctx: int, mem_addr: int, owner: object) -> None:
        """``mem_addr``: address of the export's ``wasmtime_memory_t``, kept alive by ``owner``."""
        self._ctx_addr = ctx
        self._mem_addr = mem_addr
        self._owner = owner
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
            base = self.base = _mem_data(self._ctx_addr, self._mem_addr) or 0
            self.view = _memview(base, size, _PyBUF_WRITE) if size else memoryview(b"")
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

    def grow_to(self, size: int) -> None:
        """Grow linear memory to ``size`` bytes (a multiple of 64 KiB); never shrinks."""
        self.stale = True
        self.refresh()
        if size > self.size:
            prev = ctypes.c_uint64()
            err = _memory_grow(self._ctx_addr, self._mem_addr, (size - self.size) // 65536,
                               _addressof(prev))
            if err:
                raise WasmtimeError._from_ptr(ctypes.cast(err, _ErrPtr))
            self.stale = True
            self.refresh()

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


_VAL_KINDS = {"i32": (0, "i32"), "i64": (1, "i64"), "f32": (2, "f32"), "f64": (3, "f64")}
_VAL_SIZE = ctypes.sizeof(B.wasmtime_val_t)
_EXTERN_GLOBAL = 1


class GlobalState:
    """Reads and writes exported globals of an instance through the C API.

    Built once per snapshot: the values sit in one preallocated ``wasmtime_val_t``
    array, so writing them into a new instance allocates nothing per global.
    """

    def __init__(self, globals_: list[tuple[str, str, int | float]]) -> None:
        self.names = [name.encode() for name, _, _ in globals_]
        self.values = (B.wasmtime_val_t * max(1, len(globals_)))()
        for val, (_, wtype, value) in zip(self.values, globals_):
            kind, field = _VAL_KINDS[wtype]
            val.kind = kind
            setattr(val.of, field, value)
        self.values_addr = _addressof(self.values)

    @staticmethod
    def read(ctx: int, inst_addr: int, exports: list[tuple[str, str]]) -> list[tuple[str, str, int | float]]:
        out: list[tuple[str, str, int | float]] = []
        for name, wtype in exports:
            ext = B.wasmtime_extern_t()
            encoded = name.encode()
            if not export_get(ctx, inst_addr, encoded, len(encoded), _addressof(ext)) \
                    or ext.kind != _EXTERN_GLOBAL:
                raise KeyError(name)
            val = B.wasmtime_val_t()
            _global_get(ctx, _addressof(ext) + EXTERN_OF, _addressof(val))
            out.append((name, wtype, getattr(val.of, _VAL_KINDS[wtype][1])))
        return out

    def write(self, ctx: int, inst_addr: int) -> None:
        n = len(self.names)
        if not n:
            return
        exts = (B.wasmtime_extern_t * n)()
        addr = _addressof(exts)
        val_addr = self.values_addr
        for name in self.names:
            if not export_get(ctx, inst_addr, name, len(name), addr):
                raise WasmtimeError(f"snapshot global {name.decode()} is not exported")
            err = _global_set(ctx, addr + EXTERN_OF, val_addr)
            if err:
                raise WasmtimeError._from_ptr(ctypes.cast(err, _ErrPtr))
            addr += EXTERN_SIZE
            val_addr += _VAL_SIZE


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
