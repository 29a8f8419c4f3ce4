"""Envoy's attribute set through proxy_get_property/proxy_set_property, read from inside
a real filter instance (wat/envoy_probe.wat), with the node's route table and origins."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edgenode.config import OriginConfig, RouteConfig, StageConfig
from edgenode.http.messages import CIMultiDict, Response
from edgenode.proxy.routes import RouteTable
from edgenode.wasm.abi import Status, decode_map
from edgenode.wasm.contexts import ResponseHeaders
from edgenode.wasm.engine import WasmEngine
from edgenode.wasm.properties import RESPONSE_FLAGS
from edgenode.wasm.stage import WasmStage

from envoy_probe import EnvoyProbe
from wasm_helpers import request

WAT = Path(__file__).parent / "wat"
OK, NOT_FOUND = Status.OK, Status.NOT_FOUND
I64 = struct.Struct("<q")

ORIGINS = {"default": OriginConfig("default", "http://127.0.0.1:8081", port=8081),
           "images": OriginConfig("images", "http://10.0.0.9:9000", host="10.0.0.9", port=9000)}
ROUTES = RouteTable([RouteConfig("images", path_prefix="/img", name="img-route"),
                     RouteConfig("default", host="api.example.com")], "default")


@pytest.fixture(params=["core", "python"])
def stage(request: pytest.FixtureRequest, engine: WasmEngine, python_engine: WasmEngine):  # type: ignore[no-untyped-def]
    """Both ways a property is answered: the host core (which calls the common attributes'
    getters itself) and the Python host functions alone."""
    st = WasmStage(StageConfig("wasm", "attrs", {"module": str(WAT / "envoy_probe.wat"),
                                                 "root_id": "r1", "vm_id": "v1"}),
                   base_dir=WAT, engine=python_engine if request.param == "python" else engine,
                   node_props={"worker": 1, "node": "edge-7", "routes": ROUTES, "origins": ORIGINS})
    yield st
    st.vm.close()


def probe_for(stage: WasmStage, path: str = "/img/cat.png?w=10", **headers: str) -> EnvoyProbe:
    return EnvoyProbe(stage.vm, request(path, **headers))


def test_marker_0_2_100_loads_as_0_2_1(stage: WasmStage) -> None:
    assert stage.loaded.version == (0, 2, 1)
    assert stage.loaded.abi_marker == "proxy_abi_version_0_2_100"
    assert stage.stats()["abi"] == "0.2.1"


def test_request_attributes(stage: WasmStage) -> None:
    p = probe_for(stage, X_Request_Id="rid-1", Referer="https://r/", Content_Length="0")
    assert p.prop("request.path") == (OK, b"/img/cat.png?w=10")
    assert p.prop("request\0url_path") == (OK, b"/img/cat.png")
    assert p.prop("request.query") == (OK, b"w=10")
    assert p.prop("request.host") == (OK, b"example.com")
    assert p.prop("request.scheme") == (OK, b"http")
    assert p.prop("request.method") == (OK, b"GET")
    assert p.prop("request.protocol") == (OK, b"HTTP/1.1")
    assert p.prop("request.referer") == (OK, b"https://r/")
    assert p.prop("request.useragent") == (OK, b"test/1")
    assert p.prop("request.id") == (OK, b"rid-1")
    assert p.prop("x_request_id") == (OK, b"rid-1")
    headers = dict(decode_map(p.prop("request.headers")[1]))
    assert headers["x-request-id"] == "rid-1" and headers[":method"] == "GET"
    assert p.prop("request\0headers\0X-Request-Id") == (OK, b"rid-1")  # path expression
    assert p.prop("request.headers.absent")[0] == NOT_FOUND
    hb = I64.unpack(p.prop("request.headers_bytes")[1])[0]
    assert hb == sum(len(k) + len(v) for k, v in decode_map(p.prop("request.headers")[1]))
    assert I64.unpack(p.prop("request.size")[1])[0] == 0
    assert I64.unpack(p.prop("request.total_size")[1])[0] == hb
    assert I64.unpack(p.prop("request.time")[1])[0] == int(p.ex.start_wall * 1e9)
    assert I64.unpack(p.prop("request.duration")[1])[0] >= 0


def test_connection_and_node_attributes(stage: WasmStage) -> None:
    p = probe_for(stage)
    assert p.prop("source.address") == (OK, b"10.1.2.3:5555")
    assert p.prop("source.port") == (OK, I64.pack(5555))
    assert p.prop("destination.address") == (OK, b"127.0.0.1:8080")
    assert p.prop("destination.port") == (OK, I64.pack(8080))
    assert p.prop("connection.id") == (OK, I64.pack(p.ex.id))
    assert p.prop("connection.mtls") == (OK, b"\x00")
    assert p.prop("connection.tls_version")[0] == NOT_FOUND  # plain TCP
    node = p.prop("node")[1]
    assert node == b"\x0a\x06edge-7\x12\x08edgenode\x32\x08edgenode"  # Node{id, cluster, user_agent_name}
    assert p.prop("node.id") == (OK, b"edge-7") and p.prop("xds.node") == (OK, node)
    assert p.prop("listener_direction") == (OK, I64.pack(1))
    assert p.prop("xds.listener_direction") == (OK, I64.pack(1))
    assert p.prop("plugin_name") == (OK, b"attrs")
    assert p.prop("plugin_root_id", root=True) == (OK, b"r1")
    assert p.prop("plugin_vm_id") == (OK, b"v1")
    memory = I64.unpack(p.prop("plugin_vm_memory", root=True)[1])[0]
    assert memory == 2 * 65536  # the probe's two pages
    assert p.prop("edgenode.worker") == (OK, I64.pack(1))
    assert p.prop("request.path", root=True)[0] == NOT_FOUND


def test_route_and_cluster_from_route_table(stage: WasmStage) -> None:
    p = probe_for(stage, "/img/x")
    assert p.prop("route_name") == (OK, b"img-route")
    assert p.prop("xds.route_name") == (OK, b"img-route")
    assert p.prop("cluster_name") == (OK, b"images")
    assert p.prop("xds.cluster_name") == (OK, b"images")
    assert p.prop("upstream.address") == (OK, b"10.0.0.9:9000")
    assert p.prop("upstream.port") == (OK, I64.pack(9000))
    assert p.prop("upstream.num_endpoints") == (OK, I64.pack(1))
    assert p.prop("cluster_metadata") == (OK, b"") and p.prop("route_metadata") == (OK, b"")
    q = probe_for(stage, "/other", Host="api.example.com")
    assert q.prop("route_name") == (OK, b"routes[1]") and q.prop("cluster_name") == (OK, b"default")
    r = probe_for(stage, "/nothing")
    assert r.prop("route_name") == (OK, b"default")


def test_routing_decision_overrides_route_table(stage: WasmStage) -> None:
    p = probe_for(stage, "/img/x")
    assert p.set_prop("edgenode.route_name", b"canary") == OK
    assert p.set_prop("edgenode.origin", b"default") == OK
    assert p.prop("route_name") == (OK, b"canary")
    assert p.prop("cluster_name") == (OK, b"default")
    assert p.ex.origin == "default"
    assert p.prop("upstream.address") == (OK, b"127.0.0.1:8081")


def test_response_attributes(stage: WasmStage) -> None:
    p = probe_for(stage)
    assert p.prop("response.code")[0] == NOT_FOUND  # no response yet
    resp = Response(200, CIMultiDict({"Content-Type": "text/plain", "grpc-status": "0"}), b"x")
    resp.trailers = CIMultiDict({"grpc-status": "14"})
    p.ctx.set_response(resp)
    p.ex.origin_time = 0.25
    assert p.prop("response.code") == (OK, I64.pack(200))
    assert p.prop("response.code_details") == (OK, b"via_upstream")
    assert p.prop("response.flags") == (OK, I64.pack(0))
    assert p.prop("response.grpc_status") == (OK, I64.pack(14))  # trailers win
    assert dict(decode_map(p.prop("response.trailers")[1])) == {"grpc-status": "14"}
    assert p.prop("response.headers.content-type") == (OK, b"text/plain")
    assert p.prop("response.backend_latency") == (OK, I64.pack(250_000_000))
    assert p.prop("upstream.request_attempt_count") == (OK, I64.pack(1))
    p.ex.x_cache = "HIT"
    assert p.prop("response.code_details") == (OK, b"cache.response_from_cache_filter")
    assert p.prop("response.flags") == (OK, I64.pack(RESPONSE_FLAGS["cache"]))


def test_upstream_failure_attributes(stage: WasmStage) -> None:
    p = probe_for(stage)
    p.ctx.set_response(Response(502, CIMultiDict(), b""))
    p.ex.props["upstream_error"] = "connect_error"
    assert p.prop("upstream.transport_failure_reason") == (OK, b"connect_error")
    assert p.prop("response.code_details") == (OK, b"upstream_reset_before_response_started{connection_failure}")
    assert p.prop("response.flags") == (OK, I64.pack(0x20))  # UpstreamConnectionFailure
    p.ex.props["upstream_error"] = "first_byte_timeout"
    assert p.prop("response.flags") == (OK, I64.pack(0x4))  # UpstreamRequestTimeout
    assert p.prop("response.code_details") == (OK, b"upstream_response_timeout")


def test_writable_properties(stage: WasmStage) -> None:
    p = probe_for(stage)
    assert p.set_prop("x_request_id", b"from-filter") == OK
    assert p.prop("x_request_id") == (OK, b"from-filter")
    for name in ("clear_route_cache", "set_decoder_buffer_limit", "set_encoder_buffer_limit"):
        assert p.set_prop(name, b"off") == OK  # documented no-ops, readable back
        assert p.prop(name) == (OK, b"off")
    assert p.set_prop("custom_log", b'{"a":1}') == OK
    state = dict(decode_map(p.prop("filter_state")[1]))
    assert state["custom_log"] == '{"a":1}' and state["clear_route_cache"] == "off"
    assert p.set_prop("anything", b"v", root=True) == NOT_FOUND  # no request in the root context


def test_routing_decision_stored_as_set_property_stores_it(stage: WasmStage) -> None:
    """The host core stores these paths on the exchange itself: the same values as
    set_property (text with replacement characters; an empty origin or route is None)."""
    p = probe_for(stage, "/img/x")
    assert p.set_prop("edgenode.origin", b"images\xff") == OK
    assert p.ex.origin == "images\ufffd"
    assert p.set_prop("edgenode.origin", b"") == OK and p.ex.origin is None
    assert p.set_prop("edgenode.route_name", b"") == OK and p.ex.props["route_name"] is None
    assert p.set_prop("x_request_id", b"") == OK and p.ex.props["x_request_id"] == ""
    assert p.set_prop("edgenode.origin", b"images", root=True) == NOT_FOUND
