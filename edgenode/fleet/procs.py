"""Fleet nodes as child processes (``edgenode serve --config FILE``), for ``fleet up`` and
the benchmarks: the same command an operator runs on each machine.

``NodeProcess.start()`` waits for the ready line (``edgenode: serving http://... admin=...``)
and reads the real ports from it; the child's log goes to a file beside its config.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from edgenode.bench.origin_proc import child_env

__all__ = ["NodeProcess"]

_READY = re.compile(rb"edgenode: serving http://([^:\s]+):(\d+) admin=http://[^:\s]+:(\d+)")


class NodeProcess:
    def __init__(self, node_id: str, tier: str, config_path: Path, token: str, env: dict[str, str]) -> None:
        self.node_id = node_id
        self.tier = tier
        self.config_path = config_path
        self.token = token
        self.env = env
        self.port = 0
        self.admin_port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._log_task: asyncio.Task[None] | None = None
        self.log_path = config_path.with_suffix(".log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60.0) -> None:
        env = {**child_env(), **self.env}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edgenode", "serve", "--config", str(self.config_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env)
        assert self.proc.stderr is not None
        log = self.log_path.open("ab")
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self.proc.stderr.readline()
                    if not line:
                        raise RuntimeError(f"node {self.node_id} exited at start-up (log: {self.log_path})")
                    log.write(line)
                    m = _READY.search(line)
                    if m:
                        self.port, self.admin_port = int(m.group(2)), int(m.group(3))
                        break
        except BaseException:
            log.close()
            await self.kill()
            raise
        self._log_task = asyncio.create_task(self._copy_log(log))

    async def _copy_log(self, log: Any) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            while line := await self.proc.stderr.readline():
                log.write(line)
                log.flush()
        finally:
            log.close()

    async def admin(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.request(method, f"http://127.0.0.1:{self.admin_port}{path}", json=body,
                                 headers={"Authorization": f"Bearer {self.token}"}) as r:
                r.raise_for_status()
                return await r.json()

    async def stop(self, grace: float = 5.0) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return await self._reap()
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace + 5.0)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
        await self._reap()

    async def kill(self) -> None:
        """SIGKILL: the node dies without leaving the fleet (a crash)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await self._reap()

    async def _reap(self) -> None:
        if self._log_task is not None:
            try:
                await asyncio.wait_for(self._log_task, 5.0)
            except (asyncio.TimeoutError, Exception):
                self._log_task.cancel()
            self._log_task = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None
