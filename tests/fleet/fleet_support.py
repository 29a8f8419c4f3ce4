"""Helpers of the fleet tests: node settings, HTTP, waiting."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

import aiohttp

from edgenode.config import FleetConfig, StageConfig

FLEET_KEY = "test-fleet-key-0123456789"
WAT = Path(__file__).parent / "wat"
#: the site every test request names: nodes then share cache keys, as in a real fleet
SITE = "www.example.com"


def fleet_settings(nats_url: str, node_id: str, tier: str = "edge", **kw: Any) -> FleetConfig:
    cfg = FleetConfig(node_id=node_id, tier=tier, name="test", nats=[nats_url], key=FLEET_KEY.encode(),
                      heartbeat=0.2, node_ttl=1.0, catchup_timeout=5.0, connect_timeout=1.0,
                      breaker_failures=2, breaker_cooldown=1.0)
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


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class LinkProxy:
    """A TCP proxy on 127.0.0.1 standing for a node's network path to NATS: ``cut()``
    drops every connection and refuses new ones, ``restore()`` listens again (same port)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

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
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.transport.abort()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._writers -= {writer, up_w}
