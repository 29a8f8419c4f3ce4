"""Fixtures shared by the suites that run a whole node (tests/node, tests/admin):
a real node in-process in front of the real simulated origin, on ephemeral ports."""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable

import pytest

from edgenode.config import Config, StageConfig, load_config, with_overrides
from edgenode.node import Node
from edgenode.origin.app import start_origin
from edgenode.origin.settings import OriginSettings

TOKEN = "test-token"


@pytest.fixture(autouse=True)
def _node_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own node state directory (the default home of the cache store
    and the filter state), so no test sees another's objects or the user's own."""
    monkeypatch.setenv("EDGENODE_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
async def origin_url() -> AsyncIterator[str]:
    runner, port = await start_origin(OriginSettings(listen=("127.0.0.1", 0)))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def node_config(origin_url: str, chain: list[StageConfig] | None = None,
                cache: dict[str, Any] | None = None, **log: Any) -> Config:
    """The embedded defaults on free ports with a known admin token; ``chain`` replaces the
    chain, ``cache`` and ``log`` set fields of those sections."""
    cfg = with_overrides(load_config(), listen="127.0.0.1:0", origin=origin_url,
                         admin_listen="127.0.0.1:0")
    cfg.admin.token = TOKEN
    if chain is not None:
        cfg.chain = chain
    cfg.log.access = "off"
    for key, value in log.items():
        setattr(cfg.log, key, value)
    for key, value in (cache or {}).items():
        setattr(cfg.cache, key, value)
    return cfg


@pytest.fixture
def node_chain() -> list[StageConfig] | None:
    """The chain of the test node: None keeps the default chain; a suite may override it."""
    return None


@pytest.fixture
def config_for() -> Callable[..., Config]:
    """``config_for(origin_url, **log_settings)``: a test node's config (free ports, token)."""
    return node_config


@pytest.fixture
async def run_node() -> AsyncIterator[Callable[..., Any]]:
    """``await run_node(cfg, **node_kwargs)``: a started Node, stopped after the test."""
    nodes: list[Node] = []

    async def run(cfg: Config, **kwargs: Any) -> Node:
        node = Node(cfg, **kwargs)
        await node.start()
        nodes.append(node)
        return node

    yield run
    for node in nodes:
        await node.stop(1.0)


@pytest.fixture
def make_node(origin_url: str, node_chain: list[StageConfig] | None,
              run_node: Callable[..., Any]) -> Callable[..., Any]:
    async def make(cache: dict[str, Any] | None = None, **log: Any) -> Node:
        return await run_node(node_config(origin_url, node_chain, cache, **log))

    return make


@pytest.fixture
async def node(make_node: Callable[..., Any]) -> Node:
    return await make_node()
