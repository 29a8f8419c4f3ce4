"""A multi-worker node as a real process tree, for tests: ``edgenode serve --workers N``
started on free ports, its admin API, and raw keep-alive connections that know which
worker holds them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp

TOKEN = "cw-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO = Path(__file__).resolve().parents[2]
BOUND = 30.0
#: how long ``eventually`` polls: a worker replacement spawns interpreters one slot at a
#: time, which on a loaded machine takes tens of seconds; only a broken node waits this long
SETTLE = 120.0


class Cluster:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, admin_port: int,
                 early: list[str]) -> None:
        self.proc, self.port, self.admin_port = proc, port, admin_port
        self.terminated = False
        #: everything the node wrote on stderr so far (read on, so the pipe never fills)
        self.log = early
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace"))

    @property
    def stderr(self) -> str:
        return "".join(self.log)

    def terminate(self) -> None:
        """SIGTERM the master once (it drains; a second signal would not be graceful)."""
        if not self.terminated and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        self.terminated = True

    async def admin(self, s: aiohttp.ClientSession, method: str, path: str, **kw: object) -> dict:
        async with s.request(method, f"http://127.0.0.1:{self.admin_port}{path}", headers=AUTH, **kw) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def start_cluster(conf: Path, *extra: str, workers: int = 2, argv: tuple[str, ...] = (),
                        **popen: Any) -> Cluster:
    """Start the node (``argv`` wraps the command, e.g. in ``unshare``); ``popen``: more
    subprocess arguments (``preexec_fn``, ``start_new_session``)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = await asyncio.create_subprocess_exec(
        *argv, sys.executable, "-m", "edgenode", "serve", "--config", str(conf), "--workers",
        str(workers), *extra, stderr=asyncio.subprocess.PIPE, env=env, **popen)
    assert proc.stderr is not None
    early: list[str] = []
    for _ in range(200):
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        if not line:
            break
        early.append(line)
        m = re.search(r"serving http://127\.0\.0\.1:(\d+) admin=http://127\.0\.0\.1:(\d+) workers=\d+", line)
        if m:
            return Cluster(proc, int(m.group(1)), int(m.group(2)), early)
    proc.kill()
    await proc.wait()
    raise AssertionError(f"serve --workers {workers} did not print its banner:\n{''.join(early)}")


async def stop_cluster(c: Cluster) -> int:
    c.terminate()
    code = await asyncio.wait_for(c.proc.wait(), BOUND)
    await asyncio.wait_for(c._reader, BOUND)
    if code != 0:
        sys.stderr.write(c.stderr)
    return code


def write_conf(tmp_path: Path, origin_url: str, extra: str = "") -> Path:
    conf = tmp_path / "edgenode.toml"
    conf.write_text(f'''
[server]
listen = "127.0.0.1:0"
shutdown_grace = "5s"
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[origins.default]
url = "{origin_url}"
[log]
access = "off"
{extra}
''')
    return conf


class Conn:
    """One raw keep-alive client connection (so we know which worker holds it)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        #: the head of the last response read
        self.head = b""

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, path: str) -> None:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await self.writer.drain()

    async def response(self) -> tuple[int, bytes]:
        head = self.head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), BOUND)
        m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
        assert m, head
        body = await asyncio.wait_for(self.reader.readexactly(int(m.group(1))), BOUND)
        return int(head.split(b" ", 2)[1]), body

    def close(self) -> None:
        self.writer.close()


async def per_worker_requests(c: Cluster, s: aiohttp.ClientSession) -> list[int]:
    stats = await c.admin(s, "GET", "/stats")
    return [w["requests"] for w in sorted(stats["per_worker"], key=lambda w: w["worker"])]


async def one_connection_per_worker(c: Cluster, s: aiohttp.ClientSession) -> dict[int, Conn]:
    """Open connections until each worker holds one; a probe request on each connection,
    seen in that worker's request count, tells which worker the kernel gave it to."""
    held: dict[int, Conn] = {}
    spare: list[Conn] = []
    for i in range(200):
        conn = await Conn.open(c.port)
        before = await per_worker_requests(c, s)
        await conn.send(f"/obj/probe{i}?size=10")
        assert (await conn.response())[0] == 200
        after = await per_worker_requests(c, s)
        worker = next(w for w in range(2) if after[w] > before[w])
        if worker in held:
            spare.append(conn)
        else:
            held[worker] = conn
        if len(held) == 2:
            break
    for conn in spare:
        conn.close()
    assert len(held) == 2, "SO_REUSEPORT never gave a connection to both workers"
    return held


async def spread(c: Cluster, path: str, s: aiohttp.ClientSession) -> None:
    """Fetch ``path`` on the connection of each worker, so both caches hold it."""
    conns = await one_connection_per_worker(c, s)
    for conn in conns.values():
        await conn.send(path)
        assert (await conn.response())[0] == 200
        conn.close()


async def only_if_cached(conn: Conn, path: str, max_stale: bool = False) -> bytes:
    """The head of the worker's answer from its cache alone (504 when nothing usable)."""
    cc = "only-if-cached, max-stale" if max_stale else "only-if-cached"
    conn.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCache-Control: {cc}\r\n\r\n".encode())
    head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), BOUND)
    n = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    await conn.reader.readexactly(n)
    return head




async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = SETTLE) -> None:
    """Poll ``check`` until true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)
