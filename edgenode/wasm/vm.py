"""A filter VM: one wasmtime Store + instance, its contexts, and everything async it owns.

``Vm`` is used two ways: long-lived (``isolation = "shared"``, a context per stream)
and short-lived (``"per-request"``, a fresh instance from the ``InstancePre`` for one
stream).  A trap marks the VM failed (as cpp-host does); the stage's failure policy
decides what the stream and later streams get.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Collection

from wasmtime import WasmtimeError

from edgenode.http.messages import CIMultiDict, Request, Response, read_body
from edgenode.observe.loglevel import TRACE
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.abi import Status
from edgenode.wasm.contexts import RootContext, StreamContext
from edgenode.wasm.engine import STREAM_PHASES, FilterLoadError, LoadedModule, WasmEngine, deadline_ticks
from edgenode.wasm.errors import GuestTrap
from edgenode.wasm.globalstate import GlobalState
from edgenode.wasm.guestmem import GuestMemory
from edgenode.wasm.metrics import FilterMetrics
from edgenode.wasm.native import Histogram, Instance, VmCore
from edgenode.wasm.properties import PluginInfo
from edgenode.wasm.recovery import TrapBurst
from edgenode.wasm.snapshot import ResetImage, Snapshot, diff_pages, nonzero_pages
from edgenode.wasm.wasi import WasiGrants, forget_fds

if TYPE_CHECKING:
    from edgenode.redis.pool import RedisPool
    from edgenode.redis.services import RedisServices

__all__ = ["Plugin", "Vm", "FilterFailure", "CallResult", "Callout", "HostEnv", "CallObserver"]

Callout = Callable[[str, Request, float | None], Awaitable[Response]]
#: called after each guest call with (filter name, export, phase or None, seconds, result or
#: None if it trapped, the stream's Exchange or None); it must not raise
CallObserver = Callable[[str, str, "str | None", float, "int | None", "Exchange | None"], None]

_perf_counter = time.perf_counter
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


@dataclass(slots=True)
class Plugin:
    """Per-filter settings shared by every VM of one stage (slots: each stream reads
    ``observer`` by offset, native/stream.c)."""

    name: str
    info: PluginInfo
    vm_config: bytes
    plugin_config: bytes
    env: dict[str, str]
    #: the filter's log level (0 trace .. 5 critical); None: not set (info)
    log_level: int | None
    metrics: FilterMetrics
    memory_limit: int
    cpu_deadline_ms: float
    #: CPU deadline of each start-up call, seconds (options.py)
    startup_cpu_deadline: float = 5.0
    wasi: WasiGrants = field(default_factory=WasiGrants)
    #: the node's Redis services (proxy_redis_init/call), and the clusters this filter
    #: initialised: cluster name -> (pool, timeout seconds); kept per filter, not per
    #: instance, so per-request instances started from a snapshot still have them
    redis: "RedisServices | None" = None
    redis_clients: "dict[str, tuple[RedisPool, float]]" = field(default_factory=dict)
    callout: Callout | None = None
    upstreams: Collection[str] | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    ticks: bool = True
    host_env: HostEnv = DEFAULT_HOST_ENV
    #: per-callback hook for developer tools (`edgenode filter run`); None costs nothing
    observer: CallObserver | None = None
    logger: logging.Logger = field(init=False)
    #: epoch ticks of a callback's CPU deadline, and of a start-up call's
    deadline_ticks: int = field(init=False)
    startup_deadline_ticks: int = field(init=False)
    #: which traps get an error line (one per burst, shared by the stage's VMs)
    trap_burst: TrapBurst = field(init=False, default_factory=TrapBurst)
    last_log: str = ""
    #: phase -> callback histogram (its ``key`` is the Exchange.timings key), shared by
    #: the stage's VMs
    phases: dict[str, Histogram] = field(init=False, default_factory=dict)
    _stream_stats: dict[str, tuple[Histogram | None, ...]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.deadline_ticks = deadline_ticks(self.cpu_deadline_ms)
        self.startup_deadline_ticks = deadline_ticks(self.startup_cpu_deadline * 1000)
        logger = self.logger = logging.getLogger(f"edgenode.filter.{self.name}")
        if self.log_level is None:  # not set: info, records filtered by the logging set-up
            self.log_level = 2
            if logger.name in _LEVEL_SET:  # undo a level an earlier configuration set
                _LEVEL_SET.discard(logger.name)
                logger.setLevel(logging.NOTSET)
        else:  # set (per filter, or the node's [log] level): its records pass at that level
            logger.setLevel(_PY_LEVELS[self.log_level])
            _LEVEL_SET.add(logger.name)

    def stream_stats(self, loaded: LoadedModule) -> tuple[Histogram | None, ...]:
        """The histograms of ``loaded.stream_ids``' callbacks (None: not exported)."""
        stats = self._stream_stats.get(loaded.sha256)
        if stats is None:
            stats = self._stream_stats[loaded.sha256] = tuple(
                None if hook < 0 else self.phase_stats(phase)
                for hook, phase in zip(loaded.stream_ids, STREAM_PHASES))
        return stats

    def phase_stats(self, phase: str) -> Histogram:
        """The callback-time histogram of ``phase`` (the host core updates it)."""
        stats = self.phases.get(phase)
        if stats is None:
            stats = self.phases[phase] = self.metrics.callback_histogram(phase)
        return stats

    @property
    def vm_id(self) -> str:
        return self.info.vm_id

    def log(self, level: int, message: str) -> None:
        if level >= 3:
            self.last_log = message
        if level >= self.log_level:
            self.logger.log(_PY_LEVELS[level], "%s", message, extra={"filter": self.name})


class Vm(VmCore):
    """One instance of a filter module and the Proxy-Wasm state around it.

    What every stream reads (failed, closed, plugin, inst, root, contexts, context ids, open
    streams, on_idle, whether streams open) are ``VmCore``'s C fields: the native stream
    steps read them by offset, and a failure, close or reload assigned here is what they
    read next."""

    def __init__(self, plugin: Plugin, loaded: LoadedModule, engine: WasmEngine) -> None:
        self.plugin = plugin
        self.loaded = loaded
        self.version = loaded.version
        #: ABI 0.1.0: headers hooks take no end_of_stream argument (checked per stream)
        self.v010 = loaded.version == (0, 1, 0)
        # the store calls host functions whose callbacks the engine owns: keep it alive
        self._engine = engine
        engine.ensure_ticker()
        self.failed: str | None = None
        self.closed = False
        self.exit_code: int | None = None
        #: a host call with effects outside the instance ran (hostcalls._vm_effect), and one
        #: after which something outside refers to the instance (hostcalls._vm_tie)
        self.effects = False
        self.tied = False
        #: WASI random_get ran (a snapshot would freeze what it returned)
        self.random_read = False
        #: WASI made it a file table (wasi.forget_fds drops it on a reset)
        self.files_opened = False
        self.inst = self._instantiate(engine)  # instantiation runs under the start-up deadline
        self.inst.deadline = plugin.deadline_ticks
        #: hook name -> id in ``inst`` (the module's table until export() adds one)
        self.funcs = loaded.hook_ids
        self._mem: GuestMemory | None = None
        self._ids = itertools.count(1)
        self.contexts: dict[int, RootContext | StreamContext] = {}
        self.root: RootContext | None = None
        self.configuring: str | None = None
        self.call_result: CallResult | None = None
        self.foreign_args: bytes | None = None
        #: the Redis reply being delivered (buffer 9, hostcalls_redis.py)
        self.redis_reply: bytes | None = None
        self._tokens = itertools.count(1)
        self._callouts: dict[int, asyncio.Task[None]] = {}
        self.active_streams = 0
        self.on_idle: Callable[["Vm"], None] | None = None
        #: resets so far (``recycle``): the first also unmaps the untouched zero pages
        self.resets = 0
        # the trailers hooks are bound on first use (most streams have no trailers)
        self.request_trailers_hook = loaded.request_trailers_hook
        self.response_trailers_hook = loaded.response_trailers_hook
        self.request_body_hooks = loaded.request_body_hooks
        self.response_body_hooks = loaded.response_body_hooks
        self.stream_hooks = loaded.stream_hooks
        self._hook_ids = loaded.stream_ids
        self._stats = plugin.stream_stats(loaded)
        # a stream's calls pass only what is the stream's own (instance.c open_stream, respond)
        self.inst.set_stream_hooks(self._hook_ids, self._stats)
        #: start_stream calls into the core (a create or request headers hook is exported)
        self._opens = self._hook_ids[0] >= 0 or self._hook_ids[1] >= 0
        plugin.metrics.vm_starts += 1

    @property
    def mem(self) -> GuestMemory:
        """Linear memory for the Python host functions and snapshots (made on first use)."""
        mem = self._mem
        if mem is None:
            mem = self._mem = GuestMemory(self.inst)
        return mem

    def _instantiate(self, engine: WasmEngine) -> Instance:
        """A Store + instance from the pool, else (pool full, module too big) on demand."""
        plugin, loaded = self.plugin, self.loaded
        args = (plugin.startup_deadline_ticks, loaded.hooks, loaded.memory_export, loaded.allocator, self,
                loaded.version == (0, 1, 0), plugin.log_level)
        try:
            if loaded.sha256 not in engine.unpoolable:
                try:
                    return Instance(engine.engine_ptr, loaded.pre_ptr, plugin.memory_limit, *args)
                except WasmtimeError as exc:
                    if not engine.pooling:
                        raise
                    if "concurrent" not in str(exc):  # not a full pool: this module never fits
                        engine.unpoolable.add(loaded.sha256)
            engine_ptr, pre_ptr = engine.overflow(loaded)
            return Instance(engine_ptr, pre_ptr, plugin.memory_limit, *args)
        except Exception as exc:  # noqa: BLE001 - WasmtimeError, or a trap in a start function
            raise FilterLoadError(f"filter {plugin.name!r}: cannot instantiate module: {exc}") from None

    @property
    def effective(self) -> RootContext | StreamContext | None:
        """The context the running callback's host calls act on (proxy_set_effective_context)."""
        return self.inst.effective

    @effective.setter
    def effective(self, ctx: RootContext | StreamContext | None) -> None:
        self.inst.effective = ctx

    # --- guest calls ---------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.funcs

    def export(self, name: str, nparams: int, nresults: int) -> int:
        """Bind any exported function (beyond the callbacks) for ``call``; its hook id."""
        hook = self.inst.bind(name, nparams, nresults)
        self.funcs = {**self.funcs, name: hook}
        return hook

    def bind_hook(self, name: str) -> None:
        """Bind an exported callback that is not looked up at instantiation (trailers)."""
        if name not in self.funcs:
            self.export(name, *self.loaded.exports[name])

    def alloc(self, size: int) -> int:
        return self.inst.alloc(size)

    def call(self, name: str, ctx: RootContext | StreamContext | None, *args: int,
             phase: str | None = None, exchange: Exchange | None = None) -> int:
        """Call export ``name`` with ``ctx`` effective; a trap fails the VM and raises."""
        return self.invoke(name, ctx, phase, exchange, args)

    def invoke(self, name: str, ctx: RootContext | StreamContext | None, phase: str | None,
               exchange: Exchange | None, args: tuple[int, ...]) -> int:
        """``call`` with positional arguments: one transition into the host core."""
        if self.failed is not None:
            raise FilterFailure(self.failed)
        if self.closed:
            raise FilterFailure(f"filter {self.plugin.name!r}: instance already closed")
        plugin = self.plugin
        stats = None if phase is None else plugin.phase_stats(phase)
        timings = None if exchange is None else exchange.timings
        if plugin.observer is not None:
            return self._observed(name, ctx, phase, exchange, args, stats, timings)
        try:
            return self.inst.call(self.funcs[name], ctx, stats, timings, *args)
        except GuestTrap as exc:
            return self.trapped(name, exc)

    def trapped(self, name: str, exc: GuestTrap) -> int:
        """A callback trapped: fail the VM and raise (``_start`` exiting 0 is a clean exit)."""
        if name == "_start" and self.exit_code == 0:
            return 0
        self.fail(exc.args[0])
        raise FilterFailure(self.failed) from None

    def _observed(self, name: str, ctx: RootContext | StreamContext | None, phase: str | None,
                  exchange: Exchange | None, args: tuple[int, ...], stats: Histogram | None,
                  timings: dict | None) -> int:
        """``invoke`` for developer tools: the observer sees every callback."""
        result: int | None = None
        t0 = _perf_counter()
        try:
            result = self.inst.call(self.funcs[name], ctx, stats, timings, *args)
            return result
        except GuestTrap as exc:
            return self.trapped(name, exc)
        finally:
            self.plugin.observer(self.plugin.name, name, phase,  # type: ignore[misc]
                                 _perf_counter() - t0, result, exchange)

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
        """WASI init, root context, on_vm_start, on_configure; errors name the filter.

        Each of these calls runs under the stage's start-up CPU deadline; memory grows
        under the same ``memory_limit`` as at request time (a failure reports both).
        """
        self.inst.deadline = self.plugin.startup_deadline_ticks
        try:
            self._start()
        except FilterLoadError as exc:
            raise FilterLoadError(f"{exc}{self._memory_note()}") from None
        finally:
            self.inst.deadline = self.plugin.deadline_ticks

    def _memory_note(self) -> str:
        """Linear memory against the limit: a refused memory.grow looks like any other
        allocation failure to the guest, so the numbers tell the operator what to raise."""
        if self.closed:
            return ""
        self.mem.stale = True
        size = len(self.mem.refresh())
        return (f" (linear memory {size / 2**20:.1f} MiB, memory_limit "
                f"{self.plugin.memory_limit / 2**20:.1f} MiB: growing past it fails)")

    def _start(self) -> None:
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
                        globals=GlobalState.read(self.inst.ctx_ptr, self.inst.instance_ptr, global_exports),
                        root_id=self.root.id, next_context_id=next(self._ids),
                        tick_ms=self.root.tick_ms, image=nonzero_pages(started))

    def restore(self, snap: Snapshot, state: GlobalState | None) -> None:
        """Start from ``snap`` instead of running start-up: the same state, none of the calls.

        ``state`` None: the instance comes from a module with the snapshot baked in
        (snapshot.bake), or was reset to it (``recycle``), and its memory and globals
        already hold it; only the host side (root context, context ids, tick period) is
        set.  A root the VM already has with the snapshot's id, no tick timer and no other
        context is kept: it holds nothing else a new one would not.
        """
        if state is not None:
            try:
                self.inst.restore(snap.memory_size, snap.pages, state.names, state.values_addr,
                                  state.value_size)
            except WasmtimeError as exc:
                raise FilterLoadError(f"filter {self.plugin.name!r}: cannot restore snapshot: {exc}") from None
        root = self.root
        if root is None or root.id != snap.root_id or root.tick_handle is not None or len(self.contexts) != 1:
            self.contexts.clear()
            root = self.root = RootContext(snap.root_id)
            self.contexts[root.id] = root
        root.tick_ms = snap.tick_ms
        self._ids = itertools.count(snap.next_context_id)

    def _last_words(self) -> str:
        return f": {self.plugin.last_log}" if self.plugin.last_log else ""

    # --- streams ---------------------------------------------------------------
    def new_stream(self, exchange: Exchange) -> StreamContext:
        """A stream's context on its own (tests, tools); the guest hears of it in
        ``start_stream``.  A filter's streams are ``StreamDriver``s, registered by ``begin``."""
        assert self.root is not None
        ctx = StreamContext(self, exchange)
        ctx.register()
        return ctx

    def start_stream(self, ctx: StreamContext, nheaders: int, end_of_stream: bool) -> int:
        """``proxy_on_context_create`` then ``proxy_on_request_headers`` (each if exported),
        in one transition; returns the headers result (0 without the hook)."""
        if not self._opens:
            return 0
        if self.failed is not None or self.closed or self.plugin.observer is not None:
            return self._start_checked(ctx, nheaders, end_of_stream)
        try:
            return self.inst.open_stream(ctx, ctx.exchange.timings, ctx.id, ctx.root.id, nheaders,
                                         -1 if self.v010 else end_of_stream)
        except GuestTrap as exc:
            return self.trapped("", exc)

    def _start_checked(self, ctx: StreamContext, nheaders: int, end_of_stream: bool) -> int:
        """``start_stream`` on a failed or closed VM, or for developer tools' observer."""
        if self.failed is not None:
            raise FilterFailure(self.failed)
        if self.closed:
            raise FilterFailure(f"filter {self.plugin.name!r}: instance already closed")
        assert self.root is not None
        create, headers = self._hook_ids[0], self._hook_ids[1]
        if create >= 0:
            self.invoke("proxy_on_context_create", ctx, "context_create", ctx.exchange,
                        (ctx.id, self.root.id))
        if headers < 0:
            return 0
        args = (ctx.id, nheaders) if self.v010 else (ctx.id, nheaders, int(end_of_stream))
        return self.invoke("proxy_on_request_headers", ctx, "request_headers", ctx.exchange, args)

    def finish_stream(self, ctx: StreamContext) -> None:
        """done -> log -> delete (spec order); on_done false waits for proxy_done."""
        if ctx.finished:
            return
        ctx.in_log = True
        ctx.request_headers_open = ctx.response_headers_open = False
        ctx.request_body = ctx.response_body = None
        self._end(ctx, not ctx.done_pending)

    def respond(self, ctx: StreamContext, nheaders: int, body: bytes) -> tuple[int, int, Any]:
        """The response side of a stream whose body is in memory, in one transition:
        ``proxy_on_response_headers``; if it continues, ``proxy_on_response_body`` over the
        whole body (end_of_stream=1, if the module exports it and there is a body); if that
        continues too, the stream's end (as ``finish_stream``).  Returns (action, stage,
        buffer): stage 0 or 1 when the headers or the body callback returned ``action``
        (non-zero), 2 when the stream finished; ``buffer`` is the body as the body
        callback left it (None without a body callback)."""
        if self.failed is not None:
            raise FilterFailure(self.failed)
        if self.closed:
            raise FilterFailure(f"filter {self.plugin.name!r}: instance already closed")
        ids = self._hook_ids
        body_hook = ids[6] if body else -1
        ctx.response_headers_open = True
        ctx.response_started = True
        if body_hook >= 0:
            ctx.response_body = body  # the message's bytes: copied if the filter writes them
        if self.plugin.observer is not None:  # developer tools see each callback
            return self._respond_observed(ctx, nheaders, body, body_hook)
        try:
            action, stage, ended, buffer = self.inst.respond(
                ctx, ctx.exchange.timings, ctx.id, nheaders, -1 if self.v010 else not body,
                len(body) if body_hook >= 0 else 0)
        except GuestTrap as exc:
            return self.respond_trapped(ctx, exc, body_hook)
        if ended > 0:
            ctx.forget()
        elif ended == 0:
            ctx.done_pending = True
        return action, stage, buffer

    def respond_trapped(self, ctx: StreamContext, exc: GuestTrap, body_hook: int) -> tuple[int, int, Any]:
        """``respond``'s outcome when a callback trapped: FilterFailure if the response
        headers or body callback did; else (on_done, on_log or on_delete) the VM fails,
        the stream is over and the response stands."""
        if exc.args[1] in (self._hook_ids[2], body_hook):
            return self.trapped("", exc), 0, None
        self.fail(exc.args[0])
        buffer = ctx.response_body
        ctx.request_body = ctx.response_body = None
        ctx.forget()
        return 0, 2, buffer

    def _respond_observed(self, ctx: StreamContext, nheaders: int, body: bytes,
                          body_hook: int) -> tuple[int, int, Any]:
        """``respond`` one callback at a time, for developer tools' observer."""
        v010 = self.v010
        action = 0
        if self._hook_ids[2] >= 0:
            args = (ctx.id, nheaders) if v010 else (ctx.id, nheaders, int(not body))
            action = self.invoke("proxy_on_response_headers", ctx, "response_headers", ctx.exchange, args)
            if action:
                return action, 0, None
        buffer = None
        if body_hook >= 0:
            ctx.response_headers_open = False
            action = self.invoke("proxy_on_response_body", ctx, "response_body", ctx.exchange,
                                 (ctx.id, len(body), 1))
            buffer = ctx.response_body
            if action:
                return action, 1, buffer
        self.finish_stream(ctx)
        return 0, 2, buffer

    def _end(self, ctx: StreamContext, done: bool) -> None:
        """``proxy_on_done`` (if ``done``), ``proxy_on_log``, ``proxy_on_delete`` in one
        transition, then forget the context (unless on_done asked to wait)."""
        ids = ((self._hook_ids[3] if done else -1), self._hook_ids[4], self._hook_ids[5])
        if self.failed is None and not self.closed and ids != (-1, -1, -1):
            plugin = self.plugin
            if plugin.observer is not None:
                completed = self._end_observed(ctx, ids)
            else:
                try:
                    stats = self._stats
                    completed = self.inst.end_stream(ctx, ctx.exchange.timings, ids[0], stats[3], ids[1],
                                                     stats[4], ids[2], stats[5], ctx.id)
                except GuestTrap as exc:
                    self.fail(exc.args[0])
                    completed = True
            if not completed:
                ctx.done_pending = True
                return
        ctx.forget()

    def _end_observed(self, ctx: StreamContext, ids: tuple[int, int, int]) -> bool:
        """``_end``'s calls one by one, for developer tools' observer."""
        try:
            for hook, phase in zip(ids, ("done", "log", "delete")):
                if hook >= 0:
                    name = f"proxy_on_{phase}"
                    result = self.invoke(name, ctx, phase, ctx.exchange, (ctx.id,))
                    if phase == "done" and not result:
                        return False
        except FilterFailure:
            pass
        return True

    def proxy_done(self) -> int:
        ctx = self.effective
        if not isinstance(ctx, StreamContext) or not ctx.done_pending or ctx.finished:
            return int(Status.NOT_FOUND)
        ctx.done_pending = False
        asyncio.get_running_loop().call_soon(self._end, ctx, False)
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

    def start_callout(self, work: Callable[[int], Awaitable[None]]) -> int:
        """Run ``work(token)`` as a callout owned by this VM: cancelled when the VM fails or
        closes, like an HTTP callout.  Needs a running loop (RuntimeError otherwise)."""
        loop = asyncio.get_running_loop()
        token = next(self._tokens)
        task = self._callouts[token] = loop.create_task(work(token))
        task.add_done_callback(lambda _t: self._callouts.pop(token, None))
        return token

    def notify_root(self, hook: str, *args: int, phase: str) -> None:
        """Call root callback ``hook(root_id, *args)`` if the module exports it (callout
        replies); a trap fails the VM as usual and is not raised here."""
        if self.failed is not None or self.closed or self.root is None or hook not in self.loaded.exports:
            return
        self.bind_hook(hook)
        try:
            self.call(hook, self.root, self.root.id, *args, phase=phase)
        except FilterFailure:
            pass

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

    def _end_root(self) -> None:
        """The root's on_done, then on_delete unless on_done returned false: one transition."""
        root, ids = self.root, self._hook_ids
        if self.failed is None and root is not None and (ids[3] >= 0 or ids[5] >= 0):
            try:
                self.inst.end_stream(root, None, ids[3], None, -1, None, ids[5], None, root.id)
            except GuestTrap as exc:
                self.fail(exc.args[0])

    def recycle(self, snap: Snapshot, state: GlobalState, image: ResetImage) -> bool:
        """Put a per-request instance whose stream has ended back into ``snap``'s state for
        another stream, or close it; True when it was put back.

        Starting an instance from the snapshot (instantiation, the snapshot's pages, the
        prefault) and closing it cost ~150 µs per stream; a reset compares the pages the
        stream touched with ``image`` and copies back those that differ, and writes the
        mutable globals.  It must leave nothing a fresh instance would not have, so it
        only runs for modules whose code changes no other instance state
        (``snapshot.resettable``: no table or segment changes), and the instance is
        closed instead when the stream failed it, grew its memory, left anything open
        (contexts, callouts) or made a host call after which something outside refers to
        the instance (``tied``: a registered shared queue, a foreign function with
        unknown effects).  Metrics, shared data and finished callouts changed the
        node's state, not the instance's: a fresh instance would see the same.  The
        close's root on_done/on_delete run here as well."""
        if (self.failed is not None or self.closed or self.tied or self.active_streams
                or self._callouts or len(self.contexts) != 1):
            self.close()
            return False
        ids = self._hook_ids
        if ids[3] >= 0 or ids[5] >= 0:
            self._end_root()
        if (self.failed is not None or self.tied or self._callouts
                or not self.inst.reset(image.size, image.index, image.pages, state.names, state.values_addr,
                                       state.value_size, not self.resets)):  # False: the memory grew
            self.close(graceful=False)
            return False
        self.resets += 1
        if self.files_opened:
            forget_fds(self)
        self._tokens = itertools.count(1)
        root = self.root  # the host side: what restore(snap, None) sets, without its call
        if root is not None and root.id == snap.root_id and root.tick_handle is None and len(self.contexts) == 1:
            root.tick_ms = snap.tick_ms
            self._ids = itertools.count(snap.next_context_id)
        else:
            self.restore(snap, None)
        return True

    def close(self, graceful: bool = True) -> None:
        """Stop timers/callouts; a graceful close runs the root's on_done/on_delete."""
        if self.closed:
            return
        self._stop_async()
        if graceful:
            self._end_root()
        self.closed = True
        if self._mem is not None:
            self._mem.release()
        self.contexts.clear()
        self.inst.delete()  # during a guest call (a host function closing it): when it returns

