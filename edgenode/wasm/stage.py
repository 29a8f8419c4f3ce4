"""``WasmStage``: a Proxy-Wasm filter as a chain stage, with isolation and failure policy.

Failure policies (docs/filters-abi.md has the full table):
* ``fail_closed`` - the failing stream gets 503; in shared mode the VM is failed and
  every later stream gets 503 until ``reload()``.
* ``fail_open`` - the failing stream continues without the filter; in shared mode
  later streams bypass the filter until ``reload()``.
* ``reload`` - the failing stream gets 503; the next stream starts a new VM; repeated
  failures back off (0, base, 2*base, ... up to 60 s) and streams get 503 meanwhile
  (recovery.py); each new VM counts in ``edgenode_wasm_vm_reloads``.
In ``per-request`` isolation each stream has its own instance, so a failure only
ever affects that stream (``reload`` behaves as ``fail_closed``).  Instances are
started ahead of time in idle loop iterations (``prewarm`` of them wait, fully
configured) and closed after their stream in idle time too, so a request only pays
for its own stream callbacks.  When the module's state is only its memory and globals
(snapshot.resettable), an instance whose stream ended cleanly is reset to the snapshot
in place instead (``Vm.recycle``) and waits for the next stream: what a stream sees is
still exactly a fresh instance.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Collection

from wasmtime import WasmtimeError, wat2wasm

from edgenode.config import StageConfig
from edgenode.http.messages import Response
from edgenode.kept_loop import KeptLoop
from edgenode.pipeline.chain import Next, Outcome
from edgenode.pipeline.exchange import Exchange
from edgenode.pipeline.stage import Handler, wrap_stage
from edgenode.redis.services import RedisServices
from edgenode.wasm.engine import FilterLoadError, LoadedModule, WasmEngine, default_engine
from edgenode.wasm.globalstate import GlobalState
from edgenode.wasm.metrics import metrics_for
from edgenode.wasm.native import StreamOpener
from edgenode.wasm.options import WasmOptions, parse_options
from edgenode.wasm.properties import PluginInfo
from edgenode.wasm.recovery import ReloadBackoff
from edgenode.wasm.snapshot import BAKE_MIN_BYTES, ResetImage, Snapshot, bake, export_globals, resettable
from edgenode.wasm.stream import StreamDriver, StreamSettings, failure_response
from edgenode.wasm.vm import CallObserver, Callout, HostEnv, Plugin, Vm

__all__ = ["WasmStage", "FilterLoadError"]

#: how much of a pooled instance's linear memory (from address 0: data, stack and the
#: start of the heap in small modules) is made resident ahead of its stream; more costs
#: idle CPU per instance (~0.5 µs per 4 KiB page) for pages a stream may never touch
PREFAULT_BYTES = 64 * 1024
#: reset per-request instances kept for later streams: as many as were in use at once
#: (a loop pass runs a batch of hits, each with its own instance), up to this many
REUSE_LIMIT = 64
#: a post-configure snapshot and the writer of its globals (per-request isolation);
#: None when the snapshot is baked into the module the instances come from
_Snap = tuple[Snapshot, GlobalState | None]
#: what ``Vm.recycle`` resets a used instance to: the snapshot, its globals' writer, the
#: started memory
_Reset = tuple[Snapshot, GlobalState, ResetImage]


class WasmStage:
    """A chain stage running one Proxy-Wasm filter."""

    def __init__(self, stage_cfg: StageConfig, *, base_dir: Path, callout: Callout | None = None,
                 node_props: dict[str, Any] | None = None, engine: WasmEngine | None = None,
                 upstreams: Collection[str] | None = None, index: int | None = None,
                 host_env: HostEnv | None = None, observer: CallObserver | None = None,
                 redis: RedisServices | None = None) -> None:
        self.name = stage_cfg.name
        self._prefix = f"chain[{index}]" if index is not None else f"chain[{stage_cfg.name}]"
        self._base_dir = base_dir
        self._callout = callout
        self._node_props = node_props or {}
        self._upstreams = upstreams
        self._redis = redis
        #: clocks/randomness for the guest (default: the real ones) and the per-callback
        #: hook of developer tools; both survive reload()
        self.host_env = host_env or HostEnv()
        self.observer = observer
        self.engine = engine or default_engine()
        self.opts = parse_options(stage_cfg.options, self._prefix, base_dir)
        #: per-request isolation: started instances waiting for a stream
        self._pool: list[Vm] = []
        #: resettable instances out with a stream, and whether the last one came back to
        #: the pool (then the refill counts those out as coming back: ``_recycle_returned``)
        self._lent = 0
        self._reusing = True
        #: instances whose stream ended, waiting for ``_recycle_returned``
        self._returned: list[Vm] = []
        self._refilling = False
        #: the event loop the recycling and refills run in (asked for per reset: a
        #: ``getpid`` each would cost as much as the rest of a reset)
        self._loop = KeptLoop()
        self._closed = False
        self.plugin, self.loaded, self.vm, self._snapshot, self._reset = self._build(self.opts)
        self._backoff = ReloadBackoff(self.opts.reload_backoff)
        self._make_settings()
        #: ``open_stream`` in C for a shared VM with stream hooks (``_arm_opener``): the
        #: usual stream made with no Python frame, anything else by the method below
        self._opener = StreamOpener(StreamDriver, WasmStage.open_stream.__get__(self))
        self._arm_opener()

    # --- construction ------------------------------------------------------------
    def _build(self, opts: WasmOptions) -> tuple[Plugin, LoadedModule, Vm | None, _Snap | None,
                                                 _Reset | None]:
        per_request = opts.isolation == "per-request"
        loaded = self.engine.load(opts.module, self.name, snapshot=per_request and opts.snapshot)
        plugin = Plugin(
            name=self.name,
            info=PluginInfo(self.name, opts.root_id, opts.vm_id, self._node_props),
            vm_config=opts.vm_config, plugin_config=opts.plugin_config, env=opts.env,
            log_level=opts.log_level, metrics=metrics_for(self.name),
            memory_limit=opts.memory_limit, cpu_deadline_ms=opts.cpu_deadline_ms,
            startup_cpu_deadline=opts.startup_cpu_deadline, wasi=opts.wasi, redis=self._redis,
            callout=self._callout, upstreams=self._upstreams, max_body_bytes=opts.max_body_bytes,
            ticks=not per_request, host_env=self.host_env, observer=self.observer,
        )
        fresh_memory = None
        if per_request and loaded.global_exports is not None:
            fresh = Vm(plugin, loaded, self.engine)  # never started: the diff's baseline
            fresh_memory = bytes(fresh.mem.refresh())
            fresh.close(graceful=False)
        vm = self._start_vm(plugin, loaded, None)  # per-request: a canary that validates the config
        if not per_request:
            return plugin, loaded, vm, None, None
        snap: _Snap | None = None
        reset: _Reset | None = None
        if fresh_memory is not None and loaded.global_exports is not None:
            if vm.effects or (vm.random_read and not opts.snapshot_random):
                why = ("made host calls with effects outside the instance" if vm.effects else
                       "read random bytes (snapshot = \"always\" freezes them for every instance)")
                plugin.logger.info("no start-up snapshot: start-up %s", why,
                                   extra={"filter": self.name})
            else:
                captured = vm.capture(fresh_memory, loaded.global_exports)
                binary = self._binary(opts)  # read (and a .wat compiled) once for both uses
                baked = (self._bake(opts, binary, captured, plugin) if captured.image_bytes >= BAKE_MIN_BYTES
                         else None)
                state = GlobalState(captured.globals)
                if baked is not None:
                    loaded, snap = baked, (captured, None)
                else:
                    snap = (captured, state)
                if resettable(binary):
                    reset = (captured, state, captured.reset_image())
        vm.close()
        return plugin, loaded, None, snap, reset

    @staticmethod
    def _binary(opts: WasmOptions) -> bytes:
        """The module's binary (a .wat file compiled)."""
        source = opts.module.read_bytes()
        return bytes(wat2wasm(source.decode())) if opts.module.suffix == ".wat" else source

    def _bake(self, opts: WasmOptions, binary: bytes, captured: Snapshot, plugin: Plugin) -> LoadedModule | None:
        """The module with ``captured`` baked in (snapshot.bake), or None (logged) if the
        module's layout does not allow it; instances then copy the snapshot instead."""
        try:
            baked = bake(export_globals(binary)[0], captured, captured.image)
            return self.engine.load(opts.module, self.name, source=baked)
        except (OSError, ValueError, WasmtimeError, FilterLoadError) as exc:
            plugin.logger.info("start-up snapshot copied into each instance, not baked: %s", exc,
                               extra={"filter": self.name})
            return None

    def _start_vm(self, plugin: Plugin, loaded: LoadedModule, snap: _Snap | None) -> Vm:
        """A started VM: from the snapshot when there is one, else by running start-up."""
        vm = Vm(plugin, loaded, self.engine)
        try:
            if snap is not None:
                vm.restore(*snap)
            else:
                vm.start()
        except BaseException:
            vm.close(graceful=False)
            raise
        return vm

    # --- the stage contract ---------------------------------------------------------
    def handle(self, exchange: Exchange, rest: Next) -> Outcome:
        """The filter's step (pipeline/chain.py): synchronous unless the stream pauses."""
        stream = self.open_stream(exchange)
        if stream is None:
            return rest(exchange)
        if isinstance(stream, Response):
            return stream
        return stream.through(rest)

    def wrap(self, next_handler: Handler) -> Handler:
        return wrap_stage(self, next_handler)

    def open_stream(self, exchange: Exchange) -> StreamDriver | Response | None:
        """This filter's part in ``exchange``: a driver to run (``run``, or its
        synchronous steps), None when the filter takes no part (no stream callbacks, or
        unavailable under ``fail_open``), or the failure reply when it is unavailable.
        On a shared VM with stream hooks the instance's ``open_stream`` is the native
        opener (``_arm_opener``), which makes the usual stream the same way and calls
        this for the rest."""
        vm = self.vm
        if vm is None or vm.failed is not None or (vm.root.tick_ms  # type: ignore[union-attr]
                                                   and vm.root.tick_handle is None):  # type: ignore[union-attr]
            vm = self._acquire()  # per-request, failed, or a tick set before the loop ran
            if vm is None:  # failed, backing off, cannot start
                if self.opts.failure_policy == "fail_open":
                    return None
                self.plugin.metrics.failed_streams += 1
                return failure_response(self.name)
            settings = self._settings if vm is self.vm else self._instance_settings
        else:
            settings = self._settings
        if not vm.stream_hooks:
            return None
        return StreamDriver(vm, exchange, settings)

    def _arm_opener(self) -> None:
        """The native opener as the instance's ``open_stream`` when the shared VM has
        stream hooks, with that VM and its settings; else (per-request instances, a module
        without stream hooks) the method itself, at no extra call.  Called whenever the
        VM or the settings change."""
        vm, opener = self.vm, self._opener
        if vm is not None and vm.stream_hooks:
            opener.vm, opener.settings = vm, self._settings
            self.open_stream = opener  # type: ignore[method-assign]
            return
        opener.vm = None
        if self.open_stream is opener:  # not through ``__dict__``: that would leave the
            del self.open_stream  # instance's attributes in a dict, each read slower

    def _make_settings(self) -> None:
        """Stream settings of the shared VM (resets the reload back-off) and of one-stream
        instances (no back-off)."""
        opts = self.opts
        common = (opts.failure_policy == "fail_open", opts.server_timing, opts.pause_timeout,
                  opts.allow_on_headers_stop_iteration)
        self._settings = StreamSettings(*common, self._backoff)
        self._instance_settings = StreamSettings(*common)

    def _acquire(self) -> Vm | None:
        """The VM for a new stream, or None when the filter is unavailable."""
        if self.opts.isolation == "per-request":
            if self._pool:
                vm = self._pool.pop()
            else:
                try:
                    vm = self._start_vm(self.plugin, self.loaded, self._snapshot)
                except FilterLoadError as exc:
                    self.plugin.logger.error("%s", exc, extra={"filter": self.name})
                    return None
            if self._reset is not None:
                vm.on_idle = self._after_stream
                self._lent += 1
                if self._reusing and len(self._pool) + self._lent >= self.opts.prewarm:
                    return vm  # filled (``_filled``), the common case: no refill to start
            else:
                vm.on_idle = _close_later
            self._start_refill()
            return vm
        vm = self.vm
        assert vm is not None
        if vm.failed is None:
            vm.arm_tick()
            return vm
        if self.opts.failure_policy != "reload" or not self._backoff.may_reload(time.monotonic()):
            return None
        try:
            new_vm = self._start_vm(self.plugin, self.loaded, None)
        except FilterLoadError as exc:
            self.plugin.logger.error("reload failed: %s", exc, extra={"filter": self.name})
            return None
        self.plugin.metrics.vm_reloads += 1
        self._swap(new_vm)
        new_vm.arm_tick()
        return new_vm

    def _start_refill(self) -> None:
        """Schedule ``_refill`` (unless it is running or has nothing to do)."""
        if not self._refilling and not self._filled():
            self._refilling = True
            self._loop.get().call_soon(self._refill)

    def _filled(self) -> bool:
        """Whether ``prewarm`` instances wait, counting those out with a stream as coming
        back when the last one did (``_recycle_returned``)."""
        lent = self._lent if self._reusing else 0
        return len(self._pool) + lent >= self.opts.prewarm

    def _refill(self) -> None:
        """Start one per-request instance per idle loop iteration until ``prewarm`` wait."""
        if self._closed or self._filled() or self.opts.isolation != "per-request":
            self._refilling = False
            return
        try:
            vm = self._start_vm(self.plugin, self.loaded, self._snapshot)
        except FilterLoadError:
            self._refilling = False  # the next stream starts one itself and reports the error
            return
        vm.inst.prefault(PREFAULT_BYTES)
        self._pool.append(vm)
        self._loop.get().call_soon(self._refill)

    def _after_stream(self, vm: Vm) -> None:
        """A resettable per-request instance after its stream: recycled in idle time, the
        instances of one loop pass (a batch of hits) in one callback."""
        if not self._returned:
            try:
                self._loop.get().call_soon(self._recycle_returned)
            except RuntimeError:  # no loop: nothing to reuse it for
                self._lent -= 1
                vm.close()
                return
        self._returned.append(vm)

    def _recycle_returned(self) -> None:
        """Reset each instance returned since the last pass into the pool (``Vm.recycle``);
        else (the pool has ``REUSE_LIMIT`` waiting, the stage closed or reloaded since, or
        the reset refused) it is closed and the pool refilled."""
        returned, self._returned = self._returned, []
        reset, pool = self._reset, self._pool
        for vm in returned:
            self._lent -= 1
            if (reset is not None and not self._closed and vm.plugin is self.plugin
                    and len(pool) < REUSE_LIMIT):
                self._reusing = vm.recycle(*reset)
                if self._reusing:
                    vm.on_idle = None
                    pool.append(vm)
                    continue
            vm.close()  # a refused reset has closed it already
            if not self._closed:
                self._start_refill()

    def _drain_pool(self) -> None:
        pool, self._pool = self._pool, []
        for vm in pool:
            vm.close()

    def _swap(self, new_vm: Vm | None) -> None:
        old, self.vm = self.vm, new_vm
        self._arm_opener()
        if old is not None:
            if old.active_streams == 0 or old.failed is not None:
                old.close()
            else:
                old.on_idle = _close_now  # in-flight streams finish on the old VM

    async def reload(self, stage_cfg: StageConfig | None = None) -> None:
        """Load the module/config again and swap it in; in-flight streams keep the old VM.

        On any error the running filter is left untouched and the error is raised.
        """
        opts = self.opts if stage_cfg is None else parse_options(stage_cfg.options, self._prefix,
                                                                 self._base_dir)
        plugin, loaded, vm, snap, reset = self._build(opts)
        self.opts, self.plugin, self.loaded, self._snapshot, self._reset = opts, plugin, loaded, snap, reset
        self._backoff = ReloadBackoff(opts.reload_backoff)
        self._make_settings()
        self._drain_pool()
        self._swap(vm)

    def watch_paths(self) -> list[Path]:
        """Files whose change should trigger ``reload()`` (the node polls their mtimes)."""
        return [self.opts.module, *self.opts.files]

    def call_foreign_function(self, function_id: int, args: bytes) -> None:
        """Invoke the shared VM's proxy_on_foreign_function (buffer 8 holds ``args``)."""
        if self.vm is None:
            raise FilterLoadError(f"filter {self.name!r}: per-request filters have no long-lived VM")
        self.vm.call_foreign(function_id, args)

    def stats(self) -> dict[str, Any]:
        m = self.plugin.metrics
        return {"isolation": self.opts.isolation, "failure_policy": self.opts.failure_policy,
                "failed": None if self.vm is None else self.vm.failed,
                "abi": ".".join(map(str, self.loaded.version)), "traps": m.traps,
                "vm_starts": m.vm_starts, "vm_reloads": m.vm_reloads, "failed_streams": m.failed_streams,
                "snapshot": self._snapshot is not None,
                "snapshot_baked": self._snapshot is not None and self._snapshot[1] is None,
                "reset": self._reset is not None}

    async def close(self) -> None:
        self._closed = True
        self._drain_pool()
        if self.vm is not None:
            self.vm.close()


def _close_now(vm: Vm) -> None:
    """A replaced VM after its last stream: root on_done/on_delete (docs/filters-abi.md)."""
    vm.close()


def _close_later(vm: Vm) -> None:
    """A per-request instance after its stream: root on_done/on_delete, in idle time."""
    try:
        asyncio.get_running_loop().call_soon(vm.close)
    except RuntimeError:
        vm.close()
