"""``edgenode filter inspect``: what a module needs from the host and whether this node has it.

Imports are checked against the host's own table (``HOST_FUNCTIONS``, with the ABI
versions and signatures each function is provided for), all at once rather than the
first one the loader trips on; the host's loader then gives its verdict with its own
error message, so ``inspect`` and ``serve`` can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wasmtime import Engine, FuncType, GlobalType, MemoryType, Module, TableType, ValType, WasmtimeError

from edgenode.wasm.abi import ABI_VERSIONS
from edgenode.wasm.engine import FilterLoadError, WasmEngine, default_engine
from edgenode.wasm.hostcalls import HOST_FUNCTIONS

__all__ = ["Inspection", "InspectError", "inspect_module", "format_inspection"]

WASM_MAGIC = b"\0asm"
_CALLBACKS = ("proxy_on_vm_start", "proxy_on_configure", "proxy_on_context_create",
              "proxy_on_request_headers", "proxy_on_request_body", "proxy_on_response_headers",
              "proxy_on_response_body", "proxy_on_log", "proxy_on_done", "proxy_on_delete",
              "proxy_on_tick", "proxy_on_http_call_response", "proxy_on_queue_ready",
              "proxy_on_foreign_function")


class InspectError(Exception):
    """The file cannot be inspected at all (unreadable, not Wasm, invalid Wasm)."""


@dataclass
class Import:
    module: str
    name: str
    kind: str
    signature: str
    provided: bool
    problem: str = ""


@dataclass
class Inspection:
    path: str
    size: int
    abi: str | None
    imports: list[Import]
    exports: dict[str, str]
    callbacks: list[str]
    memory_pages: tuple[int, int | None] | None
    problems: list[str] = field(default_factory=list)
    #: loads, but probably not what the author meant
    warnings: list[str] = field(default_factory=list)
    #: the host loader's verdict: None when it loads, else its error message
    load_error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.load_error is None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


def _letter(t: ValType) -> str:
    for name in ("i32", "i64", "f32", "f64"):
        if t == getattr(ValType, name)():
            return name
    return str(t)


def _describe(ty: Any) -> tuple[str, str]:
    if isinstance(ty, FuncType):
        return "func", f"({', '.join(map(_letter, ty.params))}) -> ({', '.join(map(_letter, ty.results))})"
    if isinstance(ty, MemoryType):
        return "memory", f"pages {ty.limits.min}..{ty.limits.max if ty.limits.max is not None else ''}"
    if isinstance(ty, GlobalType):
        return "global", _letter(ty.content)
    if isinstance(ty, TableType):
        return "table", ""
    return type(ty).__name__, ""


def _check_import(module: str, name: str, ty: Any, version: tuple[int, int, int] | None) -> str:
    hdef = HOST_FUNCTIONS.get((module, name))
    if hdef is None or not isinstance(ty, FuncType):
        return "not provided by this host"
    if version is not None and version not in hdef.versions:
        return f"not provided for ABI {'.'.join(map(str, version))}"
    got = "".join("i" if p == ValType.i32() else "I" if p == ValType.i64() else "?" for p in ty.params)
    if got != hdef.params or len(ty.results) != (1 if hdef.has_result else 0):
        want = ", ".join("i32" if c == "i" else "i64" for c in hdef.params)
        return f"signature mismatch: the host function takes ({want})"
    return ""


def inspect_module(path: Path, engine: WasmEngine | None = None) -> Inspection:
    """Read, validate and analyse ``path``; ``InspectError`` if it is not a Wasm module."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InspectError(f"{path}: cannot read: {exc.strerror}") from None
    if path.suffix != ".wat" and not data.startswith(WASM_MAGIC):
        head = data[:4]
        raise InspectError(f"{path}: not a WebAssembly module (expected the \\0asm header, "
                           f"got {head!r}); build it with `edgenode filter build`")
    try:
        module = Module(Engine(), data.decode() if path.suffix == ".wat" else data)
    except (WasmtimeError, UnicodeDecodeError) as exc:
        raise InspectError(f"{path}: not a valid WebAssembly module: {exc}") from None
    exports: dict[str, str] = {}
    memory: tuple[int, int | None] | None = None
    version: tuple[int, int, int] | None = None
    for exp in module.exports:
        exports[exp.name] = _describe(exp.type)[0]
        if isinstance(exp.type, MemoryType) and memory is None:
            memory = (exp.type.limits.min, exp.type.limits.max)
        if exp.name in ABI_VERSIONS:
            version = ABI_VERSIONS[exp.name]
    problems: list[str] = []
    if version is None:
        problems.append("missing or unknown Proxy-Wasm ABI version export (expected one of "
                        + ", ".join(sorted(ABI_VERSIONS)) + ")")
    if memory is None:
        problems.append("exports no memory")
    if exports.get("malloc") != "func" and exports.get("proxy_on_memory_allocate") != "func":
        problems.append("exports no allocator (malloc or proxy_on_memory_allocate)")
    imports = []
    for imp in module.imports:
        kind, sig = _describe(imp.type)
        name = imp.name or ""
        problem = _check_import(imp.module, name, imp.type, version)
        imports.append(Import(imp.module, name, kind, sig, not problem, problem))
        if problem:
            problems.append(f"imports {imp.module}.{name}: {problem}")
    callbacks = [c for c in _CALLBACKS if exports.get(c) == "func"]
    warnings = []
    if not any(c in callbacks for c in ("proxy_on_request_headers", "proxy_on_request_body",
                                        "proxy_on_response_headers", "proxy_on_response_body")):
        warnings.append("exports no HTTP callbacks (proxy_on_request_headers, ...): it would never "
                        "see a request")
    load_error = None
    try:
        (engine or default_engine()).load(path, path.stem)
    except FilterLoadError as exc:
        load_error = str(exc)
    return Inspection(str(path), len(data), ".".join(map(str, version)) if version else None,
                      imports, exports, callbacks, memory, problems, warnings, load_error)


def format_inspection(info: Inspection) -> str:
    """The human-readable report printed by ``edgenode filter inspect``."""
    lines = [f"{info.path}: {info.size} bytes",
             f"  ABI:        {info.abi or 'unknown'}"]
    if info.memory_pages is not None:
        lo, hi = info.memory_pages
        lines.append(f"  memory:     {lo} pages initial ({lo * 64} KiB), "
                     + (f"{hi} max ({hi * 64} KiB)" if hi is not None else "no maximum"))
    lines.append(f"  callbacks:  {', '.join(info.callbacks) or 'none'}")
    lines.append(f"  exports:    {len(info.exports)} ({', '.join(sorted(info.exports))})")
    provided = sum(1 for i in info.imports if i.provided)
    lines.append(f"  imports:    {len(info.imports)} host functions, {provided} provided by this node")
    for imp in info.imports:
        mark = "ok " if imp.provided else "MISSING"
        lines.append(f"    {mark:7} {imp.module}.{imp.name} {imp.signature}"
                     + (f"  <- {imp.problem}" if imp.problem else ""))
    lines += [f"  warning:    {w}" for w in info.warnings]
    if info.ok:
        lines.append("  verdict:    loads in this node")
    else:
        lines.append("  verdict:    will NOT load in this node")
        lines += [f"    - {p}" for p in info.problems]
        if info.load_error:
            lines.append(f"    host loader: {info.load_error}")
    return "\n".join(lines)
