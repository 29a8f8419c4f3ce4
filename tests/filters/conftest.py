"""Shared fixtures for the built-in filter tests: build the C filters from source and
drive them through the real Proxy-Wasm host (``WasmStage``).

``build_filter("routing")`` runs ``make -C filters build/routing.wasm`` once per session
and returns the module path; a missing compiler is a test failure with the reason, not
a skip.  ``run_stage(...)`` sends one request through a stage (or a chain of stages)
whose terminal handler plays the origin.  ``run_inject_check(...)`` builds and runs a
native check of the WAF's libinjection glue against libinjection itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

import pytest

from edgenode.config import StageConfig
from edgenode.http.messages import CIMultiDict, Request, Response
from edgenode.pipeline.exchange import Exchange
from edgenode.pipeline.stage import build_chain

ROOT = Path(__file__).resolve().parents[2]
FILTERS = ROOT / "filters"

Terminal = Callable[[Exchange], Awaitable[Response]]


def _compiler_problem() -> str | None:
    if shutil.which("make") is None:
        return "`make` is not installed"
    probe = subprocess.run([sys.executable, "-m", "ziglang", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        return ("zig (PyPI package `ziglang`) is not usable: "
                + (probe.stderr.strip() or probe.stdout.strip() or f"exit {probe.returncode}"))
    return None


@pytest.fixture(scope="session")
def build_filter() -> Callable[[str], Path]:
    """Return a function that builds filters/<name> into filters/build/<name>.wasm."""
    built: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in built:
            problem = _compiler_problem()
            if problem:
                pytest.fail(f"cannot build the {name} filter from source: {problem}")
            target = f"build/{name}.wasm"
            proc = subprocess.run(["make", "-C", str(FILTERS), target, f"ZIG_CC={sys.executable} -m ziglang cc"],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                pytest.fail(f"building {target} failed:\n{proc.stdout}\n{proc.stderr}")
            built[name] = FILTERS / target
        return built[name]

    return build


LIBINJECTION = FILTERS / "build" / "deps" / "libinjection-python-1.1.6" / "libinjection" / "src"


def run_inject_check(check: Path, exe: Path, *args: str) -> dict[str, int]:
    """Build ``check`` natively with the WAF's ``inject.c`` and the libinjection sources the
    filter links (fetched into filters/build/deps by its build), run it with ``args`` and
    return the counts it prints as ``name number`` pairs."""
    sources = [check, FILTERS / "waf" / "inject.c",
               *(LIBINJECTION / f"libinjection_{m}.c" for m in ("sqli", "xss", "html5"))]
    build = subprocess.run([sys.executable, "-m", "ziglang", "cc", "-O2", "-w", f"-I{LIBINJECTION}",
                            f"-I{FILTERS / 'waf'}", "-o", str(exe), *map(str, sources)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[:2000]
    fields = run.stdout.split()
    return dict(zip(fields[::2], map(int, fields[1::2])))


def make_stage(module: Path, config: Any, name: str = "filter", callout=None, **options: Any):
    """A WasmStage for ``module`` with ``config`` (dict -> JSON) and extra stage options."""
    from edgenode.wasm.stage import WasmStage

    opts = {"module": str(module), "config": config, **options}
    return WasmStage(StageConfig(type="wasm", name=name, options=opts), base_dir=ROOT, callout=callout)


def request(target: str, headers: dict[str, str] | None = None, method: str = "GET",
            host: str = "example.com") -> Request:
    h = CIMultiDict({"Host": host})
    h.update(headers or {})
    return Request(method, target, h)


async def run_stage(stages: Sequence[Any], req: Request, terminal: Terminal) -> tuple[Response, Exchange]:
    """Send ``req`` through ``stages`` (outermost first) to ``terminal``; body read to bytes."""
    from edgenode.http.messages import read_body

    exchange = Exchange(req)
    response = await build_chain(list(stages), terminal)(exchange)
    response.body = await read_body(response.body)
    return response, exchange


def origin_ok(body: bytes = b"origin", headers: dict[str, str] | None = None) -> tuple[Terminal, list[Exchange]]:
    """A terminal handler that records what reached it and answers 200 ``body``."""
    seen: list[Exchange] = []

    async def terminal(ex: Exchange) -> Response:
        seen.append(ex)
        h = CIMultiDict({"Content-Type": "text/plain", "Content-Length": str(len(body))})
        h.update(headers or {})
        return Response(200, h, body)

    return terminal, seen
