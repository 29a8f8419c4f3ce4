"""Envoy pause semantics as proxy-wasm-cpp-host drives them: StopIteration from a headers
hook holds the stream and the filter's body (no body callbacks until it continues,
buffered up to the limit), Envoy's allow_on_headers_stop_iteration, the pause timeout,
and root-context teardown of per-request instances (pause.wat)."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest
from wasm_helpers import request

from edgenode.config import ConfigError
from edgenode.http.messages import CIMultiDict, Response, read_body
from edgenode.pipeline.exchange import Exchange
from edgenode.pipeline.stage import build_chain
from edgenode.wasm.abi import Status
from edgenode.wasm.metrics import filter_metrics
from edgenode.wasm.stage import WasmStage

OK, BAD = int(Status.OK), int(Status.BAD_ARGUMENT)


def chunked(ex: Exchange, *parts: bytes) -> Exchange:
    async def body() -> AsyncIterator[bytes]:
        for p in parts:
            yield p
    ex.request.body = body()
    return ex


def log(st: WasmStage, direction: int) -> list[tuple[int, int, int]]:
    """(body_size, end_of_stream, status of adding x-in-body) per body callback."""
    mem = st.vm.mem
    count = int.from_bytes(mem.read(1000 + 4 * direction, 4), "little")
    base = 1024 if direction == 0 else 2048
    return [tuple(int.from_bytes(mem.read(base + 12 * i + 4 * j, 4), "little") for j in range(3))
            for i in range(count)]  # type: ignore[misc]


async def streaming_terminal(ex: Exchange) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for part in (b"part1-", b"part2-", b"end"):
            yield part
    return Response(200, CIMultiDict({"Content-Length": "17"}), body())


# --- request direction -------------------------------------------------------------

async def test_stop_iteration_holds_the_body_until_continue(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "p-iter")
    handler = build_chain([st], terminal)
    resp = await handler(chunked(request("/up", method="POST", x_pause="100t"), b"abc", b"defg", b"hi"))
    assert resp.status == 200
    # StopIteration is StopAllIterationAndWatermark (cpp-host): no body callback while
    # held; the tick's continue delivers the whole buffered body in one callback, after
    # the headers were released (not writable any more)
    assert log(st, 0) == [(9, 1, BAD)]
    assert origin.seen[-1]["body"] == b"abcdefghi"
    assert origin.seen[-1]["headers"]["x-resumed"] == "1"  # added while held


async def test_allowed_stop_iteration_is_released_by_body_continue(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "p-allow", allow_on_headers_stop_iteration=True)
    handler = build_chain([st], terminal)
    resp = await handler(chunked(request("/up", method="POST", x_pause="100-"), b"abc", b"defg", b"hi"))
    assert resp.status == 200
    # held after the headers: the first body callback may still change the headers;
    # its Continue releases the StopIteration hold (Envoy), so later ones may not
    assert log(st, 0) == [(3, 0, OK), (4, 0, BAD), (2, 1, BAD)]
    assert origin.seen[-1]["body"] == b"abcdefghi"
    assert origin.seen[-1]["headers"]["x-in-body"] == "1"


async def test_allowed_stop_iteration_buffers_until_continue(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "p-buf", allow_on_headers_stop_iteration=True)
    handler = build_chain([st], terminal)
    ex = chunked(request("/up", method="POST", x_pause="11c-"), b"abc", b"defg", b"hi")
    resp = await handler(ex)
    assert resp.status == 200
    assert log(st, 0) == [(3, 0, OK), (7, 0, OK), (9, 1, OK)]  # growing buffer, honest eos
    assert origin.seen[-1]["body"] == b"abcdefghi"
    assert ex.request.headers["content-length"] == "9"  # the buffered body goes on whole


async def test_watermark_stops_reading_at_the_limit(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "p-mark", max_body_bytes="5")
    handler = build_chain([st], terminal)
    resp = await handler(chunked(request("/up", method="POST", x_pause="400t"), b"abc", b"defg", b"hi"))
    assert resp.status == 200
    # held: "abc" + "defg" reach the limit, then the host stops reading until continue;
    # the buffered part comes in one callback, the rest streams on
    assert log(st, 0) == [(7, 0, BAD), (2, 1, BAD)]
    assert origin.seen[-1]["body"] == b"abcdefghi"


async def test_stop_all_buffer_over_the_limit_is_413(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "p-over", max_body_bytes="5")
    handler = build_chain([st], terminal)
    resp = await handler(chunked(request("/up", method="POST", x_pause="300t"), b"abc", b"defg", b"hi"))
    assert resp.status == 413
    assert log(st, 0) == [] and origin.seen == []


async def test_pause_timeout_fail_closed(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "p-stuck", pause_timeout="20ms")
    handler = build_chain([st], terminal)
    held_body = await handler(chunked(request("/a", method="POST", x_pause="111-"), b"ab", b"c"))
    held_headers = await handler(request("/b", x_pause="1000"))  # no body: waits for continue
    assert held_body.status == 504 and held_headers.status == 504
    assert b"did not resume" in await read_body(held_headers.body)
    assert origin.seen == []
    assert log(st, 0) == []  # no body callback while held
    assert filter_metrics["p-stuck"].failed_streams == 2
    assert st.vm.failed is None  # a stuck stream does not fail the VM
    assert (await handler(request("/c"))).status == 200


async def test_pause_timeout_fail_open_continues(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "p-open", pause_timeout="20ms", failure_policy="fail_open")
    handler = build_chain([st], terminal)
    resp = await handler(chunked(request("/a", method="POST", x_pause="111-"), b"ab", b"c"))
    assert resp.status == 200
    assert origin.seen[-1]["body"] == b"abc"
    # the timeout counts as a continue: the filter then gets its body (and holds again)
    assert log(st, 0) == [(3, 1, BAD)]


# --- response direction ------------------------------------------------------------

async def test_response_stop_iteration_holds_the_body_until_continue(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "r-hold")
    handler = build_chain([st], streaming_terminal)
    resp = await handler(request("/r", x_resp="100t"))
    assert resp.headers["x-resumed"] == "1"  # added by the tick while held
    assert "x-in-body" not in resp.headers
    assert await read_body(resp.body) == b"part1-part2-end"
    assert resp.headers["content-length"] == "15"  # the body ended while held: one buffer
    assert log(st, 1) == [(15, 1, BAD)]


async def test_response_watermark_streams_the_rest_after_continue(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "r-mark", max_body_bytes="8")
    handler = build_chain([st], streaming_terminal)
    resp = await handler(request("/r", x_resp="400t"))
    assert await read_body(resp.body) == b"part1-part2-end"
    assert "content-length" not in resp.headers  # released mid-body: the rest streamed
    assert log(st, 1) == [(12, 0, BAD), (3, 1, BAD)]  # reading stopped at the limit


async def test_response_stop_all_buffer_over_the_limit(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "r-over", max_body_bytes="10")
    handler = build_chain([st], streaming_terminal)
    resp = await handler(request("/r", x_resp="300t"))
    assert resp.status == 502 and log(st, 1) == []


async def test_response_allowed_stop_iteration_released_mid_body(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "r-iter", allow_on_headers_stop_iteration=True)
    handler = build_chain([st], streaming_terminal)
    resp = await handler(request("/r", x_resp="100-"))
    assert resp.headers["x-in-body"] == "1"  # added by the first body callback while held
    body = await read_body(resp.body)
    assert body == b"part1-part2-end"
    assert "content-length" not in resp.headers  # the rest streamed through the hook
    assert log(st, 1) == [(6, 0, OK), (6, 0, BAD), (3, 1, BAD)]


async def test_response_allowed_stop_iteration_buffers_until_continue(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "r-buf", allow_on_headers_stop_iteration=True)
    handler = build_chain([st], streaming_terminal)
    resp = await handler(request("/r", x_resp="11c-"))
    assert await read_body(resp.body) == b"part1-part2-end"
    assert resp.headers["content-length"] == "15"
    assert log(st, 1) == [(6, 0, OK), (12, 0, OK), (15, 1, OK)]


async def test_response_pause_timeout(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "r-stuck", pause_timeout="20ms")
    handler = build_chain([st], streaming_terminal)
    resp = await handler(request("/r", x_resp="111-"))
    assert resp.status == 504
    assert log(st, 1) == []


# --- per-request instances -----------------------------------------------------------

async def test_per_request_instances_get_root_teardown(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("pause.wat", "p-fresh", isolation="per-request", prewarm=1)
    handler = build_chain([st], terminal)
    for _ in range(3):
        assert (await handler(request("/f"))).status == 200
    for _ in range(100):  # used instances are reset or closed in idle loop iterations (bounded)
        if filter_metrics["p-fresh"].get(1)[1] >= 4:
            break
        await asyncio.sleep(0)
    # root on_delete ran for the start-up canary and once per stream (its instance's
    # reset or close runs it), not for instances waiting for a stream
    assert filter_metrics["p-fresh"].get(1)[1] == 4
    assert st._pool and not any(vm.closed for vm in st._pool)


def test_pause_options_are_validated(make_stage) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"pause_timeout"):
        make_stage("pause.wat", "bad1", pause_timeout="soon")
    with pytest.raises(ConfigError, match=r"prewarm: expected an integer 0\.\.64"):
        make_stage("pause.wat", "bad2", prewarm=-1)
