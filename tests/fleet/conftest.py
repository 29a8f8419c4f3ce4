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

import tomli_w

from edgenode.config import ParentConfig, StageConfig
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.names import FleetNames
from edgenode.fleet.natsserver import NatsServer
from edgenode.fleet.procs import NodeProcess
from edgenode.node import Node

from fleet_support import CATCHUP_TIMEOUT, CONNECT_TIMEOUT, FLEET_KEY, SETTLE, fleet_settings, until  # noqa: E402

REGISTRY = "/usr/bin/docker-registry"
#: the admin token of the fleet tests' nodes
TOKEN = "test-token"


@pytest.fixture
async def nats_server() -> AsyncIterator[NatsServer]:
    server = NatsServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def operator(nats_server: NatsServer) -> AsyncIterator[ControlBus]:
    """The operator's connection to the fleet (what ``edgenode fleet ...`` uses)."""
    bus = ControlBus([nats_server.url], FleetNames("test"), client_name="test operator")
    await bus.open()
    yield bus
    await bus.close()


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
    """``await make_fleet_node(nats_url, node_id, tier="edge", chain=None, start=True, synced=True,
    **fleet)``: started, and in sync with the fleet unless ``synced=False``; each node id has
    its own state directory (its cache store), as on separate machines."""
    nodes: list[Node] = []

    async def make(nats_url: str, node_id: str, tier: str = "edge", chain: list[StageConfig] | None = None,
                   start: bool = True, parents: list[ParentConfig] | None = None, synced: bool = True,
                   **fleet: Any) -> Node:
        cfg = config_for(origin_url)
        cfg.chain = chain or [StageConfig("cache", "cache")]
        cfg.server.state_dir = tmp_path / "nodes" / node_id
        cfg.fleet = fleet_settings(nats_url, node_id, tier, parents=parents or [], **fleet)
        node = Node(cfg)
        nodes.append(node)
        if start:
            await node.start()
            if synced:  # a node serves before it is in sync (by design): tests start from in sync
                await until(lambda: node.fleet.state() == "in-sync", timeout=SETTLE, what=f"{node_id} in sync")
        return node

    yield make
    for node in nodes:
        await node.stop(0.5)


@pytest.fixture
async def make_worker_node(origin_url: str, module_cache: Path,
                           tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await make_worker_node(nats_url, node_id, tier="shield", chain=None, workers=2, **fleet)``:
    ``edgenode serve`` with workers as a real process tree (``.start()``/``.stop()``/``.kill()``;
    its log in ``.log_path``); its cache store in its own state directory."""
    procs: list[NodeProcess] = []

    async def make(nats_url: str, node_id: str, tier: str = "shield", chain: list[dict[str, Any]] | None = None,
                   workers: int = 2, **fleet: Any) -> NodeProcess:
        cfg = {"server": {"listen": "127.0.0.1:0", "workers": workers, "shutdown_grace": 1.0,
                          "state_dir": str(tmp_path / "nodes" / node_id)},
               "admin": {"listen": "127.0.0.1:0", "token": TOKEN},
               "origins": {"default": {"url": origin_url}},
               "log": {"access": "off", "level": "info"},
               "chain": chain or [{"type": "cache", "name": "cache"}],
               "fleet": {"node_id": node_id, "tier": tier, "name": "test", "nats": [nats_url], "heartbeat": 0.2,
                         "node_ttl": 1.0, "catchup_timeout": CATCHUP_TIMEOUT,
                         "connect_timeout": CONNECT_TIMEOUT, **fleet}}
        path = tmp_path / f"{node_id}.toml"
        path.write_text(tomli_w.dumps(cfg))
        node = NodeProcess(node_id, tier, path, TOKEN, {"EDGENODE_FLEET_KEY": FLEET_KEY})
        procs.append(node)
        await node.start()
        return node

    yield make
    for node in procs:
        await node.stop(1.0)
