"""The simulated origin in a child process, for ``edgenode bench``.

A separate process so the origin's work on misses does not share the node's event
loop (and GIL) and skew the node's numbers.  Besides the origin's own ``/__stats``
request counter the child counts the body bytes it sent; the parent reads both over
the child's stdin/stdout (not over HTTP, so reading the figures is never counted as
origin traffic).  Protocol: the child prints its port, then answers each ``stats``
line with one JSON line; EOF on stdin stops it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from dataclasses import asdict
from pathlib import Path

from aiohttp import web

from edgenode.origin.app import STATS_KEY, build_origin_app
from edgenode.origin.settings import OriginSettings

__all__ = ["OriginProcess", "child_env"]


def child_env() -> dict[str, str]:
    """The environment for a ``python -m edgenode...`` child: this package importable."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


class OriginProcess:
    """``await start()`` -> port; ``await stats()`` -> requests/errors/bytes; ``await stop()``."""

    def __init__(self, settings: OriginSettings) -> None:
        self.settings = settings
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 30.0) -> int:
        s = asdict(self.settings)
        s["listen"] = ["127.0.0.1", 0]
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edgenode.bench.origin_proc", json.dumps(s),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=child_env())
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
            self.port = int(line)
        except (asyncio.TimeoutError, ValueError):
            await self.stop()
            raise RuntimeError("the simulated origin did not start") from None
        return self.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stats(self) -> dict[str, int]:
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(b"stats\n")
        await self._proc.stdin.drain()
        line = await asyncio.wait_for(self._proc.stdout.readline(), 10.0)
        return json.loads(line)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


async def _serve(settings: OriginSettings) -> None:
    app = build_origin_app(settings)
    sent = {"bytes": 0}

    async def count_bytes(request: web.Request, response: web.StreamResponse) -> None:
        if not request.path.startswith("/__stats") and response.content_length:
            sent["bytes"] += response.content_length

    app.on_response_prepare.append(count_bytes)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(settings.listen)
    await web.SockSite(runner, sock, backlog=1024).start()
    print(sock.getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            if line.strip() == b"stats":
                counts = app[STATS_KEY]
                print(json.dumps({"requests": counts["__total__"], "errors": counts["__errors__"],
                                  "bytes": sent["bytes"]}), flush=True)
    finally:
        await runner.cleanup()


def _main() -> None:
    raw = json.loads(sys.argv[1])
    raw["listen"] = tuple(raw["listen"])
    settings = OriginSettings(**raw)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(settings))
    else:
        uvloop.run(_serve(settings))


if __name__ == "__main__":
    _main()
