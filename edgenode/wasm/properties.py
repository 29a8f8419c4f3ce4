"""Proxy-Wasm properties: Envoy's attribute set (``proxy_get_property`` /
``proxy_set_property``), pure lookups over the request, the node's routing decision and
the filter.

Paths are segments joined by NUL (``request\\0path``), as Envoy and the SDKs encode
them; a path without NUL is also split on dots as a convenience.  Values as Envoy
serialises them: strings raw, integers and timestamps/durations (nanoseconds) 8-byte
little-endian, booleans one byte, maps as serialized pairs, messages (``node``,
metadata) as protobuf.  Path expressions reach into maps and messages
(``request.headers.<name>``: the comma-joined values; ``node.id``).

A route and a cluster are what the node decides: the route is the one the routing
filter picked (it sets ``edgenode.route_name``) or else the matching ``[[routes]]``
entry (``name``, or ``routes[i]``; ``default`` when none matches); the cluster is the
origin chosen (``edgenode.origin``, set by the routing filter, else the route's).
The full table, with what is not available here, is in docs/sdk-compat.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from edgenode.wasm.abi import encode_map
from edgenode.wasm.contexts import RequestHeaders, ResponseHeaders
from edgenode.wasm.hostcalls.registry import HostVm

if TYPE_CHECKING:
    from edgenode.pipeline.exchange import Exchange

__all__ = ["PluginInfo", "split_path", "get_property", "set_property", "exchange_getter", "exchange_setter",
           "RESPONSE_FLAGS", "WRITABLE_NO_OPS"]

_I64 = struct.Struct("<q")
#: Envoy's response flag bits (StreamInfo::ResponseFlag) for what the node records
RESPONSE_FLAGS = {"timeout": 0x4, "connect_error": 0x20, "protocol_error": 0x800000,
                  "unknown_origin": 0x1000000, "cache": 0x100000, "no_route": 0x100}
#: Envoy's TrafficDirection: an edge node's listener takes inbound traffic
LISTENER_INBOUND = 1
#: settable properties Envoy/Higress act on and the node accepts without an effect
#: (routing happens after the chain, buffering follows the stage's max_body_bytes)
WRITABLE_NO_OPS = frozenset({"clear_route_cache", "set_decoder_buffer_limit",
                             "set_encoder_buffer_limit"})


@dataclass
class PluginInfo:
    name: str
    root_id: str
    vm_id: str
    #: the node's facts: ``worker``, ``node`` (name), ``routes`` (RouteTable),
    #: ``origins`` (name -> OriginConfig)
    node_props: dict[str, Any] = field(default_factory=dict)
    #: properties declared with the ``declare_property`` foreign function: name -> read-only
    declared: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class _Scope:
    plugin: PluginInfo
    ex: "Exchange | None"
    response: ResponseHeaders | None
    vm: HostVm | None


def split_path(raw: bytes) -> tuple[str, ...]:
    text = raw.rstrip(b"\0").decode("utf-8", "replace")
    if "\0" in text:
        return tuple(text.split("\0"))
    return tuple(text.split(".")) if text else ()


def _enc(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return _I64.pack(value)
    return str(value).encode()


def _pb_string(field_no: int, value: str) -> bytes:
    """One protobuf length-delimited field (all the messages here need)."""
    data = value.encode()
    n = len(data)
    size = bytearray()
    while True:
        size.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            break
    return bytes([field_no << 3 | 2]) + bytes(size) + data


def _addr(peer: tuple[str, int]) -> str:
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _joined(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Header pairs as Envoy's attribute map: lower-case names, values comma-joined."""
    out: dict[str, str] = {}
    for k, v in pairs:
        out[k] = f"{out[k]},{v}" if k in out else v
    return out


# --- the node's decision: route, cluster, upstream -------------------------------------

def _route(s: _Scope) -> tuple[str, str] | None:
    """(route name, cluster name) for the stream, or None outside a stream."""
    ex = s.ex
    if ex is None:
        return None
    picked = ex.props.get("route_name")
    routes = s.plugin.node_props.get("routes")
    if routes is None:
        origin = ex.origin
        return (picked or "default"), (origin or "")
    name, origin = routes.match(ex.request.headers.get("host", ""), ex.request.path)
    return (picked or name), (ex.origin or origin)


def _route_name(s: _Scope) -> str | None:
    found = _route(s)
    return None if found is None else found[0]


def _cluster_name(s: _Scope) -> str | None:
    found = _route(s)
    return None if found is None or not found[1] else found[1]


def _origin_config(s: _Scope) -> Any:
    name = _cluster_name(s)
    origins = s.plugin.node_props.get("origins") or {}
    return origins.get(name) if name else None


def _upstream_address(s: _Scope) -> str | None:
    cfg = _origin_config(s)
    return None if cfg is None else _addr((cfg.host, cfg.port))


def _upstream_port(s: _Scope) -> int | None:
    cfg = _origin_config(s)
    return None if cfg is None else cfg.port


def _failure(s: _Scope) -> str | None:
    return None if s.ex is None else s.ex.props.get("upstream_error")


def _attempts(s: _Scope) -> int | None:
    if s.ex is None:
        return None
    return 1 if s.ex.origin_time is not None or _failure(s) else 0


def _metadata(_s: _Scope) -> bytes:
    """An empty ``envoy.config.core.v3.Metadata``: the node's config carries none."""
    return b""


def _node(s: _Scope) -> bytes:
    """``envoy.config.core.v3.Node``: id = the node's name, cluster and user agent."""
    p = s.plugin.node_props
    return (_pb_string(1, str(p.get("node") or "edgenode")) + _pb_string(2, "edgenode")
            + _pb_string(6, "edgenode"))


_NODE_FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "id": lambda p: str(p.get("node") or "edgenode"),
    "cluster": lambda p: "edgenode",
    "user_agent_name": lambda p: "edgenode",
}


# --- request, response ------------------------------------------------------------------

def _request_id(ex: "Exchange") -> str:
    if ex.request_id:  # the front end's (also the X-Request-Id header): one id everywhere
        return ex.request_id
    rid = ex.request.headers.get("x-request-id")
    return rid if rid is not None else str(ex.id)


def _headers_bytes(pairs: list[tuple[str, str]]) -> int:
    return sum(len(k) + len(v) for k, v in pairs)


def _request_size(ex: "Exchange") -> int:
    length = ex.request.headers.get("content-length")
    if length is not None and length.isdigit():
        return int(length)
    body = ex.request.body
    return len(body) if isinstance(body, (bytes, bytearray)) else 0


def _response_code(s: _Scope) -> int | None:
    if s.response is not None:
        return s.response.response.status
    return (s.ex.status or None) if s.ex is not None else None


def _code_details(s: _Scope) -> str | None:
    ex = s.ex
    if ex is None or _response_code(s) is None:
        return None
    for key, value in ex.props.items():
        if key.endswith(".local_reply_details") and value:
            return str(value)
    failure = ex.props.get("upstream_error")
    if failure == "connect_error":
        return "upstream_reset_before_response_started{connection_failure}"
    if failure and failure.endswith("timeout"):
        return "upstream_response_timeout"
    if failure == "unknown_origin":
        return "cluster_not_found"
    if failure:
        return "upstream_reset_before_response_started{protocol_error}"
    if ex.x_cache in ("HIT", "STALE"):
        return "cache.response_from_cache_filter"
    return "via_upstream"


def _response_flags(s: _Scope) -> int | None:
    ex = s.ex
    if ex is None or _response_code(s) is None:
        return None
    flags = 0
    failure = ex.props.get("upstream_error") or ""
    if failure.endswith("timeout"):
        flags |= RESPONSE_FLAGS["timeout"]
    elif failure in RESPONSE_FLAGS:
        flags |= RESPONSE_FLAGS[failure]
    if ex.x_cache in ("HIT", "STALE"):
        flags |= RESPONSE_FLAGS["cache"]
    return flags


def _trailers(s: _Scope) -> dict[str, str] | None:
    if s.response is None:
        return None
    fields = s.response.response.trailers
    return _joined([(k.lower(), v) for k, v in fields.items()]) if fields else {}


def _grpc_status(s: _Scope) -> int | None:
    if s.response is None:
        return None
    for source in (_trailers(s) or {}, _joined(s.response.pairs())):
        value = source.get("grpc-status")
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


def _response_headers(s: _Scope) -> dict[str, str] | None:
    return None if s.response is None else _joined(s.response.pairs())


def _request_headers(s: _Scope) -> dict[str, str] | None:
    return None if s.ex is None else _joined(RequestHeaders(s.ex.request).pairs())


def _filter_state(s: _Scope) -> dict[str, str] | None:
    if s.ex is None:
        return None
    return {k[5:]: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for k, v in s.ex.props.items() if k.startswith("wasm.")}


def _vm_memory(s: _Scope) -> int | None:
    if s.vm is None:
        return None
    s.vm.mem.stale = True
    return len(s.vm.mem.refresh())


def _ex(getter: Callable[["Exchange"], Any]) -> Callable[[_Scope], Any]:
    """A stream-only attribute: NOT_FOUND in the root context."""
    scoped = lambda s: None if s.ex is None else getter(s.ex)  # noqa: E731
    scoped.exchange_getter = getter  # type: ignore[attr-defined]
    return scoped


#: property path -> getter(scope) -> value or None (NOT_FOUND); maps are dicts (path
#: expressions index them), messages are bytes with their fields in _MESSAGE_FIELDS
_PROPS: dict[tuple[str, ...], Callable[[_Scope], Any]] = {
    # Wasm attributes
    ("plugin_name",): lambda s: s.plugin.name,
    ("plugin_root_id",): lambda s: s.plugin.root_id,
    ("plugin_vm_id",): lambda s: s.plugin.vm_id,
    ("plugin_vm_memory",): _vm_memory,
    ("node",): _node,
    ("cluster_name",): _cluster_name,
    ("cluster_metadata",): lambda s: None if _cluster_name(s) is None else _metadata(s),
    ("route_name",): _route_name,
    ("route_metadata",): lambda s: None if _route_name(s) is None else _metadata(s),
    ("listener_direction",): lambda s: LISTENER_INBOUND,
    ("listener_metadata",): _metadata,
    ("upstream_host_metadata",): lambda s: None if _origin_config(s) is None else _metadata(s),
    # request
    ("request", "path"): _ex(lambda ex: ex.request.target),
    ("request", "url_path"): _ex(lambda ex: ex.request.path),
    ("request", "query"): _ex(lambda ex: ex.request.query),
    ("request", "host"): _ex(lambda ex: ex.request.headers.get("host", "")),
    ("request", "scheme"): _ex(lambda ex: ex.request.scheme),
    ("request", "method"): _ex(lambda ex: ex.request.method),
    ("request", "protocol"): _ex(lambda ex: f"HTTP/{ex.request.version}"),
    ("request", "headers"): _request_headers,
    ("request", "headers_bytes"): _ex(lambda ex: _headers_bytes(RequestHeaders(ex.request).pairs())),
    ("request", "referer"): _ex(lambda ex: ex.request.headers.get("referer")),
    ("request", "useragent"): _ex(lambda ex: ex.request.headers.get("user-agent")),
    ("request", "id"): _ex(_request_id),
    ("request", "time"): _ex(lambda ex: int(ex.start_wall * 1e9)),
    ("request", "duration"): _ex(lambda ex: int(ex.elapsed * 1e9)),
    ("request", "size"): _ex(_request_size),
    ("request", "total_size"): _ex(lambda ex: _request_size(ex) + _headers_bytes(
        RequestHeaders(ex.request).pairs())),
    ("x_request_id",): _ex(lambda ex: ex.props.get("x_request_id") or ex.request.headers.get("x-request-id")),
    # response
    ("response", "code"): _response_code,
    ("response", "code_details"): _code_details,
    ("response", "flags"): _response_flags,
    ("response", "grpc_status"): _grpc_status,
    ("response", "headers"): _response_headers,
    ("response", "headers_bytes"): lambda s: None if s.response is None else _headers_bytes(s.response.pairs()),
    ("response", "trailers"): _trailers,
    ("response", "size"): lambda s: None if s.ex is None or not s.ex.response_bytes else s.ex.response_bytes,
    ("response", "backend_latency"): _ex(lambda ex: None if ex.origin_time is None
                                          else int(ex.origin_time * 1e9)),
    # connection (plain TCP: the TLS attributes are absent)
    ("source", "address"): _ex(lambda ex: _addr(ex.client)),
    ("source", "port"): _ex(lambda ex: int(ex.client[1])),
    ("destination", "address"): _ex(lambda ex: _addr(ex.local)),
    ("destination", "port"): _ex(lambda ex: int(ex.local[1])),
    ("connection", "id"): _ex(lambda ex: int(ex.props.get("connection.id", ex.id))),
    ("connection", "mtls"): _ex(lambda ex: False),
    # upstream: the chosen origin
    ("upstream", "address"): _upstream_address,
    ("upstream", "port"): _upstream_port,
    ("upstream", "transport_failure_reason"): _failure,
    ("upstream", "request_attempt_count"): _attempts,
    ("upstream", "num_endpoints"): lambda s: None if _origin_config(s) is None else 1,
    # metadata and filter state
    ("metadata",): _metadata,
    ("filter_state",): _filter_state,
    # configuration (xds.*)
    ("xds", "node"): _node,
    ("xds", "cluster_name"): _cluster_name,
    ("xds", "cluster_metadata"): lambda s: None if _cluster_name(s) is None else _metadata(s),
    ("xds", "route_name"): _route_name,
    ("xds", "route_metadata"): lambda s: None if _route_name(s) is None else _metadata(s),
    ("xds", "virtual_host_name"): _ex(lambda ex: ex.request.headers.get("host", "")),
    ("xds", "virtual_host_metadata"): _ex(lambda ex: b""),
    ("xds", "listener_direction"): lambda s: LISTENER_INBOUND,
    ("xds", "listener_metadata"): _metadata,
    ("xds", "upstream_host_metadata"): lambda s: None if _origin_config(s) is None else _metadata(s),
    ("xds", "filter_chain_name"): _ex(lambda ex: ""),
    # node-specific
    ("edgenode", "worker"): lambda s: s.plugin.node_props.get("worker", 0),
    ("edgenode", "node"): lambda s: s.plugin.node_props.get("node"),
    ("edgenode", "cache_status"): _ex(lambda ex: ex.cache_status),
    ("edgenode", "x_cache"): _ex(lambda ex: ex.x_cache),
    ("edgenode", "origin"): _ex(lambda ex: ex.origin),
    ("edgenode", "route_name"): _route_name,
}

#: the getters of the attributes computed from the exchange alone (see exchange_getter)
_EXCHANGE_GETTERS = {path: g.exchange_getter for path, g in _PROPS.items() if hasattr(g, "exchange_getter")}


def exchange_getter(path: tuple[str, ...]) -> Callable[["Exchange"], Any] | None:
    """The getter of a stream-only attribute computed from the exchange alone, for a host
    that calls it directly in a stream context (its value encodes as get_property does:
    bytes as they are, text as UTF-8); None: the path needs get_property."""
    return _EXCHANGE_GETTERS.get(path)


#: messages whose fields a path expression may name
_MESSAGE_FIELDS = {("node",): _NODE_FIELDS, ("xds", "node"): _NODE_FIELDS}


def get_property(path: tuple[str, ...], plugin: PluginInfo, ex: "Exchange | None",
                 response_headers: ResponseHeaders | None, vm: HostVm | None = None) -> bytes | None:
    """Return the encoded value, or None for NOT_FOUND."""
    scope = _Scope(plugin, ex, response_headers, vm)
    getter = _PROPS.get(path)
    if getter is not None:
        value = getter(scope)
        if value is None:
            return None
        return encode_map(list(value.items())) if isinstance(value, dict) else _enc(value)
    for n in (2, 1):  # path expressions: request.headers.<name>, node.id
        if len(path) == n + 1:
            base = path[:n]
            fields = _MESSAGE_FIELDS.get(base)
            if fields is not None:
                reader = fields.get(path[n])
                return None if reader is None else _enc(reader(plugin.node_props))
            getter = _PROPS.get(base)
            if getter is not None:
                value = getter(scope)
                if isinstance(value, dict):
                    item = value.get(path[n].lower() if base[-1] in ("headers", "trailers") else path[n])
                    return None if item is None else _enc(item)
                return None
    if ex is None:
        return None
    stored = ex.props.get("wasm." + ".".join(path))
    return None if stored is None else _enc(stored)


#: the paths set_property stores on the exchange itself, as a host core may store them
#: without calling it: (an Exchange attribute, else a key of Exchange.props; its name; an
#: empty value stored as None)
_EXCHANGE_SETTERS: dict[tuple[str, ...], tuple[bool, str, bool]] = {
    ("edgenode", "origin"): (True, "origin", True),
    ("edgenode", "route_name"): (False, "route_name", True),
    ("x_request_id",): (False, "x_request_id", False),
}


def exchange_setter(path: tuple[str, ...]) -> tuple[bool, str, bool] | None:
    """How set_property stores ``path`` on a stream's exchange (the text of the value,
    UTF-8 with replacement), for a host that stores it directly; None: the path needs
    set_property."""
    return _EXCHANGE_SETTERS.get(path)


def set_property(path: tuple[str, ...], value: bytes, ex: "Exchange | None",
                 plugin: PluginInfo | None = None) -> bool:
    """``edgenode.origin``/``edgenode.route_name`` record the routing decision;
    ``x_request_id`` and anything else is per-request filter state, readable back by
    every filter of the request.  False (NOT_FOUND): no stream, or a read-only declared
    property that already has a value."""
    if ex is None or not path:
        return False
    setter = _EXCHANGE_SETTERS.get(path)
    if setter is not None:
        is_attr, name, empty_none = setter
        text = value.decode("utf-8", "replace")
        stored = (text or None) if empty_none else text
        if is_attr:
            setattr(ex, name, stored)
        else:
            ex.props[name] = stored
        return True
    key = "wasm." + ".".join(path)
    if plugin is not None and plugin.declared.get(".".join(path)) and key in ex.props:
        return False
    ex.props[key] = value
    return True
