"""The C extensions' and the filters' source files depend on each other in layers, never in a circle.

Each unit of an extension (pyproject.toml's ``ext-modules``) or of a filter (filters/Makefile's
``units``: the filter's files and the SDK's) is compiled on its own and its object's symbols
read with ``nm``: unit A depends on unit B when A uses a symbol B defines.  A circle means two
files cannot be read, or changed, one without the other.
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
FILTERS = ROOT / "filters"
# The hook tables a filter defines and the SDK's exports read (proxy_wasm.h): the program's
# entry point, which its library calls as libc calls main, not a dependency of the SDK.
SDK_ENTRY_POINTS = frozenset({"pw_filters"})

Symbols = tuple[dict[str, set[str]], dict[str, set[str]]]   # unit -> defined, unit -> used


def _extensions() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {ext["name"]: ext["sources"] for ext in config["tool"]["setuptools"]["ext-modules"]}


def _filters() -> dict[str, tuple[list[str], list[str]]]:
    """filter -> (its units' compiler flags, its units), paths from the repository's root."""
    out = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(FILTERS), "units"],
                         check=True, capture_output=True, text=True).stdout
    filters = {}
    for line in out.splitlines():
        name, flags, units = line.split(": ", 2)
        filters[name] = ([f"-I{FILTERS / f[2:]}" if f.startswith("-I") else f for f in flags.split()],
                         [f"filters/{unit}" for unit in units.split()])
    return filters


FILTER_UNITS = _filters()


def _symbols(obj: Path, *flags: str) -> set[str]:
    out = subprocess.run(["nm", *flags, str(obj)], check=True, capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def unit_symbols(sources: list[str], workdir: Path, flags: list[str] | None = None) -> Symbols:
    """Each unit compiled alone: the external symbols it defines, and those it uses.  flags:
    the compiler's (an extension's, Python's headers, when None)."""
    cc = sysconfig.get_config_var("CC").split()[0] or "cc"
    if flags is None:
        flags = [f"-I{sysconfig.get_paths()['include']}"]
    defined: dict[str, set[str]] = {}
    used: dict[str, set[str]] = {}
    for source in sources:
        obj = workdir / (source.replace("/", "_") + ".o")
        built = subprocess.run([cc, "-std=gnu11", "-c", "-O0", *flags, str(ROOT / source), "-o", str(obj)],
                               capture_output=True, text=True)
        assert built.returncode == 0, \
            f"{source} does not compile alone (filters: `make filters` first):\n{built.stderr}"
        defined[source] = _symbols(obj, "--defined-only", "--extern-only")
        used[source] = _symbols(obj, "--undefined-only")
    return defined, used


def unit_graph(symbols: Symbols, entry_points: frozenset[str] = frozenset()) -> dict[str, set[str]]:
    """unit -> the units whose symbols it uses, but for entry_points."""
    defined, used = symbols
    uses = {unit: used[unit] - entry_points for unit in defined}
    return {unit: {other for other in defined if other != unit and uses[unit] & defined[other]}
            for unit in defined}


@pytest.fixture(scope="module")
def toolchain() -> None:
    if not (shutil.which("nm") and shutil.which(sysconfig.get_config_var("CC").split()[0] or "cc")):
        pytest.fail(f"a C compiler and nm are needed (they build the extensions): {sys.executable}")


@pytest.fixture(scope="module")
def filter_symbols(toolchain: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Symbols]:
    return {name: unit_symbols(units, tmp_path_factory.mktemp(name), flags)
            for name, (flags, units) in FILTER_UNITS.items()}


def _assert_no_cycles(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == [], "\n".join(
        f"{c}: " + "; ".join(f"{u} -> {sorted(graph[u] & set(c))}" for u in c) for c in cycles(graph))


def test_the_graph_sees_a_dependency(toolchain: None, tmp_path: Path) -> None:
    graph = unit_graph(unit_symbols(_extensions()["edgenode.functions._hostcall"], tmp_path))
    assert "edgenode/functions/hostcall_values.c" in graph["edgenode/functions/hostcall_io.c"]


@pytest.mark.parametrize("name", sorted(_extensions()))
def test_no_cycles_between_units(toolchain: None, tmp_path: Path, name: str) -> None:
    _assert_no_cycles(unit_graph(unit_symbols(_extensions()[name], tmp_path)))


def test_every_filter_with_c_is_listed() -> None:
    assert {"waf", "routing", "image"} <= set(FILTER_UNITS)
    assert "filters/sdk/proxy_wasm.c" in FILTER_UNITS["routing"][1]


def test_the_filter_graph_sees_its_layers(filter_symbols: dict[str, Symbols]) -> None:
    graph = unit_graph(filter_symbols["waf"], SDK_ENTRY_POINTS)
    assert "filters/waf/tx.c" in graph["filters/waf/exec.c"]
    assert "filters/sdk/proxy_wasm.c" in graph["filters/waf/filter.c"]


def test_the_sdk_reads_its_entry_point_from_the_filter(filter_symbols: dict[str, Symbols]) -> None:
    """The one exception is still needed: without it the SDK's exports depend on the filter."""
    for name in ("routing", "image"):
        unit = next(u for u in FILTER_UNITS[name][1] if not u.startswith("filters/sdk/"))
        assert unit in unit_graph(filter_symbols[name])["filters/sdk/proxy_wasm.c"]
        assert unit not in unit_graph(filter_symbols[name], SDK_ENTRY_POINTS)["filters/sdk/proxy_wasm.c"]


@pytest.mark.parametrize("name", sorted(FILTER_UNITS))
def test_no_cycles_between_filter_units(filter_symbols: dict[str, Symbols], name: str) -> None:
    _assert_no_cycles(unit_graph(filter_symbols[name], SDK_ENTRY_POINTS))
