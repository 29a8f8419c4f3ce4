"""One edge node process: built once from a ``Config``, started, stopped gracefully.

Everything is assembled at construction time (origin pools, the terminal upstream,
the stage chain, metrics and access log), so a bad config fails before any socket
opens.  ``start()`` opens the data-plane listener and, unless this node is a worker
behind a master, the admin API; ``stop(grace)`` stops accepting and lets in-flight
requests finish.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from edgenode.admin.app import build_admin_app
from edgenode.admin.token import admin_token
from edgenode.cache.stage import CacheStage
from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.store import Store, purge_store
from edgenode.config import Config, ConfigError, StageConfig, load_config
from edgenode.fleet.oci import OciError, is_oci, pull_module
from edgenode.http.listen import listen_error
from edgenode.http.messages import Prebuilt, Request, Response
from edgenode.frontend.server import FrontEnd
from edgenode.node_state import NodeResources
from edgenode.observe._series import RequestEnd
from edgenode.observe.accesslog import AccessLog
from edgenode.observe.metrics import CacheCollector, NodeMetrics
from edgenode.observe.origins import OriginCollector
from edgenode.pipeline.exchange import Exchange
from edgenode.pipeline.chain import Chain, Outcome
from edgenode.pipeline.stage import Stage
from edgenode.proxy.upstream import Upstream
from edgenode.redis.services import RedisServices

__all__ = ["Node", "Signals", "InternalUpstream", "LocalAdmin", "StopSignals", "serve_until", "announce"]

log = logging.getLogger("edgenode.node")
#: ``[log] level`` -> the Proxy-Wasm level name of a filter's ``log_level``
_FILTER_LOG_LEVELS = {"trace": "trace", "debug": "debug", "info": "info", "warning": "warn", "error": "error"}

InternalUpstream = Callable[[Request], Awaitable[Response]]


class _Hooks(list):  # type: ignore[type-arg]
    """A hook list that tells its watcher (``changed``) after every change: the front
    end calls the chain's first step directly while no request-start hook is subscribed
    (``_Entry.attach``), and tools subscribe after the node is built."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        super().__init__()
        self.changed: Callable[[], None] | None = None


def _watched(name: str) -> Callable[..., Any]:
    """``list.<name>``, then the watcher told."""
    base = getattr(list, name)

    def method(self: _Hooks, *args: Any) -> Any:
        result = base(self, *args)
        if self.changed is not None:
            self.changed()
        return result

    method.__name__ = name
    return method


for _name in ("append", "extend", "insert", "remove", "pop", "clear", "__setitem__", "__delitem__",
              "__iadd__", "__imul__"):
    setattr(_Hooks, _name, _watched(_name))


@dataclass
class Signals:
    """Per-request hooks (like aiohttp's TraceConfig): metrics, the access log and
    benchmark tools subscribe; a hook that raises is logged and never breaks a request.
    The lists are subscribed to in place (appended to), not replaced: their readers
    keep them (the front end's handler, the cache's fast path)."""

    on_request_start: list[Callable[[Exchange], None]] = field(default_factory=_Hooks)
    on_request_end: list[Callable[[Exchange, Response], None]] = field(default_factory=list)
    #: ``request_end(exchange, response)``: each ``on_request_end`` hook in turn, a loop in
    #: C (observe/_series.c): with the metrics' C ``observe`` the only hook, a request's
    #: completion runs no Python frame (the loop as a method and ``observe`` were two)
    request_end: Callable[[Exchange, Response], None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.request_end = RequestEnd(self.on_request_end, log)

    def request_start(self, exchange: Exchange) -> None:
        for hook in self.on_request_start:
            try:
                hook(exchange)
            except Exception:
                log.exception("on_request_start hook failed")


class _Entry:
    """The front end's handler: the request-start signals, then the chain's first step.

    While no request-start hook is subscribed the front end it is attached to calls the
    chain's first step itself (one Python frame less per request); a hook subscribed
    (``Signals.on_request_start`` is watched) or a chain swapped (``chain``: tools stub
    the origin) binds the front end's handler again."""

    __slots__ = ("signals", "_chain", "_frontend")

    def __init__(self, signals: Signals, chain: Chain) -> None:
        self.signals = signals
        self._chain = chain
        self._frontend: FrontEnd | None = None

    @property
    def chain(self) -> Chain:
        return self._chain

    @chain.setter
    def chain(self, chain: Chain) -> None:
        self._chain = chain
        self._bind()

    def attach(self, frontend: FrontEnd) -> None:
        """Keep ``frontend``'s handler bound to this entry's current form."""
        self._frontend = frontend
        hooks = self.signals.on_request_start
        if isinstance(hooks, _Hooks):
            hooks.changed = self._bind
        self._bind()

    def _bind(self) -> None:
        frontend = self._frontend
        if frontend is None:
            return
        hooks = self.signals.on_request_start
        # a bound method, not the object: CPython 3.11 runs its frame in the caller's
        # interpreter invocation, an object's ``__call__`` (``slot_tp_call``) in one of its own
        direct = isinstance(hooks, _Hooks) and hooks.changed == self._bind and not hooks
        frontend.handler = self._chain.first if direct else self.__call__

    def __call__(self, exchange: Exchange) -> Outcome:
        if self.signals.on_request_start:
            self.signals.request_start(exchange)
        return self._chain.first(exchange)  # ``Chain.__call__`` without its frame


class Node:
    """The data plane (front end + chain + upstream) and, optionally, the admin API."""

    def __init__(self, config: Config, *, worker: int | None = None, admin: bool = True,
                 workers: int = 1) -> None:
        self.config = config
        self.worker = worker
        self.signals = Signals()
        self.metrics = NodeMetrics()
        self._internal: dict[str, InternalUpstream] = {}
        self.upstream = Upstream(config)
        self.metrics.add_collector(OriginCollector(lambda: self.upstream.pools, self.upstream.health))
        self.redis = RedisServices(config.redis)
        self.cache: CacheStage | None = None
        self.filters: dict[str, Any] = {}
        #: function stages by name
        self.functions: dict[str, Any] = {}
        # a worker joins the store (and filter state) its master opened; a node alone owns them
        self._state = NodeResources(config, owner=worker is None, workers=workers)
        self.store: Store | None = self._state.store
        try:
            self.stages: list[Stage] = [self._build_stage(i, sc) for i, sc in enumerate(config.chain)]
        except BaseException:
            self._state.close()
            raise
        if self.cache is not None:
            self.metrics.add_collector(CacheCollector(self._cache_stats))
        if self.functions:
            from edgenode.functions.metrics import FunctionsCollector

            self.metrics.add_collector(FunctionsCollector(lambda: self.functions))
        self._services: list[Any] = []
        self.images: Any = None
        self._warming: asyncio.Task[None] | None = None
        self._foreign: dict[str, Callable[[bytes], bytes]] = {}  # our foreign functions
        if self.filters:
            from edgenode.images.service import IMAGE_UPSTREAM, ImageService
            from edgenode.wasm.metrics import wasm_collector

            self.metrics.add_collector(wasm_collector)
            from edgenode.node_functions import node_functions
            from edgenode.wasm.foreign import register_foreign_function

            self._foreign = node_functions(self.purge)
            for fname, fn in self._foreign.items():
                register_foreign_function(fname, fn)
            images = self.images = ImageService()  # its pool starts on the first transform only
            self._services.append(images)
            self.register_internal_upstream(IMAGE_UPSTREAM, images.handle)
        self.access_log = AccessLog(config.log, worker)  # opened last: nothing left to fail
        self._observe = self.metrics.observe  # one bound method: _CacheFastPath checks for it
        self.signals.on_request_end.append(self._observe)
        if self.access_log.enabled:  # a disabled log still cost a call per request
            self.signals.on_request_end.append(self.access_log.log)
        #: the request path, linked once: the stages' steps, then the origin
        self.chain = Chain(self.stages, self.upstream)
        fast = _CacheFastPath(self) if self._fast_chain() else None
        #: the front end's handler (tools swap its ``chain``, e.g. to stub the origin)
        self.entry = _Entry(self.signals, self.chain)
        self.frontend = FrontEnd(self.entry.__call__, config.server, on_complete=self.signals.request_end,
                                 fast_path=fast)
        self.entry.attach(self.frontend)  # the chain's first step itself while no hook is subscribed
        if isinstance(self.store, SharedStore):  # its writes are committed before answers leave
            self.frontend.batch.stores = self.store
            self.frontend.batch.queue = self.store.queue()
        self._admin_enabled = admin and config.admin.listen is not None
        self._admin_runner: web.AppRunner | None = None
        self.admin_port = 0
        #: a FleetAgent when [fleet] is configured; a worker has none (its master is the member)
        self.fleet: Any = None
        if config.fleet is not None and worker is None:
            from edgenode.fleet.agent import FleetAgent
            from edgenode.fleet.host import NodeHost

            self.fleet = FleetAgent(NodeHost(self), config.fleet)

    # --- assembly -------------------------------------------------------------------
    def _fast_chain(self) -> bool:
        """Whether the chain suits the front end's fast path: the cache first, or after
        filters that open a stream around the rest (``pipeline.chain.Opens``), which the
        chain runs as one step before asking the cache for its kept answer."""
        n = 0
        while n < len(self.stages) and hasattr(self.stages[n], "open_stream"):
            n += 1
        return n < len(self.stages) and self.stages[n] is self.cache

    def _build_stage(self, index: int, sc: StageConfig) -> Stage:
        if sc.type == "cache":
            # every cache stage shares one store; the first answers as "edgenode" in
            # Cache-Status, inner ones as "edgenode-<name>"
            nested = sum(1 for s in self.config.chain if s.type == "cache") > 1
            # fleet nodes answer under their node id, so Cache-Status names every hop
            member = self.config.fleet.node_id if self.config.fleet is not None else "edgenode"
            if self.cache is None:
                self.cache = CacheStage(self.config.cache, self.store, name=sc.name, cache_name=member, nested=nested)
                return self.cache
            return CacheStage(self.config.cache, self.cache.store, name=sc.name,
                              cache_name=f"{member}-{sc.name}", nested=nested)
        if sc.type == "function":
            return self._build_function(index, sc)
        from edgenode.wasm.stage import FilterLoadError, WasmStage  # wasmtime only when needed

        try:
            stage = WasmStage(self._wasm_settings(sc), base_dir=self.config.base_dir, callout=self.callout,
                              node_props={"worker": self.worker or 0, "node": self.config.server.via,
                                          "routes": self.upstream.routes, "origins": self.config.origins},
                              redis=self.redis,
                              index=index)
        except (FilterLoadError, OciError) as exc:
            raise ConfigError(f"chain[{index}].module: {exc}") from None
        self.filters[sc.name] = stage
        return stage

    def _build_function(self, index: int, sc: StageConfig) -> Stage:
        """A ``wasi:http`` component stage; its key-value stores live in the node's
        function key-value backend (node-wide with the lmdb store)."""
        from edgenode.functions.stage import FunctionStage

        settings = self._filter_settings(sc)
        stage = FunctionStage(settings, base_dir=self.config.base_dir, callout=self.callout,
                              upstreams=self.config.upstreams, kv=self._state.function_kv, index=index)
        self.functions[sc.name] = stage
        return stage

    def _wasm_settings(self, sc: StageConfig) -> StageConfig:
        """A Proxy-Wasm filter's settings: the node's ``[log] level`` is its default
        ``log_level`` (what ``proxy_get_log_level`` reports)."""
        sc = self._filter_settings(sc)
        if "log_level" in sc.options:
            return sc
        return replace(sc, options={**sc.options, "log_level": _FILTER_LOG_LEVELS[self.config.log.level]})

    def _filter_settings(self, sc: StageConfig) -> StageConfig:
        """``[server] server_timing = false`` is a node-wide off switch for every filter's
        ``Server-Timing`` entry, whatever the stage says (a bad stage value still errors).
        A module named ``oci://...`` is replaced by its verified local copy (pulled once)."""
        module = sc.options.get("module")
        if isinstance(module, str) and is_oci(module):
            from edgenode.wasm.engine import default_cache_dir

            sc = replace(sc, options={**sc.options, "module": str(pull_module(module, default_cache_dir()))})
        if self.config.server.server_timing or sc.options.get("server_timing", True) is not True:
            return sc
        return replace(sc, options={**sc.options, "server_timing": False})

    def register_internal_upstream(self, name: str, handler: InternalUpstream) -> None:
        """Serve filter callouts to ``name`` in-process (e.g. the image service)."""
        self._internal[name] = handler

    def callout(self, name: str, request: Request, timeout: float | None) -> Awaitable[Response]:
        """A filter's HTTP callout: internal services first, then configured upstreams.

        Not a coroutine function on purpose: an unknown name raises ``KeyError`` at call
        time, which the Proxy-Wasm host reports to the filter as BAD_ARGUMENT.
        """
        internal = self._internal.get(name)
        if internal is not None:
            return asyncio.wait_for(internal(request), timeout)
        if name not in self.config.upstreams:
            raise KeyError(name)
        return self.upstream.callout(name, request, timeout)

    # --- lifecycle ------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.frontend.port

    async def start(self, host: str | None = None, port: int | None = None, *,
                    reuse_port: bool = False, sock: socket.socket | None = None) -> None:
        """Listen on ``host:port`` (default: ``server.listen``) or on the bound ``sock``
        (a worker's share of its master's listening socket)."""
        if self.fleet is not None:
            await self.fleet.sync()  # missed purges and the fleet config before serving
        await self.frontend.start(host, port, reuse_port=reuse_port, sock=sock)
        if self.fleet is not None:
            self.fleet.announce(f"http://{reachable_host(host or self.config.server.listen[0])}:{self.port}")
        if self._admin_enabled:
            assert self.config.admin.listen is not None
            ahost, aport = self.config.admin.listen
            self._admin_runner = await self.start_admin(
                build_admin_app(LocalAdmin(self), admin_token(self.config.admin)), ahost, aport)
            self.admin_port = self._admin_runner.addresses[0][1]
        log.info("edgenode listening on %s:%d%s", host or self.config.server.listen[0], self.port,
                 f", admin on port {self.admin_port}" if self.admin_port else "")

    @staticmethod
    async def start_admin(app: web.Application, host: str | None, port: int | None = None, *,
                          path: str | None = None) -> web.AppRunner:
        """Serve ``app`` on TCP ``host:port`` or on the unix socket ``path``."""
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site: web.BaseSite = (web.UnixSite(runner, path) if path is not None
                              else web.TCPSite(runner, host, port))
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            if path is not None:
                raise
            raise listen_error("admin.listen", host or "0.0.0.0", port or 0, exc) from None
        return runner

    def warm_up(self) -> asyncio.Task[None] | None:
        """For a serving process: start the image service's worker processes now, so the
        first transform does not wait for them (seconds on a busy host); await the task
        to be sure they are up."""
        if self.images is not None and self._warming is None:
            self._warming = asyncio.get_running_loop().create_task(self.images.warm_up())
        return self._warming

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, drain in-flight requests (up to ``grace`` s), release everything."""
        grace = self.config.server.shutdown_grace if grace is None else grace
        if self.fleet is not None:
            await self.fleet.stop()  # leave the fleet first: edges stop sending misses here
        await self.frontend.shutdown(grace)
        if self._warming is not None:
            await asyncio.gather(self._warming, return_exceptions=True)
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None
        for stage in reversed(self.stages):
            try:
                await stage.close()
            except Exception:
                log.exception("closing stage %s failed", stage.name)
        await self.upstream.close()
        await self.redis.close()
        self._state.close()
        for service in self._services:
            await service.close()
        if self._foreign:
            from edgenode.wasm.foreign import lookup_foreign_function, unregister_foreign_function

            for fname, fn in self._foreign.items():
                if lookup_foreign_function(fname) is fn:  # not replaced by another node since
                    unregister_foreign_function(fname)
        self.access_log.close()

    async def run(self, watch: list[Path] | None = None) -> None:
        """Start, serve until SIGTERM/SIGINT, then shut down gracefully.

        ``watch``: files whose change reloads the wasm filters (``serve --watch``).
        """
        loop = asyncio.get_running_loop()
        admin = LocalAdmin(self)
        with StopSignals() as stop:
            await self.start()
            self.warm_up()
            tune_gc()
            # SIGHUP: no workers to replace here; reload the filters (config file re-read)
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload_logged(admin)))
            announce(self.config, self.port, self.admin_port, 1)
            try:
                await serve_until(stop, admin, watch)
            finally:
                loop.remove_signal_handler(signal.SIGHUP)
        log.info("shutting down (grace %.1fs)", self.config.server.shutdown_grace)
        await self.stop()

    # --- admin operations -----------------------------------------------------------
    def _cache_stats(self) -> dict[str, Any]:
        return self.cache.stats() if self.cache is not None else {}

    def purge(self, kind: str, values: list[str], soft: bool) -> int:
        if self.cache is None:
            return 0
        return purge_store(self.cache.store, kind, values, soft)

    def stats(self) -> dict[str, Any]:
        out = self.metrics.snapshot()
        out["cache"] = self._cache_stats()
        out["filters"] = {name: _filter_stats(stage) for name, stage in self.filters.items()}
        if self.images is not None:
            out["images"] = self.images.stats()
        if self.functions:
            out["functions"] = {name: stage.stats() for name, stage in self.functions.items()}
        if self.fleet is not None:
            out["fleet"] = self.fleet.health()
        elif self.upstream.tier is not None:  # a worker of a fleet node: its master merges these
            out["tiers"] = self.upstream.tier.status()
        if self.worker is not None:
            out["worker"] = self.worker
        return out

    async def reload_filters(self, name: str | None) -> dict[str, Any]:
        """Reload wasm filters (all, or one by name) without dropping requests.

        When the node was started from a config file, the file is read again first, so a
        filter picks up its changed settings (module, config, limits); adding, removing or
        reordering stages still needs a restart.  A bad file raises ConfigError and every
        filter keeps running as it was.
        """
        stages = {**self.filters, **self.functions}
        targets = [name] if name is not None else list(stages)
        for n in targets:
            if n not in stages:
                raise KeyError(n)
        fresh: dict[str, StageConfig] = {}
        if self.config.source is not None:
            fresh = {sc.name: self._wasm_settings(sc) if sc.type == "wasm" else self._filter_settings(sc)
                     for sc in load_config(self.config.source, self.config.settings).chain
                     if sc.type in ("wasm", "function")}
        for n in targets:
            result = stages[n].reload(fresh.get(n))
            if asyncio.iscoroutine(result):
                await result
        return {"reloaded": targets}


    async def reload_stage(self, name: str, settings: StageConfig) -> None:
        """Reload one wasm or function stage with explicit settings (a fleet rollout); on
        failure the error is raised and the stage keeps running as it was."""
        stage = self.filters[name] if name in self.filters else self.functions.get(name)
        if stage is None:
            raise KeyError(name)
        prepare = self._wasm_settings if name in self.filters else self._filter_settings
        sc = await asyncio.to_thread(prepare, settings)  # may pull from a registry
        result = stage.reload(sc)
        if asyncio.iscoroutine(result):
            await result

    def stage_binaries(self) -> dict[str, Path]:
        """The Wasm file each filter (module) and function (component) runs now."""
        out = {name: stage.opts.module for name, stage in self.filters.items()}
        out.update({name: stage.opts.component for name, stage in self.functions.items()})
        return out


def reachable_host(host: str) -> str:
    """The host other machines reach a wildcard listener on (``fleet.advertise`` overrides)."""
    return socket.getfqdn() if host in ("", "0.0.0.0", "::") else host


class _CacheFastPath:
    """The front end's fast path (``frontend.state.FastPath``) for fresh cache hits.

    For a chain that starts with the cache stage (a hit there is the whole of the
    request's work) the answer is ``CacheStage.fast_hit``, one call that validates a
    kept answer, counts the hit and records the metrics exactly as the chain's hit
    would be: it answers only while the metrics observer is the one per-request hook
    (``observe_fast``): any other subscriber (the access log, a recorder, a
    request-start hook) gets the real ``Exchange``, so then every request takes the
    chain.  For a chain whose filters come before the cache (``filtered``) the front end
    only marks a plain request so (``Exchange.plain``) and it runs its chain in the
    batch: every hook and signal sees a real ``Exchange``, as on the general path.
    """

    __slots__ = ("answer", "filtered")

    def __init__(self, node: Node) -> None:
        cache = node.cache
        assert cache is not None
        #: filters come first: the front end marks a plain request for the chain
        self.filtered = node.stages[0] is not cache
        signals = node.signals
        cache.observe_fast(node.metrics.observe_parts, signals.on_request_start, signals.on_request_end,
                           node._observe)
        self.answer = cache.fast_hit


def _filter_stats(stage: Any) -> dict[str, Any]:
    stats = getattr(stage, "stats", None)
    return stats() if callable(stats) else {}


class LocalAdmin:
    """AdminBackend for one in-process node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def purge(self, kind: str, values: list[str], soft: bool) -> dict[str, Any]:
        if self.node.fleet is not None:  # applied here and sent to every node of the fleet
            return await self.node.fleet.purge(kind, values, soft)
        return {"purged": self.node.purge(kind, values, soft), "soft": soft}

    async def stats(self) -> dict[str, Any]:
        return self.node.stats()

    async def metrics(self) -> bytes:
        return self.node.metrics.exposition()

    async def reload_filters(self, name: str | None) -> dict[str, Any]:
        return await self.node.reload_filters(name)

    async def restart(self) -> dict[str, Any]:
        raise NotImplementedError("a graceful restart replaces worker processes: "
                                  "run the node with workers (serve --workers N)")

    async def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ok", "port": self.node.port, "worker": self.node.worker}
        state = self.node._cache_stats().get("state", "ok")
        if state != "ok":  # a pass-through node works, but not as the operator meant
            out.update(status="degraded", cache=state)
        if self.node.fleet is not None:  # the node serves either way; this says how in sync it is
            out["fleet"] = self.node.fleet.health()
        return out


async def _reload_logged(admin: LocalAdmin) -> None:
    try:
        await admin.reload_filters(None)
    except Exception as exc:  # a bad file or module: the running filters stay
        log.error("filter reload on SIGHUP failed: %s", exc)


def tune_gc() -> None:
    """Make the cyclic GC cheap for a long-lived server holding a large cache.

    Every stored entry adds GC-tracked objects, so the default thresholds (700, 10, 10)
    re-walk the cache over and over: ~40 µs of GC per cache miss measured (see
    docs/performance.md).  Objects created during start-up (modules, filters, config) are
    frozen out of collection, and young collections run 70x less often.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def announce(config: Config, port: int, admin_port: int, workers: int) -> None:
    """One stable line on stderr with the real ports (scripts and tests parse it)."""
    host = config.server.listen[0]
    admin = f"http://{config.admin.listen[0]}:{admin_port}" if config.admin.listen else "off"
    print(f"edgenode: serving http://{host}:{port} admin={admin} workers={workers}",
          file=sys.stderr, flush=True)


async def serve_until(stop: asyncio.Event, backend: Any, watch: list[Path] | None) -> None:
    """Wait for ``stop``, meanwhile reloading filters when a watched file changes."""
    watcher = None
    if watch:
        from edgenode.watch import watch_files

        watcher = asyncio.create_task(watch_files(watch, lambda: backend.reload_filters(None)))
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()


class StopSignals:
    """``with StopSignals() as stop``: SIGTERM/SIGINT set the event ``stop``.

    Entered before start-up, so a signal sent right after the ready banner is never
    lost to the default handler (which would kill the process without draining).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __enter__(self) -> asyncio.Event:
        self._loop = asyncio.get_running_loop()
        event = asyncio.Event()
        for sig in self.SIGNALS:
            self._loop.add_signal_handler(sig, event.set)
        return event

    def __exit__(self, *exc: object) -> None:
        for sig in self.SIGNALS:
            self._loop.remove_signal_handler(sig)
