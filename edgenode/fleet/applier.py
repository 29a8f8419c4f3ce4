"""Node side of rollouts: apply each new fleet config version, or refuse it and say why.

A version is applied with the node's own reload path (``Node.reload_stage``, which
loads the new module and settings before swapping, so in-flight requests finish on the
old filter).  All of a version's stages are applied or none: when one stage fails to
load or configure, the stages already swapped go back to what they ran, and the node
reports the refusal (version and reason) in its heartbeat while it keeps serving the
version it had.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Protocol

from edgenode.config import CacheConfig, StageConfig
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.envelope import BadMessage, open_sealed
from edgenode.fleet.fleetconfig import OBJECT_MODULE, FleetDoc, cache_changes, chain_shape, parse_doc
from edgenode.fleet.modules import ModuleError, fetch
from edgenode.fleet.names import CONFIG_KEY
from edgenode.fleet.oci import OciError, pull_module

__all__ = ["ConfigApplier", "Refused", "NodeTarget"]

log = logging.getLogger("edgenode.fleet")


class Refused(Exception):
    """This node will not run a version; the text is the reason shown in ``fleet status``."""


class NodeTarget(Protocol):
    """What the applier needs from a node."""

    chain: list[StageConfig]
    cache_config: CacheConfig

    async def reload_stage(self, name: str, settings: StageConfig) -> None: ...

    def module_paths(self) -> dict[str, Path]: ...


class ConfigApplier:
    def __init__(self, node: NodeTarget, bus: ControlBus, key: bytes, cache_dir: Path) -> None:
        self.node = node
        self.bus = bus
        self.key = key
        self.cache_dir = cache_dir
        #: the KV revision this node runs (None: only its own config file so far)
        self.version: int | None = None
        self.applied_at: float | None = None
        self.refused: dict[str, Any] | None = None
        self.ready = asyncio.Event()  # the current version was looked at once
        self._running = {sc.name: sc for sc in node.chain}
        self._lock = asyncio.Lock()
        self._digests: dict[Path, tuple[int, str]] = {}  # module file -> (mtime, sha256)
        #: called after each version is applied or refused
        self.on_change: list[Callable[[], None]] = []

    def module_digests(self) -> dict[str, str]:
        """The sha256 of each filter module this node runs now (shown in fleet status)."""
        out = {}
        for name, path in self.node.module_paths().items():
            try:
                stamp = path.stat().st_mtime_ns
                known = self._digests.get(path)
                if known is None or known[0] != stamp:
                    known = self._digests[path] = (stamp, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest())
                out[name] = known[1]
            except OSError:
                pass
        return out

    def status(self) -> dict[str, Any]:
        return {"version": self.version, "applied_at": self.applied_at, "refused": self.refused}

    async def watch_forever(self) -> None:
        await self.bus.watch_forever(self.bus.names.config_bucket, CONFIG_KEY, self._on_entry)

    async def _on_entry(self, entry: Any, replay: bool) -> None:
        if entry is not None and entry.operation not in ("DEL", "PURGE") and entry.value:
            await self.offer(entry.revision, entry.value)
        if entry is None or not replay:
            self.ready.set()  # the version current at start-up was looked at (or there is none)

    async def offer(self, revision: int, data: bytes) -> bool:
        """Apply version ``revision`` unless it runs already; False when refused."""
        async with self._lock:
            if revision == self.version or (self.refused and self.refused["version"] == revision):
                return True
            try:
                doc = self._parse(data)
                await self._apply(doc)
            except Refused as exc:
                self.refused = {"version": revision, "reason": str(exc), "at": time.time()}
                log.error("fleet: refused config version %d: %s (still running version %s)",
                          revision, exc, self.version)
                self._changed()
                return False
            self.version, self.applied_at, self.refused = revision, time.time(), None
            log.info("fleet: running config version %d", revision)
            self._changed()
            return True

    def _changed(self) -> None:
        for cb in self.on_change:
            cb()

    def _parse(self, data: bytes) -> FleetDoc:
        try:
            return parse_doc(open_sealed(self.key, data, "config"))
        except BadMessage as exc:
            raise Refused(f"malformed config: {exc}") from None

    async def _apply(self, doc: FleetDoc) -> None:
        mine, theirs = chain_shape(self.node.chain), chain_shape(doc.chain)
        if mine != theirs:
            raise Refused(f"chain differs from this node's ({', '.join(theirs)} vs {', '.join(mine)}); "
                          "adding, removing or reordering stages needs a restart")
        live, refuse = cache_changes(doc.cache, self.node.cache_config)
        refuse += [f"{sc.type} stage {sc.name!r}: its settings change with a restart" for sc in doc.chain
                   if sc.type not in ("wasm", "cache") and sc.options != self._running[sc.name].options]
        if refuse:
            raise Refused("; ".join(refuse))
        wanted = {sc.name: await self._resolve(i, sc) for i, sc in enumerate(doc.chain) if sc.type == "wasm"}
        swapped: list[str] = []
        async with _one_node_at_a_time(self.cache_dir / "fleet-modules" / ".apply.lock"):
            for name, sc in wanted.items():
                if sc.options == self._running[name].options:
                    continue
                try:
                    await self.node.reload_stage(name, sc)
                except Exception as exc:
                    await self._restore(swapped)
                    reason = str(exc).strip()
                    raise Refused(reason if reason.startswith(f"filter {name!r}")
                                  else f"filter {name!r}: {reason}") from None
                swapped.append(name)
        for name in swapped:
            self._running[name] = wanted[name]
        for key, value in live.items():
            setattr(self.node.cache_config, key, value)

    async def _resolve(self, index: int, sc: StageConfig) -> StageConfig:
        """The stage with its module as a local, verified file."""
        module = sc.options["module"]
        try:
            if OBJECT_MODULE.match(module):
                path = await fetch(self.bus, module, self.cache_dir)
            else:
                path = await asyncio.to_thread(pull_module, module, self.cache_dir)
        except (ModuleError, OciError) as exc:
            raise Refused(f"chain[{index}].module: {exc}") from None
        return replace(sc, options={**sc.options, "module": str(path)})

    async def _restore(self, names: list[str]) -> None:
        for name in reversed(names):
            try:
                await self.node.reload_stage(name, self._running[name])
            except Exception:
                log.exception("fleet: could not restore filter %r after a refused version", name)


@contextlib.asynccontextmanager
async def _one_node_at_a_time(lock: Path) -> AsyncIterator[None]:
    """Nodes sharing a module cache (several on one machine) apply a version in turn:
    the first compiles each new module and stores it, the others load the compiled
    copy (~0.1 ms instead of ~0.3 s each), so a machine compiles a module once."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)  # the node keeps serving meanwhile
        yield
    finally:
        os.close(fd)  # releases the lock
