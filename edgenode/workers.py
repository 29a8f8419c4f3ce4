"""Multi-process serving: N worker processes, one node.

The master binds one listening socket per worker slot (SO_REUSEPORT among themselves,
so the kernel spreads connections over them) and keeps them for its lifetime; worker
``i`` serves slot ``i``'s socket, inherited at spawn (``python -m edgenode worker ...``,
a clean interpreter each).  Because the socket outlives its worker, a worker that is
replaced (SIGHUP, ``POST /restart``) or restarted after dying never takes queued
connections down with it: its successor accepts them from the same socket.  The port
(also one picked with ``:0``) stays the same for the node's life.

The node's state is shared: the master opens the cache store (``[cache] store =
"lmdb"``: its node lock, format check) and the filter state before any worker starts,
and the workers join them, so every worker serves what any worker stored, collapses
misses with the others, and sees every purge.  The master serves the admin API: a
purge of the shared store runs here, once, and is visible in every worker when it
returns; reloads go to every worker over their control sockets (:mod:`edgenode.control`);
``/stats`` and ``/metrics`` give node-wide figures and each worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edgenode.admin.app import build_admin_app
from edgenode.admin.token import admin_token
from edgenode.cache.store import COUNTERS, Store, purge_store
from edgenode.config import Config, ConfigError, load_config
from edgenode.control import TOKEN_ENV, ControlClient, ControlError
from edgenode.http.listen import bind_worker_slots
from edgenode.node_state import NodeResources
from edgenode.observe.metrics import CacheCollector, merge_expositions

__all__ = ["Supervisor", "WorkerSpec", "WorkerStartError", "merge_stats", "run_worker",
           "NODE_WIDE_CACHE"]

log = logging.getLogger("edgenode.workers")

#: longest pause between restarts of a worker that keeps dying
MAX_BACKOFF = 5.0
#: how long a worker may take to come up (filters compile at start)
READY_TIMEOUT = 60.0
#: /stats cache figures that describe the shared store itself, not one worker
NODE_WIDE_CACHE = ("entries", "bytes", "urls", "max_bytes", "store", "path", "state")
#: gauges of the shared store that every worker would report (the master reports them once)
_NODE_WIDE_GAUGES = ("edgenode_cache_entries", "edgenode_cache_bytes", "edgenode_cache_max_bytes")


#: the directory holding the edgenode package, for the workers' PYTHONPATH
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class WorkerStartError(RuntimeError):
    """A worker did not come up; ``status`` is its exit status (2: config error) or None."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class WorkerSpec:
    """What the master passes on to every worker's command line."""

    config_path: str | None
    origin: str | None = None
    #: ``--set KEY=VALUE`` items, passed on as they are
    settings: list[str] = field(default_factory=list)


class _Worker:
    def __init__(self, index: int, control_path: str, token: str) -> None:
        self.index = index
        self.control = ControlClient(control_path, token)
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.started = 0.0
        #: replaced by a newer worker on its slot: stop monitoring, let it drain
        self.retired = False


class Supervisor:
    """The master process of a multi-worker node."""

    def __init__(self, config: Config, spec: WorkerSpec, workers: int) -> None:
        self.config = config
        self.spec = spec
        self.count = workers
        self.port = 0
        self.admin_port = 0
        self._dir = tempfile.mkdtemp(prefix="edgenode-")
        self._token = secrets.token_urlsafe(24)
        self._generation = 0
        self._workers = [self._new_worker(i) for i in range(workers)]
        self._slots: list[socket.socket] = []
        self._monitors: dict[int, asyncio.Task[None]] = {}
        self._admin: web.AppRunner | None = None
        self._stopping = False
        self._restarting: asyncio.Lock | None = None
        #: the shared cache store (lmdb) and filter state, opened here before any worker
        self._state: NodeResources | None = None
        self.store: Store | None = None
        #: the node's fleet member (edgenode.fleet.master.MasterMember) when [fleet] is set
        self.fleet: Any = None

    def _new_worker(self, index: int) -> _Worker:
        return _Worker(index, os.path.join(self._dir, f"w{index}-{self._generation}.sock"), self._token)

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._restarting = asyncio.Lock()
        try:
            self._bind()  # first: a port taken by another node is the error to report
            self._open_state()
            if self.config.fleet is not None:  # the node's one fleet member, caught up before any worker serves
                from edgenode.fleet.master import MasterMember

                self.fleet = MasterMember(self, Path(self._dir) / "fleet-state.json", FanoutAdmin(self))
                await self.fleet.sync()
            # the first worker alone first: a config or filter error then shows once, not N times
            first, rest = self._workers[0], self._workers[1:]
            await self._spawn(first)
            await self._wait_ready(first)
            if self.fleet is not None:
                await self.fleet.first_worker_ready()
            for w in rest:
                await self._spawn(w)
            await asyncio.gather(*(self._wait_ready(w) for w in rest))
        except BaseException:
            await self.stop(0.0)
            raise
        for w in self._workers:
            self._watch(w)
        if self.config.admin.listen is not None:
            from edgenode.node import Node

            ahost, aport = self.config.admin.listen
            app = build_admin_app(FanoutAdmin(self), admin_token(self.config.admin))
            self._admin = await Node.start_admin(app, ahost, aport)
            self.admin_port = self._admin.addresses[0][1]
        if self.fleet is not None:
            from edgenode.node import reachable_host

            self.fleet.announce(f"http://{reachable_host(self.config.server.listen[0])}:{self.port}")
        log.info("edgenode master: %d workers on port %d%s", self.count, self.port,
                 f", admin on port {self.admin_port}" if self.admin_port else "")

    def _open_state(self) -> None:
        self._state = NodeResources(self.config, owner=True, workers=self.count, shared_only=True)
        self.store = self._state.store

    def _bind(self) -> None:
        host, port = self.config.server.listen
        # only this node's workers share the port: a second node is refused, not merged in
        self._slots = bind_worker_slots(host, port, self.count)
        self.port = self._slots[0].getsockname()[1]

    async def _spawn(self, w: _Worker) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(w.control.path)
        slot = self._slots[w.index].fileno()
        # -P: the current directory must not shadow modules (a stray inspect.py in the
        # directory serve was started from killed every worker); the package is found
        # through PYTHONPATH instead, installed or not
        cmd = [sys.executable, "-P", "-m", "edgenode", "worker", "--worker-id", str(w.index),
               "--listen-fd", str(slot), "--of", str(self.count), "--control", w.control.path]
        if self.spec.config_path is not None:
            cmd += ["--config", self.spec.config_path]
        if self.spec.origin is not None:
            cmd += ["--origin", self.spec.origin]
        for item in self.spec.settings:
            cmd += ["--set", item]
        env = dict(os.environ, **{TOKEN_ENV: self._token})
        if self.fleet is not None:
            from edgenode.fleet.worker import STATE_ENV

            env[STATE_ENV] = str(self.fleet.state_path)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        w.proc = await asyncio.create_subprocess_exec(*cmd, env=env, pass_fds=(slot,))
        w.started = time.monotonic()

    async def _wait_ready(self, w: _Worker) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert w.proc is not None
            if w.proc.returncode is not None:
                raise WorkerStartError(f"worker {w.index} exited with status {w.proc.returncode} "
                                       "at start-up", w.proc.returncode)
            if os.path.exists(w.control.path):
                with contextlib.suppress(ControlError):
                    await w.control.call("GET", "/healthz")
                    return
            if time.monotonic() > deadline:
                raise WorkerStartError(f"worker {w.index} did not become ready in {READY_TIMEOUT:.0f}s")
            await asyncio.sleep(0.05)

    def _watch(self, w: _Worker) -> None:
        self._monitors[w.index] = asyncio.create_task(self._monitor(w))

    async def _monitor(self, w: _Worker) -> None:
        """Restart ``w`` whenever it dies, backing off if it keeps dying quickly."""
        backoff = 0.25
        while not self._stopping and not w.retired:
            assert w.proc is not None
            code = await w.proc.wait()
            if self._stopping or w.retired:
                return
            log.warning("worker %d exited with status %s; restarting", w.index, code)
            check = getattr(self.store, "check_readers", None)
            if check is not None:
                check()  # it may have died inside a read of the shared store
            backoff = 0.25 if time.monotonic() - w.started > 10 else min(backoff * 2, MAX_BACKOFF)
            await asyncio.sleep(backoff)
            if self._stopping or w.retired:
                return
            w.restarts += 1
            await self._spawn(w)
            try:
                await self._wait_ready(w)
            except WorkerStartError as exc:
                log.error("%s", exc)

    async def restart(self) -> dict[str, Any]:
        """Replace every worker, one slot at a time, without dropping a request.

        The config file is read again first (a bad one changes nothing and raises
        ConfigError).  Each new worker takes over its slot's socket once ready; the old
        one then stops accepting and drains its in-flight requests (SIGTERM).
        """
        assert self._restarting is not None
        async with self._restarting:
            load_config(self.spec.config_path, self.spec.settings)  # validate before any change
            self._generation += 1
            draining: list[_Worker] = []
            for i, old in enumerate(list(self._workers)):
                new = self._new_worker(i)
                new.restarts = old.restarts
                await self._spawn(new)
                try:
                    await self._wait_ready(new)
                except WorkerStartError:
                    if new.proc is not None and new.proc.returncode is None:
                        new.proc.kill()
                        await new.proc.wait()
                    raise
                old.retired = True
                self._workers[i] = new
                self._watch(new)
                if old.proc is not None and old.proc.returncode is None:
                    old.proc.send_signal(signal.SIGTERM)
                draining.append(old)
            await asyncio.gather(*(self._reap(w) for w in draining))
        log.info("replaced %d workers (generation %d)", self.count, self._generation)
        return {"restarted": self.count, "generation": self._generation}

    async def _reap(self, w: _Worker) -> None:
        if w.proc is not None:
            try:
                await asyncio.wait_for(w.proc.wait(), self.config.server.shutdown_grace + 5.0)
            except asyncio.TimeoutError:
                log.warning("worker %d did not stop in time; killing it", w.index)
                w.proc.kill()
                await w.proc.wait()
        await w.control.close()

    async def stop(self, grace: float | None = None) -> None:
        """SIGTERM every worker (each drains its in-flight requests), then clean up."""
        self._stopping = True
        if self.fleet is not None:  # leave the fleet first: edges stop sending misses here
            await self.fleet.stop()
            self.fleet = None
        if self._admin is not None:
            await self._admin.cleanup()
            self._admin = None
        for w in self._workers:
            if w.proc is not None and w.proc.returncode is None:
                w.proc.send_signal(signal.SIGTERM)
        grace = self.config.server.shutdown_grace if grace is None else grace
        for w in self._workers:
            if w.proc is None:
                continue
            try:
                await asyncio.wait_for(w.proc.wait(), grace + 5.0)
            except asyncio.TimeoutError:
                log.warning("worker %d did not stop in time; killing it", w.index)
                w.proc.kill()
                await w.proc.wait()
            await w.control.close()
        for task in self._monitors.values():
            task.cancel()
        for sock in self._slots:
            sock.close()
        self._slots = []
        if self._state is not None:
            self._state.close()
            self.store = None
        shutil.rmtree(self._dir, ignore_errors=True)

    async def run(self, watch: list[Path] | None = None) -> None:
        """Like ``Node.run``: serve until SIGTERM/SIGINT, then drain every worker.

        SIGHUP replaces the workers gracefully (as ``POST /restart`` does).
        """
        from edgenode.node import StopSignals, announce, serve_until

        loop = asyncio.get_running_loop()
        with StopSignals() as stop:
            await self.start()
            loop.add_signal_handler(signal.SIGHUP, self._restart_in_background)
            announce(self.config, self.port, self.admin_port, self.count)
            try:
                await serve_until(stop, FanoutAdmin(self), watch)
            finally:
                loop.remove_signal_handler(signal.SIGHUP)
        log.info("shutting down %d workers", self.count)
        await self.stop()

    def _restart_in_background(self) -> None:
        async def restart() -> None:
            try:
                await self.restart()
            except (ConfigError, WorkerStartError) as exc:
                log.error("restart on SIGHUP failed, the running workers stay: %s", exc)

        asyncio.get_running_loop().create_task(restart())

    # --- fan-out --------------------------------------------------------------------
    async def call(self, index: int, method: str, path: str, body: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        """One worker's control API (ControlError when it does not answer)."""
        return await self._workers[index].control.call(method, path, body, timeout)

    async def each(self, method: str, path: str, body: dict[str, Any] | None = None) -> list[Any]:
        """Call every live worker; a worker that fails answers with a ControlError."""
        return await asyncio.gather(*(w.control.call(method, path, body) for w in self._workers),
                                    return_exceptions=True)

    def master_metrics(self) -> list[Any]:
        up = sum(1 for w in self._workers if w.proc is not None and w.proc.returncode is None)
        out: list[Any] = [
            GaugeMetricFamily("edgenode_workers", "Worker processes running.", value=up),
            CounterMetricFamily("edgenode_worker_restarts", "Worker processes restarted after dying.",
                                value=sum(w.restarts for w in self._workers))]
        return out

    def store_exposition(self) -> str:
        """The shared store's figures as the master sees them: its node-wide gauges and
        the purges run here (merged with the workers' own counters)."""
        assert self.store is not None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(CacheCollector(self.store.stats))
        return generate_latest(registry).decode()

    def worker_info(self) -> list[dict[str, Any]]:
        return [{"worker": w.index, "pid": w.proc.pid if w.proc else None, "restarts": w.restarts,
                 "alive": w.proc is not None and w.proc.returncode is None} for w in self._workers]


def _errors(results: list[Any]) -> list[str]:
    return [f"worker {i}: {r}" for i, r in enumerate(results) if isinstance(r, BaseException)]


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the workers' /stats: numbers add up, tables merge, uptime is the longest."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key == "worker":
                continue
            if key not in out:
                out[key] = merge_stats([value]) if isinstance(value, dict) else value
            elif isinstance(value, bool) or not isinstance(value, (int, float, dict)):
                continue
            elif isinstance(value, dict) and isinstance(out[key], dict):
                out[key] = merge_stats([out[key], value])
            elif key.startswith("uptime"):
                out[key] = max(out[key], value)
            elif isinstance(out[key], (int, float)) and not isinstance(out[key], bool):
                out[key] += value
    return out


def _without_families(text: str, names: tuple[str, ...]) -> str:
    """Exposition ``text`` without the samples (and HELP/TYPE lines) of ``names``."""
    keep = []
    for line in text.splitlines():
        body = line[7:] if line.startswith(("# HELP ", "# TYPE ")) else line
        name = body.split("{", 1)[0].split(" ", 1)[0]
        if name not in names:
            keep.append(line)
    return "\n".join(keep) + "\n"


def _per_worker_metrics(parts: list[dict[str, Any]]) -> list[Any]:
    """Each worker's own figures, labelled by worker (the merged series sum them)."""
    requests = CounterMetricFamily("edgenode_worker_requests", "Client requests served by each worker.",
                                   labels=["worker"])
    hits = CounterMetricFamily("edgenode_worker_cache_hits", "Fresh cache hits served by each worker.",
                               labels=["worker"])
    hot = GaugeMetricFamily("edgenode_worker_cache_hot_bytes",
                            "Bytes of decoded hot objects each worker keeps in memory.", labels=["worker"])
    for part in parts:
        w = str(part.get("worker", "?"))
        cache = part.get("cache", {})
        requests.add_metric([w], float(part.get("requests", 0)))
        hits.add_metric([w], float(cache.get("hits", 0)))
        hot.add_metric([w], float(cache.get("hot_bytes", 0)))
    return [requests, hits, hot]


class FanoutAdmin:
    """AdminBackend of the master: the shared store's purge here, the rest to every worker."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    async def purge(self, kind: str, values: list[str], soft: bool) -> dict[str, Any]:
        if self.sup.fleet is not None:  # applied here once and sent to every node of the fleet
            return await self.sup.fleet.purge(kind, values, soft)
        return await self.purge_here(kind, values, soft)

    async def purge_here(self, kind: str, values: list[str], soft: bool) -> dict[str, Any]:
        """The purge on this node alone: the shared store's, else each worker's."""
        store = self.sup.store
        if store is not None:  # one store for the node: every worker sees it on return
            return {"purged": purge_store(store, kind, values, soft), "soft": soft}
        if kind == "url":
            path, body = "/purge", {"urls": values, "soft": soft}
        elif kind == "key":
            path, body = "/purge/key", {"keys": values, "soft": soft}
        else:
            path, body = "/purge/all", {"soft": soft}
        results = await self.sup.each("POST", path, body)
        per = [r["purged"] if isinstance(r, dict) else None for r in results]
        out: dict[str, Any] = {"purged": sum(p for p in per if p), "soft": soft, "per_worker": per}
        if _errors(results):
            out["errors"] = _errors(results)
        return out

    async def stats(self) -> dict[str, Any]:
        results = await self.sup.each("GET", "/stats")
        parts = [r for r in results if isinstance(r, dict)]
        out = merge_stats(parts)
        store = self.sup.store
        if store is not None and "cache" in out:
            node = store.stats()
            cache = out["cache"]
            cache.update({k: node[k] for k in NODE_WIDE_CACHE if k in node})
            for name in COUNTERS:  # purges run here, in the master
                cache[name] = cache.get(name, 0) + node[name]
            cache["state"] = _worst([node.get("state", "ok")] +
                                    [p.get("cache", {}).get("state", "ok") for p in parts])
        out["workers"] = self.sup.worker_info()
        out["per_worker"] = parts
        out.pop("tiers", None)  # per worker; the fleet member merges them
        if self.sup.fleet is not None:
            out["fleet"] = self.sup.fleet.health()
        if _errors(results):
            out["errors"] = _errors(results)
        return out

    async def metrics(self) -> bytes:
        results, stats = await asyncio.gather(self.sup.each("GET", "/metrics"),
                                              self.sup.each("GET", "/stats"))
        texts = [r.decode() for r in results if isinstance(r, bytes)]
        extra = self.sup.master_metrics() + _per_worker_metrics([s for s in stats if isinstance(s, dict)])
        if self.sup.store is not None:
            texts = [_without_families(t, _NODE_WIDE_GAUGES) for t in texts]
            texts.append(self.sup.store_exposition())
        return merge_expositions(texts, extra)

    async def reload_filters(self, name: str | None) -> dict[str, Any]:
        path = "/filters/reload" if name is None else f"/filters/{name}/reload"
        results = await self.sup.each("POST", path)
        failures = _errors(results)
        if failures and name is not None and all("404" in f for f in failures):
            raise KeyError(name)
        if failures:
            raise RuntimeError("; ".join(failures))
        return {"reloaded": results[0]["reloaded"], "workers": len(results)}

    async def restart(self) -> dict[str, Any]:
        return await self.sup.restart()

    async def health(self) -> dict[str, Any]:
        info = self.sup.worker_info()
        out: dict[str, Any] = {"status": "ok" if all(w["alive"] for w in info) else "degraded",
                               "port": self.sup.port, "workers": info}
        states = [r.get("cache", "ok") for r in await self.sup.each("GET", "/healthz")
                  if isinstance(r, dict)]
        if self.sup.store is not None:
            states.append(self.sup.store.stats().get("state", "ok"))
        state = _worst(states)
        if state != "ok":  # a pass-through node serves, but not as its operator meant
            out.update(status="degraded", cache=state)
        if self.sup.fleet is not None:  # the node serves either way; this says how in sync it is
            await self.sup.fleet.refresh()
            out["fleet"] = self.sup.fleet.health()
        return out


def _worst(states: list[str]) -> str:
    """The first cache state that is not "ok" (a store failing in any process), else "ok"."""
    return next((s for s in states if s != "ok"), "ok")


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the master dies, even by SIGKILL (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def _worker_main(config: Config, index: int, control_path: str, listen_fd: int | None,
                       workers: int) -> None:
    from edgenode.node import LocalAdmin, Node, StopSignals, tune_gc

    parent = os.getppid()
    fleet = None
    if config.fleet is not None:  # the master is the fleet member; this worker runs its version
        from edgenode.fleet.worker import WorkerFleet

        fleet = WorkerFleet.from_env()
        node = fleet.build(config, index, workers)
    else:
        node = Node(config, worker=index, admin=False, workers=workers)
    with StopSignals() as stop:
        if listen_fd is not None:
            await node.start(sock=socket.socket(fileno=listen_fd))
        else:
            host, port = config.server.listen
            await node.start(host, port, reuse_port=True)
        warming = node.warm_up()
        if warming is not None:  # ready (to the master) once it can transform images too
            await warming
        token = os.environ[TOKEN_ENV]  # set by the master
        app = build_admin_app(LocalAdmin(node), token)
        if fleet is not None:
            fleet.add_routes(app, node)
        control = await Node.start_admin(app, None, path=control_path)
        os.chmod(control_path, 0o600)
        tune_gc()
        while not stop.is_set():  # also stop if the master dies without telling us
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                if os.getppid() != parent:
                    log.warning("worker %d: master is gone; shutting down", index)
                    break
    await control.cleanup()
    await node.stop()


def run_worker(config: Config, index: int, control_path: str, listen_fd: int | None = None,
               workers: int = 1) -> None:
    """Blocking entry point of ``edgenode worker`` (started by the master only)."""
    from edgenode.http.server import install_event_loop

    _die_with_parent()
    install_event_loop()
    asyncio.run(_worker_main(config, index, control_path, listen_fd, workers))
