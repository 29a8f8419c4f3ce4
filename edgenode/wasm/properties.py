"""Proxy-Wasm properties (``proxy_get_property`` / ``proxy_set_property``), pure lookups.

Paths are segments joined by NUL (``request\\0path``), as Envoy and the SDKs encode
them; a path without NUL is also split on dots as a convenience.  Values: strings raw,
integers 8-byte little-endian, maps as serialized pairs.  The full list is in
docs/filters-abi.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from edgenode.wasm.abi import encode_map
from edgenode.wasm.contexts import RequestHeaders, ResponseHeaders

if TYPE_CHECKING:
    from edgenode.pipeline.exchange import Exchange

__all__ = ["PluginInfo", "split_path", "get_property", "set_property"]

_I64 = struct.Struct("<q")


@dataclass
class PluginInfo:
    name: str
    root_id: str
    vm_id: str
    node_props: dict[str, Any] = field(default_factory=dict)


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


def _addr(peer: tuple[str, int]) -> str:
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _request_id(ex: "Exchange") -> str:
    if ex.request_id:  # the front end's (also the X-Request-Id header): one id everywhere
        return ex.request_id
    rid = ex.request.headers.get("x-request-id")
    return rid if rid is not None else str(ex.id)


#: property path -> getter; built once (a lookup is one dict probe and one call)
_PLUGIN_PROPS: dict[tuple[str, ...], Callable[[PluginInfo], Any]] = {
    ("plugin_name",): lambda p: p.name,
    ("plugin_root_id",): lambda p: p.root_id,
    ("plugin_vm_id",): lambda p: p.vm_id,
    ("edgenode", "worker"): lambda p: p.node_props.get("worker", 0),
    ("edgenode", "node"): lambda p: p.node_props.get("node"),
}
_EXCHANGE_PROPS: dict[tuple[str, ...], Callable[["Exchange"], Any]] = {
    ("request", "path"): lambda ex: ex.request.target,
    ("request", "url_path"): lambda ex: ex.request.path,
    ("request", "query"): lambda ex: ex.request.query,
    ("request", "host"): lambda ex: ex.request.headers.get("host", ""),
    ("request", "scheme"): lambda ex: ex.request.scheme,
    ("request", "method"): lambda ex: ex.request.method,
    ("request", "protocol"): lambda ex: f"HTTP/{ex.request.version}",
    ("request", "headers"): lambda ex: encode_map(RequestHeaders(ex.request).pairs()),
    ("request", "referer"): lambda ex: ex.request.headers.get("referer"),
    ("request", "useragent"): lambda ex: ex.request.headers.get("user-agent"),
    ("request", "id"): _request_id,
    ("request", "time"): lambda ex: int(ex.start_wall * 1e9),
    ("request", "duration"): lambda ex: int(ex.elapsed * 1e9),
    ("source", "address"): lambda ex: _addr(ex.client),
    ("source", "port"): lambda ex: int(ex.client[1]),
    ("destination", "address"): lambda ex: _addr(ex.local),
    ("destination", "port"): lambda ex: int(ex.local[1]),
    ("connection", "id"): lambda ex: int(ex.props.get("connection.id", ex.id)),
    ("edgenode", "cache_status"): lambda ex: ex.cache_status,
    ("edgenode", "x_cache"): lambda ex: ex.x_cache,
    ("edgenode", "origin"): lambda ex: ex.origin,
    ("response", "code"): lambda ex: ex.status or None,
}


def get_property(path: tuple[str, ...], plugin: PluginInfo, ex: "Exchange | None",
                 response_headers: ResponseHeaders | None) -> bytes | None:
    """Return the encoded value, or None for NOT_FOUND."""
    getter = _EXCHANGE_PROPS.get(path)
    if getter is not None:
        if ex is None:
            return None
        if response_headers is not None and path == ("response", "code"):
            return _enc(response_headers.response.status)
        value = getter(ex)
        return None if value is None else _enc(value)
    pgetter = _PLUGIN_PROPS.get(path)
    if pgetter is not None:
        value = pgetter(plugin)
        return None if value is None else _enc(value)
    if ex is None:
        return None
    if path == ("response", "headers") and response_headers is not None:
        return encode_map(response_headers.pairs())
    stored = ex.props.get("wasm." + ".".join(path))
    return None if stored is None else _enc(stored)


def set_property(path: tuple[str, ...], value: bytes, ex: "Exchange | None") -> bool:
    """``edgenode.origin`` picks the origin; anything else is per-request filter state."""
    if ex is None or not path:
        return False
    if path == ("edgenode", "origin"):
        ex.origin = value.decode("utf-8", "replace") or None
        return True
    ex.props["wasm." + ".".join(path)] = value
    return True
