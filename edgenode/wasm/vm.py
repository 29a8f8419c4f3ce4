"""A filter VM: one wasmtime Store + instance, its contexts, and everything async it owns.

``Vm`` is used two ways: long-lived (``isolation = "shared"``, a context per stream)
and short-lived (``"per-request"``, a fresh instance from the ``InstancePre`` for one
stream).  A trap marks the VM failed (as cpp-host does); the stage's failure policy
decides what the stream and later streams get.
"""

from __future__ import annotations

import asyncio
import bisect
import ctypes
import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Collection

from wasmtime import WasmtimeError
from wasmtime import _bindings as B

from edgenode.http.messages import CIMultiDict, Request, Response, read_body
from edgenode.observe.loglevel import TRACE
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm import hostcalls
from edgenode.wasm.abi import REQUEST_TRAILERS, RESPONSE_TRAILERS, STREAM_HOOKS, Status
from edgenode.wasm.contexts import RootContext, StreamContext
from edgenode.wasm.engine import FilterLoadError, LoadedModule, WasmEngine
from edgenode.wasm.fastcall import (EXTERN_OF, EXTERN_SIZE, CallBuffers, GlobalState, GuestFunc,
                                    GuestMemory, GuestTrap, NativeInstance, export_get)
from edgenode.wasm.metrics import FilterMetrics
from edgenode.wasm.properties import PluginInfo
from edgenode.wasm.recovery import TrapBurst
from edgenode.wasm.snapshot import Snapshot, diff_pages

__all__ = ["Plugin", "Vm", "FilterFailure", "CallResult", "Callout", "HostEnv", "CallObserver"]

Callout = Callable[[str, Request, float | None], Awaitable[Response]]
#: called after each guest call with (filter name, export, phase or None, seconds, result or
#: None if it trapped, the stream's Exchange or None); it must not raise
CallObserver = Callable[[str, str, "str | None", float, "int | None", "Exchange | None"], None]

_perf_counter = time.perf_counter
_bisect = bisect.bisect_left
_EXTERN = B.wasmtime_extern_t
_PY_LEVELS = (TRACE, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
#: filter loggers whose level a ``log_level`` option set
_LEVEL_SET: set[str] = set()
@dataclass(frozen=True)
class HostEnv:
    """Where the guest's clocks and randomness come from; `filter test` injects fixed ones
    so runs repeat exactly (proxy_get_current_time_nanoseconds, WASI clock_time_get,
    random_get)."""

    wall_ns: Callable[[], int] = time.time_ns
    monotonic_ns: Callable[[], int] = time.monotonic_ns
    random_bytes: Callable[[int], bytes] = os.urandom


DEFAULT_HOST_ENV = HostEnv()


class FilterFailure(Exception):
    """The filter trapped (or its VM had already failed) while handling a stream."""


@dataclass
class CallResult:
    """The http call response being delivered (map 6, buffer 4, proxy_get_status)."""

    headers: list[tuple[str, str]]
    body: bytes
    status_code: int = 0
    status_message: str = ""
    #: map 7, lower-case names
    trailers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Plugin:
    """Per-filter settings shared by every VM of one stage."""

    name: str
    info: PluginInfo
    vm_config: bytes
    plugin_config: bytes
    env: dict[str, str]
    #: the filter's log level (0 trace .. 5 critical); None: the node's (``[log] level``)
    log_level: int | None
    metrics: FilterMetrics
    memory_limit: int
    cpu_deadline_ms: float
    callout: Callout | None = None
    upstreams: Collection[str] | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    ticks: bool = True
    host_env: HostEnv = DEFAULT_HOST_ENV
    #: per-callback hook for developer tools (`edgenode filter run`); None costs nothing
    observer: CallObserver | None = None
    logger: logging.Logger = field(init=False)
    #: which traps get an error line (one per burst, shared by the stage's VMs)
    trap_burst: TrapBurst = field(init=False, default_factory=TrapBurst)
    last_log: str = ""
    #: phase -> (callback histogram, Exchange.timings key), shared by the stage's VMs
    phases: dict[str, tuple[Any, tuple[str, str]]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        logger = self.logger = logging.getLogger(f"edgenode.filter.{self.name}")
        if self.log_level is None:  # follow the logging set-up ([log] level), also for get_log_level
            if logger.name in _LEVEL_SET:  # undo a per-filter level of an earlier configuration
                _LEVEL_SET.discard(logger.name)
                logger.setLevel(logging.NOTSET)
            effective = logger.getEffectiveLevel()
            self.log_level = next((i for i, py in enumerate(_PY_LEVELS) if py >= effective), 5)
        else:  # a per-filter level lets this filter's records through the node's level
            logger.setLevel(_PY_LEVELS[self.log_level])
            _LEVEL_SET.add(logger.name)

    def phase_stats(self, phase: str) -> tuple[Any, tuple[str, str]]:
        stats = self.phases[phase] = (self.metrics.callback_histogram(phase), (self.name, phase))
        return stats

    @property
    def vm_id(self) -> str:
        return self.info.vm_id

    def log(self, level: int, message: str) -> None:
        if level >= 3:
            self.last_log = message
        if level >= self.log_level:
            self.logger.log(_PY_LEVELS[level], "%s", message, extra={"filter": self.name})


class Vm:
    """One instance of a filter module and the Proxy-Wasm state around it."""

    def __init__(self, plugin: Plugin, loaded: LoadedModule, engine: WasmEngine) -> None:
        self.plugin = plugin
        self.loaded = loaded
        self.version = loaded.version
        # the store calls host functions whose callbacks the engine owns: keep it alive
        self._engine = engine
        ticks = self._ticks = engine.deadline_ticks(plugin.cpu_deadline_ms)
        self._tick_count = engine.tick
        engine.ensure_ticker()
        self.failed: str | None = None
        self.closed = False
        self.exit_code: int | None = None
        #: a host call with effects outside the instance ran (hostcalls._vm_effect)
        self.effects = False
        buffers = self._buffers = CallBuffers.take()
        self.native = self._instantiate(engine, buffers)
        ctx = self._ctx = self.native.ctx
        inst_addr = self.native.inst_addr
        hooks = loaded.hooks
        # one ctypes array holds every export's extern (hooks, then the memory)
        exts = self._exts = (_EXTERN * (len(hooks) + 1))()
        addr = ctypes.addressof(exts)
        funcs: dict[str, GuestFunc] = {}
        for name, encoded, nparams, nresults in hooks:
            if not export_get(ctx, inst_addr, encoded, len(encoded), addr):
                raise FilterLoadError(f"filter {plugin.name!r}: export {name} vanished")
            funcs[name] = GuestFunc(ctx, addr + EXTERN_OF, exts, name, nparams, nresults, ticks, buffers,
                                    engine.tick)
            addr += EXTERN_SIZE
        self.funcs = funcs
        mem_name = loaded.memory_export.encode()
        export_get(ctx, inst_addr, mem_name, len(mem_name), addr)
        self.mem = GuestMemory(ctx, addr + EXTERN_OF, exts)
        self._malloc = funcs.get("malloc") or funcs["proxy_on_memory_allocate"]
        self._ids = itertools.count(1)
        self.contexts: dict[int, RootContext | StreamContext] = {}
        self.root: RootContext | None = None
        self.effective: RootContext | StreamContext | None = None
        self.configuring: str | None = None
        self.call_result: CallResult | None = None
        self.foreign_args: bytes | None = None
        self._tokens = itertools.count(1)
        self._callouts: dict[int, asyncio.Task[None]] = {}
        self.active_streams = 0
        self.on_idle: Callable[["Vm"], None] | None = None
        # the trailers hooks are bound on first use (most streams have no trailers)
        exports = loaded.exports
        self.request_trailers_hook = REQUEST_TRAILERS in exports
        self.response_trailers_hook = RESPONSE_TRAILERS in exports
        #: the request/response body must pass through the stream driver
        self.request_body_hooks = "proxy_on_request_body" in funcs or self.request_trailers_hook
        self.response_body_hooks = "proxy_on_response_body" in funcs or self.response_trailers_hook
        #: whether streams need a context at all (filters without HTTP hooks cost nothing)
        self.stream_hooks = (any(h in funcs for h in STREAM_HOOKS) or self.request_trailers_hook
                             or self.response_trailers_hook)
        self._on_done = "proxy_on_done" in funcs
        self._on_log = "proxy_on_log" in funcs
        self._on_delete = "proxy_on_delete" in funcs
        self._on_create = "proxy_on_context_create" in funcs
        plugin.metrics.vm_starts += 1

    def _instantiate(self, engine: WasmEngine, buffers: CallBuffers) -> NativeInstance:
        """A Store + instance from the pool, else (pool full, module too big) on demand."""
        plugin, loaded = self.plugin, self.loaded
        try:
            if loaded.sha256 not in engine.unpoolable:
                try:
                    return NativeInstance(engine.engine_ptr, loaded.pre_ptr, plugin.memory_limit,
                                          self._ticks, buffers)
                except WasmtimeError as exc:
                    if not engine.pooling:
                        raise
                    if "concurrent" not in str(exc):  # not a full pool: this module never fits
                        engine.unpoolable.add(loaded.sha256)
            engine_ptr, pre_ptr = engine.overflow(loaded)
            return NativeInstance(engine_ptr, pre_ptr, plugin.memory_limit, self._ticks, buffers)
        except (WasmtimeError, Exception) as exc:  # Trap is an Exception too
            raise FilterLoadError(f"filter {plugin.name!r}: cannot instantiate module: {exc}") from None

    # --- guest calls ---------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.funcs

    def export(self, name: str, nparams: int, nresults: int) -> GuestFunc:
        """Bind any exported function (beyond the callbacks) for host-side calls."""
        ext = _EXTERN()
        encoded = name.encode()
        if not export_get(self._ctx, self.native.inst_addr, encoded, len(encoded),
                          ctypes.addressof(ext)) or ext.kind != 0:  # WASMTIME_EXTERN_FUNC
            raise KeyError(name)
        fn = GuestFunc(self._ctx, ctypes.addressof(ext) + EXTERN_OF, ext, name, nparams, nresults,
                       self._ticks, self._buffers, self._tick_count)
        self.funcs[name] = fn
        return fn

    def bind_hook(self, name: str) -> None:
        """Bind an exported callback that is not looked up at instantiation (trailers)."""
        if name not in self.funcs:
            self.export(name, *self.loaded.exports[name])

    def alloc(self, size: int) -> int:
        return self._malloc.nested(size) & 0xFFFFFFFF

    def call(self, name: str, ctx: RootContext | StreamContext | None, *args: int,
             phase: str | None = None, exchange: Exchange | None = None) -> int:
        """Call export ``name`` with ``ctx`` effective; a trap fails the VM and raises."""
        return self.invoke(name, ctx, phase, exchange, args)

    def invoke(self, name: str, ctx: RootContext | StreamContext | None, phase: str | None,
               exchange: Exchange | None, args: tuple[int, ...]) -> int:
        """``call`` with positional arguments (the per-stream hot path)."""
        if self.failed is not None:
            raise FilterFailure(self.failed)
        if self.closed:
            raise FilterFailure(f"filter {self.plugin.name!r}: instance already closed")
        fn = self.funcs[name]
        prev = hostcalls.CURRENT
        hostcalls.CURRENT = self
        self.effective = ctx
        result: int | None = None
        t0 = _perf_counter()
        try:
            result = fn(*args)
            return result
        except GuestTrap as exc:
            if name == "_start" and self.exit_code == 0:
                return 0
            self.fail(str(exc))
            raise FilterFailure(self.failed) from None
        finally:
            dt = _perf_counter() - t0
            hostcalls.CURRENT = prev
            self.effective = None
            plugin = self.plugin
            if phase is not None:
                stats = plugin.phases.get(phase) or plugin.phase_stats(phase)
                hist = stats[0]  # _Histogram.observe, inlined: this runs after every callback
                hist.counts[_bisect(hist.bounds, dt)] += 1
                hist.sum += dt
                hist.count += 1
                if exchange is not None:
                    timings = exchange.timings
                    key = stats[1]
                    timings[key] = timings.get(key, 0.0) + dt
            if plugin.observer is not None:
                plugin.observer(plugin.name, name, phase, dt, result, exchange)

    def fail(self, reason: str) -> None:
        """Mark the VM failed (cpp-host semantics) and release every held stream."""
        if self.failed is not None:
            return
        plugin = self.plugin
        self.failed = f"filter {plugin.name!r} failed: {reason}"
        plugin.metrics.traps += 1
        if plugin.trap_burst.starts_burst(time.monotonic()):
            plugin.logger.error("%s (traps in the next %g s are counted in edgenode_wasm_traps, "
                                "not logged)", self.failed, plugin.trap_burst.gap,
                                extra={"filter": plugin.name})
        else:
            plugin.logger.debug("%s", self.failed, extra={"filter": plugin.name})
        for ctx in list(self.contexts.values()):
            if isinstance(ctx, StreamContext) and ctx.resume is not None and not ctx.resume.done():
                ctx.resume.set_exception(FilterFailure(self.failed))
        self._stop_async()

    # --- start-up ------------------------------------------------------------
    def start(self) -> None:
        """WASI init, root context, on_vm_start, on_configure; errors name the filter."""
        name = self.plugin.name
        try:
            if self.has("_initialize"):
                self.call("_initialize", None, phase="vm_start")
                if self.has("main") and self.loaded.exports["main"][0] == 2:
                    self.call("main", None, 0, 0, phase="vm_start")
            elif self.has("_start"):
                self.call("_start", None, phase="vm_start")
            self.root = RootContext(next(self._ids))
            self.contexts[self.root.id] = self.root
            if self.has("proxy_on_context_create"):
                self.call("proxy_on_context_create", self.root, self.root.id, 0)
            if self.has("proxy_on_vm_start"):
                self.configuring = "vm"
                if not self.call("proxy_on_vm_start", self.root, self.root.id,
                                 len(self.plugin.vm_config), phase="vm_start"):
                    raise FilterLoadError(f"filter {name!r}: proxy_on_vm_start returned false"
                                          + self._last_words())
            if self.has("proxy_on_configure"):
                self.configuring = "plugin"
                if not self.call("proxy_on_configure", self.root, self.root.id,
                                 len(self.plugin.plugin_config), phase="configure"):
                    raise FilterLoadError(f"filter {name!r}: proxy_on_configure rejected the "
                                          "plugin configuration" + self._last_words())
        except FilterFailure as exc:
            raise FilterLoadError(f"{exc}") from None
        finally:
            self.configuring = None

    def capture(self, fresh_memory: bytes, global_exports: list[tuple[str, str]]) -> Snapshot:
        """This started VM's state; ``fresh_memory`` is a never-started instance's memory."""
        assert self.root is not None
        self.mem.stale = True
        started = bytes(self.mem.refresh())
        return Snapshot(memory_size=len(started), pages=diff_pages(fresh_memory, started),
                        globals=GlobalState.read(self._ctx, self.native.inst_addr, global_exports),
                        root_id=self.root.id, next_context_id=next(self._ids),
                        tick_ms=self.root.tick_ms)

    def restore(self, snap: Snapshot, state: GlobalState) -> None:
        """Start from ``snap`` instead of running start-up: the same state, none of the calls."""
        try:
            mem = self.mem
            mem.grow_to(snap.memory_size)
            view = mem.view
            for off, data in snap.pages:
                view[off:off + len(data)] = data
            state.write(self._ctx, self.native.inst_addr)
        except WasmtimeError as exc:
            raise FilterLoadError(f"filter {self.plugin.name!r}: cannot restore snapshot: {exc}") from None
        root = self.root = RootContext(snap.root_id)
        root.tick_ms = snap.tick_ms
        self.contexts[root.id] = root
        self._ids = itertools.count(snap.next_context_id)

    def _last_words(self) -> str:
        return f": {self.plugin.last_log}" if self.plugin.last_log else ""

    # --- streams ---------------------------------------------------------------
    def new_stream(self, exchange: Exchange) -> StreamContext:
        assert self.root is not None
        ctx = StreamContext(next(self._ids), self.root, exchange)
        self.contexts[ctx.id] = ctx
        self.active_streams += 1
        if self._on_create:
            self.call("proxy_on_context_create", ctx, ctx.id, self.root.id)
        return ctx

    def finish_stream(self, ctx: StreamContext) -> None:
        """done -> log -> delete (spec order); on_done false waits for proxy_done."""
        if ctx.finished:
            return
        ctx.in_log = True
        ctx.request_headers_open = ctx.response_headers_open = False
        ctx.request_body = ctx.response_body = None
        if self.failed is None and self._on_done and not ctx.done_pending:
            try:
                if not self.call("proxy_on_done", ctx, ctx.id, phase="done", exchange=ctx.exchange):
                    ctx.done_pending = True
                    return
            except FilterFailure:
                pass
        self._drop_stream(ctx)

    def _drop_stream(self, ctx: StreamContext) -> None:
        ctx.finished = True
        try:
            if self.failed is None and self._on_log:
                self.call("proxy_on_log", ctx, ctx.id, phase="log", exchange=ctx.exchange)
            if self.failed is None and self._on_delete:
                self.call("proxy_on_delete", ctx, ctx.id, phase="delete", exchange=ctx.exchange)
        except FilterFailure:
            pass
        self.contexts.pop(ctx.id, None)
        self.active_streams -= 1
        if self.active_streams == 0 and self.on_idle is not None:
            self.on_idle(self)

    def proxy_done(self) -> int:
        ctx = self.effective
        if not isinstance(ctx, StreamContext) or not ctx.done_pending or ctx.finished:
            return int(Status.NOT_FOUND)
        ctx.done_pending = False
        asyncio.get_running_loop().call_soon(self._drop_stream, ctx)
        return int(Status.OK)

    def continue_stream(self, stream_type: int, close: bool) -> int:
        if stream_type in (2, 3):
            return int(Status.UNIMPLEMENTED)
        if stream_type not in (0, 1):
            return int(Status.BAD_ARGUMENT)
        ctx = self.effective
        if not isinstance(ctx, StreamContext):
            return int(Status.BAD_ARGUMENT)
        if close:
            ctx.closed = True
            ctx.resume_stream(ctx.paused or "request")
        else:
            ctx.resume_stream("request" if stream_type == 0 else "response")
        return int(Status.OK)

    def send_local_response(self, status: int, details: str, body: bytes,
                            headers: list[tuple[str, str]]) -> int:
        ctx = self.effective
        if not isinstance(ctx, StreamContext) or ctx.finished:
            return int(Status.BAD_ARGUMENT)
        hdrs: CIMultiDict[str] = CIMultiDict()
        for k, v in headers:
            if not k.startswith(":"):
                hdrs.add(k, v)
        hdrs["Content-Length"] = str(len(body))
        if details:
            ctx.exchange.props[f"wasm.{self.plugin.name}.local_reply_details"] = details
        ctx.local_response = Response(status, hdrs, body)
        if ctx.paused is not None:
            ctx.resume_stream(ctx.paused)
        return int(Status.OK)

    # --- http callouts ---------------------------------------------------------
    def http_call(self, upstream: str, headers: list[tuple[str, str]], body: bytes,
                  timeout_ms: int) -> tuple[int, int]:
        plugin = self.plugin
        if plugin.callout is None or (plugin.upstreams is not None and upstream not in plugin.upstreams):
            return int(Status.BAD_ARGUMENT), 0
        pseudo = {k.lower(): v for k, v in headers if k.startswith(":")}
        method, path, authority = pseudo.get(":method"), pseudo.get(":path"), pseudo.get(":authority")
        if not method or not path or not authority:
            return int(Status.BAD_ARGUMENT), 0
        hdrs: CIMultiDict[str] = CIMultiDict((k, v) for k, v in headers if not k.startswith(":"))
        hdrs["Host"] = authority
        if body:
            hdrs["Content-Length"] = str(len(body))
        request = Request(method, path, hdrs, body, scheme=pseudo.get(":scheme", "http"))
        try:
            awaitable = plugin.callout(upstream, request, timeout_ms / 1000 if timeout_ms else None)
        except KeyError:
            return int(Status.BAD_ARGUMENT), 0
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return int(Status.INTERNAL_FAILURE), 0
        token = next(self._tokens)
        self._callouts[token] = loop.create_task(self._await_callout(token, awaitable))
        return int(Status.OK), token

    async def _await_callout(self, token: int, awaitable: Awaitable[Response]) -> None:
        try:
            response = await awaitable
            body = await read_body(response.body, self.plugin.max_body_bytes)
            pairs = [(":status", str(response.status))]
            pairs.extend((k.lower(), v) for k, v in response.headers.items())
            trailers = response.trailers  # known now that the body has been read
            result = CallResult(pairs, body, trailers=[(k.lower(), v) for k, v in trailers.items()]
                                if trailers else [])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is reported to the filter
            self.plugin.logger.warning("http call %d failed: %r", token, exc,
                                       extra={"filter": self.plugin.name})
            result = CallResult([], b"", int(Status.BROKEN_CONNECTION), "reset")
        finally:
            self._callouts.pop(token, None)
        self._deliver_call(token, result)

    def _deliver_call(self, token: int, result: CallResult) -> None:
        if self.failed is not None or self.closed or self.root is None:
            return
        if not self.has("proxy_on_http_call_response"):
            return
        self.call_result = result
        ok = bool(result.headers)
        try:
            self.call("proxy_on_http_call_response", self.root, self.root.id, token,
                      len(result.headers) if ok else 0, len(result.body) if ok else 0,
                      len(result.trailers) if ok else 0, phase="http_call_response")
        except FilterFailure:
            pass
        finally:
            self.call_result = None

    # --- ticks and queues ------------------------------------------------------
    def set_tick_period(self, ms: int) -> None:
        root = self.root if self.effective is None or self.effective.is_root else self.effective.root  # type: ignore[union-attr]
        if root is None:
            return
        root.tick_ms = ms
        if root.tick_handle is not None:
            root.tick_handle.cancel()
            root.tick_handle = None
        self.arm_tick()

    def arm_tick(self) -> None:
        """(Re)start the tick timer; needs a running loop, so start-up defers it."""
        root = self.root
        if root is None or root.tick_ms == 0 or root.tick_handle is not None or not self.plugin.ticks:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        root.tick_handle = loop.call_later(root.tick_ms / 1000, self._tick)

    def _tick(self) -> None:
        root = self.root
        assert root is not None
        root.tick_handle = None
        if self.failed is not None or self.closed:
            return
        if self.has("proxy_on_tick"):
            try:
                self.call("proxy_on_tick", root, root.id, phase="tick")
            except FilterFailure:
                return
        self.arm_tick()

    def queue_notifier(self) -> Callable[[int], None]:
        def notify(queue_id: int) -> None:
            try:
                asyncio.get_running_loop().call_soon(self._queue_ready, queue_id)
            except RuntimeError:
                pass
        return notify

    def _queue_ready(self, queue_id: int) -> None:
        if self.failed is None and not self.closed and self.root is not None and self.has("proxy_on_queue_ready"):
            try:
                self.call("proxy_on_queue_ready", self.root, self.root.id, queue_id, phase="queue_ready")
            except FilterFailure:
                pass

    def call_foreign(self, function_id: int, args: bytes) -> None:
        """Invoke the module's proxy_on_foreign_function with ``args`` in buffer 8."""
        if self.root is None or not self.has("proxy_on_foreign_function"):
            raise FilterFailure(f"filter {self.plugin.name!r} exports no proxy_on_foreign_function")
        self.foreign_args = args
        try:
            self.call("proxy_on_foreign_function", self.root, self.root.id, function_id, len(args),
                      phase="foreign_function")
        finally:
            self.foreign_args = None

    # --- shutdown ----------------------------------------------------------------
    def _stop_async(self) -> None:
        if self.root is not None and self.root.tick_handle is not None:
            self.root.tick_handle.cancel()
            self.root.tick_handle = None
        for task in self._callouts.values():
            task.cancel()
        self._callouts.clear()

    def close(self, graceful: bool = True) -> None:
        """Stop timers/callouts; a graceful close runs the root's on_done/on_delete."""
        if self.closed:
            return
        self._stop_async()
        if graceful and self.failed is None and self.root is not None:
            try:
                done = True
                if self.has("proxy_on_done"):
                    done = bool(self.call("proxy_on_done", self.root, self.root.id))
                if done and self.has("proxy_on_delete"):
                    self.call("proxy_on_delete", self.root, self.root.id)
            except FilterFailure:
                pass
        self.closed = True
        self.mem.release()
        self.contexts.clear()
        if hostcalls.CURRENT is not self:  # else the store goes when the VM is collected
            self.native.delete()
            self._buffers.give()

