"""The admin API against a real node and origin: auth, purges, stats, metrics, reload."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgenode.node import Node

TOKEN = "test-token"  # what conftest.node_config sets
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def fetch(s: aiohttp.ClientSession, node: Node, path: str) -> tuple[int, str, bytes]:
    async with s.get(f"http://127.0.0.1:{node.port}{path}") as r:
        return r.status, r.headers.get("X-Cache", ""), await r.read()


async def admin(s: aiohttp.ClientSession, node: Node, method: str, path: str,
                headers: dict[str, str] | None = AUTH, **kw: object) -> tuple[int, object]:
    async with s.request(method, f"http://127.0.0.1:{node.admin_port}{path}", headers=headers, **kw) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.mark.parametrize("headers", [None, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {TOKEN}"}])
async def test_missing_or_wrong_token_is_401(node: Node, headers: dict[str, str] | None) -> None:
    async with aiohttp.ClientSession() as s:
        for method, path in (("POST", "/purge/all"), ("GET", "/stats"), ("POST", "/filters/reload")):
            async with s.request(method, f"http://127.0.0.1:{node.admin_port}{path}", headers=headers) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_healthz_and_metrics_are_open(node: Node) -> None:
    async with aiohttp.ClientSession() as s:
        status, body = await admin(s, node, "GET", "/healthz", headers=None)
        assert status == 200 and body["status"] == "ok" and body["port"] == node.port
        status, text = await admin(s, node, "GET", "/metrics", headers=None)
        assert status == 200 and "edgenode_start_time_seconds" in text


async def test_purge_url_then_miss_again(node: Node) -> None:
    async with aiohttp.ClientSession() as s:
        path = "/obj/purge-me?size=2k"
        assert (await fetch(s, node, path))[1] == "MISS"
        assert (await fetch(s, node, path))[1] == "HIT"
        url = f"http://127.0.0.1:{node.port}{path}"
        status, body = await admin(s, node, "POST", "/purge", json={"url": url})
        assert status == 200 and body["purged"] == 1
        assert (await fetch(s, node, path))[1] == "MISS"
        # several URLs at once; one is not cached
        status, body = await admin(s, node, "POST", "/purge", json={"urls": [url, url + "&nope=1"]})
        assert status == 200 and body["purged"] == 1


async def test_purge_by_surrogate_key(node: Node) -> None:
    async with aiohttp.ClientSession() as s:
        for name in ("k-a", "k-b", "other"):
            keys = "group1" if name != "other" else "group2"
            assert (await fetch(s, node, f"/obj/{name}?size=1k&keys={keys}"))[1] == "MISS"
        status, body = await admin(s, node, "POST", "/purge/key", json={"keys": ["group1"]})
        assert status == 200 and body["purged"] == 2
        assert (await fetch(s, node, "/obj/k-a?size=1k&keys=group1"))[1] == "MISS"
        assert (await fetch(s, node, "/obj/other?size=1k&keys=group2"))[1] == "HIT"


async def test_purge_all_and_soft_purge(node: Node) -> None:
    async with aiohttp.ClientSession() as s:
        for i in range(3):
            await fetch(s, node, f"/obj/all-{i}?size=1k")
        status, body = await admin(s, node, "POST", "/purge/all", json={"soft": True})
        assert status == 200 and body == {"purged": 3, "soft": True}
        # soft: the object is kept but stale, so the next request revalidates instead of missing
        status, x_cache, _ = await fetch(s, node, "/obj/all-0?size=1k")
        assert status == 200 and x_cache not in ("HIT", "")
        assert node.stats()["cache"]["entries"] == 3
        status, body = await admin(s, node, "POST", "/purge/all")
        assert body["purged"] == 3 and node.stats()["cache"]["entries"] == 0


async def test_purge_method_needs_an_absolute_url(node: Node) -> None:
    """``PURGE /path`` would take the site from the Host header alone: refused (400) and
    nothing is purged; ``PURGE http://site/path`` purges that URL."""
    async with aiohttp.ClientSession() as s:
        path = "/obj/varnish?size=1k"
        await fetch(s, node, path)
        host = f"127.0.0.1:{node.port}"
        status, body = await admin(s, node, "PURGE", path, headers={**AUTH, "Host": host})
        assert status == 400 and "absolute URL" in body["error"]
        assert (await fetch(s, node, path))[1] == "HIT"
        status, _ = await admin(s, node, "PURGE", path, headers={"Host": host})
        assert status == 401


@pytest.mark.parametrize("path,payload", [("/purge", {"url": 5}), ("/purge", {}),
                                          ("/purge/key", {"keys": []}), ("/purge/all", {"soft": "yes"})])
async def test_bad_purge_bodies_are_400(node: Node, path: str, payload: dict) -> None:
    async with aiohttp.ClientSession() as s:
        status, body = await admin(s, node, "POST", path, json=payload)
        assert status == 400 and body["error"]
        status, body = await admin(s, node, "POST", path, data=b"{not json")
        assert status == 400 and "JSON" in body["error"]


async def test_stats_json(node: Node) -> None:
    async with aiohttp.ClientSession() as s:
        await fetch(s, node, "/obj/st?size=3k")
        await fetch(s, node, "/obj/st?size=3k")
        status, st = await admin(s, node, "GET", "/stats")
    assert status == 200
    assert st["requests"] == 2
    assert st["requests_by_cache_status"] == {"MISS": 1, "HIT": 1}
    assert st["response_bytes"] == 2 * 3072
    assert st["origin_requests"] == {"default": 1}
    assert st["cache"]["entries"] == 1 and st["cache"]["bytes"] > 3072
    assert st["filters"] == {} and st["uptime_seconds"] >= 0


async def test_metrics_counters_move(node: Node) -> None:
    async with aiohttp.ClientSession() as s:
        _, before = await admin(s, node, "GET", "/metrics", headers=None)
        await fetch(s, node, "/obj/m?size=1k")
        await fetch(s, node, "/obj/m?size=1k")
        await fetch(s, node, "/status/404")
        _, after = await admin(s, node, "GET", "/metrics", headers=None)
    b, a = samples(before), samples(after)
    hit = ("edgenode_requests_total", (("cache_status", "HIT"), ("status_class", "2xx")))
    miss = ("edgenode_requests_total", (("cache_status", "MISS"), ("status_class", "2xx")))
    assert hit not in b and a[hit] == 1 and a[miss] == 1
    assert sum(v for (n, labels), v in a.items()
               if n == "edgenode_requests_total" and ("status_class", "4xx") in labels) == 1
    assert a[("edgenode_response_bytes_total", (("cache_status", "HIT"),))] == 1024
    assert a[("edgenode_origin_latency_seconds_count", (("origin", "default"),))] == 2
    assert a[("edgenode_cache_entries", ())] == 1
    assert a[("edgenode_cache_bytes", ())] > 1024
    assert ("edgenode_cache_evictions_total", ()) in a
    assert ("edgenode_cache_collapsed_total", ()) in a


async def test_reload_without_filters(node: Node) -> None:
    async with aiohttp.ClientSession() as s:
        status, body = await admin(s, node, "POST", "/filters/reload")
        assert status == 200 and body == {"reloaded": []}
        status, body = await admin(s, node, "POST", "/filters/nope/reload")
        assert status == 404 and "nope" in body["error"]
