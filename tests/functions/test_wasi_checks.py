"""WASI 0.2 conformance of the host, checked from inside a guest: a component written
against the canonical ABI (tests/functions/guests/wasi-checks) calls fields, bodies,
streams, pollables, clocks and randomness and reports every check that failed, through
a real node, inline and threaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import aiohttp
import pytest

from edgenode.functions.build import build_function
from edgenode.functions.project import load_function_project

GUEST = Path(__file__).resolve().parent / "guests" / "wasi-checks" / "function.toml"


@pytest.fixture(scope="module")
def checks_component() -> Path:
    return build_function(load_function_project(GUEST)).component


def stage(component: Path, **options: Any) -> dict[str, Any]:
    return {"type": "function", "name": "checks", "component": str(component),
            "match": {"path_prefix": "/checks/"}, **options}


@pytest.mark.parametrize("execution", ["inline", "threaded"])
async def test_the_host_passes_the_guest_checks(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                checks_component: Path, execution: str) -> None:
    node, base = await serve([stage(checks_component, execution=execution)], cache=False)
    for route, body, status in (("fields", None, 200), ("body", b"0123456789abcdefghij", 200),
                                ("clock", None, 200), ("status", None, 201)):
        async with http.request("POST" if body else "GET", f"{base}/checks/{route}", data=body) as r:
            assert (r.status, await r.text()) == (status, "ok\n"), route
    async with http.post(f"{base}/checks/stream-out", data=b"spliced!") as r:
        assert (r.status, await r.read()) == (200, b"\0\0\0spliced!|end")
    assert node.functions["checks"].metrics.failures == {}


async def test_dropping_a_parent_with_a_live_child_traps(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                         checks_component: Path, caplog: Any) -> None:
    node, base = await serve([stage(checks_component, isolation="reuse")], cache=False)
    async with http.get(f"{base}/checks/drop-parent") as r:
        assert r.status == 500
    assert any("incoming-request dropped while a child resource is still alive" in m for m in caplog.messages)
    async with http.get(f"{base}/checks/fields") as r:  # a new instance replaced the trapped one
        assert (r.status, await r.text()) == (200, "ok\n")
    assert node.functions["checks"].metrics.failures == {"trap": 1}
