"""Operator side of the fleet: publish a config version, roll back, read the fleet's status.

``publish`` uploads each local filter module, function component and stage file to the
fleet's Object Store (by digest), rewrites the document to name them by digest, and
puts it in the config bucket: the KV revision is the version number.  ``rollback`` re-publishes an older revision as a
new version.  ``status`` reads the membership bucket: one signed heartbeat per node with
its tier, the version it runs, what it refused and why, hit ratio and req/s.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from nats.js.errors import KeyDeletedError, KeyNotFoundError, NoKeysError

from edgenode.config import ConfigError, StageConfig, read_toml
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.envelope import BadMessage, open_sealed, seal
from edgenode.fleet.files import upload_tree
from edgenode.fleet.fleetconfig import OBJECT_NAME, ROLLABLE, FleetDoc, parse_doc, stage_artifact
from edgenode.fleet.membership import parse_member
from edgenode.fleet.modules import upload, wasm_bytes
from edgenode.fleet.names import CONFIG_KEY
from edgenode.fleet.oci import is_oci

#: reads of the config history before a rollback gives up (each ~50 ms apart)
HISTORY_TRIES = 20

__all__ = ["load_doc", "publish", "rollback", "read_status", "live_nodes", "wait_for_version", "format_status",
           "current_version"]


def load_doc(path: Path) -> tuple[FleetDoc, Path]:
    """A document file and the directory its module paths are relative to (as for a
    node config: the directory holding ``config/``, else the file's own)."""
    data = read_toml(path, "fleet config")
    try:
        doc = parse_doc(data, published=False)
    except BadMessage as exc:
        raise ConfigError(f"{path}: {exc}") from None
    p = path.resolve()
    return doc, (p.parent.parent if p.parent.name == "config" else p.parent)


async def publish(bus: ControlBus, key: bytes, doc: FleetDoc, base: Path, *, by: str = "cli",
                  note: str = "", rollback_of: int | None = None) -> int:
    chain = [await _upload_stage(bus, i, sc, base) if sc.type in ROLLABLE else sc for i, sc in enumerate(doc.chain)]
    out = replace(doc, chain=chain, published_at=time.time(), by=by, note=note or doc.note,
                  rollback_of=rollback_of)
    kv = await bus.config_kv()
    return await kv.put(CONFIG_KEY, seal(key, out.body()))


async def _upload_stage(bus: ControlBus, index: int, sc: StageConfig, base: Path) -> StageConfig:
    """The stage with its local module (or component) and files uploaded, named by digest."""
    options = dict(sc.options)
    key = stage_artifact(sc.type)
    ref = options.get(key)
    if isinstance(ref, str) and not is_oci(ref) and not OBJECT_NAME.match(ref):
        path = _local(ref, base)
        try:
            data = wasm_bytes(path)
        except OSError as exc:
            raise ConfigError(f"chain[{index}].{key}: cannot read {path}: {exc.strerror}") from None
        options[key] = await upload(bus, data)
    files = options.get("files")
    if isinstance(files, dict):
        trees = {}
        for mount, value in files.items():
            if isinstance(value, str) and OBJECT_NAME.match(value):
                trees[mount] = value
                continue
            path = _local(str(value), base)
            try:
                trees[mount] = await upload_tree(bus, path)
            except OSError as exc:
                raise ConfigError(f"chain[{index}].files.{mount}: cannot read {path}: "
                                  f"{exc.strerror or exc}") from None
        options["files"] = trees
    return replace(sc, options=options)


async def _history(kv: Any) -> list[Any]:
    """Every kept revision of the config key, oldest first.

    nats-py's ``history`` can end its replay before the messages already on their way
    (nats-io/nats.py#842): it then answers a prefix of the history, or raises NoKeysError.
    So the answer counts only once its last entry is the key's current revision.
    """
    try:
        current = (await kv.get(CONFIG_KEY)).revision
    except KeyDeletedError as exc:
        current = exc.entry.revision if exc.entry is not None else None
    except KeyNotFoundError:
        return []
    for _ in range(HISTORY_TRIES):
        try:
            entries = await kv.history(CONFIG_KEY)
        except NoKeysError:
            entries = []
        if entries and (current is None or entries[-1].revision >= current):
            return entries
        await asyncio.sleep(0.05)
    raise ConfigError("rollback: the config bucket's history did not read back whole; try again")


def _local(path: str, base: Path) -> Path:
    return Path(path) if Path(path).is_absolute() else base / path


async def rollback(bus: ControlBus, key: bytes, to: int | None = None) -> tuple[int, int]:
    """Re-publish version ``to`` (default: the one before the current); (new, old) versions."""
    kv = await bus.config_kv()
    history = [e for e in await _history(kv) if e.value and e.operation not in ("DEL", "PURGE")]
    if len(history) < (1 if to is not None else 2):
        raise ConfigError("rollback: no earlier version to go back to")
    if to is None:
        target = history[-2]
    else:
        found = [e for e in history if e.revision == to]
        if not found:
            kept = ", ".join(str(e.revision) for e in history)
            raise ConfigError(f"rollback: no version {to} (kept: {kept})")
        target = found[0]
    doc = parse_doc(open_sealed(key, target.value, "config"))
    new = await kv.put(CONFIG_KEY, seal(key, replace(doc, published_at=time.time(), by="rollback",
                                                      rollback_of=target.revision).body()))
    return new, target.revision


async def current_version(bus: ControlBus) -> int | None:
    kv = await bus.config_kv()
    try:
        entry = await kv.get(CONFIG_KEY)
    except Exception:
        return None
    return entry.revision


async def read_status(bus: ControlBus, key: bytes, node_ttl: float = 3.0) -> list[dict[str, Any]]:
    """One row per member with a heartbeat in the bucket; ``live`` from its age."""
    kv = await bus.nodes_kv()
    rows = []
    keys = await bus.kv_keys(bus.names.nodes_bucket)
    now = time.time()
    for k in keys:
        try:
            entry = await kv.get(k)
            member = parse_member(open_sealed(key, entry.value or b"", "node"))
        except (BadMessage, Exception):
            continue
        info = dict(member.info)
        info["live"] = now - float(info.get("ts", 0)) < node_ttl
        rows.append(info)
    return sorted(rows, key=lambda r: (r.get("tier") != "shield", r.get("id", "")))


async def live_nodes(bus: ControlBus, key: bytes, node_ttl: float = 3.0) -> set[str]:
    return {r["id"] for r in await read_status(bus, key, node_ttl) if r["live"]}


async def wait_for_version(bus: ControlBus, key: bytes, version: int, timeout: float, node_ttl: float = 3.0,
                           expect: set[str] | None = None) -> tuple[list[dict[str, Any]], float]:
    """Poll status until every node of ``expect`` (default: the live ones at the first
    poll) runs or refused ``version``; (their rows, seconds waited)."""
    started = time.monotonic()
    while True:
        rows = await read_status(bus, key, node_ttl)
        if expect is None:
            expect = {r["id"] for r in rows if r["live"]}
        rows = [r for r in rows if r["id"] in expect]
        done = [r for r in rows if r.get("version") == version or (r.get("refused") or {}).get("version") == version]
        if expect and len(done) == len(expect) or time.monotonic() - started > timeout:
            return rows, time.monotonic() - started
        await asyncio.sleep(0.02)


def format_status(rows: list[dict[str, Any]], current: int | None = None) -> str:
    head = f"fleet config version: {current if current is not None else '(none published)'}\n"
    lines = [("node", "tier", "state", "version", "hit ratio", "req/s", "purges", "refused")]
    for r in rows:
        refused = r.get("refused")
        lines.append((r.get("id", "?") + ("" if r.get("live") else " (gone)"), r.get("tier", "?"),
                      r.get("state", "?"), str(r.get("version")),
                      "-" if r.get("hit_ratio") is None else f"{r['hit_ratio']:.1%}",
                      f"{r.get('rps', 0):.0f}", str(r.get("purges_applied", 0)),
                      f"v{refused['version']}: {refused['reason'].splitlines()[0]}" if refused else ""))
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]) - 1)]
    out = [head.rstrip()]
    for row in lines:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return "\n".join(line.rstrip() for line in out) + "\n"
