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

from edgenode.config import ConfigError, read_toml
from edgenode.filterdev.project import NAME_RE

__all__ = ["FunctionProject", "load_function_project", "find_function_project", "MANIFEST", "LANGS"]

MANIFEST = "function.toml"
LANGS = ("js", "python", "c")
_KEYS = {"name", "lang", "source", "component", "cases", "options"}


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
    where = str(path)
    data = read_toml(path, "function project")
    for key in data:
        if key not in _KEYS:
            raise ConfigError(f"{where}: {key}: unknown key (known: {', '.join(sorted(_KEYS))})")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"{where}: name: expected lower-case letters, digits, '-' or '_', got {name!r}")
    lang = data.get("lang")
    if lang not in LANGS:
        raise ConfigError(f"{where}: lang: must be one of {', '.join(LANGS)}, got {lang!r}")
    root = path.parent.resolve()
    source = data.get("source", {"js": "app.js", "python": "app.py", "c": "handler.c"}[lang])
    component = data.get("component", f"build/{name}.wasm")
    for key, value in (("source", source), ("component", component)):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: {key}: expected a path")
    cases = data.get("cases", [])
    if not isinstance(cases, list) or not all(isinstance(c, str) for c in cases):
        raise ConfigError(f"{where}: cases: expected an array of case file paths")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: options: expected a table of function stage options")
    return FunctionProject(root, name, lang, root / source, root / component, [root / c for c in cases],
                           options)


def find_function_project(start: Path) -> FunctionProject | None:
    """The project whose function.toml is in ``start`` or a parent directory."""
    here = start.resolve()
    for d in (here, *here.parents):
        if (d / MANIFEST).is_file():
            return load_function_project(d / MANIFEST)
    return None
