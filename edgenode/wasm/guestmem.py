"""A filter instance's linear memory as a memoryview, for the Python host functions and
snapshots (the host core reads and writes it directly)."""

from __future__ import annotations

import ctypes
import struct

from edgenode.wasm.errors import MemoryFault

__all__ = ["GuestMemory"]

_memview = ctypes.pythonapi.PyMemoryView_FromMemory
_memview.restype = ctypes.py_object
_memview.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
_PyBUF_WRITE = 0x200
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
class GuestMemory:
    """Linear memory as a memoryview over its fixed base address.

    The engine runs with ``memory_may_move = False`` (engine.py), so the base never
    moves and memory only grows: the cached view stays valid and a cached size is a
    safe lower bound.  Only an access past the cached size asks the instance again.
    """

    __slots__ = ("_inst", "size", "view", "stale", "base")

    def __init__(self, inst: object) -> None:
        """``inst``: the ``native.Instance`` owning the memory."""
        self._inst = inst
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
        size = self._inst.memory_size()  # type: ignore[attr-defined]
        if size != self.size:
            base = self.base = self._inst.memory_base() or 0  # type: ignore[attr-defined]
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
            self._inst.memory_grow((size - self.size) // 65536)  # type: ignore[attr-defined]
            self.stale = True
            self.refresh()

    def release(self) -> None:
        self.view = memoryview(b"")
        self.size = -1
        self.stale = True
