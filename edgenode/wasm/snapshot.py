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

import hashlib
import struct
from array import array
from dataclasses import dataclass, field

__all__ = ["export_globals", "GLOBAL_PREFIX", "diff_pages", "nonzero_pages", "bake", "Snapshot",
           "PAGE", "BAKE_MIN_BYTES", "resettable", "mutations", "ResetImage"]

#: export names given to mutable globals (no SDK uses names like this)
GLOBAL_PREFIX = "edgenode.snapshot.global."
#: diff granularity: the OS page, so restoring touches only pages configure wrote
PAGE = 4096
#: value types a snapshot can carry (i32, i64, f32, f64)
_NUMERIC = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64"}
_SECTION_IMPORT, _SECTION_MEMORY, _SECTION_GLOBAL, _SECTION_EXPORT = 2, 5, 6, 7
_SECTION_START, _SECTION_CODE, _SECTION_DATA, _SECTION_DATACOUNT = 8, 10, 11, 12
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


#: sha256 of a module -> ``resettable``'s verdict (a large module's scan takes ~0.3 s)
_VERDICTS: dict[bytes, bool] = {}


def resettable(wasm: bytes) -> bool:
    """Whether a used instance of ``wasm`` is back in its snapshot state once its linear
    memory and mutable globals are, i.e. it has no other state a stream could change.

    That needs exactly one memory, no import but functions (state outside the instance)
    and code with no instruction that changes a table or a segment (``mutations``):
    tables then keep the elements instantiation gave them and segments stay as they
    are, so a reset need not look at either.  A module that fails to parse (or uses
    an instruction the scan does not know) is not resettable."""
    key = hashlib.sha256(wasm).digest()
    verdict = _VERDICTS.get(key)
    if verdict is None:
        verdict = _VERDICTS[key] = _resettable(wasm)
    return verdict


def _resettable(wasm: bytes) -> bool:
    memories = 0
    try:
        for sid, start, end in _sections(wasm):
            s = _Reader(wasm, start, end)
            if sid == _SECTION_MEMORY:
                memories = s.uleb()
            elif sid == _SECTION_IMPORT:
                for _ in range(s.uleb()):
                    s.name()
                    s.name()
                    if s.byte() != 0x00:
                        return False
                    s.uleb()
        return memories == 1 and not _mutations(wasm)
    except _Unsupported:
        return False


#: immediates of one-byte opcodes (kinds below); _UNKNOWN: an opcode the scan refuses
_NONE, _LEB, _LEB2, _MEMARG, _BLOCK, _BR_TABLE, _F32, _F64, _SELECT_T, _TRY_TABLE = range(10)
_PREFIX_FC, _PREFIX_FD, _PREFIX_FE, _TABLE_SET, _UNKNOWN = range(10, 15)
_KNOWN_OPS: dict[int, int] = {
    0x00: _NONE, 0x01: _NONE, 0x02: _BLOCK, 0x03: _BLOCK, 0x04: _BLOCK, 0x05: _NONE,
    0x06: _BLOCK, 0x07: _LEB, 0x08: _LEB, 0x09: _LEB, 0x0A: _NONE, 0x0B: _NONE,
    0x0C: _LEB, 0x0D: _LEB, 0x0E: _BR_TABLE, 0x0F: _NONE, 0x10: _LEB, 0x11: _LEB2,
    0x12: _LEB, 0x13: _LEB2, 0x14: _LEB, 0x15: _LEB, 0x18: _LEB, 0x19: _NONE,
    0x1A: _NONE, 0x1B: _NONE, 0x1C: _SELECT_T, 0x1F: _TRY_TABLE,
    0x20: _LEB, 0x21: _LEB, 0x22: _LEB, 0x23: _LEB, 0x24: _LEB, 0x25: _LEB, 0x26: _TABLE_SET,
    **{op: _MEMARG for op in range(0x28, 0x3F)},
    0x3F: _LEB, 0x40: _LEB, 0x41: _LEB, 0x42: _LEB, 0x43: _F32, 0x44: _F64,
    **{op: _NONE for op in range(0x45, 0xC5)},
    0xD0: _LEB, 0xD1: _NONE, 0xD2: _LEB, 0xD3: _NONE, 0xD4: _LEB, 0xD5: _NONE, 0xD6: _LEB,
    0xFC: _PREFIX_FC, 0xFD: _PREFIX_FD, 0xFE: _PREFIX_FE,
}
_OPS = [_KNOWN_OPS.get(op, _UNKNOWN) for op in range(256)]
#: 0xFC-prefixed instructions: sub-opcode -> (LEB immediates, name if it changes a table
#: or a segment).  memory.init writes memory (restored) and leaves its segment as it is.
_FC_OPS: dict[int, tuple[int, str | None]] = {
    **{op: (0, None) for op in range(8)}, 8: (2, None), 9: (1, "data.drop"), 10: (2, None),
    11: (1, None), 12: (2, "table.init"), 13: (1, "elem.drop"), 14: (2, "table.copy"),
    15: (1, "table.grow"), 16: (1, None), 17: (1, "table.fill"),
}
#: 0xFD (SIMD): sub-opcodes with a memarg, with a memarg and a lane, with 16 bytes, with a
#: lane; every other one up to the last relaxed-SIMD opcode has no immediate
_FD_MEMARG = frozenset(range(0, 12)) | {92, 93}
_FD_MEMARG_LANE = frozenset(range(84, 92))
_FD_BYTES16 = frozenset((12, 13))
_FD_LANE = frozenset(range(21, 35))
_FD_LAST = 0x113


def _leb_end(data: bytes, pos: int) -> int:
    """Where the LEB128 number starting at ``pos`` ends."""
    while data[pos] & 0x80:
        pos += 1
    return pos + 1


def _type_end(data: bytes, pos: int) -> int:
    """Where the value or block type starting at ``pos`` ends."""
    if data[pos] in (0x63, 0x64):  # (ref null? heaptype)
        return _leb_end(data, pos + 1)
    return _leb_end(data, pos)  # one byte, or a type index


def _memarg_end(data: bytes, pos: int) -> int:
    if data[pos] & 0x40:  # multi-memory: a memory index follows the alignment
        pos = _leb_end(data, pos)
    return _leb_end(data, _leb_end(data, pos))


def mutations(wasm: bytes) -> set[str]:
    """The instructions in ``wasm``'s code that change a table or a segment (table.set,
    table.grow/fill/copy/init, elem.drop, data.drop): a linear decode of every function
    body.  Raises ValueError for an opcode it does not know (GC, a future proposal), so
    an unknown instruction can never pass as harmless."""
    try:
        return _mutations(wasm)
    except _Unsupported as exc:
        raise ValueError(str(exc)) from None


def _mutations(wasm: bytes) -> set[str]:
    found: set[str] = set()
    for sid, start, end in _sections(wasm):
        if sid == _SECTION_CODE:
            r = _Reader(wasm, start, end)
            for _ in range(r.uleb()):
                size = r.uleb()
                try:
                    _scan_body(wasm, r.pos, r.pos + size, found)
                except IndexError:
                    raise _Unsupported("truncated function body") from None
                r.skip(size)
    return found


def _scan_body(data: bytes, pos: int, end: int, found: set[str]) -> None:
    """Decode one function body (locals, then instructions up to ``end``), adding the
    names of the state-changing instructions to ``found``."""
    leb_end, memarg_end, type_end, ops = _leb_end, _memarg_end, _type_end, _OPS
    body = _Reader(data, pos, end)
    for _ in range(body.uleb()):  # locals: (count, type)
        body.uleb()
        body.pos = type_end(data, body.pos)
    pos = body.pos
    while pos < end:
        op = data[pos]
        kind = ops[op]
        pos += 1
        if kind == _NONE:
            continue
        if kind == _LEB:
            while data[pos] & 0x80:
                pos += 1
            pos += 1
        elif kind == _MEMARG:
            pos = memarg_end(data, pos)
        elif kind == _LEB2:
            pos = leb_end(data, leb_end(data, pos))
        elif kind == _BLOCK:
            pos = type_end(data, pos)
        elif kind == _PREFIX_FC:
            sub = _Reader(data, pos, end)
            n, name = _FC_OPS.get(sub.uleb(), (-1, None))
            if n < 0:
                raise _Unsupported(f"opcode 0xfc at {pos}")
            pos = sub.pos
            for _ in range(n):
                pos = leb_end(data, pos)
            if name is not None:
                found.add(name)
        elif kind == _TABLE_SET:
            pos = leb_end(data, pos)
            found.add("table.set")
        elif kind == _F32:
            pos += 4
        elif kind == _F64:
            pos += 8
        elif kind == _BR_TABLE:
            sub = _Reader(data, pos, end)
            for _ in range(sub.uleb() + 1):
                sub.pos = leb_end(data, sub.pos)
            pos = sub.pos
        elif kind == _SELECT_T:
            sub = _Reader(data, pos, end)
            for _ in range(sub.uleb()):
                sub.pos = type_end(data, sub.pos)
            pos = sub.pos
        elif kind == _PREFIX_FD:
            sub = _Reader(data, pos, end)
            op = sub.uleb()
            pos = sub.pos
            if op in _FD_MEMARG:
                pos = memarg_end(data, pos)
            elif op in _FD_MEMARG_LANE:
                pos = memarg_end(data, pos) + 1
            elif op in _FD_BYTES16:
                pos += 16
            elif op in _FD_LANE:
                pos += 1
            elif op > _FD_LAST:
                raise _Unsupported(f"opcode 0xfd {op}")
        elif kind == _PREFIX_FE:
            sub = _Reader(data, pos, end)
            op = sub.uleb()
            pos = sub.pos
            if op == 0x03:  # atomic.fence
                pos += 1
            elif op <= 0x02 or 0x10 <= op <= 0x4E:
                pos = memarg_end(data, pos)
            else:
                raise _Unsupported(f"opcode 0xfe {op}")
        elif kind == _TRY_TABLE:
            sub = _Reader(data, type_end(data, pos), end)
            for _ in range(sub.uleb()):
                catch = sub.byte()
                sub.pos = leb_end(data, sub.pos)
                if catch in (0, 1):  # catch / catch_ref: a tag and a label
                    sub.pos = leb_end(data, sub.pos)
            pos = sub.pos
        else:
            raise _Unsupported(f"opcode {op:#x} at {pos - 1}")
    if pos != end:
        raise _Unsupported("function body overran its size")


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

    def reset_image(self) -> "ResetImage":
        """What a reset compares a used instance's memory with (``ResetImage``)."""
        zero = bytes(PAGE)
        index = array("I", [_ZERO_PAGE]) * (self.memory_size // PAGE)
        pages: list[bytes] = []
        for off, data in self.image:
            for at in range(0, len(data), PAGE):
                page = data[at:at + PAGE].ljust(PAGE, b"\0")
                if page != zero:
                    index[(off + at) // PAGE] = len(pages)
                    pages.append(page)
        return ResetImage(self.memory_size, index.tobytes(), b"".join(pages))


#: a ``ResetImage.index`` entry: the page is all zeros
_ZERO_PAGE = 0xFFFFFFFF


@dataclass(frozen=True)
class ResetImage:
    """The started memory in the form ``Instance.reset`` reads: per PAGE-sized page
    a native uint32 in ``index``, the page's number in ``pages`` (the non-zero pages,
    packed) or 0xFFFFFFFF for a zero page.  Compact where a whole copy would not be:
    C filters start with 16 MiB of memory, nearly all of it zeros."""

    size: int
    index: bytes
    pages: bytes
