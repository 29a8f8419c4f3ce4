"""WASI 0.2 wasi:http conformance through a real node: fields, bodies, streaming, outbound
allow-list, key-value, variables, with components built here by componentize-js and
componentize-py (Spin's Python SDK)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp

JS = "/fn/js/"
PY = "/fn/py/"


def js_stage(component: Path, **options: Any) -> dict[str, Any]:
    return {"type": "function", "name": "hello-js", "component": str(component),
            "match": {"path_prefix": JS}, **options}


def py_stage(component: Path, **options: Any) -> dict[str, Any]:
    return {"type": "function", "name": "hello-py", "component": str(component),
            "match": {"path_prefix": PY}, "variables": {"greeting": "howdy"},
            "key_value_stores": ["default"], **options}


async def test_hello_both_languages_behind_the_cache(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                     js_component: Path, py_component: Path) -> None:
    node, base = await serve([js_stage(js_component), py_stage(py_component)])
    for prefix, text in ((JS, "hello from js at /fn/js/hello\n"), (PY, "howdy from python at /fn/py/hello\n")):
        async with http.get(base + prefix + "hello") as r:
            assert (r.status, await r.text(), r.headers["X-Cache"]) == (200, text, "MISS")
        async with http.get(base + prefix + "hello") as r:
            assert (r.status, await r.text(), r.headers["X-Cache"]) == (200, text, "HIT")
    # a cached function response does not call the function again
    assert node.functions["hello-js"].metrics.requests == 1
    assert node.functions["hello-py"].metrics.requests == 1
    async with http.get(base + "/fn/js/nope") as r:  # the function's own 404
        assert r.status == 404 and (await r.json())["error"] == "no such route"


async def test_request_bodies_and_json_both_languages(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                      js_component: Path, py_component: Path) -> None:
    _, base = await serve([js_stage(js_component), py_stage(py_component)], cache=False)
    doc = {f"k{i}": "v" * 20 for i in range(35)}
    body = json.dumps(doc).encode()
    assert 1000 <= len(body) <= 1100
    for prefix in (JS, PY):
        async with http.post(base + prefix + "echo", data=body) as r:
            got = await r.json(content_type=None)
            assert r.status == 200 and got == {"method": "POST", "bytes": len(body), "keys": 35}


async def test_streamed_request_body_reaches_the_guest(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                       js_component: Path) -> None:
    _, base = await serve([js_stage(js_component)], cache=False)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(50):
            yield b"%05d" % i * 20  # 100 bytes each, chunked on the wire

    async with http.post(base + JS + "echo", data=chunks()) as r:
        assert r.status == 200 and (await r.json())["bytes"] == 5000


async def test_fields_are_visible_and_validated(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                js_component: Path, py_component: Path) -> None:
    _, base = await serve([js_stage(js_component), py_stage(py_component)], cache=False)
    async with http.get(base + JS + "headers", headers={"X-Test": "one", "X-Other": "two"}) as r:
        got = await r.json()
        assert got["x-test"] == "one" and got["x-other"] == "two"
    async with http.get(base + PY + "raw/fields") as r:
        assert await r.json(content_type=None) == {
            "append": "ok", "forbidden": "forbidden", "invalid-name": "invalid-syntax",
            "invalid-value": "invalid-syntax", "from-list-forbidden": "forbidden",
            "immutable": "immutable", "get": ["1"]}


async def test_streaming_responses(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                   js_component: Path, py_component: Path) -> None:
    # threaded execution streams chunk by chunk (no Content-Length: chunked framing)
    _, base = await serve([js_stage(js_component, execution="threaded"),
                           py_stage(py_component, execution="threaded")], cache=False)
    for prefix, route in ((JS, "stream?n=40"), (PY, "raw/stream?n=40")):
        async with http.get(base + prefix + route) as r:
            text = await r.text()
            assert r.status == 200
            assert r.headers.get("Transfer-Encoding") == "chunked"
            assert text == "".join(f"chunk {i}\n" for i in range(40))


async def test_outbound_http_to_allowed_upstream(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                 js_component: Path, py_component: Path) -> None:
    node, base = await serve([js_stage(js_component, allowed_outbound_hosts=["default"]),
                              py_stage(py_component, allowed_outbound_hosts=["default"])], cache=False)
    async with http.get(base + JS + "fetch?path=/obj/a?size=300") as r:
        got = await r.json()
        assert r.status == 200 and got == {"status": 200, "bytes": 300}
    async with http.get(base + PY + "fetch") as r:
        got = await r.json(content_type=None)
        assert r.status == 200 and got["status"] in (200, 404)


async def test_outbound_http_denied_by_default(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                               js_component: Path, py_component: Path, caplog: Any) -> None:
    _, base = await serve([js_stage(js_component), py_stage(py_component)], cache=False)
    for prefix in (JS, PY):
        async with http.get(base + prefix + "fetch?path=/hello") as r:
            assert r.status == 500
    assert sum("denied (not in allowed_outbound_hosts)" in m for m in caplog.messages) == 2


async def test_key_value_store_and_variables(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                             py_component: Path) -> None:
    node, base = await serve([py_stage(py_component)], cache=False)
    counts = []
    for _ in range(3):
        async with http.get(base + PY + "count") as r:
            counts.append((await r.text()).strip())
    assert counts == ["1", "2", "3"]  # per-request instances: the state lives in the node's store
    assert node.functions["hello-py"].metrics.instances >= 3


async def test_key_value_store_denied_without_grant(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                    py_component: Path, caplog: Any) -> None:
    _, base = await serve([py_stage(py_component, key_value_stores=[])], cache=False)
    async with http.get(base + PY + "count") as r:
        assert r.status == 500
    assert any("key-value store 'default' denied" in m for m in caplog.messages)


async def test_reuse_mode_keeps_one_instance(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                             js_component: Path, py_component: Path, caplog: Any) -> None:
    node, base = await serve([js_stage(js_component, isolation="reuse"),
                              py_stage(py_component, isolation="reuse")], cache=False)
    for _ in range(5):
        for prefix in (JS, PY):
            async with http.get(base + prefix + "hello") as r:
                assert r.status == 200
    assert node.functions["hello-py"].metrics.instances == 1
    # what a request created and the guest never dropped is forgotten after the request
    assert node.functions["hello-py"]._reused.table.live() == {}
    # componentize-js instances answer one request each: detected, served fresh, reuse off
    assert node.functions["hello-js"].metrics.failures == {}
    assert any("hello-js: its instances serve one request each" in m for m in caplog.messages)


async def test_server_timing_and_metrics(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                         js_component: Path) -> None:
    node, base = await serve([js_stage(js_component)], cache=False)
    async with http.get(base + JS + "hello", headers={"X-Edgenode-Timing": "1"}) as r:
        assert r.headers["Server-Timing"].startswith("fn-hello-js;dur=")
    exposition = node.metrics.exposition().decode()
    assert 'edgenode_function_requests_total{function="hello-js"}' in exposition
    assert 'edgenode_function_host_seconds_count{function="hello-js"}' in exposition


async def test_c_component_against_the_canonical_abi(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                                    c_component: Path) -> None:
    """A guest with no bindings generator and no libc (zig cc + componentize-c.mjs)."""
    node, base = await serve([{"type": "function", "name": "hello-c", "component": str(c_component),
                               "match": {"path_prefix": "/fn/c/"}, "isolation": "reuse"}], cache=False)
    async with http.get(base + "/fn/c/hello") as r:
        assert (r.status, await r.text(), r.headers["Content-Type"]) == (200, "hello from c\n", "text/plain")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 1000

    for data in (b"y" * 1024, chunks()):
        async with http.post(base + "/fn/c/echo", data=data) as r:
            assert r.status == 200
            assert await r.json() == {"bytes": 1024 if isinstance(data, bytes) else 40000}
    assert node.functions["hello-c"].metrics.instances <= 2  # reused (a streamed body runs threaded)
