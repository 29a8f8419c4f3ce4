"""Admin API tests run against a real node (same fixtures as tests/node)."""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable

import pytest

from edgenode.config import StageConfig, Config, load_config, with_overrides
from edgenode.node import Node
from edgenode.origin.app import start_origin
from edgenode.origin.settings import OriginSettings

TOKEN = "test-token"


@pytest.fixture
async def origin_url() -> AsyncIterator[str]:
    runner, port = await start_origin(OriginSettings(listen=("127.0.0.1", 0)))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def node_config(origin_url: str, **log: Any) -> Config:
    cfg = with_overrides(load_config(), listen="127.0.0.1:0", origin=origin_url,
                         admin_listen="127.0.0.1:0")
    cfg.admin.token = TOKEN
    # admin behaviour is independent of the filters: a cache-only chain keeps counts exact
    cfg.chain = [StageConfig(type="cache", name="cache")]
    cfg.log.access = "off"
    for key, value in log.items():
        setattr(cfg.log, key, value)
    return cfg


@pytest.fixture
async def make_node(origin_url: str) -> AsyncIterator[Callable[..., Any]]:
    nodes: list[Node] = []

    async def make(**log: Any) -> Node:
        node = Node(node_config(origin_url, **log))
        await node.start()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        await node.stop(1.0)


@pytest.fixture
async def node(make_node: Callable[..., Any]) -> Node:
    return await make_node()
