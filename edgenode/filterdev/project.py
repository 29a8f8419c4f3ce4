"""A filter project's manifest, ``filter.toml``: what to build, where the .wasm lands, how to
configure it, which case files test it.

Every ``edgenode filter`` command and the pytest plugin read the same file, so a project
directory is all a command needs (``edgenode filter test`` with no arguments).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgenode.config import ConfigError
from edgenode.devkit.manifest import Manifest, locate

__all__ = ["Project", "load_project", "find_project", "MANIFEST", "LANGS", "config_text"]

MANIFEST = "filter.toml"
LANGS = ("c", "assemblyscript")
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
    m = Manifest(path, "filter project", _KEYS)
    name = m.name()
    return Project(root=m.root, name=name, lang=m.lang(LANGS), wasm=m.path("wasm", f"build/{name}.wasm"),
                   root_id=m.string("root_id"),
                   config=config_text(m.data.get("config", ""), f"{m.where}: config"),
                   cases=m.paths("cases"), options=m.table("options"))


def find_project(start: Path) -> Project | None:
    """The project ``start`` (a directory, or a file such as filter.toml) belongs to, if any."""
    manifest = locate(start, MANIFEST)
    return load_project(manifest) if manifest else None

