"""A running ``edgenode serve --workers 2`` for the multi-worker suites; an in-process node
with filters before a memory cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from cluster_support import Cluster, start_cluster, stop_cluster, write_conf

from edgenode.config import StageConfig
from edgenode.node import Node


@pytest.fixture
async def cluster(origin_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = await start_cluster(write_conf(tmp_path, origin_url))
    try:
        yield c
    finally:
        await stop_cluster(c)


@pytest.fixture
def start_node(origin_url: str, config_for: Callable[..., Any],
               run_node: Callable[..., Any]) -> Callable[..., Any]:
    async def start(*filters: StageConfig) -> Node:
        cfg = config_for(origin_url)
        cfg.chain = [*filters, StageConfig("cache", "cache")]
        cfg.cache.store = "memory"  # several nodes per test
        return await run_node(cfg, admin=False)

    return start
