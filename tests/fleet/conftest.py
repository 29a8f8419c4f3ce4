"""Fleet fixtures: a real nats-server (JetStream) and a real OCI registry (Debian's
docker-registry, distribution v2) on 127.0.0.1 ephemeral ports, and in-process fleet
nodes in front of the simulated origin."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import pytest

from edgenode.config import ParentConfig, StageConfig
from edgenode.fleet.natsserver import NatsServer
from edgenode.node import Node

from fleet_support import fleet_settings  # noqa: E402

REGISTRY = "/usr/bin/docker-registry"


@pytest.fixture
async def nats_server() -> AsyncIterator[NatsServer]:
    server = NatsServer()
    await server.start()
    yield server
    await server.stop()


class Registry:
    """A docker-registry process; ``addr`` is host:port, ``stop()`` takes it down."""

    def __init__(self, root: Path) -> None:
        cfg = root / "registry.yml"
        cfg.write_text(f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n"
                       f"    rootdirectory: {root / 'registry'}\n  delete:\n    enabled: true\n"
                       f"http:\n  addr: 127.0.0.1:0\n")
        self.proc = subprocess.Popen([REGISTRY, "serve", str(cfg)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.addr = ""
        deadline = time.monotonic() + 20
        for line in self.proc.stderr:
            m = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
            if m:
                self.addr = m.group(1)
                break
            if time.monotonic() > deadline:
                break
        if not self.addr:
            self.stop()
            pytest.fail("docker-registry did not start")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep the pipe flowing

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A fresh docker-registry (distribution v2) with filesystem storage in tmp_path."""
    if not Path(REGISTRY).exists():
        pytest.fail("docker-registry is not installed: run `make system` (Debian package docker-registry)")
    reg = Registry(tmp_path)
    yield reg
    reg.stop()


@pytest.fixture
def module_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private module cache (compiled modules, OCI pulls, fleet modules) per test."""
    path = Path(tempfile.mkdtemp(prefix="edgenode-modcache-"))
    monkeypatch.setenv("EDGENODE_CACHE_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def make_fleet_node(origin_url: str, module_cache: Path, config_for: Callable[..., Any],
                          tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await make_fleet_node(nats_url, node_id, tier="edge", chain=None, start=True, **fleet)``;
    each node id has its own state directory (its cache store), as on separate machines."""
    nodes: list[Node] = []

    async def make(nats_url: str, node_id: str, tier: str = "edge", chain: list[StageConfig] | None = None,
                   start: bool = True, parents: list[ParentConfig] | None = None, **fleet: Any) -> Node:
        cfg = config_for(origin_url)
        cfg.chain = chain or [StageConfig("cache", "cache")]
        cfg.server.state_dir = tmp_path / "nodes" / node_id
        cfg.fleet = fleet_settings(nats_url, node_id, tier, parents=parents or [], **fleet)
        node = Node(cfg)
        nodes.append(node)
        if start:
            await node.start()
        return node

    yield make
    for node in nodes:
        await node.stop(0.5)
