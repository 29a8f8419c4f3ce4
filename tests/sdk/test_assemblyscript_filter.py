"""A filter built with the public AssemblyScript SDK (@solo-io/proxy-runtime, from npm) runs
unchanged on edgenode's Proxy-Wasm host: in-process through WasmStage, and through the node.

The filters are compiled from filters/examples/assemblyscript by the session fixture
``as_wasm`` (npm ci + asc); the origin is a real aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
import wasmtime

from edgenode.config import Config, StageConfig, parse_config
from edgenode.http.messages import CIMultiDict, Request, Response, read_body
from edgenode.node import Node
from edgenode.pipeline.exchange import Exchange
from edgenode.pipeline.stage import build_chain
from edgenode.wasm.metrics import metrics_for
from edgenode.wasm.stage import WasmStage

REPO = Path(__file__).resolve().parents[2]

#: every host function the example imports (kept in step with docs/sdk-compat.md)
EXAMPLE_IMPORTS = {
    ("env", "proxy_log"), ("wasi_unstable", "proc_exit"), ("env", "proxy_get_buffer_bytes"),
    ("env", "proxy_get_property"), ("env", "proxy_set_effective_context"),
    ("env", "proxy_get_header_map_value"), ("env", "proxy_send_local_response"),
    ("env", "proxy_add_header_map_value"), ("env", "proxy_define_metric"),
    ("env", "proxy_increment_metric"),
}


def make_stage(wasm: Path, config: str, root_id: str = "as_example",
               callout: Callable[[str, Request, float], Awaitable[Response]] | None = None,
               isolation: str = "shared") -> WasmStage:
    options = {"module": str(wasm), "root_id": root_id, "config": config, "isolation": isolation}
    return WasmStage(StageConfig(type="wasm", name="as-example", options=options),
                     base_dir=REPO, callout=callout, node_props={})


def requests_counted(filter_name: str = "as-example") -> int:
    """The filter's own counter (SDK ``Counter``), as the host's metrics registry holds it."""
    counters = [m.value for m in metrics_for(filter_name).user_metrics()
                if m.name == "as_example_requests"]
    return counters[0] if counters else 0


def get(path: str, **headers: str) -> Exchange:
    hdrs = CIMultiDict({"Host": "example.com", **{k.replace("_", "-"): v for k, v in headers.items()}})
    return Exchange(Request("GET", path, hdrs))


async def body_of(response: Response) -> bytes:
    return await read_body(response.body)


def test_example_imports_match_the_documented_list(as_wasm):
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(as_wasm["example"]))
    imports = {(i.module, i.name) for i in module.imports}
    assert imports == EXAMPLE_IMPORTS
    doc = (REPO / "docs" / "sdk-compat.md").read_text()
    for mod, name in sorted(imports):
        assert f"`{mod}.{name}`" in doc, f"{mod}.{name} missing from docs/sdk-compat.md"
    exports = {e.name for e in module.exports}
    assert {"proxy_abi_version_0_2_0", "malloc", "proxy_on_context_create"} <= exports


async def test_headers_read_and_added_through_the_origin(as_wasm, origin, origin_proxy, caplog):
    caplog.set_level(logging.DEBUG)
    before = requests_counted()
    stage = make_stage(as_wasm["example"], "tag=edge-1; reply_path=/as-hello")
    try:
        handler = build_chain([stage], origin_proxy)
        response = await handler(get("/page?q=1", x_as_name="alice"))
        body = await body_of(response)
    finally:
        await stage.close()
    assert response.status == 200
    assert response.headers.get("x-as-filter") == "alice"   # request header read, response header added
    assert response.headers.get("x-as-config") == "edge-1"  # configuration read
    assert response.headers.get("x-origin") == "1"
    seen = json.loads(body)
    assert seen["path"] == "/page?q=1"
    assert seen["headers"]["x-as-seen"] == "1"              # request header added upstream
    assert len(origin.seen) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("as_example: configured tag='edge-1' reply_path='/as-hello'" in m for m in messages)
    assert any("as_example: request /page?q=1 from alice" in m for m in messages)
    assert requests_counted() == before + 1                 # define_metric + increment_metric(i64)


async def test_missing_header_and_empty_configuration(as_wasm, origin, origin_proxy):
    # An empty configuration traps in the SDK's default onConfigure (0.1.8); the example's own
    # onConfigure must cope, and the host must hand over an empty buffer 7 as ptr=0/size=0.
    stage = make_stage(as_wasm["example"], "")
    try:
        handler = build_chain([stage], origin_proxy)
        first = await handler(get("/a"))
        second = await handler(get("/b", x_as_name="bob"))
    finally:
        await stage.close()
    assert first.status == 200 and second.status == 200
    assert first.headers.get("x-as-filter") == "anonymous"
    assert second.headers.get("x-as-filter") == "bob"
    assert "x-as-config" not in first.headers
    assert [s["path"] for s in origin.seen] == ["/a", "/b"]


@pytest.mark.parametrize("isolation", ["shared", "per-request"])
async def test_local_response_on_the_configured_path(as_wasm, origin, origin_proxy, isolation):
    stage = make_stage(as_wasm["example"], "reply_path=/as-hello", isolation=isolation)
    try:
        handler = build_chain([stage], origin_proxy)
        response = await handler(get("/as-hello", x_as_name="carol"))
        body = await body_of(response)
        after = await handler(get("/other", x_as_name="dave"))
    finally:
        await stage.close()
    assert response.status == 200
    assert body == b"hello carol\n"
    assert response.headers.get("content-type") == "text/plain"
    assert [s["path"] for s in origin.seen] == ["/other"]   # the local reply never reached it
    assert response.headers.get("x-as-filter") == "carol"   # the reply passes the filter on its way out
    assert after.headers.get("x-as-filter") == "dave"


async def test_callout_continues_or_denies(as_wasm, origin, origin_proxy):
    calls: list[tuple[str, str]] = []

    async def callout(name: str, request: Request, timeout: float) -> Response:
        calls.append((name, request.target))
        return await origin_proxy.send(request.method, request.target, request.headers,
                                       await read_body(request.body))

    stage = make_stage(as_wasm["callout"], "upstream=auth-svc; auth_path=/auth",
                       root_id="as_callout", callout=callout)
    try:
        handler = build_chain([stage], origin_proxy)
        allowed = await handler(get("/private", x_as_name="alice"))
        allowed_body = await body_of(allowed)
        denied = await handler(get("/private", x_as_name="mallory"))
        denied_body = await body_of(denied)
    finally:
        await stage.close()
    assert calls == [("auth-svc", "/auth"), ("auth-svc", "/auth")]
    assert [c["x-as-name"] for c in origin.auth_calls] == ["alice", "mallory"]
    assert allowed.status == 200
    assert json.loads(allowed_body)["headers"]["x-as-auth"] == "alice-ok"
    assert denied.status == 403 and denied_body == b"denied\n"
    assert [s["path"] for s in origin.seen] == ["/private"]


def node_config(origin_url: str, stage: dict[str, Any]) -> Config:
    return parse_config({
        "server": {"listen": "127.0.0.1:0"},
        "admin": {"listen": "off"},
        "origins": {"default": {"url": origin_url}},
        "chain": [{"type": "wasm", "name": "as-filter", **stage}],
        "log": {"access": "off"},
    }, REPO)


async def test_through_the_node_with_real_sockets(as_wasm, origin):
    config = node_config(origin.url, {"module": str(as_wasm["example"]), "root_id": "as_example",
                                      "config": "tag=node; reply_path=/as-hello"})
    node = Node(config, admin=False)
    await node.start("127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{node.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/via-node", headers={"x-as-name": "erin"}) as resp:
                status, headers, data = resp.status, resp.headers, await resp.read()
            async with session.get(base + "/as-hello", headers={"x-as-name": "frank"}) as resp:
                local_status, local_body = resp.status, await resp.read()
    finally:
        await node.stop(1.0)
    assert status == 200
    assert headers.get("x-as-filter") == "erin"
    assert headers.get("x-as-config") == "node"
    assert json.loads(data)["headers"]["x-as-seen"] == "1"
    assert local_status == 200 and local_body == b"hello frank\n"
    assert [s["path"] for s in origin.seen] == ["/via-node"]


async def test_callout_through_the_node_upstream(as_wasm, origin):
    config = node_config(origin.url, {"module": str(as_wasm["callout"]), "root_id": "as_callout",
                                      "config": "upstream=default; auth_path=/auth"})
    node = Node(config, admin=False)
    await node.start("127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{node.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/members", headers={"x-as-name": "alice"}) as resp:
                status, data = resp.status, await resp.read()
            async with session.get(base + "/members", headers={"x-as-name": "eve"}) as resp:
                denied_status, denied_body = resp.status, await resp.read()
    finally:
        await node.stop(1.0)
    assert status == 200
    assert json.loads(data)["headers"]["x-as-auth"] == "alice-ok"
    assert denied_status == 403 and denied_body == b"denied\n"
    assert [c["x-as-name"] for c in origin.auth_calls] == ["alice", "eve"]
    assert [s["path"] for s in origin.seen] == ["/members"]
