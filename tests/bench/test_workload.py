"""The demo workload: path mix, cache classification, and the report over real sockets."""

from __future__ import annotations

import itertools
import re
from collections import Counter

import aiohttp
import pytest
from aiohttp import web

from edgenode.bench.workload import classify_cache, demo_paths, format_demo_report, run_demo_workload
from edgenode.origin.app import start_origin
from edgenode.origin.settings import OriginSettings
from tests.aiohttp_support import serve_app


def test_demo_paths_are_seeded_and_zipf_skewed():
    a = list(itertools.islice(demo_paths(200, seed=3), 5000))
    assert a == list(itertools.islice(demo_paths(200, seed=3), 5000))
    counts = Counter(a).most_common()
    assert counts[0][1] > 5 * counts[min(50, len(counts) - 1)][1]
    catalogue = set(a)
    assert any(p.startswith("/image/") for p in catalogue)
    assert any("cc=no-store" in p for p in catalogue)
    assert any("size=100k" in p for p in catalogue) and any("size=1k" in p for p in catalogue)


@pytest.mark.parametrize("x_cache,cache_status,expected", [
    ("HIT", None, "hit"), ("hit from edge", None, "hit"), ("MISS", None, "miss"),
    (None, "edgenode; hit; ttl=30", "hit"), (None, "edgenode; fwd=uri-miss; stored", "miss"),
    (None, "origin-cdn; hit, edgenode; fwd=miss", "miss"), (None, None, None),
])
def test_classify_cache(x_cache, cache_status, expected):
    assert classify_cache(x_cache, cache_status) == expected


def _caching_proxy(origin_url: str) -> web.Application:
    """A deliberately tiny cache in front of the origin, standing in for the node."""
    store: dict[str, tuple[int, bytes, str]] = {}
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def handle(request: web.Request) -> web.Response:
        key = request.path_qs
        if key in store:
            status, body, ctype = store[key]
            return web.Response(status=status, body=body, content_type=None,
                                headers={"X-Cache": "HIT", "Content-Type": ctype})
        async with request.app[session_key].get(origin_url + key) as r:
            body = await r.read()
            ctype = r.headers.get("Content-Type", "application/octet-stream")
            if r.status == 200 and "no-store" not in r.headers.get("Cache-Control", ""):
                store[key] = (r.status, body, ctype)
            return web.Response(status=r.status, body=body,
                                headers={"X-Cache": "MISS", "Content-Type": ctype})

    async def session_ctx(app: web.Application):
        app[session_key] = aiohttp.ClientSession()
        yield
        await app[session_key].close()

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/{tail:.*}", handle)
    return app


async def test_run_demo_workload_reports_what_the_cache_saved():
    origin_runner, origin_port = await start_origin(OriginSettings(listen=("127.0.0.1", 0)))
    origin_url = f"http://127.0.0.1:{origin_port}"
    runner, node_port = await serve_app(_caching_proxy(origin_url))
    try:
        result = await run_demo_workload(f"http://127.0.0.1:{node_port}", 400,
                                         origin_url=origin_url, connections=4, objects=60)
    finally:
        await runner.cleanup()
        await origin_runner.cleanup()
    assert result["requests"] == 400 and result["errors"] == {}
    assert result["hits"] + result["misses"] == 400
    # Every miss of the stand-in proxy is exactly one origin request.
    assert result["origin_requests"] == result["misses"]
    assert result["origin_requests_saved"] == result["hits"] > 0
    assert result["hit_ratio"] == pytest.approx(result["hits"] / 400, abs=1e-4)
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    report = format_demo_report(result)
    assert "hit ratio" in report and f"{result['hit_ratio']:.1%}" in report
    assert re.search(rf"origin requests saved +{result['origin_requests_saved']} \(", report)


async def test_workload_without_origin_stats_or_cache_headers():
    origin_runner, origin_port = await start_origin(OriginSettings(listen=("127.0.0.1", 0)))
    try:
        result = await run_demo_workload(f"http://127.0.0.1:{origin_port}", 50, objects=30)
    finally:
        await origin_runner.cleanup()
    assert result["requests"] == 50
    assert result["hit_ratio"] is None and result["unclassified"] == 50
    assert result["origin_requests"] is None
    assert "n/a" in format_demo_report(result)
    with pytest.raises(ValueError, match="node_url"):
        await run_demo_workload("127.0.0.1:80", 1)
