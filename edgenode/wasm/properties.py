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


def _exchange_props(ex: "Exchange") -> dict[tuple[str, ...], Callable[[], Any]]:
    req = ex.request
    resp_status = ex.status
    return {
        ("request", "path"): lambda: req.target,
        ("request", "url_path"): lambda: req.path,
        ("request", "query"): lambda: req.query,
        ("request", "host"): lambda: req.headers.get("host", ""),
        ("request", "scheme"): lambda: req.scheme,
        ("request", "method"): lambda: req.method,
        ("request", "protocol"): lambda: f"HTTP/{req.version}",
        ("request", "headers"): lambda: encode_map(RequestHeaders(req).pairs()),
        ("request", "referer"): lambda: req.headers.get("referer"),
        ("request", "useragent"): lambda: req.headers.get("user-agent"),
        ("request", "id"): lambda: req.headers.get("x-request-id", str(ex.id)),
        ("request", "time"): lambda: int(ex.start_wall * 1e9),
        ("request", "duration"): lambda: int(ex.elapsed * 1e9),
        ("source", "address"): lambda: _addr(ex.client),
        ("source", "port"): lambda: int(ex.client[1]),
        ("destination", "address"): lambda: _addr(ex.local),
        ("destination", "port"): lambda: int(ex.local[1]),
        ("connection", "id"): lambda: int(ex.props.get("connection.id", ex.id)),
        ("edgenode", "cache_status"): lambda: ex.cache_status,
        ("edgenode", "x_cache"): lambda: ex.x_cache,
        ("edgenode", "origin"): lambda: ex.origin,
        ("response", "code"): lambda: resp_status or None,
    }


def get_property(path: tuple[str, ...], plugin: PluginInfo, ex: "Exchange | None",
                 response_headers: ResponseHeaders | None) -> bytes | None:
    """Return the encoded value, or None for NOT_FOUND."""
    static = {
        ("plugin_name",): plugin.name,
        ("plugin_root_id",): plugin.root_id,
        ("plugin_vm_id",): plugin.vm_id,
        ("edgenode", "worker"): plugin.node_props.get("worker", 0),
        ("edgenode", "node"): plugin.node_props.get("node"),
    }
    if path in static:
        value = static[path]
        return None if value is None else _enc(value)
    if ex is None:
        return None
    if path == ("response", "code") and response_headers is not None:
        return _enc(response_headers.response.status)
    if path == ("response", "headers") and response_headers is not None:
        return encode_map(response_headers.pairs())
    getter = _exchange_props(ex).get(path)
    if getter is not None:
        value = getter()
        return None if value is None else _enc(value)
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
