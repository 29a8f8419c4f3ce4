"""Loading a function: compile (disk-cached), check imports/exports, pre-link once.

A component is compiled once per (bytes, engine settings, wasmtime version) and cached on
disk beside the filters' modules (``edgenode function build`` fills the cache, so a node
only deserializes).  Its imports are checked against the node's interfaces before
linking: an interface the node does not know fails the load with the import's full
name; a known interface the node deliberately does not grant (sockets, files, databases)
links as functions that trap.  The linker is built once per component; each request
then only creates a store and instantiates (wasmtime-py 50's C API has no component
``InstancePre``: the import check and type resolution run once here, wasmtime's own
type check runs per instantiation).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wasmtime import Config, Engine, WasmtimeError
from wasmtime import _bindings as B
from wasmtime.component import Component, ExportIndex, Linker, ResourceType

from edgenode.functions import _hostcall, capabilities, capi, http_host, wasi_host
from edgenode.functions.interfaces import Interface
from edgenode.wasmcache import cache_key, default_cache_dir, load_or_compile, wasmtime_version

__all__ = ["FunctionLoadError", "FunctionRuntime", "LoadedFunction", "INTERFACES", "runtime", "HANDLER"]

log = logging.getLogger("edgenode.functions")

INTERFACES: list[Interface] = [*wasi_host.INTERFACES, *http_host.INTERFACES, *capabilities.INTERFACES]
_BY_NAME = {i.unversioned: i for i in INTERFACES}
#: interfaces a component may import although the node grants nothing through them:
#: their functions trap when called (Spin's SDK imports all of these whether used or not)
DENIED_PREFIXES = ("wasi:sockets/", "wasi:filesystem/", "wasi:keyvalue/", "fermyon:spin/",
                   "spin:postgres/", "spin:sqlite/", "spin:mqtt/", "spin:redis/", "spin:mysql/")
HANDLER = "wasi:http/incoming-handler@0.2."
EPOCH_TICK = 0.005


class FunctionLoadError(Exception):
    """A function's component cannot be loaded or linked; the message says why."""


def _on_host_error(exc: BaseException, inv: Any) -> str:
    """A host function raised something other than GuestTrap: log it, trap the guest."""
    name = getattr(inv, "name", "?")
    log.error("function %s: host function failed: %r", name, exc, exc_info=exc)
    return f"host error: {type(exc).__name__}: {exc}"


capi.configure(_on_host_error, {**wasi_host.TYPE_NAMES, **http_host.TYPE_NAMES, **capabilities.TYPE_NAMES})


class _Callbacks:
    """The C callbacks for every host function, made once per process (never freed)."""

    def __init__(self) -> None:
        self.funcs: dict[tuple[str, str], tuple[int, int]] = {}
        for iface in INTERFACES:
            for fname, (fn, result) in iface.funcs.items():
                self.funcs[(iface.name, fname)] = capi.python_callback(fn, result)
            for fname in iface.natives:
                native = capi.native_callback(iface.unversioned, fname)
                assert native is not None
                self.funcs[(iface.name, fname)] = native
        self.dtor = capi.dtor_callback()


_add_func = B.dll["wasmtime_component_linker_instance_add_func"]
_add_func.restype = ctypes.c_void_p
_add_func.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                      ctypes.c_void_p]
_add_resource = B.dll["wasmtime_component_linker_instance_add_resource"]
_add_resource.restype = ctypes.c_void_p
_add_resource.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_void_p, ctypes.c_void_p]


def _check(err: int | None, what: str) -> None:
    if err:
        exc = WasmtimeError._from_ptr(ctypes.cast(err, ctypes.POINTER(B.wasmtime_error_t)))
        raise FunctionLoadError(f"{what}: {exc}")


@dataclass
class LoadedFunction:
    """A compiled, import-checked component with its own pre-built linker."""

    path: Path
    sha256: str
    component: Component
    linker: Linker
    handle_index: ExportIndex
    handler_export: str
    imports: list[str]
    cache_hit: bool
    #: compile-or-deserialize + link, seconds (the cold start before the first instance)
    load_s: float


class FunctionRuntime:
    """The engine for functions: epoch ticker, compiled-component cache, linkers."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        cfg = Config()
        cfg.epoch_interruption = True
        self.engine = Engine(cfg)
        self.config_id = "component;epoch_interruption=1"
        self.cache_dir = (cache_dir or default_cache_dir()) / "functions"
        self.version = wasmtime_version()
        self.callbacks = _Callbacks()
        self._ticker: Any = None
        self._lock = threading.Lock()
        self.compiles = 0
        #: (path, mtime_ns, size) -> loaded function: stages and nodes of one process share it
        self._loaded: dict[tuple[str, int, int], LoadedFunction] = {}

    # epoch ticker: a C thread, so it ticks while an inline guest holds the GIL -----------------
    def ensure_ticker(self) -> None:
        with self._lock:
            if self._ticker is None:
                engine = ctypes.cast(self.engine.ptr(), ctypes.c_void_p).value
                self._ticker = _hostcall.Ticker(engine, EPOCH_TICK, self.engine)

    def deadline_ticks(self, cpu_ms: float) -> int:
        return max(1, int(cpu_ms / 1000 / EPOCH_TICK + 0.999)) + 1

    # loading -----------------------------------------------------------------------------
    def compile(self, source: bytes, where: str) -> tuple[Component, str, bool]:
        """The compiled component for ``source`` (from the disk cache when possible)."""
        digest = cache_key(source, self.config_id, self.version)

        def compile_() -> Component:
            if source[:4] != b"\0asm":
                raise FunctionLoadError(f"{where}: not a WebAssembly binary")
            if source[4:8] == b"\x01\0\0\0":
                raise FunctionLoadError(f"{where}: a core Wasm module, not a component "
                                        "(build it with componentize-py, jco, or wasm-tools component new)")
            try:
                return Component(self.engine, source)
            except WasmtimeError as exc:
                raise FunctionLoadError(f"{where}: not a valid component: {exc}") from None

        component, hit = load_or_compile(self.engine, Component, self.cache_dir / f"{digest}.cwasm", compile_)
        self.compiles += not hit
        return component, digest, hit

    def load(self, path: Path, name: str) -> LoadedFunction:
        """The loaded component at ``path`` (shared while the file is unchanged)."""
        where = f"function {name!r}: {path}"
        t0 = time.perf_counter()
        try:
            st = path.stat()
            key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
            known = self._loaded.get(key)
            if known is not None:
                return known
            source = path.read_bytes()
        except OSError as exc:
            raise FunctionLoadError(f"function {name!r}: cannot read component {path}: {exc.strerror}") from None
        component, digest, hit = self.compile(source, where)
        imports = self._check_imports(component, where)
        export, index = self._handler(component, where)
        linker = self._linker(component, imports, where)
        loaded = LoadedFunction(path, digest, component, linker, index, export, imports, hit,
                                time.perf_counter() - t0)
        self._loaded[key] = loaded
        return loaded

    def _check_imports(self, component: Component, where: str) -> list[str]:
        names = []
        for name, ext in component.type.imports(self.engine).items():
            names.append(name)
            base = name.split("@", 1)[0]
            iface = _BY_NAME.get(base)
            if iface is None:
                if base.startswith(DENIED_PREFIXES):
                    continue
                raise FunctionLoadError(f"{where}: imports {name}, which this node does not provide")
            if not _compatible(name, iface.name):
                raise FunctionLoadError(f"{where}: imports {name}, but this node provides {iface.name}")
            if base.startswith("wasi:filesystem/"):
                continue  # descriptors never exist: what the node does not define traps
            ty = ext.ty
            for item, item_ext in ty.exports(self.engine).items():
                kind = type(item_ext.ty).__name__
                if kind == "FuncType" and not iface.provides(item):
                    raise FunctionLoadError(f"{where}: imports {name}#{item}, which this node does not provide")
        return names

    def _handler(self, component: Component, where: str) -> tuple[str, ExportIndex]:
        for name in component.type.exports(self.engine):
            if name.startswith(HANDLER):
                inst = component.get_export_index(name)
                index = component.get_export_index("handle", inst) if inst is not None else None
                if index is None:
                    break
                return name, index
        raise FunctionLoadError(f"{where}: exports no wasi:http/incoming-handler@0.2.x "
                                "(is it an HTTP handler component?)")

    def _linker(self, component: Component, imports: list[str], where: str) -> Linker:
        """Each provided interface under the exact name the component imports (semver
        compatibility was checked), then traps for the denied ones."""
        linker = Linker(self.engine)
        root = linker.root()
        try:
            for name in imports:
                iface = _BY_NAME.get(name.split("@", 1)[0])
                if iface is None:
                    continue
                inst = root.add_instance(name)
                try:
                    for rname, type_id in iface.resources.items():
                        rb = rname.encode()
                        ty = ResourceType.host(type_id)
                        dtor, data = self.callbacks.dtor
                        _check(_add_resource(ctypes.cast(inst.ptr(), ctypes.c_void_p), rb, len(rb),
                                             ctypes.cast(ty.ptr(), ctypes.c_void_p), dtor, data, None),
                               f"{where}: defining {name}#{rname}")
                    for fname in [*iface.funcs, *iface.natives]:
                        fb = fname.encode()
                        cb, data = self.callbacks.funcs[(iface.name, fname)]
                        _check(_add_func(ctypes.cast(inst.ptr(), ctypes.c_void_p), fb, len(fb), cb, data, None),
                               f"{where}: defining {name}#{fname}")
                finally:
                    inst.close()
        finally:
            root.close()
        try:
            linker.define_unknown_imports_as_traps(component)
        except WasmtimeError as exc:
            raise FunctionLoadError(f"{where}: cannot link: {exc}") from None
        return linker

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()


def _compatible(imported: str, provided: str) -> bool:
    """Same package and interface; versions equal, or 0.x.y with the same 0.x (semver)."""
    iv = imported.partition("@")[2]
    pv = provided.partition("@")[2]
    if iv == pv:
        return True
    if "-" in iv or "-" in pv:
        return False
    ip, pp = iv.split("."), pv.split(".")
    if len(ip) != 3 or len(pp) != 3:
        return False
    return ip[0] == pp[0] and (ip[0] != "0" or ip[1] == pp[1])


_runtime: FunctionRuntime | None = None


def runtime() -> FunctionRuntime:
    """The process-wide function runtime (created on first use)."""
    global _runtime
    if _runtime is None:
        _runtime = FunctionRuntime()
    return _runtime

