"""A node with a real Proxy-Wasm filter (tests/wasm/wat/counters.wat, compiled by
wasmtime at start-up) in its chain: filter metrics, timings in the access log, reload."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgenode.config import ConfigError, StageConfig
from edgenode.node import Node
from edgenode.watch import watch_files

WAT = Path(__file__).resolve().parents[1] / "wasm" / "wat"
AUTH = {"Authorization": "Bearer test-token"}  # what conftest.node_config sets
NAME = "node-counters"  # filter metrics are per process and keyed by filter name


@pytest.fixture
async def filtered(origin_url: str, tmp_path: Path, config_for) -> AsyncIterator[tuple[Node, Path]]:
    log = tmp_path / "access.log"
    cfg = config_for(origin_url, access=str(log), format="json")
    cfg.chain = [StageConfig("wasm", NAME, {"module": str(WAT / "counters.wat"), "config": "hello"}),
                 StageConfig("cache", "cache")]
    node = Node(cfg)
    await node.start()
    yield node, log
    await node.stop(1.0)


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


async def test_filter_metrics_timings_and_reload(filtered: tuple[Node, Path]) -> None:
    node, log = filtered
    base = f"http://127.0.0.1:{node.admin_port}"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/metrics") as r:
            before = _values(await r.text())
        for _ in range(3):
            async with s.get(f"http://127.0.0.1:{node.port}/obj/f?size=100") as r:
                assert r.status == 200 and r.headers["x-config"] == "hello"
                await r.read()
        async with s.get(f"{base}/metrics") as r:
            after = _values(await r.text())
        key = ("edgenode_filter_counter_total", (("filter", NAME), ("metric", "requests")))
        assert after[key] - before.get(key, 0) == 3
        phases = {dict(labels)["phase"] for (n, labels), _ in after.items()
                  if n == "edgenode_wasm_callback_seconds_count" and ("filter", NAME) in labels}
        assert "request_headers" in phases

        async with s.get(f"{base}/stats", headers=AUTH) as r:
            starts = (await r.json())["filters"][NAME]["vm_starts"]
        async with s.post(f"{base}/filters/reload", headers=AUTH) as r:
            assert r.status == 200 and await r.json() == {"reloaded": [NAME]}
        async with s.post(f"{base}/filters/{NAME}/reload", headers=AUTH) as r:
            assert r.status == 200
        async with s.get(f"{base}/stats", headers=AUTH) as r:
            assert (await r.json())["filters"][NAME]["vm_starts"] >= starts + 2

    node.access_log.flush()
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(recs) == 3
    assert any(k.startswith(f"{NAME}.request_headers") for k in recs[0]["filters"])
    assert all(v >= 0 for v in recs[0]["filters"].values())


async def test_reload_failure_keeps_running_filter(origin_url: str, tmp_path: Path, config_for) -> None:
    module = tmp_path / "filter.wat"
    module.write_text((WAT / "counters.wat").read_text())
    cfg = config_for(origin_url)
    cfg.chain = [StageConfig("wasm", "node-reload", {"module": str(module), "config": "v1"})]
    node = Node(cfg)
    await node.start()
    try:
        module.write_text("(module (this is not wat")
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{node.admin_port}/filters/reload", headers=AUTH) as r:
                assert r.status == 422 and "reload failed" in (await r.json())["error"]
            async with s.get(f"http://127.0.0.1:{node.port}/obj/still?size=10") as r:
                assert r.status == 200 and r.headers["x-config"] == "v1"
    finally:
        await node.stop(1.0)


def test_bad_module_is_a_config_error(tmp_path: Path, config_for) -> None:
    cfg = config_for("http://127.0.0.1:9")
    cfg.chain = [StageConfig("wasm", "nope", {"module": str(tmp_path / "absent.wasm")})]
    with pytest.raises(ConfigError, match=r"^chain\[0\]\.module: "):
        Node(cfg)
    bad = tmp_path / "bad.wat"
    bad.write_text("(module (func $f (result i32)))")  # does not validate
    cfg.chain = [StageConfig("wasm", "bad", {"module": str(bad)})]
    with pytest.raises(ConfigError, match=r"^chain\[0\]"):
        Node(cfg)


async def test_watch_calls_back_on_mtime_change(tmp_path: Path) -> None:
    target = tmp_path / "module.wasm"
    target.write_bytes(b"v1")
    calls: list[int] = []
    changed = asyncio.Event()

    async def on_change() -> None:
        calls.append(1)
        changed.set()

    task = asyncio.create_task(watch_files([target], on_change, interval=0.02))
    await asyncio.sleep(0.05)
    assert calls == []
    st = target.stat()
    os.utime(target, (st.st_atime, st.st_mtime + 5))
    await asyncio.wait_for(changed.wait(), 10)
    task.cancel()
    assert calls == [1]


@pytest.mark.parametrize("switch", [True, False])
async def test_server_timing_switch(origin_url: str, config_for, switch: bool) -> None:  # type: ignore[no-untyped-def]
    """``[server] server_timing = false`` turns every filter's Server-Timing entry off."""
    cfg = config_for(origin_url)
    cfg.server.server_timing = switch
    cfg.chain = [StageConfig("wasm", "timed", {"module": str(WAT / "counters.wat")})]
    node = Node(cfg)
    await node.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{node.port}/obj/t?size=10",
                             headers={"X-Edgenode-Timing": "1"}) as r:
                assert r.status == 200
                await r.read()
                assert ("wasm-timed;dur=" in r.headers.get("server-timing", "")) is switch
    finally:
        await node.stop(1.0)


async def test_filter_counter_across_recycles_and_reloads(origin_url: str, config_for) -> None:
    """The counter a filter increments (in the host core) stays exact at /metrics over
    many requests on reset-and-reused per-request instances, and across reloads."""
    name = "node-counters-iso"
    cfg = config_for(origin_url)
    # the deadline is counted in wall-clock epoch ticks: a generous one keeps 100 concurrent
    # streams on a loaded two-core machine from being cut off (deadlines have their own tests)
    cfg.chain = [StageConfig("wasm", name, {"module": str(WAT / "counters.wat"), "isolation": "per-request",
                                            "cpu_deadline_ms": 5000}),
                 StageConfig("cache", "cache")]
    node = Node(cfg)
    await node.start()
    key = ("edgenode_filter_counter_total", (("filter", name), ("metric", "requests")))
    base = f"http://127.0.0.1:{node.admin_port}"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/metrics") as r:
                before = _values(await r.text()).get(key, 0)

            async def get(i: int) -> None:
                async with s.get(f"http://127.0.0.1:{node.port}/obj/n{i % 7}?size=100") as r:
                    assert r.status == 200 and r.headers["x-count"] == "1"  # a fresh instance each
                    await r.read()

            for batch in range(3):
                await asyncio.gather(*(get(batch * 100 + i) for i in range(100)))
                async with s.post(f"{base}/filters/{name}/reload", headers=AUTH) as r:
                    assert r.status == 200
                async with s.get(f"{base}/metrics") as r:
                    assert _values(await r.text())[key] - before == 100 * (batch + 1)
    finally:
        await node.stop(1.0)
