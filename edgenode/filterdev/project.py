"""A filter project's manifest, ``filter.toml``: what to build, where the .wasm lands, how to
configure it, which case files test it.

Every ``edgenode filter`` command and the pytest plugin read the same file, so a project
directory is all a command needs (``edgenode filter test`` with no arguments).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgenode.config import ConfigError, read_toml

__all__ = ["Project", "load_project", "find_project", "MANIFEST", "LANGS", "config_text"]

MANIFEST = "filter.toml"
LANGS = ("c", "assemblyscript")
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_KEYS = {"name", "lang", "wasm", "root_id", "config", "cases", "options"}


@dataclass
class Project:
    root: Path
    name: str
    lang: str
    wasm: Path
    root_id: str = ""
    #: the plugin configuration as sent to the filter (a TOML table is sent as JSON)
    config: str = ""
    cases: list[Path] = field(default_factory=list)
    #: further wasm stage options (log_level, memory_limit, ...), as in a [[chain]] table
    options: dict[str, Any] = field(default_factory=dict)


def config_text(value: Any, key: str) -> str:
    """A plugin configuration from a string, or a table/list sent as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    raise ConfigError(f"{key}: expected a string or a table (sent as JSON), got {value!r}")


def load_project(path: Path) -> Project:
    """Parse ``path`` (a filter.toml); errors name the key, as node config errors do."""
    where = str(path)
    data = read_toml(path, "filter project")
    for key in data:
        if key not in _KEYS:
            raise ConfigError(f"{where}: {key}: unknown key (known: {', '.join(sorted(_KEYS))})")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"{where}: name: expected lower-case letters, digits, '-' or '_', got {name!r}")
    lang = data.get("lang")
    if lang not in LANGS:
        raise ConfigError(f"{where}: lang: must be one of {', '.join(LANGS)}, got {lang!r}")
    root = path.resolve().parent
    wasm = data.get("wasm", f"build/{name}.wasm")
    if not isinstance(wasm, str) or not wasm:
        raise ConfigError(f"{where}: wasm: expected a path, got {wasm!r}")
    root_id = data.get("root_id", "")
    if not isinstance(root_id, str):
        raise ConfigError(f"{where}: root_id: expected a string, got {root_id!r}")
    cases = data.get("cases", [])
    if not isinstance(cases, list) or not all(isinstance(c, str) for c in cases):
        raise ConfigError(f"{where}: cases: expected a list of paths")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: options: expected a table")
    return Project(root=root, name=name, lang=lang, wasm=root / wasm, root_id=root_id,
                   config=config_text(data.get("config", ""), f"{where}: config"),
                   cases=[root / c for c in cases], options=options)


def find_project(start: Path) -> Project | None:
    """The project whose filter.toml is in ``start`` or one of its parents, if any."""
    start = start.resolve()
    for d in (start, *start.parents):
        manifest = d / MANIFEST
        if manifest.is_file():
            return load_project(manifest)
    return None
