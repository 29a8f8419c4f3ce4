"""pytest plugin: the ``filter`` fixture, a ``FilterHarness`` for the project's filter.

Enable it in the project's root conftest.py (scaffolded projects already do)::

    pytest_plugins = ["edgenode.filterdev.pytest_plugin"]

Then ``def test_x(filter): resp = filter.request("GET", "/a"); assert resp.status == 200``.
Which filter: the ``edgenode_filter`` / ``edgenode_filter_config`` / ``edgenode_filter_root_id``
ini options if set, else the filter.toml found from the rootdir upwards.  A conftest can
also override the ``filter_settings`` fixture to return its own ``FilterSettings``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from edgenode.filterdev.harness import FilterHarness
from edgenode.filterdev.project import find_project

__all__ = ["FilterSettings", "filter_settings", "filter"]


@dataclass
class FilterSettings:
    wasm: Path
    config: str = ""
    root_id: str = ""
    name: str = "filter"
    options: dict[str, Any] = field(default_factory=dict)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("edgenode_filter", "the filter's .wasm (default: wasm in filter.toml)")
    parser.addini("edgenode_filter_config", "the plugin configuration (default: config in filter.toml)")
    parser.addini("edgenode_filter_root_id", "the root id (default: root_id in filter.toml)")
    if importlib.util.find_spec("pytest_asyncio") is None:
        # Scaffolded projects set pytest-asyncio's loop scope (without it, pytest-asyncio
        # prints a deprecation warning on every run); known here too, so a project run
        # without pytest-asyncio gets no unknown-option warning either.
        parser.addini("asyncio_default_fixture_loop_scope",
                      "pytest-asyncio's loop scope for async fixtures (unused without it)")


@pytest.fixture
def filter_settings(pytestconfig: pytest.Config) -> FilterSettings:
    """Which filter the ``filter`` fixture loads; override in a conftest to choose."""
    root = pytestconfig.rootpath
    project = find_project(root)
    wasm_opt = pytestconfig.getini("edgenode_filter")
    if wasm_opt:
        settings = FilterSettings(wasm=root / wasm_opt)
    elif project is not None:
        settings = FilterSettings(wasm=project.wasm, config=project.config, root_id=project.root_id,
                                  name=project.name, options=project.options)
    else:
        pytest.fail(f"no filter to test: set `edgenode_filter` in the pytest ini file or add a "
                    f"filter.toml to {root}", pytrace=False)
    config = pytestconfig.getini("edgenode_filter_config")
    root_id = pytestconfig.getini("edgenode_filter_root_id")
    if config:
        settings.config = config
    if root_id:
        settings.root_id = root_id
    return settings


@pytest.fixture
def filter(filter_settings: FilterSettings) -> Iterator[FilterHarness]:  # noqa: A001 - the documented name
    """A fresh filter VM per test, fed with ``filter.request(...)`` (no network)."""
    if not filter_settings.wasm.is_file():
        pytest.fail(f"{filter_settings.wasm} does not exist: build it first (`edgenode filter build`)",
                    pytrace=False)
    with FilterHarness(filter_settings.wasm, filter_settings.config, root_id=filter_settings.root_id,
                       name=filter_settings.name, options=filter_settings.options) as harness:
        yield harness
