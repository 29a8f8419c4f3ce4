"""Proxy-Wasm shared data and queues across processes, as the workers of one node share
them: CAS contention without lost updates, ``on_queue_ready`` in the registering process,
and a real filter counting requests node-wide behind ``serve --workers 2``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp

from edgenode.config import Config
from edgenode.wasm.abi import Status
from edgenode.wasm.shared import NodeState, shared_data, shared_queues

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "node"))
from cluster_support import start_cluster, stop_cluster, write_conf  # noqa: E402

_WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from edgenode.config import Config
    from edgenode.wasm.abi import Status
    from edgenode.wasm.shared import NodeState, shared_data, shared_queues
    cfg = Config()
    cfg.server.state_dir = Path(sys.argv[1])
    state = NodeState.open(cfg, owner=False, workers=2)
    if sys.argv[2] == "count":
        retries = 0
        for _ in range(int(sys.argv[3])):
            while True:  # the CAS loop a filter runs
                found = shared_data.get("vm", b"n")
                value, cas = found if found is not None else (b"0", 0)
                if shared_data.set("vm", b"n", str(int(value) + 1).encode(), cas) == Status.OK:
                    break
                retries += 1
        print(retries, flush=True)
    else:
        qid = shared_queues.resolve("vm", "jobs")
        for item in sys.argv[3:]:
            assert shared_queues.enqueue(qid, item.encode()) == Status.OK
    state.close()
""")


def _worker(state_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", _WORKER, str(state_dir), *args],
                            stdout=subprocess.PIPE, text=True, env=env)


def _config(state_dir: Path) -> Config:
    cfg = Config()
    cfg.server.state_dir = state_dir
    return cfg


def test_cas_increments_from_two_processes_lose_nothing(tmp_path: Path) -> None:
    state = NodeState.open(_config(tmp_path), owner=True, workers=2)  # the master's part
    try:
        # the key exists before the workers start: a set with cas 0 (what a filter passes
        # for a key it found absent) is unconditional in Proxy-Wasm, so two first sets
        # would both win; every set here then carries a CAS
        assert shared_data.set("vm", b"n", b"0", 0) == Status.OK
        procs = [_worker(tmp_path, "count", "5000") for _ in range(2)]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0]
        found = shared_data.get("vm", b"n")
        assert found is not None and found[0] == b"10000", (found, outs)
        # a stale CAS is refused node-wide, as in one process
        assert shared_data.set("vm", b"n", b"x", found[1] + 1) == Status.CAS_MISMATCH
    finally:
        state.close()


async def test_queue_ready_reaches_the_registering_process(tmp_path: Path) -> None:
    state = NodeState.open(_config(tmp_path), owner=True, workers=2)
    try:
        ready: asyncio.Queue[int] = asyncio.Queue()
        qid = shared_queues.register("vm", "jobs", ready.put_nowait)
        proc = _worker(tmp_path, "enqueue", "a", "b", "c")
        got = []
        for _ in range(3):  # one notification per item, delivered here (the registrant)
            assert await asyncio.wait_for(ready.get(), 30) == qid
            status, item = shared_queues.dequeue(qid)
            if status == Status.OK:
                got.append(item)
        while (item := shared_queues.dequeue(qid))[0] == Status.OK:
            got.append(item[1])
        assert got == [b"a", b"b", b"c"] and proc.wait(30) == 0
        assert shared_queues.dequeue(qid) == (Status.EMPTY, b"")
        assert shared_queues.resolve("vm", "other") is None
        assert shared_queues.enqueue(qid + 99, b"x") == Status.NOT_FOUND
    finally:
        state.close()


async def test_a_filter_counts_requests_node_wide(origin_url: str, tmp_path: Path) -> None:
    """counters.wat appends one byte to shared key "hits" per request (a CAS loop) and
    echoes it: with two workers the count is the node's, with no update lost."""
    conf = write_conf(tmp_path, origin_url, f'[[chain]]\ntype = "wasm"\nname = "counters"\n'
                      f'module = "{REPO / "tests" / "wasm" / "wat" / "counters.wat"}"\n'
                      '[[chain]]\ntype = "cache"\n')
    c = await start_cluster(conf)
    try:
        n = 100  # counters.wat also echoes a per-VM count as one byte: keep it below 80 per worker
        url = f"http://127.0.0.1:{c.port}/obj/counted?size=100"

        async def lane(k: int) -> None:  # a fresh connection each time: both workers count
            for _ in range(k):
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                    async with s.get(url) as r:
                        assert r.status == 200, (await r.text(), c.stderr[-3000:])

        # the first request creates the key: a CAS of 0 (a key not there yet) is an
        # unconditional set in Proxy-Wasm, so two first inserts racing may keep one
        await lane(1)
        await asyncio.gather(*(lane(n // 10) for _ in range(10)))
        async with aiohttp.ClientSession() as s:
            async with s.get(url) as r:
                assert len(r.headers["x-hits"]) == n + 2
            stats = await c.admin(s, "GET", "/stats")
        assert all(w["requests"] > 0 for w in stats["per_worker"])
    finally:
        assert await stop_cluster(c) == 0


def test_shared_data_starts_afresh_unless_persisted(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    for persist, survives in ((False, False), (True, True)):
        cfg.server.persist_shared_data = persist
        state = NodeState.open(cfg, owner=True, workers=2)
        assert shared_data.set("vm", b"k", b"kept", 0) == Status.OK
        state.close()
        assert shared_data.get("vm", b"k") is None  # back to this process's own (empty) data
        state = NodeState.open(cfg, owner=True, workers=1)  # a restart (a lone node persists too)
        found = shared_data.get("vm", b"k")
        assert (found is not None and found[0] == b"kept") == survives
        state.close()
        cfg.server.persist_shared_data = False
        NodeState.open(cfg, owner=True, workers=2).close()  # not persisted: wiped at start
