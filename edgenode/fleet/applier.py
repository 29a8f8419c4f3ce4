"""Node side of rollouts: apply each new fleet config version, or refuse it and say why.

A version is applied with the node's own reload path (``Node.reload_stage``, which
loads the new module and settings before swapping, so in-flight requests finish on the
old filter or function).  All of a version's stages are applied or none: when one stage
fails to load or configure, the stages already swapped go back to what they ran, and
the node reports the refusal (version and reason) in its heartbeat while it keeps
serving the version it had.  A node with workers applies a version in each worker the
same way, and the master undoes it everywhere when one worker refuses
(:mod:`edgenode.fleet.master`).
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
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from edgenode.config import Config, StageConfig
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.envelope import BadMessage, open_sealed
from edgenode.fleet.files import materialise
from edgenode.fleet.fleetconfig import (
    OBJECT_NAME, ROLLABLE, FleetDoc, cache_changes, chain_shape, parse_doc, stage_artifact,
)
from edgenode.fleet.modules import ModuleError, fetch
from edgenode.fleet.names import CONFIG_KEY
from edgenode.fleet.oci import OciError, pull_module

__all__ = ["ConfigApplier", "Refused", "NodeTarget", "swap_stages"]

log = logging.getLogger("edgenode.fleet")


class Refused(Exception):
    """This node will not run a version; the text is the reason shown in ``fleet status``."""


class NodeTarget(Protocol):
    """What the applier needs from a node (one process, or a master and its workers)."""

    config: Config

    async def apply(self, version: int, new: dict[str, StageConfig], old: dict[str, StageConfig],
                    cache: dict[str, Any]) -> None:
        """Run version ``version``: the ``new`` stage settings (``old``: what they replace)
        and the ``cache`` keys, all or none (raises Refused)."""
        ...

    def module_paths(self) -> dict[str, Path]: ...


async def swap_stages(reload: Callable[[str, StageConfig], Awaitable[None]],
                      new: dict[str, StageConfig], old: dict[str, StageConfig]) -> None:
    """Reload each stage of ``new`` in this process, all or none: when one fails, the ones
    already swapped are reloaded with their ``old`` settings and Refused says why."""
    swapped: list[str] = []
    for name, sc in new.items():
        try:
            await reload(name, sc)
        except Exception as exc:
            for done in reversed(swapped):
                try:
                    await reload(done, old[done])
                except Exception:
                    log.exception("fleet: could not restore stage %r after a refused version", done)
            what = "filter" if sc.type == "wasm" else sc.type
            reason = str(exc).strip()
            raise Refused(reason if reason.startswith(f"{what} {name!r}") else f"{what} {name!r}: {reason}") from None
        swapped.append(name)


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
        self._running = {sc.name: sc for sc in node.config.chain}
        #: held while a version is applied
        self.lock = asyncio.Lock()
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

    async def poll_forever(self, interval: float) -> None:
        """Also read the current version every ``interval`` s: a watch served by a NATS
        server that died is silent for a while, a read is answered by any server."""
        while not self.bus.stopping:
            await asyncio.sleep(interval)
            if not self.bus.connected or not self.ready.is_set():
                continue
            try:
                entry = await (await self.bus.config_kv()).get(CONFIG_KEY)
            except Exception:  # no version yet, or NATS went away: the next round retries
                continue
            if entry.value and entry.operation not in ("DEL", "PURGE"):
                await self.offer(entry.revision, entry.value)

    async def _on_entry(self, entry: Any, replay: bool) -> None:
        if entry is not None and entry.operation not in ("DEL", "PURGE") and entry.value:
            await self.offer(entry.revision, entry.value)
        if entry is None or not replay:
            self.ready.set()  # the version current at start-up was looked at (or there is none)

    async def offer(self, revision: int, data: bytes) -> bool:
        """Apply version ``revision`` unless it runs it or a later one; False when refused."""
        async with self.lock:
            if revision <= max(self.version or 0, self.refused["version"] if self.refused else 0):
                return True  # runs it, refused it, or newer than it (versions only grow)
            try:
                doc = self._parse(data)
                await self._apply(revision, doc)
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

    def disown(self, reason: str) -> None:
        """The version applied before any worker ran did not load in the first worker
        (which then serves the node's own config): it counts as refused after all."""
        if self.version is None:
            return
        log.error("fleet: refused config version %d: %s (running the node's own config)", self.version, reason)
        self.refused = {"version": self.version, "reason": reason, "at": time.time()}
        self.version = self.applied_at = None
        self._running = {sc.name: sc for sc in self.node.config.chain}
        self._changed()

    async def _apply(self, version: int, doc: FleetDoc) -> None:
        config = self.node.config
        mine, theirs = chain_shape(config.chain), chain_shape(doc.chain)
        if mine != theirs:
            raise Refused(f"chain differs from this node's ({', '.join(theirs)} vs {', '.join(mine)}); "
                          "adding, removing or reordering stages needs a restart")
        live, refuse = cache_changes(doc.cache, config.cache)
        refuse += [f"{sc.type} stage {sc.name!r}: its settings change with a restart" for sc in doc.chain
                   if sc.type not in ROLLABLE and sc.type != "cache"
                   and sc.options != self._running[sc.name].options]
        if refuse:
            raise Refused("; ".join(refuse))
        wanted = {sc.name: await self._resolve(i, sc) for i, sc in enumerate(doc.chain) if sc.type in ROLLABLE}
        new = {name: sc for name, sc in wanted.items() if sc.options != self._running[name].options}
        async with _one_node_at_a_time(self.cache_dir / "fleet-modules" / ".apply.lock"):
            await self.node.apply(version, new, {name: self._running[name] for name in new}, live)
        self._running.update(new)

    async def _resolve(self, index: int, sc: StageConfig) -> StageConfig:
        """The stage with its module (or component) and its files as local, verified copies."""
        key = stage_artifact(sc.type)
        options = dict(sc.options)
        try:
            ref = options[key]
            if OBJECT_NAME.match(ref):
                options[key] = str(await fetch(self.bus, ref, self.cache_dir))
            else:
                options[key] = str(await asyncio.to_thread(pull_module, ref, self.cache_dir))
        except (ModuleError, OciError) as exc:
            raise Refused(f"chain[{index}].{key}: {exc}") from None
        files = options.get("files")
        if isinstance(files, dict):
            try:
                options["files"] = {mount: str(await materialise(self.bus, tree, self.cache_dir))
                                    for mount, tree in files.items()}
            except ModuleError as exc:
                raise Refused(f"chain[{index}].files: {exc}") from None
        return replace(sc, options=options)


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
