"""``serve --watch``: poll files' mtimes and call back when one changes.

Polling (once a second) instead of inotify keeps it dependency-free and works on
every filesystem; a filter rebuild is a human-speed event.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from edgenode.config import Config

__all__ = ["watch_files", "watched_paths"]

log = logging.getLogger("edgenode.watch")


def watched_paths(config: Config, config_path: str | None) -> list[Path]:
    """The config file and every wasm stage's module file."""
    paths = [Path(config_path).resolve()] if config_path else []
    for stage in config.chain:
        module = stage.options.get("module")
        if stage.type == "wasm" and isinstance(module, str):
            p = Path(module)
            paths.append(p if p.is_absolute() else (config.base_dir / p).resolve())
    return paths


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


async def watch_files(paths: Iterable[Path], on_change: Callable[[], Awaitable[Any]],
                      interval: float = 1.0) -> None:
    """Run until cancelled; a failing callback is logged and watching goes on."""
    paths = list(paths)
    seen = {p: _mtime(p) for p in paths}
    while True:
        await asyncio.sleep(interval)
        changed = [p for p in paths if _mtime(p) != seen[p]]
        if not changed:
            continue
        for p in changed:
            seen[p] = _mtime(p)
        log.info("changed: %s; reloading filters", ", ".join(str(p) for p in changed))
        try:
            await on_change()
        except Exception as exc:  # e.g. a module that does not compile: keep the old one
            log.error("filter reload failed: %s", exc)
