"""Multi-process serving: N worker processes share one port through SO_REUSEPORT.

The master holds a SO_REUSEPORT socket bound to the port (never listening, so the
kernel hands it no connections) to pin the port number across worker restarts,
spawns ``python -m edgenode worker ...`` processes (clean interpreter state each),
restarts the ones that die, serves the admin API and fans it out to the workers over
their control sockets (:mod:`edgenode.control`).  Each worker keeps its own cache, so
the node-wide hit ratio is lower than one process's until every worker has seen an
object (about ``N`` misses per object instead of one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edgenode.admin.app import build_admin_app
from edgenode.admin.token import admin_token
from edgenode.config import Config
from edgenode.control import TOKEN_ENV, ControlClient, ControlError
from edgenode.http.listen import reserve_worker_port
from edgenode.observe.metrics import merge_expositions

__all__ = ["Supervisor", "WorkerSpec", "WorkerStartError", "merge_stats", "run_worker"]

log = logging.getLogger("edgenode.workers")

#: longest pause between restarts of a worker that keeps dying
MAX_BACKOFF = 5.0
#: how long a worker may take to come up (filters compile at start)
READY_TIMEOUT = 60.0


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


class _Worker:
    def __init__(self, index: int, control_path: str, token: str) -> None:
        self.index = index
        self.control = ControlClient(control_path, token)
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.started = 0.0


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
        self._workers = [_Worker(i, os.path.join(self._dir, f"w{i}.sock"), self._token)
                         for i in range(workers)]
        self._reserve: socket.socket | None = None
        self._monitors: list[asyncio.Task[None]] = []
        self._admin: web.AppRunner | None = None
        self._stopping = False

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        host, port = self.config.server.listen
        sock = reserve_worker_port(host, port)  # only this node's workers share the port
        self._reserve = sock
        self.port = sock.getsockname()[1]
        try:
            # the first worker alone first: a config or filter error then shows once, not N times
            first, rest = self._workers[0], self._workers[1:]
            await self._spawn(first)
            await self._wait_ready(first)
            for w in rest:
                await self._spawn(w)
            await asyncio.gather(*(self._wait_ready(w) for w in rest))
        except BaseException:
            await self.stop(0.0)
            raise
        self._monitors = [asyncio.create_task(self._monitor(w)) for w in self._workers]
        if self.config.admin.listen is not None:
            from edgenode.node import Node

            ahost, aport = self.config.admin.listen
            app = build_admin_app(FanoutAdmin(self), admin_token(self.config.admin))
            self._admin = await Node.start_admin(app, ahost, aport)
            self.admin_port = self._admin.addresses[0][1]
        log.info("edgenode master: %d workers on port %d%s", self.count, self.port,
                 f", admin on port {self.admin_port}" if self.admin_port else "")

    async def _spawn(self, w: _Worker) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(w.control.path)
        host = self.config.server.listen[0]
        # -P: the current directory must not shadow modules (a stray inspect.py in the
        # directory serve was started from killed every worker); the package is found
        # through PYTHONPATH instead, installed or not
        cmd = [sys.executable, "-P", "-m", "edgenode", "worker", "--worker-id", str(w.index),
               "--listen", f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}",
               "--control", w.control.path]
        if self.spec.config_path is not None:
            cmd += ["--config", self.spec.config_path]
        if self.spec.origin is not None:
            cmd += ["--origin", self.spec.origin]
        env = dict(os.environ, **{TOKEN_ENV: self._token})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        w.proc = await asyncio.create_subprocess_exec(*cmd, env=env)
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

    async def _monitor(self, w: _Worker) -> None:
        """Restart ``w`` whenever it dies, backing off if it keeps dying quickly."""
        backoff = 0.25
        while not self._stopping:
            assert w.proc is not None
            code = await w.proc.wait()
            if self._stopping:
                return
            log.warning("worker %d exited with status %s; restarting", w.index, code)
            backoff = 0.25 if time.monotonic() - w.started > 10 else min(backoff * 2, MAX_BACKOFF)
            await asyncio.sleep(backoff)
            if self._stopping:
                return
            w.restarts += 1
            await self._spawn(w)
            try:
                await self._wait_ready(w)
            except WorkerStartError as exc:
                log.error("%s", exc)

    async def stop(self, grace: float | None = None) -> None:
        """SIGTERM every worker (each drains its in-flight requests), then clean up."""
        grace = self.config.server.shutdown_grace if grace is None else grace
        self._stopping = True
        if self._admin is not None:
            await self._admin.cleanup()
            self._admin = None
        for w in self._workers:
            if w.proc is not None and w.proc.returncode is None:
                w.proc.send_signal(signal.SIGTERM)
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
        for task in self._monitors:
            task.cancel()
        if self._reserve is not None:
            self._reserve.close()
            self._reserve = None
        shutil.rmtree(self._dir, ignore_errors=True)

    async def run(self, watch: list[Path] | None = None) -> None:
        """Like ``Node.run``: serve until SIGTERM/SIGINT, then drain every worker."""
        from edgenode.node import StopSignals, announce, serve_until

        with StopSignals() as stop:
            await self.start()
            announce(self.config, self.port, self.admin_port, self.count)
            await serve_until(stop, FanoutAdmin(self), watch)
        log.info("shutting down %d workers", self.count)
        await self.stop()

    # --- fan-out --------------------------------------------------------------------
    async def each(self, method: str, path: str, body: dict[str, Any] | None = None) -> list[Any]:
        """Call every live worker; a worker that fails answers with a ControlError."""
        return await asyncio.gather(*(w.control.call(method, path, body) for w in self._workers),
                                    return_exceptions=True)

    def master_metrics(self) -> list[Any]:
        up = sum(1 for w in self._workers if w.proc is not None and w.proc.returncode is None)
        return [GaugeMetricFamily("edgenode_workers", "Worker processes running.", value=up),
                CounterMetricFamily("edgenode_worker_restarts", "Worker processes restarted after dying.",
                                    value=sum(w.restarts for w in self._workers))]

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


class FanoutAdmin:
    """AdminBackend of the master: every operation goes to every worker."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    async def purge(self, kind: str, values: list[str], soft: bool) -> dict[str, Any]:
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
        out["workers"] = self.sup.worker_info()
        out["per_worker"] = parts
        if _errors(results):
            out["errors"] = _errors(results)
        return out

    async def metrics(self) -> bytes:
        results = await self.sup.each("GET", "/metrics")
        texts = [r.decode() for r in results if isinstance(r, bytes)]
        return merge_expositions(texts, self.sup.master_metrics())

    async def reload_filters(self, name: str | None) -> dict[str, Any]:
        path = "/filters/reload" if name is None else f"/filters/{name}/reload"
        results = await self.sup.each("POST", path)
        failures = _errors(results)
        if failures and name is not None and all("404" in f for f in failures):
            raise KeyError(name)
        if failures:
            raise RuntimeError("; ".join(failures))
        return {"reloaded": results[0]["reloaded"], "workers": len(results)}

    async def health(self) -> dict[str, Any]:
        info = self.sup.worker_info()
        return {"status": "ok" if all(w["alive"] for w in info) else "degraded",
                "port": self.sup.port, "workers": info}


async def _worker_main(config: Config, index: int, control_path: str) -> None:
    from edgenode.node import LocalAdmin, Node, StopSignals, tune_gc

    node = Node(config, worker=index, admin=False)
    host, port = config.server.listen
    parent = os.getppid()
    with StopSignals() as stop:
        await node.start(host, port, reuse_port=True)
        token = os.environ[TOKEN_ENV]  # set by the master
        control = await Node.start_admin(build_admin_app(LocalAdmin(node), token), None,
                                         path=control_path)
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


def run_worker(config: Config, index: int, control_path: str) -> None:
    """Blocking entry point of ``edgenode worker`` (started by the master only)."""
    from edgenode.http.server import install_event_loop

    install_event_loop()
    asyncio.run(_worker_main(config, index, control_path))
