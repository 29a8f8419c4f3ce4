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
