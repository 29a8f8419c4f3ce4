"""``wasi:http/types`` and ``wasi:http/outgoing-handler``: the request handler's world.

Fields, the incoming request and its body, the outgoing response and its body and the
response outparam are implemented in C (hostcall_http.c).  Outgoing requests, their
options and what answers them are Python: they go to the node's origin pools, to
allowed upstreams only (``Capabilities.outbound``), and use the C fields, bodies and
streams through the table.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import Future
from typing import Any

from multidict import CIMultiDict

from edgenode.functions._hostcall import P_PYTHON, Fields, Sink, Source, add_native
from edgenode.functions.capi import OWN, TYPES
from edgenode.functions.interfaces import Interface
from edgenode.functions.invocation import Invocation
from edgenode.functions.table import Resource

__all__ = ["INTERFACES", "TYPE_NAMES"]

V = "@0.2.0"
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
METHODS = ("get", "head", "post", "put", "delete", "connect", "options", "trace", "patch")
METHOD_VARIANT = ("variant", {**{m: None for m in METHODS}, "other": "string"})
SCHEME_VARIANT = ("variant", {"HTTP": None, "HTTPS": None, "other": "string"})
_FIELD_SIZE = ("option", ("record", ("field-name", ("option", "string")), ("field-size", ("option", "u32"))))
#: error-code: cases the host produces carry their payload types; the rest are listed so
#: any case the guest sends decodes
ERROR_CODE = ("variant", {
    "DNS-timeout": None, "DNS-error": ("record", ("rcode", ("option", "string")), ("info-code", ("option", "u16"))),
    "destination-not-found": None, "destination-unavailable": None, "destination-IP-prohibited": None,
    "destination-IP-unroutable": None, "connection-refused": None, "connection-terminated": None,
    "connection-timeout": None, "connection-read-timeout": None, "connection-write-timeout": None,
    "connection-limit-reached": None, "TLS-protocol-error": None, "TLS-certificate-error": None,
    "TLS-alert-received": ("record", ("alert-id", ("option", "u8")), ("alert-message", ("option", "string"))),
    "HTTP-request-denied": None, "HTTP-request-length-required": None,
    "HTTP-request-body-size": ("option", "u64"), "HTTP-request-method-invalid": None,
    "HTTP-request-URI-invalid": None, "HTTP-request-URI-too-long": None,
    "HTTP-request-header-section-size": ("option", "u32"), "HTTP-request-header-size": _FIELD_SIZE,
    "HTTP-request-trailer-section-size": ("option", "u32"), "HTTP-request-trailer-size": _FIELD_SIZE[1],
    "HTTP-response-incomplete": None, "HTTP-response-header-section-size": ("option", "u32"),
    "HTTP-response-header-size": _FIELD_SIZE[1], "HTTP-response-body-size": ("option", "u64"),
    "HTTP-response-trailer-section-size": ("option", "u32"), "HTTP-response-trailer-size": _FIELD_SIZE[1],
    "HTTP-response-transfer-coding": ("option", "string"), "HTTP-response-content-coding": ("option", "string"),
    "HTTP-response-timeout": None, "HTTP-upgrade-failed": None, "HTTP-protocol-error": None,
    "loop-detected": None, "configuration-error": None, "internal-error": ("option", "string"),
})
UNIT_RESULT = ("result", None, None)
FIELDS = (OWN, TYPES["fields"])


# --- resources written in Python --------------------------------------------------------------
class OutgoingRequest(Resource):
    TYPE, WIT = 12, "outgoing-request"
    __slots__ = ("headers", "method", "path", "scheme", "authority", "body")

    def __init__(self, headers: list[tuple[str, bytes]]) -> None:
        self.headers = headers
        self.method: Any = ("get", None)
        self.path: str | None = None
        self.scheme: Any = None
        self.authority: str | None = None
        #: the outgoing-body's sink once asked for
        self.body: Sink | None = None


class RequestOptions(Resource):
    TYPE, WIT = 13, "request-options"
    __slots__ = ("timeouts",)

    def __init__(self) -> None:
        self.timeouts: dict[str, int | None] = {"connect": None, "first-byte": None, "between-bytes": None}


class IncomingResponse(Resource):
    TYPE, WIT = 15, "incoming-response"
    __slots__ = ("status", "headers", "source", "consumed")

    def __init__(self, status: int, headers: list[tuple[str, bytes]], source: Source) -> None:
        self.status = status
        self.headers = headers
        self.source = source
        self.consumed = False


class FutureIncomingResponse(Resource):
    TYPE, WIT = 20, "future-incoming-response"
    __slots__ = ("future", "taken", "denied")

    def __init__(self, future: Future[Any] | None, denied: Any = None) -> None:
        self.future = future
        self.taken = False
        self.denied = denied


# --- wasi:http/types ------------------------------------------------------------------------
types = Interface("wasi:http/types" + V, {
    **{name: TYPES[name] for name in ("fields", "incoming-request", "response-outparam", "incoming-body",
                                      "future-trailers", "outgoing-response", "outgoing-body")},
    "outgoing-request": OutgoingRequest.TYPE, "request-options": RequestOptions.TYPE,
    "incoming-response": IncomingResponse.TYPE, "future-incoming-response": FutureIncomingResponse.TYPE,
})


def _headers_view(inv: Invocation, items: list[tuple[str, bytes]], parent: int) -> int:
    """Immutable fields, a child of ``parent`` (the headers of a request or response)."""
    return inv.table.add(Fields(items, True), parent)


# outgoing-request / request-options
@types.fn("[constructor]outgoing-request", (OWN, OutgoingRequest.TYPE))
def _out_request(inv: Invocation, headers: int) -> int:
    return inv.table.add(OutgoingRequest(inv.table.take(headers, Fields).items()))


@types.fn("[method]outgoing-request.body", ("result", (OWN, TYPES["outgoing-body"]), None))
def _out_req_body(inv: Invocation, rep: int) -> Any:
    req = inv.table.get(rep, OutgoingRequest)
    if req.body is not None:
        return ("err", None)
    req.body = Sink(inv.limits.max_body_bytes)
    return ("ok", add_native(inv.table, TYPES["outgoing-body"], req.body))


def _accessor(attr: str, spec: Any, validate: Any = None) -> None:
    def get(inv: Invocation, rep: int) -> Any:
        return getattr(inv.table.get(rep, OutgoingRequest), attr)

    def set_(inv: Invocation, rep: int, value: Any) -> Any:
        req = inv.table.get(rep, OutgoingRequest)
        if validate is not None and not validate(value):
            return ("err", None)
        setattr(req, attr, value)
        return ("ok", None)

    wit = {"path": "path-with-query"}.get(attr, attr)
    types.fn(f"[method]outgoing-request.{wit}", spec)(get)
    types.fn(f"[method]outgoing-request.set-{wit}", UNIT_RESULT)(set_)


def _valid_method(m: Any) -> bool:
    return m[0] in METHODS or bool(_TOKEN.match(str(m[1]).encode()))


_accessor("method", METHOD_VARIANT, _valid_method)
_accessor("path", ("option", "string"), lambda v: v is None or (v.startswith("/") or v.startswith("*")))
_accessor("scheme", ("option", SCHEME_VARIANT))
_accessor("authority", ("option", "string"))


@types.fn("[method]outgoing-request.headers", FIELDS)
def _out_req_headers(inv: Invocation, rep: int) -> int:
    return _headers_view(inv, inv.table.get(rep, OutgoingRequest).headers, rep)


@types.fn("[constructor]request-options", (OWN, RequestOptions.TYPE))
def _options_new(inv: Invocation) -> int:
    return inv.table.add(RequestOptions())


for _what in ("connect", "first-byte", "between-bytes"):
    def _get(inv: Invocation, rep: int, _w: str = _what) -> int | None:
        return inv.table.get(rep, RequestOptions).timeouts[_w]

    def _set(inv: Invocation, rep: int, ns: int | None, _w: str = _what) -> Any:
        inv.table.get(rep, RequestOptions).timeouts[_w] = ns
        return ("ok", None)

    types.fn(f"[method]request-options.{_what}-timeout", ("option", "u64"))(_get)
    types.fn(f"[method]request-options.set-{_what}-timeout", UNIT_RESULT)(_set)


# incoming-response / future-incoming-response
@types.fn("[method]incoming-response.status", "u16")
def _resp_status(inv: Invocation, rep: int) -> int:
    return inv.table.get(rep, IncomingResponse).status


@types.fn("[method]incoming-response.headers", FIELDS)
def _resp_headers(inv: Invocation, rep: int) -> int:
    return _headers_view(inv, inv.table.get(rep, IncomingResponse).headers, rep)


@types.fn("[method]incoming-response.consume", ("result", (OWN, TYPES["incoming-body"]), None))
def _resp_consume(inv: Invocation, rep: int) -> Any:
    resp = inv.table.get(rep, IncomingResponse)
    if resp.consumed:
        return ("err", None)
    resp.consumed = True
    return ("ok", add_native(inv.table, TYPES["incoming-body"], resp.source, rep))


@types.fn("[method]future-incoming-response.subscribe", (OWN, TYPES["pollable"]))
def _future_subscribe(inv: Invocation, rep: int) -> int:
    fut = inv.table.get(rep, FutureIncomingResponse)
    return add_native(inv.table, TYPES["pollable"], lambda: fut.future is None or fut.future.done(), rep,
                      P_PYTHON)


@types.fn("[method]future-incoming-response.get",
          ("option", ("result", ("result", (OWN, IncomingResponse.TYPE), ERROR_CODE), None)))
def _future_get(inv: Invocation, rep: int) -> Any:
    fut = inv.table.get(rep, FutureIncomingResponse)
    if fut.future is not None and not fut.future.done():
        return None
    if fut.taken:
        return ("err", None)
    fut.taken = True
    if fut.denied is not None:
        return ("ok", ("err", fut.denied))
    assert fut.future is not None
    exc = fut.future.exception()
    if exc is not None:
        return ("ok", ("err", _error_code(exc)))
    status, headers, body, trailers = fut.future.result()
    src = Source(body)
    src.trailers = trailers
    return ("ok", ("ok", inv.table.add(IncomingResponse(status, headers, src))))


def _error_code(exc: BaseException) -> Any:
    from edgenode.http.errors import OriginConnectError, OriginTimeout

    if isinstance(exc, OriginTimeout):
        return ("connection-timeout", None) if exc.kind == "connect" else ("HTTP-response-timeout", None)
    if isinstance(exc, OriginConnectError):
        return ("connection-refused", None)
    if isinstance(exc, asyncio.TimeoutError):
        return ("HTTP-response-timeout", None)
    return ("internal-error", str(exc) or type(exc).__name__)


# --- wasi:http/outgoing-handler -----------------------------------------------------------
outgoing = Interface("wasi:http/outgoing-handler" + V)


@outgoing.fn("handle", ("result", (OWN, FutureIncomingResponse.TYPE), ERROR_CODE))
def _outgoing_handle(inv: Invocation, rep: int, options: int | None) -> Any:
    req = inv.table.take(rep, OutgoingRequest)
    timeouts = inv.table.take(options, RequestOptions).timeouts if options is not None else {}
    outbound = inv.caps.outbound
    authority = req.authority or ""
    upstream = outbound.resolve(authority) if outbound is not None else None
    if upstream is None:
        inv.log.warning("outgoing request to %r denied (not in allowed_outbound_hosts)", authority,
                        extra={"function": inv.name})
        return ("err", ("HTTP-request-denied", None))
    if not inv.threaded or inv.loop is None:
        return ("err", ("internal-error", "outgoing HTTP needs threaded execution"))
    method = req.method[0].upper() if req.method[0] != "other" else req.method[1]
    headers = CIMultiDict((k, v.decode("latin-1")) for k, v in req.headers)
    body = req.body
    loop = inv.loop

    def start(_: Any = None) -> None:
        data = body.data() if body is not None else b""
        fut.future = asyncio.run_coroutine_threadsafe(
            outbound.call(upstream, method, req.path or "/", headers, data, timeouts), loop)
        fut.future.add_done_callback(lambda _f: inv.notify())

    fut = FutureIncomingResponse(None)
    if body is not None and not body.closed:
        fut.future = Future()  # a placeholder until the body is finished
        body.on_close = start
    else:
        start()
    return ("ok", inv.table.add(fut))


INTERFACES = [types, outgoing]
#: WIT names of the resource types defined here in Python
TYPE_NAMES = {cls.TYPE: cls.WIT for cls in (OutgoingRequest, RequestOptions, IncomingResponse,
                                            FutureIncomingResponse)}
