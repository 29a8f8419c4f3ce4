"""Reading an author project's TOML manifest (``filter.toml``, ``function.toml``).

Both tools validate the same way, so errors name the file and the key as node config
errors do, and a command run anywhere inside a project finds its manifest.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgenode.config import ConfigError, read_toml

__all__ = ["NAME_RE", "Manifest", "locate"]

#: project names: they become file names, metric labels and template identifiers
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def locate(path: Path, manifest: str) -> Path | None:
    """The ``manifest`` file of the project ``path`` is in: ``path`` itself, or the one in its
    directory or the nearest parent directory."""
    start = (path if path.is_dir() else path.parent).resolve()
    for d in (start, *start.parents):
        if (d / manifest).is_file():
            return d / manifest
    return None


class Manifest:
    """One parsed manifest; each accessor checks its key's type and names it on error."""

    def __init__(self, path: Path, what: str, keys: set[str]) -> None:
        self.where = str(path)
        self.root = path.resolve().parent
        self.data: dict[str, Any] = read_toml(path, what)
        for key in self.data:
            if key not in keys:
                raise self.error(key, f"unknown key (known: {', '.join(sorted(keys))})")

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.where}: {key}: {reason}")

    def name(self) -> str:
        name = self.data.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise self.error("name", f"expected lower-case letters, digits, '-' or '_', got {name!r}")
        return name

    def lang(self, langs: tuple[str, ...]) -> str:
        lang = self.data.get("lang")
        if lang not in langs:
            raise self.error("lang", f"must be one of {', '.join(langs)}, got {lang!r}")
        return lang

    def string(self, key: str, default: str = "") -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {value!r}")
        return value

    def path(self, key: str, default: str) -> Path:
        """A non-empty path relative to the project directory."""
        value = self.data.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a path, got {value!r}")
        return self.root / value

    def paths(self, key: str) -> list[Path]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "expected a list of paths")
        return [self.root / v for v in value]

    def table(self, key: str) -> dict[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, "expected a table")
        return value
