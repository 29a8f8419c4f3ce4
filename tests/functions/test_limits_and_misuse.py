"""Limits and guest misuse fail that request only: a clear 5xx, a log line, a metric; the
node and the next request are unaffected."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

import aiohttp
import pytest

PY = "/fn/py/"


def stage(component: Path, **options: Any) -> dict[str, Any]:
    return {"type": "function", "name": "hello-py", "component": str(component),
            "match": {"path_prefix": PY}, "variables": {"greeting": "hello"}, **options}


async def _still_serves(http: aiohttp.ClientSession, base: str) -> None:
    async with http.get(base + PY + "hello") as r:
        assert r.status == 200 and await r.text() == "hello from python at /fn/py/hello\n"


@pytest.mark.parametrize("execution", ["inline", "threaded"])
@pytest.mark.parametrize("route,status,kind,message", [
    ("raw/trap", 500, "trap", "unreachable"),
    ("raw/no-response", 500, "no_response", "returned without setting a response"),
    ("raw/loop", 503, "cpu", "interrupt"),
])
async def test_failure_is_contained(serve: Callable[..., Any], http: aiohttp.ClientSession, py_component: Path,
                                    caplog: Any, execution: str, route: str, status: int, kind: str,
                                    message: str) -> None:
    node, base = await serve([stage(py_component, execution=execution, cpu_deadline_ms=200)], cache=False)
    async with http.get(base + PY + route) as r:
        assert r.status == status
        assert "function 'hello-py' failed" in await r.text()
    assert node.functions["hello-py"].metrics.failures == {kind: 1}
    assert any(m.startswith("function hello-py:") and message in m for m in caplog.messages)
    if route == "raw/trap":  # the guest's stderr (a Python traceback) reaches the log
        assert any(m.startswith("function hello-py stderr:") and "failed on purpose" in m
                   for m in caplog.messages)
    await _still_serves(http, base)


async def test_finishing_a_body_with_its_stream_open_traps(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                           py_component: Path, caplog: Any) -> None:
    node, base = await serve([stage(py_component, execution="inline")], cache=False)
    async with http.get(base + PY + "raw/finish-open") as r:
        assert r.status == 500
    assert any("outgoing-body finished while its output-stream is still alive" in m for m in caplog.messages)
    await _still_serves(http, base)


async def test_streaming_forever_hits_the_body_limit(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                     py_component: Path) -> None:
    node, base = await serve([stage(py_component, execution="inline", max_body_bytes="1MiB")], cache=False)
    async with http.get(base + PY + "raw/forever") as r:
        assert r.status == 503
        assert "max_body_bytes" in await r.text()
    assert node.functions["hello-py"].metrics.failures == {"body": 1}
    await _still_serves(http, base)


async def test_streaming_forever_after_the_head_aborts_the_response(
        serve: Callable[..., Any], http: aiohttp.ClientSession, py_component: Path) -> None:
    node, base = await serve([stage(py_component, execution="threaded", max_body_bytes="1MiB")], cache=False)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(base + PY + "raw/forever") as r:
            assert r.status == 200  # the head was sent before the limit was hit
            await r.read()
    assert node.functions["hello-py"].metrics.failures == {"body": 1}
    await _still_serves(http, base)


async def test_memory_limit_refuses_the_instance(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                 py_component: Path) -> None:
    node, base = await serve([stage(py_component, memory_limit="1MiB")], cache=False)
    async with http.get(base + PY + "hello") as r:
        assert r.status == 503
    assert node.functions["hello-py"].metrics.failures["unavailable"] >= 1


async def test_request_body_over_the_limit_is_413(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                  py_component: Path) -> None:
    _, base = await serve([stage(py_component, max_body_bytes="1KiB")], cache=False)
    async with http.post(base + PY + "echo", data=b"x" * 2048) as r:
        assert r.status == 413


async def test_streamed_request_body_over_the_limit_is_413(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                           py_component: Path) -> None:
    _, base = await serve([stage(py_component, max_body_bytes="1KiB")], cache=False)

    async def chunks() -> Any:
        for _ in range(8):
            yield b"x" * 512  # chunked: no Content-Length to refuse up front

    async with http.post(base + PY + "echo", data=chunks()) as r:
        assert r.status == 413


async def test_wall_clock_timeout_answers_503_and_stops_the_guest(
        serve: Callable[..., Any], http: aiohttp.ClientSession, py_component: Path) -> None:
    node, base = await serve([stage(py_component, execution="threaded", cpu_deadline_ms=60000,
                                    timeout="300ms")], cache=False)
    async with http.get(base + PY + "raw/loop") as r:
        assert r.status == 503
        assert "wall-clock timeout" in await r.text()
    assert node.functions["hello-py"].metrics.failures == {"timeout": 1}
    await _still_serves(http, base)


async def test_wall_clock_timeout_is_a_timeout_even_when_the_loop_is_late(
        serve: Callable[..., Any], http: aiohttp.ClientSession, py_component: Path) -> None:
    """The guest's epoch deadline and the loop's wait both end at the timeout.  On a busy
    machine the epoch interrupt can end the call before the loop's wait wakes up: that is
    still the wall-clock timeout, not a CPU limit."""
    node, base = await serve([stage(py_component, execution="threaded", cpu_deadline_ms=60000,
                                    timeout="300ms")], cache=False)
    fn = node.functions["hello-py"]
    loop, real_call = asyncio.get_running_loop(), fn._call

    def call_while_the_loop_is_busy(*args: Any) -> None:
        loop.call_soon_threadsafe(time.sleep, 1.0)  # the loop sleeps through the deadline
        real_call(*args)

    fn._call = call_while_the_loop_is_busy
    async with http.get(base + PY + "raw/loop") as r:
        assert r.status == 503
        assert "wall-clock timeout" in await r.text()
    assert fn.metrics.failures == {"timeout": 1}
