"""The C SDK's pw_call_foreign_function against the host's foreign-function registry."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from edgenode.filterdev import FilterHarness
from edgenode.filterdev.build import build_project
from edgenode.filterdev.project import load_project
from edgenode.filterdev.scaffold import new_project
from edgenode.wasm.foreign import register_foreign_function, unregister_foreign_function

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def foreign_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proj") / "foreign"
    new_project("foreign", "c", root)
    shutil.copy(HERE / "filters" / "foreign.c", root / "src" / "filter.c")
    project = load_project(root / "filter.toml")
    build_project(project)
    return project.wasm


@pytest.fixture
def upper() -> Iterator[None]:
    register_foreign_function("test.upper", lambda args: args.upper() + b"!")
    register_foreign_function("test.broken", lambda args: 1 / 0)
    yield
    unregister_foreign_function("test.upper")
    unregister_foreign_function("test.broken")


def test_result_reaches_the_filter(foreign_wasm: Path, upper: None) -> None:
    resp = FilterHarness(foreign_wasm).request("GET", "/", headers={"x-ff": "test.upper", "x-ff-args": "edge"})
    assert resp.status == 200 and resp.headers["x-ff-status"] == "0" and resp.body == b"EDGE!"


def test_unknown_and_failing_functions_report_their_status(foreign_wasm: Path, upper: None) -> None:
    harness = FilterHarness(foreign_wasm)
    assert harness.request("GET", "/", headers={"x-ff": "no.such"}).headers["x-ff-status"] == "1"
    broken = harness.request("GET", "/", headers={"x-ff": "test.broken", "x-ff-args": "x"})
    assert broken.headers["x-ff-status"] == "10" and broken.body == b""  # INTERNAL_FAILURE
