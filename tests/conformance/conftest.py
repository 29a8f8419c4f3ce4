"""Fixtures for the conformance tests (helpers live in conformance_support.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conformance_support import (  # noqa: E402
    CacheConfig, CacheStage, CacheStore, Client, Clock, Edge, Origin, build_chain, node_config,
    start_node,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def origin(clock: Clock):
    o = Origin(clock)
    await o.start()
    yield o
    await o.close()


@pytest.fixture
async def make_edge(origin: Origin, clock: Clock):
    made: list[Edge] = []

    async def make(origin_port: int | None = None, store: CacheStore | None = None,
                   **cache_kw: Any) -> Edge:
        """A node fronting ``origin`` (or ``origin_port``); ``store`` shares another node's cache."""
        port = origin_port if origin_port is not None else origin.port
        config = node_config({"o": {"url": f"http://127.0.0.1:{port}",
                                    "connect_timeout": 1.0, "first_byte_timeout": 5.0}})
        cfg = CacheConfig(**cache_kw)
        store = store if store is not None else CacheStore(cfg, clock)
        stage = CacheStage(cfg, store, clock)
        node = await start_node(config, lambda upstream: build_chain([stage], upstream))
        edge = Edge(node, stage, store, Client(node.port), origin, clock)
        made.append(edge)
        return edge

    yield make
    for edge in made:
        await edge.client.close()
        await edge.stage.close()
        await edge.node.close()


@pytest.fixture
async def edge(make_edge) -> Edge:
    return await make_edge()


