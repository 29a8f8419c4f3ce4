"""The shared wasmtime engine: host-function linker, epoch ticker, module disk cache.

One ``WasmEngine`` serves every filter of a worker process.  Compiling a module
costs ~100 ms per 100 KB (routing.wasm: ~300 ms), loading its cached artifact ~1 ms
(`edgenode bench filter`), so compiled modules are cached on disk under a key of sha256(wasm) + engine settings + wasmtime
version.  Imports are checked against the host table before linking so a missing
host function is reported by name instead of a bare link error.

Instances come from wasmtime's pooling allocator (preallocated slots, copy-on-write
memory images: instantiate + drop ~13 µs instead of ~26 µs).  Its slots are bounded
(``pool_instances``); when they run out, or a module does not fit a slot, instances
come from a second, on-demand engine created on first need, so the pool's size is a
performance knob and never a capacity limit.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from wasmtime import Config, Engine, FuncType, InstancePre, Linker, Module, ValType, WasmtimeError, wat2wasm
from wasmtime import _bindings as B

from edgenode.wasm import foreign_envoy, native  # noqa: F401  (foreign_envoy registers functions)
from edgenode.wasm.abi import ABI_VERSIONS, HOOKS, REQUEST_TRAILERS, RESPONSE_TRAILERS, STREAM_HOOKS
from edgenode.wasm.hostcalls.table import HOST_FUNCTIONS, HostDef
from edgenode.wasm.snapshot import export_globals
from edgenode.wasmcache import cache_key, default_cache_dir, load_or_compile, wasmtime_version

__all__ = ["WasmEngine", "LoadedModule", "FilterLoadError", "default_engine", "default_cache_dir",
           "deadline_ticks"]

_log = logging.getLogger("edgenode.wasm")

#: how often the ticker advances the engine epoch; CPU deadlines are multiples of it
EPOCH_TICK_SECONDS = 0.005
#: pooling-allocator slots per engine; each reserves ~4 GiB of address space (not memory)
POOL_INSTANCES = 1000
KEEP_RESIDENT_BYTES = 64 * 1024
_VP = ctypes.c_void_p


#: the stream callbacks whose ids and timing histograms the VMs keep at hand
STREAM_PHASES = ("context_create", "request_headers", "response_headers", "done", "log", "delete",
                 "response_body")


def deadline_ticks(cpu_deadline_ms: float) -> int:
    """Epoch ticks for a CPU deadline; +1 because the current tick may be nearly over."""
    return max(1, int(cpu_deadline_ms / 1000 / EPOCH_TICK_SECONDS + 0.999)) + 1


class FilterLoadError(Exception):
    """A filter's module cannot be loaded, linked or started; the message names the filter."""


@dataclass
class LoadedModule:
    """A compiled, import-checked module ready to instantiate cheaply."""

    path: Path
    sha256: str
    module: Module
    pre: InstancePre
    version: tuple[int, int, int]
    #: export name -> (param count, result count) for the functions the host may call
    exports: dict[str, tuple[int, int]] = field(default_factory=dict)
    memory_export: str = "memory"
    cache_hit: bool = False
    #: (name, params, results) of the exports the host calls; a hook's id is its index
    hooks: tuple[tuple[str, int, int], ...] = ()
    #: (export, type) of the mutable globals, exported for snapshots; None: not rewritten
    global_exports: list[tuple[str, str]] | None = None
    #: the ABI marker export, e.g. ``proxy_abi_version_0_2_100``
    abi_marker: str = ""
    #: hook name -> id (its index in ``hooks``), shared by the module's VMs
    hook_ids: dict[str, int] = field(init=False)
    #: address of ``pre`` (the C API's wasmtime_instance_pre_t)
    pre_ptr: int = field(init=False)
    #: which of the stream's callbacks the module exports (engine-independent facts
    #: every VM of the module shares)
    request_trailers_hook: bool = field(init=False)
    response_trailers_hook: bool = field(init=False)
    #: the request/response body must pass through the stream driver
    request_body_hooks: bool = field(init=False)
    response_body_hooks: bool = field(init=False)
    #: whether streams need a context at all (filters without HTTP hooks cost nothing)
    stream_hooks: bool = field(init=False)
    #: hook ids of STREAM_PHASES' callbacks (-1: not exported)
    stream_ids: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.hook_ids = ids = {name: i for i, (name, _, _) in enumerate(self.hooks)}
        self.pre_ptr = ctypes.cast(self.pre.ptr(), _VP).value or 0
        exports = self.exports
        self.request_trailers_hook = REQUEST_TRAILERS in exports
        self.response_trailers_hook = RESPONSE_TRAILERS in exports
        self.request_body_hooks = "proxy_on_request_body" in ids or self.request_trailers_hook
        self.response_body_hooks = "proxy_on_response_body" in ids or self.response_trailers_hook
        self.stream_hooks = (any(h in ids for h in STREAM_HOOKS) or self.request_trailers_hook
                             or self.response_trailers_hook)
        self.stream_ids = tuple(ids.get(f"proxy_on_{h}", -1) for h in STREAM_PHASES)

    @property
    def allocator(self) -> str:
        """malloc first, then proxy_on_memory_allocate (cpp-host's order)."""
        return "malloc" if "malloc" in self.exports else "proxy_on_memory_allocate"


#: ABI markers of host-extended versions, and the version they build on: Envoy and
#: Higress's host accept ``0_2_100`` (0.2.1 plus host extensions such as Redis calls),
#: which proxy-wasm-go-sdk's Higress fork exports
ABI_EXTENSION_MARKERS = {"proxy_abi_version_0_2_100": (0, 2, 1)}
_ABI_PREFIX = "proxy_abi_version_"


def abi_version(export_names: list[str], filter_name: str) -> tuple[tuple[int, int, int], str]:
    """The ABI version a module declares and the marker that declared it.

    Several known markers: the newest wins (as cpp-host).  An unknown
    ``proxy_abi_version_*`` marker and no marker at all are refused by name.
    """
    known = {**ABI_VERSIONS, **ABI_EXTENSION_MARKERS}
    found = [n for n in export_names if n in known]
    if found:
        marker = max(found, key=lambda n: (known[n], n))
        return known[marker], marker
    supported = ", ".join(sorted(known))
    unknown = [n for n in export_names if n.startswith(_ABI_PREFIX)]
    if unknown:
        raise FilterLoadError(f"filter {filter_name!r}: module declares Proxy-Wasm ABI "
                              f"{unknown[0][len(_ABI_PREFIX):].replace('_', '.')} ({unknown[0]}), "
                              f"which this host does not support (supported markers: {supported})")
    raise FilterLoadError(f"filter {filter_name!r}: missing Proxy-Wasm ABI version export "
                          f"(expected one of {supported})")

_KIND = {"i": ValType.i32, "I": ValType.i64}


def _sig(ft: FuncType) -> str:
    letters = []
    for t in ft.params:
        letters.append("i" if t == ValType.i32() else "I" if t == ValType.i64() else "?")
    return "".join(letters)


def _pooling_fn(name: str, *argtypes: object) -> object:
    fn = B.dll[name]
    fn.restype = None if name != "wasmtime_pooling_allocation_config_new" else _VP
    fn.argtypes = argtypes
    return fn


#: the engine settings that shape generated code: _engine_config applies them and the
#: compiled-module cache key names them, so changing one compiles every module afresh.
#: How each was chosen (measured): docs/waf.md, "How the Wasm is built and run".
CODEGEN_SETTINGS: dict[str, bool | str] = {
    # CPU deadlines: a counter check at each function entry and loop back-edge
    "epoch_interruption": True,
    # a fixed memory base lets GuestMemory keep one view per instance (guestmem.py);
    # 32-bit memories fit the default 4 GiB reservation + guard, so loads and stores
    # carry no bounds checks and growth is unaffected
    "memory_may_move": False,
    "cranelift_opt_level": "speed",
    "cranelift_nan_canonicalization": False,
}
#: ``CODEGEN_SETTINGS`` as the cache key's text
CONFIG_ID = ";".join(f"{k}={v}" for k, v in CODEGEN_SETTINGS.items())


def _engine_config(pool_instances: int) -> Config:
    cfg = Config()
    for name, value in CODEGEN_SETTINGS.items():
        setattr(cfg, name, value)
    if pool_instances:
        # wasmtime-py 50 has no binding for the pooling allocator; the C API does
        new = _pooling_fn("wasmtime_pooling_allocation_config_new")
        pc = new()
        for what in ("total_core_instances", "total_memories", "total_tables"):
            _pooling_fn(f"wasmtime_pooling_allocation_config_{what}_set", _VP, ctypes.c_uint32)(
                pc, pool_instances)
        # a returned slot keeps its first pages mapped (zeroed, not decommitted): the
        # next instance's stack/data pages then take no page faults
        _pooling_fn("wasmtime_pooling_allocation_config_linear_memory_keep_resident_set", _VP,
                    ctypes.c_size_t)(pc, KEEP_RESIDENT_BYTES)
        _pooling_fn("wasmtime_pooling_allocation_strategy_set", _VP, _VP)(
            ctypes.cast(cfg.ptr(), _VP), pc)
        _pooling_fn("wasmtime_pooling_allocation_config_delete", _VP)(pc)
    return cfg


class _Runtime:
    """One wasmtime Engine and its linker with every host function defined."""

    def __init__(self, pool_instances: int, native_hostcalls: bool) -> None:
        self.native_hostcalls = native_hostcalls
        self.engine = Engine(_engine_config(pool_instances))
        self.ptr = ctypes.cast(self.engine.ptr(), _VP).value or 0
        self.linker = Linker(self.engine)
        # FuncTypes are per engine (reusing one across engines aborts): keep them here
        self._functypes: dict[tuple[str, bool], FuncType] = {}
        #: host functions the core answers natively (the rest run their Python version)
        self.native: set[str] = set()
        for hdef in HOST_FUNCTIONS.values():
            self._define(hdef)

    def _functype(self, params: str, has_result: bool) -> FuncType:
        key = (params, has_result)
        ft = self._functypes.get(key)
        if ft is None:
            ft = FuncType([_KIND[c]() for c in params], [ValType.i32()] if has_result else [])
            self._functypes[key] = ft
        return ft

    def _define(self, hdef: HostDef) -> None:
        ft = self._functype(hdef.params, hdef.has_result)
        addr = lambda obj: ctypes.cast(obj.ptr(), _VP).value or 0  # noqa: E731
        if native.define(addr(self.linker), hdef.module.encode(), hdef.name.encode(), addr(ft),
                         hdef.params, hdef.has_result, hdef.fault, hdef.fn,
                         self.native_hostcalls and hdef.module == "env"):
            self.native.add(hdef.name)


class WasmEngine:
    """Engine + linker + ticker; keep one per process (FuncTypes/callbacks are per engine).

    ``pool_instances`` = 0 turns the pooling allocator off (every instance on demand).
    ``native_hostcalls`` = False has every host function run its Python implementation
    (the host core's fallback), so the ABI tests cover both.
    """

    def __init__(self, cache_dir: Path | None = None, pool_instances: int = POOL_INSTANCES,
                 native_hostcalls: bool = True) -> None:
        self.pooling = pool_instances > 0
        self._main = _Runtime(pool_instances, native_hostcalls)
        self.config_id = CONFIG_ID
        self.engine = self._main.engine
        self.engine_ptr = self._main.ptr
        self.linker = self._main.linker
        self.cache_dir = cache_dir or default_cache_dir()
        self.version = wasmtime_version()
        self._modules: dict[str, LoadedModule] = {}
        #: on-demand engine for instances the pool cannot hold, and its InstancePres by sha256
        self._overflow: _Runtime | None = None
        self._overflow_pres: dict[str, tuple[InstancePre, int]] = {}
        #: modules whose instances never fit a pool slot (go straight to the overflow engine)
        self.unpoolable: set[str] = set()
        #: instances started on the on-demand engine (pool full or module unpoolable)
        self.overflow_starts = 0
        self._ticking = False
        self._ticking_pid = 0
        self._lock = threading.Lock()
        self.compiles = 0

    def overflow(self, loaded: LoadedModule) -> tuple[int, int]:
        """(engine, InstancePre) addresses of ``loaded`` in the on-demand engine."""
        got = self._overflow_pres.get(loaded.sha256)
        if got is None:
            with self._lock:
                if self._overflow is None:
                    self._overflow = _Runtime(0, self._main.native_hostcalls)
                    if self._ticking:
                        native.ticker_add(self._overflow.engine, self._overflow.ptr, EPOCH_TICK_SECONDS)
            rt = self._overflow
            # the compiled artifact does not depend on the allocation strategy
            module = Module.deserialize(rt.engine, loaded.module.serialize())
            pre = rt.linker.instantiate_pre(module)
            got = self._overflow_pres[loaded.sha256] = (pre, ctypes.cast(pre.ptr(), _VP).value or 0)
        assert self._overflow is not None
        self.overflow_starts += 1
        return self._overflow.ptr, got[1]

    # epoch ticker ------------------------------------------------------------
    def ensure_ticker(self) -> None:
        """Have the host core's native thread advance this engine's epochs (CPU
        deadlines need it; guest calls hold the GIL, so it cannot be a Python thread)."""
        if not self._ticking or self._ticking_pid != os.getpid():
            native.ticker_add(self.engine, self.engine_ptr, EPOCH_TICK_SECONDS)
            if self._overflow is not None:
                native.ticker_add(self._overflow.engine, self._overflow.ptr, EPOCH_TICK_SECONDS)
            self._ticking, self._ticking_pid = True, os.getpid()

    def close(self) -> None:
        """Stop ticking this engine's epochs (the engine may then be dropped)."""
        native.ticker_remove(self.engine_ptr)
        if self._overflow is not None:
            native.ticker_remove(self._overflow.ptr)
        self._ticking = False

    # modules -----------------------------------------------------------------
    def load(self, path: Path, filter_name: str, snapshot: bool = False,
             source: bytes | None = None) -> LoadedModule:
        """Compile (or fetch from cache) and link ``path``; errors name the filter.

        ``snapshot``: export the mutable globals (snapshot.py) so per-request instances
        can start from a post-configure snapshot; a module the rewrite cannot handle
        loads as it is (``global_exports`` None).  ``source``: binary module bytes to
        use instead of the file's (a module with a snapshot baked in).
        """
        text = source is None and path.suffix == ".wat"
        if source is None:
            try:
                source = path.read_bytes()
            except OSError as exc:
                raise FilterLoadError(f"filter {filter_name!r}: cannot read module {path}: {exc.strerror}") from None
        global_exports: list[tuple[str, str]] | None = None
        if snapshot:
            try:
                binary = bytes(wat2wasm(source.decode())) if text else source
                source, global_exports = export_globals(binary)
                text = False
            except (ValueError, UnicodeDecodeError, WasmtimeError) as exc:
                _log.info("filter %r: no start-up snapshot: %s", filter_name, exc)
        digest = cache_key(source, self.config_id, self.version)
        cached = self._modules.get(digest)
        if cached is not None:
            return LoadedModule(path, cached.sha256, cached.module, cached.pre, cached.version,
                                cached.exports, cached.memory_export, cache_hit=True,
                                hooks=cached.hooks, global_exports=cached.global_exports,
                                abi_marker=cached.abi_marker)
        module, hit = self._compile(path, source, text, digest, filter_name)
        loaded = self._link(path, digest, module, filter_name)
        loaded.cache_hit = hit
        loaded.global_exports = global_exports
        self._modules[digest] = loaded
        return loaded

    def _compile(self, path: Path, source: bytes, text: bool, digest: str,
                 filter_name: str) -> tuple[Module, bool]:
        def compile_() -> Module:
            try:
                return Module(self.engine, source.decode() if text else source)
            except (WasmtimeError, UnicodeDecodeError) as exc:
                raise FilterLoadError(f"filter {filter_name!r}: {path} is not a valid Wasm module: {exc}") from None

        module, hit = load_or_compile(self.engine, Module, self.cache_dir / f"{digest}.cwasm", compile_)
        self.compiles += not hit
        return module, hit

    def _link(self, path: Path, digest: str, module: Module, filter_name: str) -> LoadedModule:
        exports: dict[str, tuple[int, int]] = {}
        memory_export = ""
        names = [exp.name for exp in module.exports]
        version, marker = abi_version(names, filter_name)
        for exp in module.exports:
            ty = exp.type
            if isinstance(ty, FuncType):
                exports[exp.name] = (len(ty.params), len(ty.results))
            elif exp.name == "memory" or (not memory_export and type(ty).__name__ == "MemoryType"):
                memory_export = exp.name
        if not memory_export:
            raise FilterLoadError(f"filter {filter_name!r}: module exports no memory")
        if "malloc" not in exports and "proxy_on_memory_allocate" not in exports:
            raise FilterLoadError(f"filter {filter_name!r}: module exports no allocator "
                                  "(malloc or proxy_on_memory_allocate)")
        vtext = ".".join(map(str, version))
        for imp in module.imports:
            where = f"{imp.module}.{imp.name}"
            hdef = HOST_FUNCTIONS.get((imp.module, imp.name or ""))
            if hdef is None or not isinstance(imp.type, FuncType):
                raise FilterLoadError(f"filter {filter_name!r}: module imports {where}, "
                                      "which this host does not provide")
            if version not in hdef.versions:
                raise FilterLoadError(f"filter {filter_name!r}: module imports {where}, "
                                      f"which this host does not provide for ABI {vtext}")
            want = hdef.params
            got = _sig(imp.type)
            results = len(imp.type.results)
            if got != want or results != (1 if hdef.has_result else 0):
                raise FilterLoadError(
                    f"filter {filter_name!r}: module imports {where} with {len(got)} params/"
                    f"{results} results, but the host function takes ({', '.join(want) or 'none'})")
        try:
            pre = self.linker.instantiate_pre(module)
        except WasmtimeError as exc:
            raise FilterLoadError(f"filter {filter_name!r}: cannot link module: {exc}") from None
        hooks = tuple((n, *exports[n]) for n in HOOKS if n in exports)
        return LoadedModule(path, digest, module, pre, version, exports, memory_export, hooks=hooks,
                            abi_marker=marker)


_default: WasmEngine | None = None


def default_engine() -> WasmEngine:
    """The process-wide engine (created on first use)."""
    global _default
    if _default is None:
        _default = WasmEngine()
    return _default
