"""Fixtures for edge functions: the example components built from this repo (session-scoped;
`edgenode function build` skips an up-to-date build, and `make functions` has usually
built them already), and nodes serving them in front of the simulated origin."""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest

from edgenode.config import Config, parse_config
from edgenode.functions.build import build_function
from edgenode.functions.project import load_function_project
from edgenode.node import Node

EXAMPLES = Path(__file__).resolve().parents[2] / "edgenode" / "functions" / "examples"


def _built(name: str) -> Path:
    project = load_function_project(EXAMPLES / name / "function.toml")
    return build_function(project).component


@pytest.fixture(scope="session")
def js_component() -> Path:
    return _built("hello-js")


@pytest.fixture(scope="session")
def py_component() -> Path:
    return _built("hello-py")


@pytest.fixture(scope="session")
def c_component() -> Path:
    return _built("hello-c")


def config_with(origin_url: str, stages: list[dict[str, Any]], cache: bool = True) -> Config:
    chain = ([{"type": "cache"}] if cache else []) + stages
    return parse_config({"server": {"listen": "127.0.0.1:0"}, "admin": {"listen": "off"},
                         "origins": {"default": {"url": origin_url}}, "chain": chain,
                         "log": {"access": "off"}})


@pytest.fixture
async def serve(origin_url: str) -> AsyncIterator[Callable[..., Any]]:
    """``await serve([stage, ...], cache=True)`` -> (node, base URL)."""
    nodes: list[Node] = []

    async def start(stages: list[dict[str, Any]], cache: bool = True) -> tuple[Node, str]:
        node = Node(config_with(origin_url, stages, cache), admin=False)
        await node.start()
        nodes.append(node)
        return node, f"http://127.0.0.1:{node.port}"

    yield start
    for node in nodes:
        await node.stop(1.0)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session

