"""The fleet member of a multi-worker node, run by its master.

A node is one member of the fleet however many workers it runs: the master owns the
node-wide cache store, so it holds the node's one NATS connection and durable purge
consumer, applies each fleet purge once to the store (every worker sees it through the
store's generation counter; with the per-worker memory store, the purge goes to each
worker), publishes admin purges once, and heartbeats node-wide figures (all workers'
requests and hit ratio).  Start-up order: the master catches up with the purge log and
reads the fleet's current version before any worker starts, so no worker serves what
it should have purged; workers then start on that version (the fleet state file,
:mod:`edgenode.fleet.worker`).

A rollout goes to every worker through its control socket, all or nothing: the first
worker that answers tries the version alone (a module that does not load is refused
before any other worker sees it), then the others; if one of them refuses, the ones that
took it go back, and the node reports the refusal.  The shield ring follows membership
the same way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from edgenode.config import Config, StageConfig
from edgenode.control import ControlError
from edgenode.fleet.agent import FleetAgent
from edgenode.fleet.applier import Refused
from edgenode.fleet.fleetconfig import ROLLABLE, stage_artifact
from edgenode.fleet.host import PurgeIncomplete, set_cache_keys
from edgenode.fleet.oci import cached_module, is_oci
from edgenode.fleet.worker import FleetState, stage_json, write_state

__all__ = ["MasterHost", "MasterMember", "merge_tiers"]

log = logging.getLogger("edgenode.fleet")

#: how long one worker may take to load a version (compiling a large module, a ruleset)
APPLY_TIMEOUT = 120.0


def merge_tiers(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The workers' tier figures as one: counters summed, each parent's once."""
    tiers = [p["tiers"] for p in parts if isinstance(p.get("tiers"), dict)]
    if not tiers:
        return None
    parents: dict[str, dict[str, Any]] = {}
    for t in tiers:
        for p in t.get("parents", []):
            seen = parents.setdefault(p["id"], dict(p, requests=0, failures=0))
            seen["requests"] += p.get("requests", 0)
            seen["failures"] += p.get("failures", 0)
            if p.get("circuit") != "closed":
                seen["circuit"] = p.get("circuit")
    return {"tier": tiers[0].get("tier"), "retries": sum(t.get("retries", 0) for t in tiers),
            "origin_fallbacks": sum(t.get("origin_fallbacks", 0) for t in tiers),
            "parents": list(parents.values())}


class Supervisor(Protocol):
    """The master process (``edgenode.workers.Supervisor``) as its fleet member uses it:
    the node's config and each worker's control API."""

    config: Config
    count: int

    async def call(self, index: int, method: str, path: str, body: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any: ...

    async def each(self, method: str, path: str, body: dict[str, Any] | None = None) -> list[Any]: ...


class WorkerFanout(Protocol):
    """The master's admin backend (``edgenode.workers.FanoutAdmin``): what reaches every worker."""

    async def purge_here(self, kind: str, values: list[str], soft: bool) -> dict[str, Any]: ...

    async def stats(self) -> dict[str, Any]: ...


class MasterHost:
    """The node as its master sees it: the shared store, and the workers."""

    def __init__(self, sup: Supervisor, state_path: Path, fanout: WorkerFanout) -> None:
        self.sup = sup
        self.fanout = fanout
        self.config = sup.config
        self.state_path = state_path
        self.state = FleetState(stages=[sc for sc in sup.config.chain if sc.type in ROLLABLE])
        #: workers run: changes go to them (before, only into the state file they start from)
        self.serving = False
        self._before_start: tuple[FleetState, dict[str, Any]] | None = None
        self._tiers: dict[str, Any] | None = None
        self._push = asyncio.Lock()
        write_state(state_path, self.state)

    # --- purges and figures ------------------------------------------------------------
    async def purge(self, kind: str, values: list[str], soft: bool) -> int:
        out = await self.fanout.purge_here(kind, values, soft)
        if out.get("errors"):  # a worker's memory store kept the objects
            raise PurgeIncomplete(int(out["purged"]), list(out["errors"]))
        return int(out["purged"])

    async def stats(self) -> dict[str, Any]:
        out = await self.fanout.stats()
        self._tiers = merge_tiers(out.get("per_worker", []))
        return out

    def tier_status(self) -> dict[str, Any] | None:
        return self._tiers

    # --- rollouts -----------------------------------------------------------------------
    async def apply(self, version: int, new: dict[str, StageConfig], old: dict[str, StageConfig],
                    cache: dict[str, Any]) -> None:
        before = replace(self.state, stages=list(self.state.stages), cache=dict(self.state.cache))
        cache_before = {key: getattr(self.config.cache, key) for key in cache}
        self.state.version = version
        self.state.stages = [new.get(sc.name, sc) for sc in self.state.stages]
        self.state.cache.update(cache)
        write_state(self.state_path, self.state)  # a worker starting from now on runs it
        if not self.serving:  # start-up: the first worker tries it (see MasterMember.workers_started)
            self._before_start = (before, cache_before)
        else:
            try:
                await self._everywhere({"version": version, "stages": [stage_json(sc) for sc in new.values()],
                                        "cache": cache},
                                       {"version": before.version, "stages": [stage_json(sc) for sc in old.values()],
                                        "cache": cache_before})
            except Refused:
                self.state = replace(before, parents=self.state.parents)
                write_state(self.state_path, self.state)
                raise
        set_cache_keys(self.config, cache)

    async def _everywhere(self, body: dict[str, Any], undo: dict[str, Any]) -> None:
        indices = list(range(self.sup.count))
        first = None
        for i in indices:  # one worker alone first: a version that does not load stops here
            try:
                answer = await self.sup.call(i, "POST", "/fleet/apply", body, timeout=APPLY_TIMEOUT)
            except ControlError as exc:
                log.warning("fleet: worker %d did not answer (%s); trying the next", i, exc)
                continue
            if "refused" in answer:
                raise Refused(answer["refused"])
            first = i
            break
        if first is None:
            raise Refused("no worker answered")
        rest = [i for i in indices if i != first]
        answers = await asyncio.gather(*(self.sup.call(i, "POST", "/fleet/apply", body, timeout=APPLY_TIMEOUT)
                                         for i in rest), return_exceptions=True)
        refused = {i: a["refused"] for i, a in zip(rest, answers) if isinstance(a, dict) and "refused" in a}
        for i, a in zip(rest, answers):
            if isinstance(a, BaseException):  # restarting: it starts from the state file
                log.warning("fleet: worker %d did not answer the rollout (%s)", i, a)
        if refused:
            await asyncio.gather(*(self.sup.call(i, "POST", "/fleet/apply", undo, timeout=APPLY_TIMEOUT)
                                   for i in indices if i not in refused), return_exceptions=True)
            i, reason = next(iter(refused.items()))
            raise Refused(f"worker {i}: {reason}")

    async def start_serving(self) -> str | None:
        """After the first worker is up: from now on changes go to the workers.  The
        reason that worker refused the version it started from (then the node runs its
        own config again), or None."""
        answer = await self.sup.call(0, "GET", "/fleet/state")
        refused = answer.get("refused")
        if refused and self._before_start is not None:
            before, cache = self._before_start
            self.state = replace(before, parents=self.state.parents)
            set_cache_keys(self.config, cache)
            write_state(self.state_path, self.state)
        self._before_start = None
        self.serving = True
        # it read the shields when it started; they may have changed since
        await self.sup.call(0, "POST", "/fleet/parents", {"parents": [list(p) for p in self.state.parents]})
        return refused

    def module_paths(self) -> dict[str, Path]:
        out = {}
        for sc in self.state.stages:
            ref = sc.options.get(stage_artifact(sc.type))
            if not isinstance(ref, str):
                continue
            path = cached_module(ref, _cache_dir()) if is_oci(ref) else Path(ref)
            if path is not None:
                out[sc.name] = path if path.is_absolute() else self.config.base_dir / path
        return out

    # --- the shield ring ----------------------------------------------------------------
    def set_parents(self, shields: list[tuple[str, str]]) -> None:
        self.state.parents = list(shields)
        write_state(self.state_path, self.state)
        if self.serving:
            asyncio.ensure_future(self._push_parents())

    async def _push_parents(self) -> None:
        async with self._push:  # one at a time: the last push carries the newest set
            body = {"parents": [list(p) for p in self.state.parents]}
            for i, answer in enumerate(await self.sup.each("POST", "/fleet/parents", body)):
                if isinstance(answer, BaseException):
                    log.warning("fleet: worker %d did not take the live shields (%s)", i, answer)


def _cache_dir() -> Path:
    from edgenode.wasmcache import default_cache_dir

    return default_cache_dir()


class MasterMember:
    """What the master runs: the node's fleet agent over a :class:`MasterHost`."""

    def __init__(self, sup: Supervisor, state_path: Path, fanout: WorkerFanout) -> None:
        self.host = MasterHost(sup, state_path, fanout)
        assert sup.config.fleet is not None
        self.agent = FleetAgent(self.host, sup.config.fleet)
        self.state_path = state_path

    async def sync(self) -> None:
        """Before any worker starts: missed purges applied, the current version read."""
        await self.agent.sync()

    async def first_worker_ready(self) -> None:
        """Worker 0 is up (the others start after it): changes go to the workers from now
        on; if it could not load the version it started from, the node refuses it."""
        async with self.agent.config.lock:  # no rollout half in the file, half in a worker
            refused = await self.host.start_serving()
            if refused:
                self.agent.config.disown(refused)

    def announce(self, url: str) -> None:
        self.agent.announce(url)

    async def purge(self, kind: str, values: list[str], soft: bool) -> dict[str, Any]:
        return await self.agent.purge(kind, values, soft)

    def health(self) -> dict[str, Any]:
        return self.agent.health()

    async def refresh(self) -> None:
        """Read the workers' figures now (the tier status in ``health`` comes from them)."""
        await self.host.stats()

    async def stop(self) -> None:
        await self.agent.stop()
