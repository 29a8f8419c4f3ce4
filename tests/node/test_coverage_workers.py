"""``edgenode serve --workers 2`` as a real process tree: purge by surrogate key reaching
both workers, graceful shutdown draining a request in flight on each
worker, and ``--watch`` reloading the filters of every worker."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest
from cluster_support import (
    BOUND, REPO, Cluster, Conn, one_connection_per_worker, only_if_cached, spread, start_cluster, stop_cluster,
    write_conf,
)
from prometheus_client.parser import text_string_to_metric_families


async def test_purge_by_surrogate_key_reaches_both_workers(cluster: Cluster) -> None:
    paths = ("/obj/sk1?size=1k&keys=grp,one", "/obj/sk2?size=1k&keys=grp,two", "/obj/other?size=1k&keys=else")
    async with aiohttp.ClientSession() as s:
        for path in paths:
            await spread(cluster, path, s)
        stats = await cluster.admin(s, "GET", "/stats")
        entries = stats["cache"]["entries"]
        assert entries >= 3  # node-wide: one copy each (+ probes), each served by both workers

        # one key tags two objects (each has several keys): both go, for every worker
        body = await cluster.admin(s, "POST", "/purge/key", json={"keys": ["grp"]})
        assert body == {"purged": 2, "soft": False}
        # several keys at once, soft: marked stale, not removed
        body = await cluster.admin(s, "POST", "/purge/key", json={"keys": ["else", "nothing"], "soft": True})
        assert body == {"purged": 1, "soft": True}
        stats = await cluster.admin(s, "GET", "/stats")
        assert stats["cache"]["entries"] == entries - 2
        assert stats["cache"]["purged"] == 3

        # no worker has the purged objects any more; each has the soft-purged one, stale
        conns = await one_connection_per_worker(cluster, s)
        for conn in conns.values():
            for path in paths[:2]:
                head = await only_if_cached(conn, path)
                assert head.startswith(b"HTTP/1.1 504"), head
            assert b"X-Cache: HIT" not in await only_if_cached(conn, paths[2])
            assert b"X-Cache: STALE" in await only_if_cached(conn, paths[2], max_stale=True)
            conn.close()

        # the merged /metrics cover both workers: origin latency histogram counts add up
        async with s.get(f"http://127.0.0.1:{cluster.admin_port}/metrics") as r:
            text = await r.text()
        merged = {(smp.name, tuple(sorted(smp.labels.items()))): smp.value
                  for fam in text_string_to_metric_families(text) for smp in fam.samples}
        stats = await cluster.admin(s, "GET", "/stats")
        count = merged[("edgenode_origin_latency_seconds_count", (("origin", "default"),))]
        assert count == stats["origin_requests"]["default"]
        assert count == sum(w["origin_requests"]["default"] for w in stats["per_worker"])
        inf = merged[("edgenode_origin_latency_seconds_bucket", (("le", "+Inf"), ("origin", "default")))]
        assert inf == count


async def test_graceful_shutdown_drains_a_request_on_each_worker(cluster: Cluster, origin_url: str) -> None:
    async with aiohttp.ClientSession() as s:
        conns = await one_connection_per_worker(cluster, s)
        for conn in conns.values():
            await conn.send("/slow?delay_ms=800")
        for _ in range(500):  # until the origin holds both requests, i.e. both are in flight
            async with s.get(f"{origin_url}/__stats") as r:
                if (await r.json())["paths"].get("/slow") == 2:
                    break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the slow requests never reached the origin")
    cluster.terminate()
    for worker, conn in conns.items():
        status, body = await conn.response()
        assert (status, body) == (200, b"slept 800 ms\n"), f"worker {worker}"
        # after the drain the worker closes the (now idle) connection
        assert await asyncio.wait_for(conn.reader.read(), BOUND) == b""
        conn.close()
    assert await stop_cluster(cluster) == 0
    with pytest.raises(OSError):  # nobody listens any more
        await Conn.open(cluster.port)


async def test_watch_with_workers_reloads_every_worker(origin_url: str, tmp_path: Path) -> None:
    module = tmp_path / "counters.wat"
    module.write_text((REPO / "tests" / "wasm" / "wat" / "counters.wat").read_text())
    conf = write_conf(tmp_path, origin_url,
                      f'[[chain]]\ntype = "wasm"\nname = "watched"\nmodule = "{module}"\n'
                      '[[chain]]\ntype = "cache"\n')
    c = await start_cluster(conf, "--watch")
    try:
        async with aiohttp.ClientSession() as s:
            async def vm_starts() -> list[int]:
                stats = await c.admin(s, "GET", "/stats")
                return [w["filters"]["watched"]["vm_starts"]
                        for w in sorted(stats["per_worker"], key=lambda w: w["worker"])]

            before = await vm_starts()
            assert len(before) == 2
            st = module.stat()
            os.utime(module, (st.st_atime, st.st_mtime + 10))
            for _ in range(150):  # the master polls once a second, then fans the reload out
                now = await vm_starts()
                if all(n > b for n, b in zip(now, before)):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"not every worker reloaded: {before} -> {now}")
            # still serving through the reloaded filter on both workers
            conns = await one_connection_per_worker(c, s)
            for conn in conns.values():
                await conn.send("/obj/after-reload?size=10")
                assert (await conn.response())[0] == 200
                conn.close()
    finally:
        assert await stop_cluster(c) == 0
