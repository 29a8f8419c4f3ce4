"""Fixtures for the filter-author tools: projects scaffolded into tmp dirs and built with the
real toolchains (zig cc, npm + asc)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest

from edgenode.filterdev.build import build_project
from edgenode.filterdev.project import Project, load_project
from edgenode.filterdev.scaffold import new_project

HERE = Path(__file__).resolve().parent


def _build(project: Project) -> Project:
    if project.lang == "assemblyscript" and shutil.which("npm") is None:
        pytest.fail("npm not found: AssemblyScript filters are built with npm "
                    "(Debian: apt-get install nodejs npm)", pytrace=False)
    build_project(project)
    return project


@pytest.fixture(scope="session")
def c_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The C template, scaffolded and built (shared: tests must not modify it)."""
    root = tmp_path_factory.mktemp("proj") / "hello"
    new_project("hello", "c", root)
    return _build(load_project(root / "filter.toml"))


@pytest.fixture(scope="session")
def clock_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/filterdev/filters/clock.c built as a C project: reports guest time and randomness."""
    root = tmp_path_factory.mktemp("proj") / "clock"
    new_project("clock", "c", root)
    shutil.copy(HERE / "filters" / "clock.c", root / "src" / "filter.c")
    return _build(load_project(root / "filter.toml")).wasm


@pytest.fixture
def fresh_c_project(tmp_path: Path) -> Callable[[str], Project]:
    """A new built C project that a test may edit and rebuild."""
    def make(name: str = "hello") -> Project:
        new_project(name, "c", tmp_path / name)
        return _build(load_project(tmp_path / name / "filter.toml"))
    return make
