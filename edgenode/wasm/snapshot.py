"""Post-configure snapshots for per-request instances (the idea of Wizer, done at run time).

A per-request instance would otherwise run ``_initialize``, ``proxy_on_vm_start`` and
``proxy_on_configure`` for every stream (60-130 µs for the filters in filters/).  With a
snapshot, the stage starts one instance, records how its linear memory (4 KiB pages
that differ from a fresh instance's) and its mutable globals look after configure,
and every later instance is a fresh instantiation with those pages and globals written
back: the same state, none of the calls.

Globals are not reachable from the host unless exported, so the module is rewritten
once (``export_globals``) to export each mutable global under a reserved name; the
rewritten module is cached like any other.  Everything here is pure (bytes in, bytes
out); ``vm.py`` applies a ``Snapshot``.  What it cannot capture is documented in
docs/filters-abi.md (tables, dropped segments) and start-up with effects outside the
instance (callouts, shared data, queues, randomness, metric updates) disables it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = ["export_globals", "GLOBAL_PREFIX", "diff_pages", "nonzero_pages", "bake", "Snapshot",
           "PAGE", "BAKE_MIN_BYTES", "resettable"]

#: export names given to mutable globals (no SDK uses names like this)
GLOBAL_PREFIX = "edgenode.snapshot.global."
#: diff granularity: the OS page, so restoring touches only pages configure wrote
PAGE = 4096
#: value types a snapshot can carry (i32, i64, f32, f64)
_NUMERIC = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64"}
_SECTION_IMPORT, _SECTION_TABLE, _SECTION_GLOBAL, _SECTION_EXPORT = 2, 4, 6, 7
_SECTION_MEMORY, _SECTION_START, _SECTION_DATA, _SECTION_DATACOUNT = 5, 8, 11, 12
#: snapshots with at least this much initialised memory are baked into the module
#: (``bake``): copying them into every instance costs more than mapping an image
BAKE_MIN_BYTES = 256 * 1024


class _Unsupported(Exception):
    """The module uses something the rewriter does not handle: no snapshot."""


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise _Unsupported("truncated module")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result

    def skip(self, n: int) -> None:
        if self.pos + n > self.end:
            raise _Unsupported("truncated module")
        self.pos += n

    def name(self) -> None:
        self.skip(self.uleb())


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _skip_const_expr(r: _Reader) -> None:
    """A global initializer: constants, global.get, ref.*, extended-const arithmetic."""
    while True:
        op = r.byte()
        if op == 0x0B:  # end
            return
        if op in (0x41, 0x42, 0x23, 0xD2):  # i32/i64.const, global.get, ref.func
            r.uleb()
        elif op == 0x43:
            r.skip(4)
        elif op == 0x44:
            r.skip(8)
        elif op == 0xD0:  # ref.null heaptype
            r.byte()
        elif op in (0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E):
            continue
        else:
            raise _Unsupported(f"global initializer opcode {op:#x}")


def export_globals(wasm: bytes) -> tuple[bytes, list[tuple[str, str]]]:
    """``wasm`` with every mutable global exported; returns (module, [(export, type)]).

    Raises ValueError when the module has something a snapshot cannot carry
    (imported globals/tables/memories, mutable non-numeric globals).
    """
    try:
        return _export_globals(wasm)
    except _Unsupported as exc:
        raise ValueError(str(exc)) from None


def _sections(wasm: bytes) -> list[tuple[int, int, int]]:
    """(id, start of contents, end) of every section."""
    if wasm[:8] != b"\0asm\x01\0\0\0":
        raise _Unsupported("not a core Wasm module")
    r = _Reader(wasm, 8)
    sections: list[tuple[int, int, int]] = []
    while r.pos < r.end:
        sid = r.byte()
        size = r.uleb()
        sections.append((sid, r.pos, r.pos + size))
        r.skip(size)
    return sections


def _export_globals(wasm: bytes) -> tuple[bytes, list[tuple[str, str]]]:
    sections = _sections(wasm)
    mutable: list[tuple[int, str]] = []
    for sid, start, end in sections:
        s = _Reader(wasm, start, end)
        if sid == _SECTION_IMPORT:
            for _ in range(s.uleb()):
                s.name()
                s.name()
                if s.byte() != 0x00:
                    raise _Unsupported("imports other than functions")
                s.uleb()
        elif sid == _SECTION_GLOBAL:
            for index in range(s.uleb()):
                vtype, mut = s.byte(), s.byte()
                if mut:
                    if vtype not in _NUMERIC:
                        raise _Unsupported(f"mutable global of type {vtype:#x}")
                    mutable.append((index, _NUMERIC[vtype]))
                elif vtype not in _NUMERIC and vtype not in (0x70, 0x6F, 0x7B):
                    raise _Unsupported(f"global of type {vtype:#x}")
                _skip_const_expr(s)
    exports = [(f"{GLOBAL_PREFIX}{i}", t) for i, t in mutable]
    if not exports:
        return wasm, []
    out = bytearray(wasm[:8])
    found = False
    for sid, start, end in sections:
        body = wasm[start:end]
        if sid == _SECTION_EXPORT:
            found = True
            s = _Reader(wasm, start, end)
            count = s.uleb()
            extra = b"".join(_uleb(len(n)) + n.encode() + b"\x03" + _uleb(i)
                             for (i, _), (n, _) in zip(mutable, exports))
            body = _uleb(count + len(exports)) + wasm[s.pos:end] + extra
        out.append(sid)
        out += _uleb(len(body))
        out += body
    if not found:
        raise _Unsupported("module has no export section")
    return bytes(out), exports


def diff_pages(fresh: bytes | memoryview, started: bytes | memoryview) -> list[tuple[int, bytes]]:
    """(offset, bytes) runs of PAGE-sized pages where ``started`` differs from ``fresh``
    (memory past the end of ``fresh`` counts as zeros)."""
    runs: list[tuple[int, bytes]] = []
    zero = bytes(PAGE)
    run_start = -1
    n_fresh = len(fresh)
    for off in range(0, len(started), PAGE):
        page = started[off:off + PAGE]
        before = fresh[off:off + PAGE] if off < n_fresh else zero[:len(page)]
        if page != before:
            if run_start < 0:
                run_start = off
        elif run_start >= 0:
            runs.append((run_start, bytes(started[run_start:off])))
            run_start = -1
    if run_start >= 0:
        runs.append((run_start, bytes(started[run_start:])))
    return runs


def nonzero_pages(memory: bytes | memoryview) -> list[tuple[int, bytes]]:
    """(offset, bytes) runs of PAGE-sized pages that are not all zero: a memory image."""
    return diff_pages(b"", memory)


def resettable(wasm: bytes) -> bool:
    """Whether a used instance of ``wasm`` is back in its snapshot state once its linear
    memory and mutable globals are, i.e. it has no other state a stream could change.

    That rules out a table (table.set/grow/fill/copy/init would change it, and a reset
    does not restore tables), other than exactly one memory, any import but functions
    (state outside the instance) and passive data segments (a data.drop would outlive
    the reset; active ones are dropped at instantiation already).  A module that fails
    to parse is not resettable."""
    memories = 0
    try:
        for sid, start, end in _sections(wasm):
            s = _Reader(wasm, start, end)
            if sid == _SECTION_TABLE and s.uleb():
                return False
            if sid == _SECTION_MEMORY:
                memories = s.uleb()
            elif sid == _SECTION_IMPORT:
                for _ in range(s.uleb()):
                    s.name()
                    s.name()
                    if s.byte() != 0x00:
                        return False
                    s.uleb()
            elif sid == _SECTION_DATA:
                for _ in range(s.uleb()):
                    flag = s.uleb()
                    if flag == 1:
                        return False
                    if flag == 2:
                        s.uleb()
                    elif flag != 0:
                        return False
                    _skip_const_expr(s)
                    s.skip(s.uleb())
    except _Unsupported:
        return False
    return memories == 1


def _sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if (value == 0 and not b & 0x40) or (value == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def _const(wtype: str, value: int | float) -> bytes:
    if wtype == "i32":
        return b"\x41" + _sleb(int(value)) + b"\x0b"
    if wtype == "i64":
        return b"\x42" + _sleb(int(value)) + b"\x0b"
    if wtype == "f32":
        return b"\x43" + struct.pack("<f", value) + b"\x0b"
    return b"\x44" + struct.pack("<d", value) + b"\x0b"


def _vec(items: list[bytes]) -> bytes:
    return _uleb(len(items)) + b"".join(items)


def bake(wasm: bytes, snapshot: "Snapshot", image: list[tuple[int, bytes]]) -> bytes:
    """``wasm`` (as ``export_globals`` returned it) rewritten to *start* in ``snapshot``'s
    state, the way Wizer bakes a pre-initialised module: memory starts at the snapshot's
    size with ``image`` (its non-zero pages) as the data, mutable globals start at their
    snapshot values, the start function is gone.  wasmtime then maps the data as a
    copy-on-write image, so an instance costs the same however much memory start-up
    initialised.  Active data segments keep their index (emptied: their bytes are in the
    image); passive ones are unchanged.  Raises ValueError for a layout it cannot carry."""
    try:
        return _bake(wasm, snapshot, image)
    except _Unsupported as exc:
        raise ValueError(str(exc)) from None


def _bake(wasm: bytes, snapshot: "Snapshot", image: list[tuple[int, bytes]]) -> bytes:
    sections = _sections(wasm)
    values = {int(name[len(GLOBAL_PREFIX):]): (wtype, value) for name, wtype, value in snapshot.globals}
    pages = snapshot.memory_size // 65536
    new_segments = [b"\x00\x41" + _sleb(off) + b"\x0b" + _uleb(len(data)) + data for off, data in image]
    out = bytearray(wasm[:8])
    seen_data = False
    for sid, start, end in sections:
        s = _Reader(wasm, start, end)
        body = wasm[start:end]
        if sid == _SECTION_MEMORY:
            if s.uleb() != 1:
                raise _Unsupported("not exactly one memory")
            flags = s.byte()
            if flags not in (0, 1):
                raise _Unsupported(f"memory flags {flags:#x}")
            s.uleb()
            body = _uleb(1) + bytes([flags]) + _uleb(pages) + (_uleb(s.uleb()) if flags == 1 else b"")
        elif sid == _SECTION_GLOBAL:
            items = []
            for index in range(s.uleb()):
                head = wasm[s.pos:s.pos + 2]
                s.skip(2)
                init_start = s.pos
                _skip_const_expr(s)
                init = wasm[init_start:s.pos]
                if index in values and head[1]:
                    init = _const(*values[index])
                items.append(head + init)
            body = _vec(items)
        elif sid == _SECTION_START:
            continue
        elif sid == _SECTION_DATACOUNT:
            body = b""  # rewritten once the data section's count is known
        elif sid == _SECTION_DATA:
            seen_data = True
            segments = []
            for _ in range(s.uleb()):
                flag = s.uleb()
                if flag == 1:
                    seg_start = s.pos
                    s.skip(s.uleb())
                    segments.append(b"\x01" + wasm[seg_start:s.pos])
                    continue
                if flag == 2:
                    if s.uleb() != 0:
                        raise _Unsupported("data for a second memory")
                elif flag != 0:
                    raise _Unsupported(f"data segment flag {flag}")
                _skip_const_expr(s)
                s.skip(s.uleb())
                segments.append(b"\x00\x41\x00\x0b\x00")  # emptied: its bytes are in the image
            body = _vec(segments + new_segments)
        out.append(sid)
        out += _uleb(len(body))
        out += body
    if not seen_data and new_segments:
        out.append(_SECTION_DATA)
        body = _vec(new_segments)
        out += _uleb(len(body)) + body
    return _fix_datacount(bytes(out))


def _fix_datacount(wasm: bytes) -> bytes:
    """Fill the (emptied) data count section with the data section's segment count."""
    sections = _sections(wasm)
    count = next((_Reader(wasm, st, en).uleb() for sid, st, en in sections if sid == _SECTION_DATA), 0)
    out = bytearray(wasm[:8])
    for sid, start, end in sections:
        body = _uleb(count) if sid == _SECTION_DATACOUNT else wasm[start:end]
        out.append(sid)
        out += _uleb(len(body)) + body
    return bytes(out)


@dataclass(frozen=True)
class Snapshot:
    """An instance's state after start-up, guest side and host side."""

    memory_size: int
    pages: list[tuple[int, bytes]]
    #: (export name, wasm type, value) of every mutable global
    globals: list[tuple[str, str, int | float]]
    root_id: int
    next_context_id: int
    tick_ms: int
    #: the non-zero pages of the started memory (what ``bake`` writes as the image)
    image: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def image_bytes(self) -> int:
        return sum(len(data) for _, data in self.image)

    def memory(self) -> bytes:
        """The whole started memory (``memory_size`` bytes), what a reset compares with."""
        out = bytearray(self.memory_size)
        for off, data in self.image:
            out[off:off + len(data)] = data
        return bytes(out)
