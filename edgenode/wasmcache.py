"""The disk cache of compiled Wasm, shared by filters (core modules) and functions
(components).

Compiling is the slow part of a cold start (seconds for a big guest); deserializing a
compiled artifact takes about 0.1 ms.  An artifact's name is a digest of the source,
the engine settings that change generated code and the wasmtime version, so a change
of any of them compiles afresh; artifacts are written atomically, and one that fails
to deserialize is compiled again and replaced.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, Protocol, TypeVar

from wasmtime import Engine, WasmtimeError

__all__ = ["default_cache_dir", "wasmtime_version", "cache_key", "load_or_compile"]

_log = logging.getLogger("edgenode.wasmcache")


class _Compiled(Protocol):
    @classmethod
    def deserialize_file(cls, engine: Engine, path: str) -> "_Compiled": ...

    def serialize(self) -> bytearray: ...


T = TypeVar("T", bound=_Compiled)


def default_cache_dir() -> Path:
    """``$EDGENODE_CACHE_DIR``, else ``~/.cache/edgenode``."""
    env = os.environ.get("EDGENODE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "edgenode"


def wasmtime_version() -> str:
    try:
        return importlib.metadata.version("wasmtime")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cache_key(source: bytes, config_id: str, version: str) -> str:
    """The artifact name of ``source`` compiled with engine settings ``config_id``."""
    return hashlib.sha256(source + b"\0" + config_id.encode() + b"\0" + version.encode()).hexdigest()


def load_or_compile(engine: Engine, kind: type[T], artifact: Path,
                    compile: Callable[[], T]) -> tuple[T, bool]:
    """``kind`` (``Module`` or ``Component``) from ``artifact``, else from ``compile()``,
    then stored there; returns it and whether it came from the cache.  ``compile``
    raises the caller's load error; an unwritable cache only costs start-up time."""
    if artifact.is_file():
        try:
            return kind.deserialize_file(engine, str(artifact)), True  # type: ignore[return-value]
        except WasmtimeError as exc:
            _log.warning("discarding unusable compile cache entry %s: %s", artifact, exc)
    compiled = compile()
    try:
        artifact.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=artifact.parent, suffix=".tmp", delete=False) as f:
            f.write(compiled.serialize())
        os.replace(f.name, artifact)
    except OSError as exc:
        _log.warning("cannot write compile cache %s: %s", artifact, exc)
    return compiled, False
