"""Filter modules in the fleet's Object Store, named by content digest.

``upload`` stores a module once under ``sha256-<hex>``; ``fetch`` brings it into the
node's module cache (beside the compiled modules) and checks the bytes against the
name before anything loads them, so a node never runs a module it was not sent.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from nats.js.errors import ObjectNotFoundError

from edgenode.fleet.bus import ControlBus
from edgenode.fleet.oci import write_atomic

__all__ = ["module_name", "wasm_bytes", "upload", "fetch", "ModuleError"]


class ModuleError(Exception):
    """A module could not be fetched or did not match its digest."""


def module_name(data: bytes) -> str:
    return "sha256-" + hashlib.sha256(data).hexdigest()


def wasm_bytes(path: Path) -> bytes:
    """A module file's binary form (``.wat`` text is assembled, as the node would load it)."""
    data = path.read_bytes()
    if path.suffix == ".wat":
        from wasmtime import wat2wasm

        return bytes(wat2wasm(data.decode()))
    return data


async def upload(bus: ControlBus, data: bytes) -> str:
    name = module_name(data)
    store = await bus.modules()
    try:
        await store.get_info(name)
    except ObjectNotFoundError:
        await store.put(name, data)
    return name


async def fetch(bus: ControlBus, name: str, cache_dir: Path) -> Path:
    """The local, verified copy of module ``name`` (fetched from the Object Store if needed)."""
    path = cache_dir / "fleet-modules" / f"{name}.wasm"
    if path.is_file() and module_name(path.read_bytes()) == name:
        return path
    try:
        store = await bus.modules()
        result = await store.get(name)
    except ObjectNotFoundError:
        raise ModuleError(f"module {name} is not in the fleet's Object Store") from None
    except Exception as exc:
        raise ModuleError(f"module {name}: {type(exc).__name__}: {exc}") from None
    data = bytes(result.data or b"")
    if module_name(data) != name:
        raise ModuleError(f"module {name}: content does not match its digest; refused")
    path.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(write_atomic, path, data)
    return path
