"""``edgenode serve --workers 2`` as a real subprocess: one port and one cache store,
node-wide purge, merged metrics and stats, restart of a dead worker, graceful stop."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
from cluster_support import AUTH, Cluster
from prometheus_client.parser import text_string_to_metric_families

from edgenode.observe.metrics import merge_expositions
from edgenode.workers import merge_stats

async def _spread(port: int, path: str, admin_port: int, s: aiohttp.ClientSession) -> list[dict]:
    """New connection per request until both workers have served ``path`` (bounded)."""
    for _ in range(200):
        conn = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=conn) as fresh:
            async with fresh.get(f"http://127.0.0.1:{port}{path}") as r:
                assert r.status == 200
                await r.read()
        async with s.get(f"http://127.0.0.1:{admin_port}/stats", headers=AUTH) as r:
            per = (await r.json())["per_worker"]
        if len(per) == 2 and all(w["requests"] > 0 for w in per):
            return per
    raise AssertionError("the kernel never spread connections over both workers")


async def test_two_workers_share_a_port_and_one_cache(cluster: Cluster, origin_url: str) -> None:
    port, admin_port = cluster.port, cluster.admin_port
    async with aiohttp.ClientSession() as s:
        path = "/obj/shared?size=1k&keys=wk"
        per = await _spread(port, path, admin_port, s)
        assert sorted(w["worker"] for w in per) == [0, 1]
        # one worker stored it, the other served it from the node's store
        assert sorted(w["cache"]["stored"] for w in per) == [0, 1]
        async with s.get(f"{origin_url}/__stats") as r:
            assert (await r.json())["paths"]["/obj/shared"] == 1

        url = f"http://127.0.0.1:{port}{path}"
        async with s.post(f"http://127.0.0.1:{admin_port}/purge", json={"url": url}, headers=AUTH) as r:
            body = await r.json()
        assert r.status == 200 and body == {"purged": 1, "soft": False}
        async with s.get(f"http://127.0.0.1:{admin_port}/stats", headers=AUTH) as r:
            stats = await r.json()
        assert stats["cache"]["entries"] == 0 and stats["cache"]["max_bytes"] == 256 * 1024 * 1024
        assert stats["cache"]["store"] == "lmdb"
        assert stats["requests"] == sum(w["requests"] for w in stats["per_worker"])
        assert len(stats["workers"]) == 2 and all(w["alive"] for w in stats["workers"])

        # metrics: merged request counters add up; the store's gauges count once (node-wide)
        async with s.get(f"http://127.0.0.1:{admin_port}/metrics") as r:
            text = await r.text()
        values = {(smp.name, tuple(sorted(smp.labels.items()))): smp.value
                  for fam in text_string_to_metric_families(text) for smp in fam.samples}
        total = sum(v for (n, _), v in values.items() if n == "edgenode_requests_total")
        assert total == stats["requests"]
        assert values[("edgenode_workers", ())] == 2
        assert values[("edgenode_cache_max_bytes", ())] == 256 * 1024 * 1024
        assert values[("edgenode_cache_entries", ())] == 0
        per_worker = {labels: v for (n, labels), v in values.items() if n == "edgenode_worker_requests_total"}
        assert sorted(per_worker) == [(("worker", "0"),), (("worker", "1"),)]
        assert sum(per_worker.values()) == stats["requests"]

        # unauthenticated fan-out is refused at the master
        async with s.post(f"http://127.0.0.1:{admin_port}/purge/all") as r:
            assert r.status == 401


async def test_dead_worker_is_restarted(cluster: Cluster, origin_url: str) -> None:
    port, admin_port, proc = cluster.port, cluster.admin_port, cluster.proc
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{admin_port}/healthz") as r:
            victim = (await r.json())["workers"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        for _ in range(300):
            await asyncio.sleep(0.05)
            async with s.get(f"http://127.0.0.1:{admin_port}/healthz") as r:
                w0 = (await r.json())["workers"][0]
            if w0["restarts"] == 1 and w0["alive"] and w0["pid"] != victim:
                break
        else:
            raise AssertionError("worker 0 was not restarted")
        async with s.post(f"http://127.0.0.1:{admin_port}/purge/all", headers=AUTH) as r:
            assert r.status == 200 and (await r.json())["purged"] == 0
        # graceful stop: a request in flight when the master gets SIGTERM still completes
        slow = asyncio.create_task(s.get(f"http://127.0.0.1:{port}/slow?delay_ms=600"))
        for _ in range(200):  # until the origin has the request, i.e. it is in flight
            async with s.get(f"{origin_url}/__stats") as r:
                if (await r.json())["paths"].get("/slow"):
                    break
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        async with await slow as r:
            assert r.status == 200 and await r.read() == b"slept 600 ms\n"
    assert await asyncio.wait_for(proc.wait(), 30) == 0


def test_merge_expositions_sums_same_labels() -> None:
    a = ('# HELP x_total X.\n# TYPE x_total counter\nx_total{k="a"} 2.0\nx_total{k="b"} 1.0\n'
         '# HELP s_start_time_seconds S.\n# TYPE s_start_time_seconds gauge\ns_start_time_seconds 20.0\n')
    b = ('# HELP x_total X.\n# TYPE x_total counter\nx_total{k="a"} 3.0\n'
         '# HELP s_start_time_seconds S.\n# TYPE s_start_time_seconds gauge\ns_start_time_seconds 10.0\n')
    text = merge_expositions([a, b]).decode()
    assert 'x_total{k="a"} 5.0' in text and 'x_total{k="b"} 1.0' in text
    assert "s_start_time_seconds 10.0" in text


def test_merge_stats() -> None:
    merged = merge_stats([
        {"worker": 0, "requests": 2, "uptime_seconds": 5.0, "cache": {"entries": 1}, "by": {"HIT": 1}},
        {"worker": 1, "requests": 3, "uptime_seconds": 7.0, "cache": {"entries": 4}, "by": {"MISS": 2}},
    ])
    assert merged == {"requests": 5, "uptime_seconds": 7.0, "cache": {"entries": 5},
                      "by": {"HIT": 1, "MISS": 2}}
