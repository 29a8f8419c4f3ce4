"""Helpers of the fleet tests: node settings, HTTP, waiting."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp

from edgenode.config import FleetConfig, StageConfig

FLEET_KEY = "test-fleet-key-0123456789"
WAT = Path(__file__).parent / "wat"
#: the site every test request names: nodes then share cache keys, as in a real fleet
SITE = "www.example.com"


#: how long a node may take to connect, and then to catch up, before it gives up and serves
#: unsynced.  These are give-up points, not waits: a reachable NATS answers in milliseconds
#: and an unreachable one (nothing listening) is refused at once, so they cost nothing when
#: all is well.  They are generous because on a loaded machine a connection (or the R3
#: stream creation on a NATS cluster) can take seconds, and a node that gives up starts
#: unsynced: the tests would then test another scenario than the one they name.
CONNECT_TIMEOUT = 10.0
CATCHUP_TIMEOUT = 30.0
#: how long a test waits for a node, a purge or a rollout to get somewhere: far more than
#: it takes on a loaded machine; only a broken node waits this long
SETTLE = 60.0


def fleet_settings(nats_url: str, node_id: str, tier: str = "edge", **kw: Any) -> FleetConfig:
    cfg = FleetConfig(node_id=node_id, tier=tier, name="test", nats=[nats_url], key=FLEET_KEY.encode(),
                      heartbeat=0.2, node_ttl=1.0, catchup_timeout=CATCHUP_TIMEOUT,
                      connect_timeout=CONNECT_TIMEOUT, breaker_failures=2, breaker_cooldown=1.0)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def stamp_chain(module: str = "stamp_a.wat") -> list[StageConfig]:
    return [StageConfig("wasm", "stamp", {"module": str(WAT / module)}), StageConfig("cache", "cache")]


async def get(port: int, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as resp:
            joined: dict[str, str] = {}
            for k, v in resp.headers.items():  # repeated fields as one list, as RFC 9110 allows
                joined[k.lower()] = f"{joined[k.lower()]}, {v}" if k.lower() in joined else v
            return resp.status, joined, await resp.read()


class Deadline:
    """One time budget for a whole test: each wait takes what is left of it, so a step that
    is slow on a loaded machine borrows from the quick ones, and only a broken node runs
    the test out of time (instead of a short fixed wait per step failing at random)."""

    def __init__(self, seconds: float = SETTLE) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return max(self.at - time.monotonic(), 0.0)


async def rolled_out(operator: Any, version: int, deadline: Deadline, expect: set[str]) -> list[dict[str, Any]]:
    """Fleet status rows of ``expect`` once each node runs or refused ``version``."""
    from edgenode.fleet.rollout import wait_for_version

    rows, _ = await wait_for_version(operator, FLEET_KEY.encode(), version, deadline.left(), node_ttl=1.0,
                                     expect=expect)
    done = {r["id"] for r in rows if version in (r.get("version"), (r.get("refused") or {}).get("version"))}
    if done != expect:
        raise AssertionError(f"version {version} not reached by {sorted(expect - done)} in time: {rows}")
    return rows


async def until(predicate: Callable[[], bool], timeout: float = SETTLE, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = SETTLE,
                     what: str = "condition") -> None:
    """``until`` for a condition that needs I/O to check."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class LinkProxy:
    """A TCP proxy on 127.0.0.1 standing for a node's network path to NATS: ``cut()``
    drops every connection and refuses new ones, ``restore()`` listens again (same port);
    ``stall()`` is a path that dies silently (nothing passes, nobody is told, new
    connections hang), ``heal()`` lets bytes pass again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._open = asyncio.Event()
        self._open.set()

    def stall(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._open.wait()
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    await self._open.wait()
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.transport.abort()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._writers -= {writer, up_w}


class Conn:
    """One keep-alive client connection; ``worker`` names the process that serves it (the
    per-process prefix of the node's ``X-Request-Id``), so a test can ask each worker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.worker = ""

    async def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        fields = "".join(f"{k}: {v}\r\n" for k, v in {"Host": SITE, **headers}.items())
        self.writer.write(f"GET {path} HTTP/1.1\r\n{fields}\r\n".encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)
        lines = head.decode("latin-1").split("\r\n")
        joined: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                k = k.strip().lower()
                joined[k] = f"{joined[k]}, {v.strip()}" if k in joined else v.strip()
        body = await asyncio.wait_for(self.reader.readexactly(int(joined.get("content-length", 0))), 30)
        self.worker = joined.get("x-request-id", "").split("-")[0]
        return int(lines[0].split()[1]), joined, body

    def close(self) -> None:
        self.writer.close()


async def per_worker(port: int, workers: int = 2) -> list[Conn]:
    """One connection held by each worker of a node (the kernel spreads new connections)."""
    held: dict[str, Conn] = {}
    for i in range(200):
        conn = Conn(*await asyncio.open_connection("127.0.0.1", port))
        await conn.get(f"/obj/which-{i}?size=10&cc=no-store")
        if conn.worker in held:
            conn.close()
        else:
            held[conn.worker] = conn
        if len(held) == workers:
            return list(held.values())
    raise AssertionError(f"connections reached {len(held)} of {workers} workers")
