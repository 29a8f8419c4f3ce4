"""End to end: WasmStage chained with build_chain around a terminal handler that
proxies to a real aiohttp origin on 127.0.0.1, with filters compiled from WAT."""

from __future__ import annotations

import asyncio

import pytest
from wasm_helpers import request

from edgenode.http.messages import Response, read_body
from edgenode.pipeline.stage import build_chain
from edgenode.wasm.metrics import filter_metrics, wasm_collector


async def test_header_rewrite(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    handler = build_chain([make_stage("rewrite.wat", "rw")], terminal)
    resp = await handler(request("/original"))
    assert resp.status == 200
    assert origin.seen[-1]["path"] == "/rewritten"
    assert origin.seen[-1]["headers"]["x-rewritten"] == "1"
    assert resp.headers["x-served-by"] == "wasm"
    assert "server" not in resp.headers


async def test_local_response_passes_response_hooks(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    outer = make_stage("rewrite.wat", "outer")
    handler = build_chain([outer, make_stage("local_reply.wat", "deny")], terminal)
    resp = await handler(request("/x"))
    assert resp.status == 403
    assert await read_body(resp.body) == b"denied by filter"
    assert resp.headers["x-deny"] == "yes"
    assert resp.headers["x-saw-response"] == "1"  # the sender's own on_response_headers
    assert resp.headers["x-served-by"] == "wasm"  # the outer filter's response hook
    assert origin.seen == []  # the origin was never contacted


async def test_body_rewrite_with_buffering(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("body_rewrite.wat", "body")
    handler = build_chain([st], terminal)
    ex = request("/upload", method="POST")

    async def chunks():  # type: ignore[no-untyped-def]
        for part in (b"abc", b"defg", b"hi"):
            yield part
    ex.request.body = chunks()
    resp = await handler(ex)
    assert origin.seen[-1]["body"] == b"REQ:abcdefghi"
    assert await read_body(resp.body) == b"origin:REQ:abcdefghi|filtered"
    # honest sizes: the buffered total grows, end_of_stream only on the last call
    seen = [tuple(int.from_bytes(st.vm.mem.read(1000 + 8 * i + j, 4), "little") for j in (0, 4))
            for i in range(3)]
    assert seen == [(3, 0), (7, 0), (9, 1)]


async def test_streamed_response_body_is_filtered(make_stage, origin) -> None:  # type: ignore[no-untyped-def]
    async def streaming_terminal(ex):  # type: ignore[no-untyped-def]
        async def body():  # type: ignore[no-untyped-def]
            yield b"part1-"
            yield b"part2"
        return Response(200, body=body())
    handler = build_chain([make_stage("body_rewrite.wat", "stream")], streaming_terminal)
    resp = await handler(request("/s"))
    assert "content-length" not in resp.headers
    assert await read_body(resp.body) == b"part1-part2|filtered"


async def test_http_callout_pauses_and_resumes(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("callout.wat", "auth")
    handler = build_chain([st], terminal)
    resp = await handler(request("/protected"))
    assert resp.status == 200
    assert origin.seen[-1]["path"] == "/protected"
    assert origin.seen[-1]["headers"]["x-auth-status"] == "202"
    assert origin.seen[-1]["headers"]["x-auth-body"] == "token-123"
    root_seen = st.vm.export("root_seen", 1, 1)
    assert st.vm.call("root_seen", None, 0) == st.vm.root.id  # delivered to the ROOT context
    assert root_seen is st.vm.funcs["root_seen"]


async def test_http_callout_failures(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    handler = build_chain([make_stage("callout.wat", "auth2")], terminal)
    failed = await handler(request("/a", x_upstream="down"))  # connect error -> (root, token, 0,0,0)
    assert failed.status == 502 and await read_body(failed.body) == b"callout failed"
    refused = await handler(request("/a", x_upstream="nowhere"))  # unknown upstream -> BAD_ARGUMENT
    assert refused.status == 500 and await read_body(refused.body) == b"callout refused"
    assert origin.seen == []


async def test_callouts_do_not_block_other_streams(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    handler = build_chain([make_stage("callout.wat", "auth3")], terminal)
    results = await asyncio.gather(*(handler(request(f"/c{i}")) for i in range(5)))
    assert [r.status for r in results] == [200] * 5
    assert sorted(s["path"] for s in origin.seen) == [f"/c{i}" for i in range(5)]


async def test_shared_data_metrics_and_ticks(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("counters.wat", "counters", config={"mode": "on"}, vm_id="counters-vm")
    handler = build_chain([st], terminal)
    hits = [(await handler(request("/h"))).headers["x-hits"] for _ in range(3)]
    assert hits == ["x", "xx", "xxx"]
    resp = await handler(request("/h"))
    assert resp.headers["x-config"] == '{"mode":"on"}'
    assert resp.headers["x-count"] == "4"
    metrics = filter_metrics["counters"]
    for _ in range(200):  # ticks every 10 ms; wait (bounded) for a few
        if metrics.get(2)[1] >= 3:
            break
        await asyncio.sleep(0.01)
    assert metrics.get(2)[1] >= 3
    families = {f.name: f for f in wasm_collector.collect()}
    counter = {s.labels["metric"]: s.value for s in families["edgenode_filter_counter"].samples
               if s.labels["filter"] == "counters"}
    assert counter["requests"] == 4
    phases = {s.labels["phase"] for s in families["edgenode_wasm_callback_seconds"].samples
              if s.labels["filter"] == "counters"}
    assert {"request_headers", "response_headers", "tick", "configure"} <= phases


async def test_per_request_isolation(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    shared = build_chain([make_stage("counters.wat", "shared-iso", vm_id="iso-a")], terminal)
    fresh = build_chain([make_stage("counters.wat", "fresh-iso", vm_id="iso-b",
                                    isolation="per-request")], terminal)
    assert [(await shared(request())).headers["x-count"] for _ in range(3)] == ["1", "2", "3"]
    assert [(await fresh(request())).headers["x-count"] for _ in range(3)] == ["1", "1", "1"]
    # shared data still spans instances (keyed by vm_id, process-wide)
    assert (await fresh(request())).headers["x-hits"] == "xxxx"


async def test_trap_fail_closed(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", "closed", failure_policy="fail_closed")
    handler = build_chain([st], terminal)
    assert (await handler(request())).status == 200
    assert (await handler(request(x_misbehave="trap"))).status == 503
    assert (await handler(request())).status == 503  # shared VM failed: stays failed
    assert st.vm.failed and "unreachable" in st.vm.failed
    await st.reload()
    assert (await handler(request())).status == 200


async def test_trap_fail_open(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    handler = build_chain([make_stage("misbehave.wat", "open", failure_policy="fail_open")], terminal)
    resp = await handler(request(x_misbehave="trap"))
    assert resp.status == 200 and "x-ok" not in resp.headers  # filter skipped
    resp = await handler(request())
    assert resp.status == 200 and "x-ok" not in resp.headers  # bypassed until reload
    assert len(origin.seen) == 2


async def test_trap_reload_policy(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", "reloading", failure_policy="reload", reload_backoff=60)
    handler = build_chain([st], terminal)
    assert (await handler(request(x_misbehave="trap"))).status == 503
    first_vm_starts = filter_metrics["reloading"].vm_starts
    resp = await handler(request())  # a new VM for the next request
    assert resp.status == 200 and resp.headers["x-ok"] == "1"
    assert filter_metrics["reloading"].vm_starts == first_vm_starts + 1
    assert (await handler(request(x_misbehave="trap"))).status == 503
    assert (await handler(request())).status == 200  # success reset the backoff
    assert (await handler(request(x_misbehave="trap"))).status == 503


async def test_reload_backoff_after_repeated_failures(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", "crashloop", failure_policy="reload", reload_backoff=60)
    handler = build_chain([st], terminal)
    assert (await handler(request(x_misbehave="trap"))).status == 503
    assert (await handler(request(x_misbehave="trap"))).status == 503  # reloaded VM trapped again
    assert (await handler(request())).status == 503  # backing off: no new VM for 60 s


async def test_per_request_trap_affects_only_that_stream(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    handler = build_chain([make_stage("misbehave.wat", "pr", isolation="per-request")], terminal)
    assert (await handler(request(x_misbehave="trap"))).status == 503
    assert (await handler(request())).status == 200


async def test_infinite_loop_is_cut_off(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", "looper", cpu_deadline_ms=20, isolation="per-request")
    handler = build_chain([st], terminal)
    assert (await handler(request(x_misbehave="loop"))).status == 503
    assert (await handler(request())).status == 200
    assert filter_metrics["looper"].traps == 1


async def test_memory_bomb_is_stopped(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", "bomb", memory_limit="2MiB")
    handler = build_chain([st], terminal)
    assert (await handler(request(x_misbehave="bomb"))).status == 503
    assert st.vm.mem.size <= 2 * 1024 * 1024


async def test_reload_keeps_in_flight_stream_on_old_vm(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("counters.wat", "reloadable", config="old", vm_id="reload-vm")
    handler = build_chain([st], terminal)
    origin.release.clear()
    in_flight = asyncio.create_task(handler(request("/slow")))
    for _ in range(200):
        if origin.seen:
            break
        await asyncio.sleep(0.005)
    old_vm = st.vm
    from edgenode.config import StageConfig
    await st.reload(StageConfig("wasm", "reloadable", {"module": str(st.opts.module), "config": "new",
                                                       "vm_id": "reload-vm"}))
    assert st.vm is not old_vm and not old_vm.closed  # still serving the in-flight stream
    assert (await handler(request("/fast"))).headers["x-config"] == "new"
    origin.release.set()
    resp = await in_flight
    assert resp.status == 200 and resp.headers["x-config"] == "old"
    assert old_vm.closed  # closed once its last stream finished


async def test_server_timing_header(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    handler = build_chain([make_stage("rewrite.wat", "timed")], terminal)
    resp = await handler(request(x_edgenode_timing="1"))
    assert resp.headers["server-timing"].startswith("wasm-timed;dur=")
    ex = request()
    resp = await handler(ex)
    assert "server-timing" not in resp.headers
    assert ex.timings[("timed", "request_headers")] > 0
    assert ex.timings[("timed", "response_headers")] > 0


async def test_abi_v010_module(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    handler = build_chain([make_stage("v010.wat", "old-abi", config="legacy")], terminal)
    resp = await handler(request())
    assert resp.status == 200
    assert resp.headers["x-config"] == "legacy"
    assert resp.headers["x-missing-status"] == "0"  # 0.1.0: missing header -> OK + empty
