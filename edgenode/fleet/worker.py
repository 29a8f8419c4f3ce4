"""A worker of a multi-worker fleet node: it runs what the node's fleet member (its
master) decided.

The master keeps the node's fleet state - the stage settings and live cache keys of
the config version it runs, and the live shields - in a JSON file (path in
``$EDGENODE_FLEET_STATE``) that every worker reads when it starts, so a worker started
or restarted at any time runs the node's version, and knows its parents, before it
serves.  Changes reach running workers over their control socket:

* ``POST /fleet/apply`` ``{"version": n, "stages": [...], "cache": {...}}``: reload those stages, all
  or none in this worker; answers ``{"applied": [...]}`` or ``{"refused": reason}``;
* ``POST /fleet/parents`` ``{"parents": [[id, url], ...]}``: the live shields;
* ``GET /fleet/state``: whether this worker runs the file's version or refused it at
  start (then it serves the node's own config, and the master reports the refusal).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from edgenode.config import Config, StageConfig
from edgenode.fleet.applier import Refused, swap_stages
from edgenode.fleet.host import set_cache_keys
from edgenode.fleet.oci import write_atomic

if TYPE_CHECKING:
    from edgenode.node import Node

__all__ = ["STATE_ENV", "FleetState", "write_state", "read_state", "overlay", "WorkerFleet"]

log = logging.getLogger("edgenode.fleet")

#: environment variable naming the master's fleet state file
STATE_ENV = "EDGENODE_FLEET_STATE"


@dataclass
class FleetState:
    """What every worker of the node runs, as far as the fleet decides it."""

    version: int | None = None
    #: settings of the node's wasm and function stages
    stages: list[StageConfig] = field(default_factory=list)
    #: live cache settings set by the fleet
    cache: dict[str, Any] = field(default_factory=dict)
    #: live shields (id, url) of an edge
    parents: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "stages": [stage_json(sc) for sc in self.stages],
                "cache": self.cache, "parents": [list(p) for p in self.parents]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FleetState:
        return cls(data.get("version"), [stage_from_json(s) for s in data.get("stages", [])],
                   dict(data.get("cache", {})), [(str(i), str(u)) for i, u in data.get("parents", [])])


def stage_json(sc: StageConfig) -> dict[str, Any]:
    return {"type": sc.type, "name": sc.name, "options": sc.options}


def stage_from_json(data: dict[str, Any]) -> StageConfig:
    return StageConfig(str(data["type"]), str(data["name"]), dict(data["options"]))


def write_state(path: Path, state: FleetState) -> None:
    write_atomic(path, json.dumps(state.to_json(), default=str).encode())


def read_state(path: Path) -> FleetState:
    return FleetState.from_json(json.loads(path.read_bytes()))


def overlay(config: Config, state: FleetState) -> Config:
    """``config`` running the state's stage settings and cache keys."""
    by_name = {sc.name: sc for sc in state.stages}
    chain = [by_name[sc.name] if sc.name in by_name and by_name[sc.name].type == sc.type else sc
             for sc in config.chain]
    return replace(config, chain=chain, cache=replace(config.cache, **state.cache))


class WorkerFleet:
    """The fleet side of one worker: its node built with the state file's version, and
    the control routes through which the master changes it."""

    def __init__(self, state: FleetState) -> None:
        self.state = state
        #: why this worker did not start on the state's version (None: it runs it)
        self.refused: str | None = None
        self.running: dict[str, StageConfig] = {}

    @classmethod
    def from_env(cls) -> WorkerFleet:
        path = os.environ.get(STATE_ENV)
        return cls(read_state(Path(path)) if path else FleetState())

    def build(self, config: Config, index: int, workers: int) -> Node:
        """The worker's node on the fleet's version; on the node's own config if that
        version does not load here (the reason goes to the master)."""
        from edgenode.node import Node

        try:
            node = Node(overlay(config, self.state), worker=index, admin=False, workers=workers)
        except Exception as exc:
            if not self.state.stages and not self.state.cache:
                raise
            self.refused = str(exc)
            log.error("worker %d: fleet config version %s does not load (%s); running the node's own config",
                      index, self.state.version, exc)
            node = Node(config, worker=index, admin=False, workers=workers)
        self.running = {sc.name: sc for sc in node.config.chain}
        self._set_parents(node, self.state.parents)
        return node

    @staticmethod
    def _set_parents(node: Node, parents: list[tuple[str, str]]) -> None:
        tier = node.upstream.tier
        if tier is not None and tier.ring is not None:
            tier.ring.update(parents)

    def add_routes(self, app: web.Application, node: Node) -> None:
        async def apply(request: web.Request) -> web.Response:
            body = await request.json()
            stages = [stage_from_json(s) for s in body.get("stages", [])]
            new = {sc.name: sc for sc in stages if sc.options != self.running[sc.name].options}
            try:
                await swap_stages(node.reload_stage, new, {name: self.running[name] for name in new})
            except Refused as exc:
                return web.json_response({"refused": str(exc)})
            self.running.update(new)
            set_cache_keys(node.config, body.get("cache", {}))
            self.state.version = body.get("version", self.state.version)
            return web.json_response({"applied": sorted(new)})

        async def parents(request: web.Request) -> web.Response:
            body = await request.json()
            self._set_parents(node, [(str(i), str(u)) for i, u in body.get("parents", [])])
            return web.json_response({"parents": len(body.get("parents", []))})

        async def state(request: web.Request) -> web.Response:
            return web.json_response({"version": self.state.version, "refused": self.refused})

        app.add_routes([web.post("/fleet/apply", apply), web.post("/fleet/parents", parents),
                        web.get("/fleet/state", state)])
