"""The embedded default config (what `make demo` and `edgenode serve` run) serves both example
functions behind the cache, after the routing filter and the WAF."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from edgenode.node import Node


async def test_default_chain_serves_both_functions_behind_the_cache(
        node: Node, js_component: Path, py_component: Path) -> None:
    assert set(node.functions) == {"hello-js", "hello-py"}
    base = f"http://127.0.0.1:{node.port}"
    async with aiohttp.ClientSession() as http:
        for path, text in (("/fn/js/hello", "hello from js at /fn/js/hello\n"),
                           ("/fn/py/hello", "hello from python at /fn/py/hello\n")):
            statuses = []
            for _ in range(2):
                async with http.get(base + path) as r:
                    assert (r.status, await r.text()) == (200, text)
                    statuses.append(r.headers["X-Cache"])
            assert statuses == ["MISS", "HIT"]
        async with http.get(base + "/fn/py/count") as r:  # key-value granted in the default config
            assert r.status == 200 and (await r.text()).strip().isdigit()
        async with http.get(base + "/fn/js/hello?q=<script>alert(1)</script>") as r:
            assert r.status == 403  # the WAF runs before the function
    assert node.functions["hello-js"].metrics.requests == 1
