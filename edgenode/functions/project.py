"""A function project's manifest, ``function.toml``: language, source, output, options, cases.

Every ``edgenode function`` command reads the same file, so a project directory is all
a command needs::

    name = "hello"
    lang = "js"                       # or "python", "c"
    source = "app.js"                 # js: the entry module; python: app.py (module "app")
    component = "build/hello.wasm"    # where `build` writes the component
    cases = ["tests/cases.yaml"]      # `edgenode function test` with no arguments
    [options]                         # function stage options, as in a [[chain]] table
    variables = { greeting = "hello" }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgenode.devkit.manifest import Manifest, locate

__all__ = ["FunctionProject", "load_function_project", "find_function_project", "MANIFEST", "LANGS"]

MANIFEST = "function.toml"
LANGS = ("js", "python", "c")
_KEYS = {"name", "lang", "source", "component", "cases", "options"}
_SOURCES = {"js": "app.js", "python": "app.py", "c": "handler.c"}


@dataclass
class FunctionProject:
    root: Path
    name: str
    lang: str
    source: Path
    component: Path
    cases: list[Path] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


def load_function_project(path: Path) -> FunctionProject:
    """Parse ``path`` (a function.toml); errors name the key, as node config errors do."""
    m = Manifest(path, "function project", _KEYS)
    name = m.name()
    lang = m.lang(LANGS)
    return FunctionProject(m.root, name, lang, m.path("source", _SOURCES[lang]),
                           m.path("component", f"build/{name}.wasm"), m.paths("cases"), m.table("options"))


def find_function_project(start: Path) -> FunctionProject | None:
    """The project ``start`` (a directory, or a file such as function.toml) belongs to, if any."""
    manifest = locate(start, MANIFEST)
    return load_function_project(manifest) if manifest else None

