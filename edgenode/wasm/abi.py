"""Proxy-Wasm ABI constants and the header-map wire codec (pure, no I/O).

Numeric values follow docs/proxy-wasm-abi.md §1; the map encoding follows §2.
"""

from __future__ import annotations

import struct
from enum import IntEnum

__all__ = [
    "Status", "LogLevel", "BufferType", "MapType", "StreamType", "MetricType",
    "ABI_VERSIONS", "encode_map", "decode_map", "encode_text", "decode_text", "MapDecodeError", "HOOKS",
    "STREAM_HOOKS", "REQUEST_TRAILERS", "RESPONSE_TRAILERS",
]

#: the exports the host may call (looked up once per instance)
HOOKS = ("proxy_on_context_create", "proxy_on_vm_start", "proxy_on_configure", "proxy_on_tick",
         "proxy_on_done", "proxy_on_log", "proxy_on_delete", "proxy_on_request_headers",
         "proxy_on_request_body", "proxy_on_response_headers", "proxy_on_response_body",
         "proxy_on_http_call_response", "proxy_on_queue_ready", "proxy_on_foreign_function",
         "proxy_on_memory_allocate", "malloc", "_initialize", "_start", "main")
#: bound on a stream's first use, not per instance: few streams carry trailers
REQUEST_TRAILERS, RESPONSE_TRAILERS = "proxy_on_request_trailers", "proxy_on_response_trailers"
#: the per-stream callbacks: a module without any (nor a trailers hook) needs no stream context
STREAM_HOOKS = ("proxy_on_request_headers", "proxy_on_request_body", "proxy_on_response_headers",
                "proxy_on_response_body", "proxy_on_log", "proxy_on_done")


class Status(IntEnum):
    OK = 0
    NOT_FOUND = 1
    BAD_ARGUMENT = 2
    SERIALIZATION_FAILURE = 3
    PARSE_FAILURE = 4
    INVALID_MEMORY_ACCESS = 6
    EMPTY = 7
    CAS_MISMATCH = 8
    INTERNAL_FAILURE = 10
    BROKEN_CONNECTION = 11
    UNIMPLEMENTED = 12


class LogLevel(IntEnum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4
    CRITICAL = 5


class BufferType(IntEnum):
    HTTP_REQUEST_BODY = 0
    HTTP_RESPONSE_BODY = 1
    DOWNSTREAM_DATA = 2
    UPSTREAM_DATA = 3
    HTTP_CALL_RESPONSE_BODY = 4
    GRPC_CALL_MESSAGE = 5
    VM_CONFIGURATION = 6
    PLUGIN_CONFIGURATION = 7
    FOREIGN_FUNCTION_ARGUMENTS = 8


class MapType(IntEnum):
    HTTP_REQUEST_HEADERS = 0
    HTTP_REQUEST_TRAILERS = 1
    HTTP_RESPONSE_HEADERS = 2
    HTTP_RESPONSE_TRAILERS = 3
    GRPC_CALL_INITIAL_METADATA = 4
    GRPC_CALL_TRAILING_METADATA = 5
    HTTP_CALL_RESPONSE_HEADERS = 6
    HTTP_CALL_RESPONSE_TRAILERS = 7


class StreamType(IntEnum):
    HTTP_REQUEST = 0
    HTTP_RESPONSE = 1
    DOWNSTREAM = 2
    UPSTREAM = 3


class MetricType(IntEnum):
    COUNTER = 0
    GAUGE = 1
    HISTOGRAM = 2


#: export marker -> version tuple; anything else is refused (as cpp-host does)
ABI_VERSIONS = {
    "proxy_abi_version_0_2_1": (0, 2, 1),
    "proxy_abi_version_0_2_0": (0, 2, 0),
    "proxy_abi_version_0_1_0": (0, 1, 0),
}

_U32 = struct.Struct("<I")


class MapDecodeError(ValueError):
    """The guest sent a serialized map whose lengths do not add up."""


_HEADS: dict[int, struct.Struct] = {}


def _head(n: int) -> struct.Struct:
    """The count + sizes header format for ``n`` pairs (compiled once per count)."""
    st = _HEADS.get(n)
    if st is None:
        st = _HEADS[n] = struct.Struct(f"<{1 + 2 * n}I")
    return st


def encode_text(text: str) -> bytes:
    """A header name or value as its wire bytes.

    The node holds header text as Latin-1 (one character per byte on the wire, as the
    front end and the origin client decode and encode it), so filters get exactly the
    bytes that arrived.  Text with characters past U+00FF cannot have come off the wire
    (a value set in Python); it goes out as UTF-8.
    """
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def decode_text(data: bytes | memoryview) -> str:
    """Header bytes from a filter as the node's Latin-1 text: written out byte for byte."""
    return str(data, "latin-1")


def encode_map(pairs: list[tuple[str, str]]) -> bytes:
    """Serialize pairs; an empty map is the empty byte string (AS SDK needs size 0).

    One header pack and one join: ``count, (klen, vlen)*n`` then ``k\\0v\\0...``.
    """
    n = len(pairs)
    if not n:
        return b""
    sizes: list[int] = [n]
    parts: list[bytes] = []
    for k, v in pairs:
        kb, vb = encode_text(k), encode_text(v)
        sizes.append(len(kb))
        sizes.append(len(vb))
        parts.append(kb)
        parts.append(vb)
    parts.append(b"")
    return _head(n).pack(*sizes) + b"\0".join(parts)


def decode_map(data: bytes) -> list[tuple[str, str]]:
    """Parse a serialized map (names and values as wire text, see ``decode_text``);
    accept b"", b"\\0" and a zero count as empty."""
    size = len(data)
    if size <= 1:
        if data in (b"", b"\0"):
            return []
        raise MapDecodeError("map shorter than its count field")
    if size < 4:
        raise MapDecodeError("map shorter than its count field")
    (n,) = _U32.unpack_from(data, 0)
    if n == 0:
        return []
    pos = 4 + 8 * n
    if pos > size:
        raise MapDecodeError(f"map declares {n} pairs but holds {size} bytes")
    sizes = struct.unpack_from(f"<{2 * n}I", data, 4)
    out: list[tuple[str, str]] = []
    for i in range(0, 2 * n, 2):
        ks, vs = sizes[i], sizes[i + 1]
        kend = pos + ks
        end = kend + vs + 2
        if end > size:
            raise MapDecodeError("map entry runs past the end of the buffer")
        out.append((data[pos:kend].decode("latin-1"), data[kend + 1:end - 1].decode("latin-1")))
        pos = end
    return out
