"""One cache for the whole node, with real worker processes (``edgenode serve --workers 2``):
a hit in one worker for what another stored, one origin fetch for concurrent misses
spread over the workers, restarts without a cold start, kill -9 while large bodies are
being written, a store of another format, a full disk and a read-only store."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import aiohttp
from cluster_support import (BOUND, Cluster, eventually, one_connection_per_worker, start_cluster, stop_cluster,
                             write_conf)

from edgenode.cache.store_files import META, StoreFiles

HOST = {"Host": "cdn.test"}  # keys name the site, not the node's (new) port after a restart


def verified(body: bytes, digest: str) -> bool:
    """The body's sha-256 against the origin's Repr-Digest (RFC 9530)."""
    return digest == f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


async def origin_count(s: aiohttp.ClientSession, origin_url: str, path: str) -> int:
    async with s.get(f"{origin_url}/__stats") as r:
        return int((await r.json())["paths"].get(path, 0))


async def test_one_cache_and_one_fetch_for_the_node(cluster: Cluster, origin_url: str) -> None:
    async with aiohttp.ClientSession() as s:
        conns = await one_connection_per_worker(cluster, s)
        # worker 0 stores it, worker 1 serves it from the node's store
        for worker, expect in ((0, b"X-Cache: MISS"), (1, b"X-Cache: HIT")):
            conn = conns[worker]
            await conn.send("/obj/ab?size=2k")
            status, _ = await conn.response()
            assert status == 200 and expect in conn.head, conn.head
        for conn in conns.values():
            conn.close()
        stats = await cluster.admin(s, "GET", "/stats")
        per = {w["worker"]: w["cache"] for w in stats["per_worker"]}
        assert per[0]["stored"] >= 1 and per[1]["hits"] >= 1
        assert await origin_count(s, origin_url, "/obj/ab") == 1

        # 50 concurrent misses on 50 connections spread over both workers: one origin fetch
        path = "/obj/together?size=4k&latency_ms=400"
        before = {w["worker"]: w["cache"]["collapsed"] for w in stats["per_worker"]}

        async def one() -> tuple[str, bytes, str]:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
                async with fresh.get(f"http://127.0.0.1:{cluster.port}{path}") as r:
                    return r.headers["X-Cache"], await r.read(), r.headers["Repr-Digest"]

        results = await asyncio.gather(*(one() for _ in range(50)))
        assert await origin_count(s, origin_url, "/obj/together") == 1
        assert all(verified(body, digest) and len(body) == 4096 for _, body, digest in results)
        kinds = sorted(x for x, _, _ in results)
        assert kinds.count("MISS") == 1 and kinds.count("COLLAPSED") + kinds.count("HIT") == 49
        stats = await cluster.admin(s, "GET", "/stats")
        waited = {w["worker"]: w["cache"]["collapsed"] - before[w["worker"]] for w in stats["per_worker"]}
        assert all(n > 0 for n in waited.values()), waited  # waiters in both workers


def _conf(tmp_path: Path, origin_url: str, store: Path, extra: str = "") -> Path:
    return write_conf(tmp_path, origin_url, f'[cache]\npath = "{store}"\nmax_bytes = "256MiB"\n{extra}')


async def test_restart_serves_hits_at_once_and_a_foreign_format_is_wiped(
        origin_url: str, tmp_path: Path) -> None:
    conf = _conf(tmp_path, origin_url, tmp_path / "store")
    paths = [f"/obj/warm{i}?size=3k" for i in range(20)]
    async with aiohttp.ClientSession() as s:
        c = await start_cluster(conf)
        try:
            for p in paths:
                async with s.get(f"http://127.0.0.1:{c.port}{p}", headers=HOST) as r:
                    assert r.status == 200 and r.headers["X-Cache"] == "MISS"
        finally:
            assert await stop_cluster(c) == 0

        c = await start_cluster(conf)  # a new port, the same store: no cold start
        try:
            for p in paths:
                async with s.get(f"http://127.0.0.1:{c.port}{p}", headers=HOST) as r:
                    assert r.headers["X-Cache"] == "HIT" and int(r.headers["Age"]) >= 0
                    assert verified(await r.read(), r.headers["Repr-Digest"])
        finally:
            assert await stop_cluster(c) == 0
        assert sum([await origin_count(s, origin_url, f"/obj/warm{i}") for i in range(20)]) == 20

        files = StoreFiles(tmp_path / "store", 1 << 20, owner=True)  # as an older release left it
        with files.env.begin(write=True) as txn:
            txn.put(META["format"], b"edgenode-cache/0/older", db=files.dbs["meta"])
        files.close()
        c = await start_cluster(conf)
        try:
            assert "has format edgenode-cache/0/older" in c.stderr and "wiping it" in c.stderr
            async with s.get(f"http://127.0.0.1:{c.port}{paths[0]}", headers=HOST) as r:
                assert r.headers["X-Cache"] == "MISS"
        finally:
            assert await stop_cluster(c) == 0


async def test_kill_9_while_writing_large_bodies_leaves_no_corrupt_object(
        origin_url: str, tmp_path: Path) -> None:
    conf = _conf(tmp_path, origin_url, tmp_path / "store")
    sent: list[str] = []
    c = await start_cluster(conf, start_new_session=True)  # its own process group: kill it whole
    async with aiohttp.ClientSession() as s:
        async def load(lane: int) -> None:
            for i in range(1000):
                path = f"/obj/big-{lane}-{i}?size={(1 + (i + lane) % 4)}m"
                sent.append(path)
                try:
                    async with s.get(f"http://127.0.0.1:{c.port}{path}", headers=HOST) as r:
                        await r.read()
                except aiohttp.ClientError:
                    return  # the node is gone

        lanes = [asyncio.create_task(load(n)) for n in range(6)]
        for _ in range(600):  # kill once a dozen objects are stored and more are in flight
            stats = await c.admin(s, "GET", "/stats")
            if stats["cache"]["entries"] >= 12:
                break
            await asyncio.sleep(0.02)
        os.killpg(c.proc.pid, signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*lanes), BOUND)
        await c.proc.wait()
        c._reader.cancel()

        c = await start_cluster(conf)
        try:
            stored = corrupt = 0
            for path in sent:
                async with s.get(f"http://127.0.0.1:{c.port}{path}",
                                 headers={**HOST, "Cache-Control": "only-if-cached"}) as r:
                    body = await r.read()
                    if r.status == 504:
                        continue  # not stored before the kill: fine
                    assert r.status == 200
                    stored += 1
                    corrupt += not verified(body, r.headers["Repr-Digest"])
            assert corrupt == 0 and stored >= 12, (stored, corrupt)
            stats = await c.admin(s, "GET", "/stats")
            assert stats["cache"]["entries"] == stored
        finally:
            assert await stop_cluster(c) == 0


async def test_full_disk_leaves_a_pass_through_node(origin_url: str, tmp_path: Path) -> None:
    """A file size limit (as a full disk does) fails the store's commits: every request is
    still answered, correctly, and the node says why it stopped caching."""
    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))

    c = await start_cluster(_conf(tmp_path, origin_url, tmp_path / "store"), preexec_fn=small_disk)
    try:
        async with aiohttp.ClientSession() as s:
            for i in range(24):
                async with s.get(f"http://127.0.0.1:{c.port}/obj/fill{i}?size=256k") as r:
                    assert r.status == 200 and verified(await r.read(), r.headers["Repr-Digest"])
            stats = await c.admin(s, "GET", "/stats")
            assert stats["cache"]["state"].startswith("writes failing")
            assert 0 < stats["cache"]["entries"] < 24
            async with s.get(f"http://127.0.0.1:{c.admin_port}/healthz") as r:
                health = await r.json()
            assert health["status"] == "degraded" and health["cache"].startswith("writes failing")
            async with s.get(f"http://127.0.0.1:{c.port}/obj/fill0?size=256k") as r:
                assert r.headers["X-Cache"] == "HIT"  # what it stored before is still served
        assert "write failed" in c.stderr and "not storing new objects" in c.stderr
    finally:
        assert await stop_cluster(c) == 0


async def test_read_only_store_leaves_a_pass_through_node(origin_url: str, tmp_path: Path) -> None:
    """The store's directory on a read-only mount (a private mount namespace)."""
    if shutil.which("unshare") is None:
        raise AssertionError("this test needs unshare(1) from util-linux")
    store = Path(tempfile.mkdtemp(dir=tmp_path))
    wrap = ("unshare", "-rm", "sh", "-c",
            f'mount --bind "{store}" "{store}" && mount -o remount,bind,ro "{store}" && exec "$@"', "sh")
    probe = subprocess.run([*wrap, "true"], capture_output=True, text=True)
    assert probe.returncode == 0, f"cannot make a read-only mount here: {probe.stderr}"
    c = await start_cluster(_conf(tmp_path, origin_url, store), argv=wrap)
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(2):
                async with s.get(f"http://127.0.0.1:{c.port}/obj/ro?size=1k") as r:
                    assert r.status == 200 and r.headers["X-Cache"] == "MISS"
            stats = await c.admin(s, "GET", "/stats")
            assert stats["cache"]["store"] == "pass-through"
            assert "read-only" in stats["cache"]["state"]
            async with s.get(f"http://127.0.0.1:{c.admin_port}/healthz") as r:
                assert (await r.json())["status"] == "degraded"
            assert await origin_count(s, origin_url, "/obj/ro") == 2
        assert "serving as a pass-through proxy" in c.stderr
    finally:
        assert await stop_cluster(c) == 0


async def test_sighup_and_admin_restart_replace_workers_without_dropping_a_request(
        cluster: Cluster, origin_url: str) -> None:
    async with aiohttp.ClientSession() as s:
        async def pids() -> list[int]:
            async with s.get(f"http://127.0.0.1:{cluster.admin_port}/healthz") as r:
                return [w["pid"] for w in (await r.json())["workers"]]

        async with s.get(f"http://127.0.0.1:{cluster.port}/obj/kept?size=1k") as r:
            assert r.headers["X-Cache"] == "MISS"
        first = await pids()
        conns = await one_connection_per_worker(cluster, s)
        for conn in conns.values():  # a request in flight on each old worker
            await conn.send("/slow?delay_ms=1500")
        async def in_flight() -> bool:
            return await origin_count(s, origin_url, "/slow") == 2

        await eventually(in_flight, "a slow request in flight on each old worker")
        statuses: list[int] = []
        done = asyncio.Event()

        async def load() -> None:  # new connections all along the replacement
            i = 0
            while not done.is_set():
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
                    async with fresh.get(f"http://127.0.0.1:{cluster.port}/obj/during{i % 20}?size=1k") as r:
                        statuses.append(r.status)
                i += 1

        loader = asyncio.create_task(load())
        cluster.proc.send_signal(signal.SIGHUP)
        for conn in conns.values():
            assert await conn.response() == (200, b"slept 1500 ms\n")
            conn.close()

        async def replaced() -> bool:
            return not set(await pids()) & set(first)

        await eventually(replaced, f"workers {first} to be replaced")
        now = await pids()
        done.set()
        await loader
        assert statuses and set(statuses) == {200}, statuses
        body = await cluster.admin(s, "POST", "/restart")
        assert body == {"restarted": 2, "generation": 2}
        assert not set(await pids()) & set(now)
        async with s.get(f"http://127.0.0.1:{cluster.port}/obj/kept?size=1k") as r:
            assert r.headers["X-Cache"] == "HIT"  # new workers, the same store

        async def logged() -> bool:  # stderr is read concurrently: the line may still be in the pipe
            return "replaced 2 workers (generation 1)" in cluster.stderr

        await eventually(logged, "the master's log of the SIGHUP restart")
