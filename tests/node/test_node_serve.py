"""A real Node in-process: caching through the chain, hooks, access log, drain on stop."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict

from edgenode.config import ConfigError
from edgenode.http.messages import Request, Response
from edgenode.node import Node


async def get(node: Node, path: str, **headers: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}{path}", headers=headers) as r:
            return r.status, r.headers.get("X-Cache", ""), await r.read()


async def test_miss_then_hit_and_origin_counted_once(node: Node, origin_url: str) -> None:
    first = await get(node, "/counter/c1")
    second = await get(node, "/counter/c1")
    assert first == (200, "MISS", b"1")
    assert second == (200, "HIT", b"1")  # the origin's counter did not move
    assert node.stats()["origin_requests"] == {"default": 1}


async def test_signals_see_every_request(node: Node) -> None:
    started: list[str] = []
    ended: list[tuple[str, int, str]] = []
    node.signals.on_request_start.append(lambda ex: started.append(ex.request.path))
    node.signals.on_request_end.append(
        lambda ex, resp: ended.append((ex.request.path, resp.status, ex.x_cache)))
    node.signals.on_request_end.append(lambda ex, resp: 1 / 0)  # a broken hook breaks nothing
    await get(node, "/obj/sig?size=10")
    await get(node, "/obj/sig?size=10")
    assert started == ["/obj/sig", "/obj/sig"]
    assert ended == [("/obj/sig", 200, "MISS"), ("/obj/sig", 200, "HIT")]
    assert node.stats()["requests"] == 2


async def test_access_log_text(make_node, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    node = await make_node(access=str(path), format="text")
    await get(node, "/obj/log?size=100", **{"User-Agent": "tester/1", "X-Request-Id": "abc-1"})
    await get(node, "/obj/log?size=100")
    node.access_log.flush()
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    time, client, method, target, status, size, cache, total, rid = lines[0].split(" ")
    assert time.startswith("20") and time.endswith("Z") and client == "127.0.0.1"
    assert (method, target, status, size, cache, rid) == ("GET", "/obj/log?size=100", "200", "100",
                                                          "MISS", "abc-1")
    assert total.endswith("ms") and float(total[:-2]) > 0
    assert " HIT " in lines[1] and len(lines[1]) < 200


async def test_access_log_json(make_node, tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    node = await make_node(access=str(path), format="json")
    await get(node, "/obj/j?size=50")
    await get(node, "/status/503")
    await node.stop(1.0)  # stop flushes the buffer
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["status"] for r in recs] == [200, 503]
    r = recs[0]
    assert r["method"] == "GET" and r["url"].endswith("/obj/j?size=50") and r["bytes"] == 50
    assert r["cache"] == "MISS" and r["origin_ms"] > 0 and r["total_ms"] >= r["origin_ms"]
    assert r["time"].endswith("Z") and "T" in r["time"] and r["client"] == "127.0.0.1"
    assert r["request_id"]


def test_unwritable_access_log_is_a_config_error(tmp_path: Path, config_for) -> None:
    cfg = config_for("http://127.0.0.1:9", access=str(tmp_path / "missing-dir" / "a.log"))
    with pytest.raises(ConfigError, match=r"^log\.access: cannot open"):
        Node(cfg)


async def test_stop_drains_in_flight_request(make_node, origin_url: str) -> None:
    node = await make_node()
    in_flight = asyncio.create_task(get(node, "/slow?delay_ms=400"))
    async with aiohttp.ClientSession() as s:
        for _ in range(500):  # until the origin has the request, i.e. it is in flight
            async with s.get(f"{origin_url}/__stats") as r:
                if (await r.json())["paths"].get("/slow"):
                    break
            await asyncio.sleep(0.01)
    await node.stop(5.0)
    status, _, body = await in_flight
    assert status == 200 and body == b"slept 400 ms\n"
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(node, "/obj/after-stop")


async def test_internal_upstream_callout_goes_first(node: Node) -> None:
    seen: list[str] = []

    async def service(req: Request) -> Response:
        seen.append(req.target)
        return Response(200, CIMultiDict({"X-From": "internal"}), b"ok")

    node.register_internal_upstream("edgenode-image", service)
    resp = await node.callout("edgenode-image", Request("GET", "/thumb", CIMultiDict()), 1.0)
    assert resp.status == 200 and resp.body == b"ok" and seen == ["/thumb"]
    # any other name goes to the configured upstreams (here the default origin)
    resp = await node.callout("default", Request("GET", "/counter/co", CIMultiDict()), 5.0)
    assert resp.status == 200 and resp.body == b"1"
    with pytest.raises(KeyError):  # raised at call time: the wasm host maps it to BAD_ARGUMENT
        node.callout("nope", Request("GET", "/", CIMultiDict()), 1.0)
