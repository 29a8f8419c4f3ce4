"""The C extensions' source files depend on each other in layers, never in a circle.

Each unit of an extension (pyproject.toml's ``ext-modules``) is compiled on its own and its
object's symbols read with ``nm``: unit A depends on unit B when A uses a symbol B defines.
A circle means two files cannot be read, or changed, one without the other.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tests.layout.test_import_cycles import cycles

ROOT = Path(__file__).resolve().parents[2]


def _extensions() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {ext["name"]: ext["sources"] for ext in config["tool"]["setuptools"]["ext-modules"]}


def _symbols(obj: Path, *flags: str) -> set[str]:
    out = subprocess.run(["nm", *flags, str(obj)], check=True, capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def unit_graph(sources: list[str], workdir: Path) -> dict[str, set[str]]:
    """unit -> the units whose symbols it uses."""
    cc = sysconfig.get_config_var("CC").split()[0] or "cc"
    include = sysconfig.get_paths()["include"]
    defined: dict[str, set[str]] = {}
    used: dict[str, set[str]] = {}
    for source in sources:
        obj = workdir / (Path(source).stem + ".o")
        subprocess.run([cc, "-std=gnu11", "-c", "-O0", f"-I{include}", str(ROOT / source), "-o", str(obj)],
                       check=True, capture_output=True)
        defined[source] = _symbols(obj, "--defined-only", "--extern-only")
        used[source] = _symbols(obj, "--undefined-only")
    return {unit: {other for other in sources if other != unit and used[unit] & defined[other]}
            for unit in sources}


@pytest.fixture(scope="module")
def toolchain() -> None:
    if not (shutil.which("nm") and shutil.which(sysconfig.get_config_var("CC").split()[0] or "cc")):
        pytest.fail(f"a C compiler and nm are needed (they build the extensions): {sys.executable}")


def test_the_graph_sees_a_dependency(toolchain: None, tmp_path: Path) -> None:
    graph = unit_graph(_extensions()["edgenode.functions._hostcall"], tmp_path)
    assert "edgenode/functions/hostcall_values.c" in graph["edgenode/functions/hostcall_io.c"]


@pytest.mark.parametrize("name", sorted(_extensions()))
def test_no_cycles_between_units(toolchain: None, tmp_path: Path, name: str) -> None:
    graph = unit_graph(_extensions()[name], tmp_path)
    assert cycles(graph) == [], "\n".join(
        f"{c}: " + "; ".join(f"{u} -> {sorted(graph[u] & set(c))}" for u in c) for c in cycles(graph))
