"""Copying a project template tree (package data) into a new project directory."""

from __future__ import annotations

from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Callable

__all__ = ["copy_tree"]


def copy_tree(src: Traversable, dest: Path, render: Callable[[str], str]) -> list[Path]:
    """Write every file under ``src`` to ``dest`` through ``render``; returns the files.

    ``gitignore`` is stored without its dot (packaging tools drop dot files) and written as
    ``.gitignore``; ``__init__.py`` files only make the template a package and are skipped.
    """
    out = []
    for item in src.iterdir():
        target = dest / ("." + item.name if item.name == "gitignore" else item.name)
        if item.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            out += copy_tree(item, target, render)
        elif item.name != "__init__.py":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render(item.read_text()))
            out.append(target)
    return out
