"""``wasi:http/types`` and ``wasi:http/outgoing-handler``: the request handler's world.

Fields follow WASI 0.2: names must be tokens, values free of CR/LF/NUL, hop-by-hop and
``host`` fields are forbidden, and fields handed to a request/response (or read from
an incoming one) are immutable.  A body is taken once (``consume``/``body``), its stream
once (``stream``/``write``), and a body is finished only after its stream was dropped:
anything else traps the guest.  Outgoing requests go to the node's origin pools, to
allowed upstreams only (``Capabilities.outbound``), with their bodies buffered.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import Future
from typing import Any

from multidict import CIMultiDict

from edgenode.functions.capi import OWN, GuestTrap
from edgenode.functions.interfaces import Interface
from edgenode.functions.invocation import ByteSink, ByteSource, Invocation, ResponseHead
from edgenode.functions.table import Resource
from edgenode.functions.wasi_host import InputStream, OutputStream, Pollable
from edgenode.http.messages import Request

__all__ = ["INTERFACES", "Fields", "IncomingRequest", "ResponseOutparam", "IncomingBody",
           "FORBIDDEN_FIELDS"]

V = "@0.2.0"
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
FORBIDDEN_FIELDS = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                              "proxy-authorization", "te", "transfer-encoding", "upgrade", "host",
                              "http2-settings"})
METHODS = ("get", "head", "post", "put", "delete", "connect", "options", "trace", "patch")
METHOD_VARIANT = ("variant", {**{m: None for m in METHODS}, "other": "string"})
SCHEME_VARIANT = ("variant", {"HTTP": None, "HTTPS": None, "other": "string"})
HEADER_ERROR = ("variant", {"invalid-syntax": None, "forbidden": None, "immutable": None})
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


# --- resources ----------------------------------------------------------------------------
class Fields(Resource):
    TYPE, WIT = 10, "fields"
    __slots__ = ("items", "immutable")

    def __init__(self, items: list[tuple[str, bytes]] | None = None, immutable: bool = False) -> None:
        super().__init__()
        self.items = items if items is not None else []
        self.immutable = immutable

    def multidict(self) -> CIMultiDict[str]:
        return CIMultiDict((k, v.decode("latin-1")) for k, v in self.items)


class IncomingRequest(Resource):
    TYPE, WIT = 11, "incoming-request"
    __slots__ = ("request", "body_source", "consumed")

    def __init__(self, request: Request, body_source: ByteSource) -> None:
        super().__init__()
        self.request = request
        self.body_source = body_source
        self.consumed = False


class OutgoingRequest(Resource):
    TYPE, WIT = 12, "outgoing-request"
    __slots__ = ("headers", "method", "path", "scheme", "authority", "body")

    def __init__(self, headers: Fields) -> None:
        super().__init__()
        self.headers = headers
        self.method: Any = ("get", None)
        self.path: str | None = None
        self.scheme: Any = None
        self.authority: str | None = None
        self.body: OutgoingBody | None = None


class RequestOptions(Resource):
    TYPE, WIT = 13, "request-options"
    __slots__ = ("timeouts",)

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: dict[str, int | None] = {"connect": None, "first-byte": None, "between-bytes": None}


class ResponseOutparam(Resource):
    TYPE, WIT = 14, "response-outparam"


class IncomingResponse(Resource):
    TYPE, WIT = 15, "incoming-response"
    __slots__ = ("status", "headers", "source", "consumed")

    def __init__(self, status: int, headers: list[tuple[str, bytes]], source: ByteSource) -> None:
        super().__init__()
        self.status = status
        self.headers = headers
        self.source = source
        self.consumed = False


class IncomingBody(Resource):
    TYPE, WIT = 16, "incoming-body"
    __slots__ = ("source", "streamed")

    def __init__(self, source: ByteSource) -> None:
        super().__init__()
        self.source = source
        self.streamed = False


class FutureTrailers(Resource):
    TYPE, WIT = 17, "future-trailers"
    __slots__ = ("source", "taken")

    def __init__(self, source: ByteSource) -> None:
        super().__init__()
        self.source = source
        self.taken = False


class OutgoingResponse(Resource):
    TYPE, WIT = 18, "outgoing-response"
    __slots__ = ("status", "headers", "body")

    def __init__(self, headers: Fields) -> None:
        super().__init__()
        self.status = 200
        self.headers = headers
        self.body: OutgoingBody | None = None


class OutgoingBody(Resource):
    TYPE, WIT = 19, "outgoing-body"
    __slots__ = ("sink", "written", "finished", "trailers", "on_finish")

    def __init__(self, sink: ByteSink) -> None:
        super().__init__()
        self.sink = sink
        self.written = False
        self.finished = False
        self.trailers: Fields | None = None
        self.on_finish: Any = None


class FutureIncomingResponse(Resource):
    TYPE, WIT = 20, "future-incoming-response"
    __slots__ = ("future", "taken", "denied")

    def __init__(self, future: Future[Any] | None, denied: Any = None) -> None:
        super().__init__()
        self.future = future
        self.taken = False
        self.denied = denied


# --- wasi:http/types ------------------------------------------------------------------------
types = Interface("wasi:http/types" + V, {
    "fields": Fields, "incoming-request": IncomingRequest, "outgoing-request": OutgoingRequest,
    "request-options": RequestOptions, "response-outparam": ResponseOutparam,
    "incoming-response": IncomingResponse, "incoming-body": IncomingBody,
    "future-trailers": FutureTrailers, "outgoing-response": OutgoingResponse,
    "outgoing-body": OutgoingBody, "future-incoming-response": FutureIncomingResponse,
})
FIELDS = (OWN, Fields.TYPE)


def _check_field(name: str, value: bytes | None = None) -> Any:
    if not _TOKEN.match(name.encode()):
        return ("err", ("invalid-syntax", None))
    if name.lower() in FORBIDDEN_FIELDS:
        return ("err", ("forbidden", None))
    if value is not None and (b"\r" in value or b"\n" in value or b"\0" in value):
        return ("err", ("invalid-syntax", None))
    return None


def _mutable(inv: Invocation, rep: int) -> Fields:
    return inv.table.get(rep, Fields)


@types.fn("[constructor]fields", FIELDS)
def _fields_new(inv: Invocation) -> int:
    return inv.table.add(Fields())


@types.fn("[static]fields.from-list", ("result", FIELDS, HEADER_ERROR))
def _fields_from_list(inv: Invocation, entries: list[tuple[str, Any]]) -> Any:
    items = []
    for name, value in entries:
        value = bytes(value)
        bad = _check_field(name, value)
        if bad is not None:
            return bad
        items.append((name, value))
    return ("ok", inv.table.add(Fields(items)))


@types.fn("[method]fields.get", ("list", "bytes"))
def _fields_get(inv: Invocation, rep: int, name: str) -> list[bytes]:
    key = name.lower()
    return [v for k, v in inv.table.get(rep, Fields).items if k.lower() == key]


@types.fn("[method]fields.has", "bool")
def _fields_has(inv: Invocation, rep: int, name: str) -> bool:
    key = name.lower()
    return any(k.lower() == key for k, _ in inv.table.get(rep, Fields).items)


def _editable(inv: Invocation, rep: int, name: str, value: bytes | None = None) -> tuple[Fields | None, Any]:
    f = inv.table.get(rep, Fields)
    if f.immutable:
        return None, ("err", ("immutable", None))
    bad = _check_field(name, value)
    return (None, bad) if bad is not None else (f, None)


@types.fn("[method]fields.set", ("result", None, HEADER_ERROR))
def _fields_set(inv: Invocation, rep: int, name: str, values: list[Any]) -> Any:
    values = [bytes(v) for v in values]
    for v in values or [b""]:
        f, bad = _editable(inv, rep, name, v)
        if bad is not None:
            return bad
    assert f is not None
    key = name.lower()
    f.items = [(k, v) for k, v in f.items if k.lower() != key] + [(name, v) for v in values]
    return ("ok", None)


@types.fn("[method]fields.delete", ("result", None, HEADER_ERROR))
def _fields_delete(inv: Invocation, rep: int, name: str) -> Any:
    f, bad = _editable(inv, rep, name)
    if bad is not None:
        return bad
    assert f is not None
    key = name.lower()
    f.items = [(k, v) for k, v in f.items if k.lower() != key]
    return ("ok", None)


@types.fn("[method]fields.append", ("result", None, HEADER_ERROR))
def _fields_append(inv: Invocation, rep: int, name: str, value: Any) -> Any:
    value = bytes(value)
    f, bad = _editable(inv, rep, name, value)
    if bad is not None:
        return bad
    assert f is not None
    f.items.append((name, value))
    return ("ok", None)


@types.fn("[method]fields.entries", ("list", ("tuple", "string", "bytes")))
def _fields_entries(inv: Invocation, rep: int) -> list[tuple[str, bytes]]:
    return list(inv.table.get(rep, Fields).items)


@types.fn("[method]fields.clone", FIELDS)
def _fields_clone(inv: Invocation, rep: int) -> int:
    return inv.table.add(Fields(list(inv.table.get(rep, Fields).items)))


def _view(inv: Invocation, items: list[tuple[str, bytes]], parent: Resource) -> int:
    """An immutable fields child (the headers of a request or response)."""
    return inv.table.add(Fields(items, immutable=True), parent)


# incoming-request
@types.fn("[method]incoming-request.method", METHOD_VARIANT)
def _in_method(inv: Invocation, rep: int) -> Any:
    m = inv.table.get(rep, IncomingRequest).request.method
    low = m.lower()
    return (low, None) if low in METHODS and m == m.upper() else ("other", m)


@types.fn("[method]incoming-request.path-with-query", ("option", "string"))
def _in_path(inv: Invocation, rep: int) -> str:
    return inv.table.get(rep, IncomingRequest).request.target


@types.fn("[method]incoming-request.scheme", ("option", SCHEME_VARIANT))
def _in_scheme(inv: Invocation, rep: int) -> Any:
    scheme = inv.table.get(rep, IncomingRequest).request.scheme
    return ("HTTPS", None) if scheme == "https" else ("HTTP", None)


@types.fn("[method]incoming-request.authority", ("option", "string"))
def _in_authority(inv: Invocation, rep: int) -> str | None:
    return inv.table.get(rep, IncomingRequest).request.headers.get("host")


@types.fn("[method]incoming-request.headers", FIELDS)
def _in_headers(inv: Invocation, rep: int) -> int:
    req = inv.table.get(rep, IncomingRequest)
    items = [(k, v.encode("latin-1")) for k, v in req.request.headers.items()]
    return _view(inv, items, req)


@types.fn("[method]incoming-request.consume", ("result", (OWN, IncomingBody.TYPE), None))
def _in_consume(inv: Invocation, rep: int) -> Any:
    req = inv.table.get(rep, IncomingRequest)
    if req.consumed:
        return ("err", None)
    req.consumed = True
    return ("ok", inv.table.add(IncomingBody(req.body_source), req))


# incoming-body / future-trailers
@types.fn("[method]incoming-body.stream", ("result", (OWN, InputStream.TYPE), None))
def _in_body_stream(inv: Invocation, rep: int) -> Any:
    body = inv.table.get(rep, IncomingBody)
    if body.streamed:
        return ("err", None)
    body.streamed = True
    return ("ok", inv.table.add(InputStream(body.source), body))


@types.fn("[static]incoming-body.finish", (OWN, FutureTrailers.TYPE))
def _in_body_finish(inv: Invocation, rep: int) -> int:
    body = inv.table.take(rep, IncomingBody)
    return inv.table.add(FutureTrailers(body.source))


@types.fn("[method]future-trailers.subscribe", (OWN, Pollable.TYPE))
def _trailers_subscribe(inv: Invocation, rep: int) -> int:
    ft = inv.table.get(rep, FutureTrailers)
    return inv.table.add(Pollable(lambda: ft.source.eof), ft)


@types.fn("[method]future-trailers.get",
          ("option", ("result", ("result", ("option", FIELDS), ERROR_CODE), None)))
def _trailers_get(inv: Invocation, rep: int) -> Any:
    ft = inv.table.get(rep, FutureTrailers)
    if not ft.source.eof:
        return None
    if ft.taken:
        return ("err", None)
    ft.taken = True
    if ft.source.error:
        return ("ok", ("err", ("internal-error", ft.source.error)))
    t = ft.source.trailers
    if not t:
        return ("ok", ("ok", None))
    return ("ok", ("ok", inv.table.add(Fields([(k, v.encode("latin-1")) for k, v in t.items()], True))))


# outgoing-response / outgoing-body
@types.fn("[constructor]outgoing-response", (OWN, OutgoingResponse.TYPE))
def _out_response(inv: Invocation, headers: int) -> int:
    fields = inv.table.take(headers, Fields)
    fields.immutable = True
    return inv.table.add(OutgoingResponse(fields))


@types.fn("[method]outgoing-response.status-code", "u16")
def _out_status(inv: Invocation, rep: int) -> int:
    return inv.table.get(rep, OutgoingResponse).status


@types.fn("[method]outgoing-response.set-status-code", UNIT_RESULT)
def _out_set_status(inv: Invocation, rep: int, status: int) -> Any:
    resp = inv.table.get(rep, OutgoingResponse)
    if not 100 <= status <= 999:
        return ("err", None)
    resp.status = status
    return ("ok", None)


@types.fn("[method]outgoing-response.headers", FIELDS)
def _out_headers(inv: Invocation, rep: int) -> int:
    resp = inv.table.get(rep, OutgoingResponse)
    return _shared_view(inv, resp.headers, resp)


def _shared_view(inv: Invocation, fields: Fields, parent: Resource) -> int:
    view = Fields(fields.items, immutable=True)
    return inv.table.add(view, parent)


@types.fn("[method]outgoing-response.body", ("result", (OWN, OutgoingBody.TYPE), None))
def _out_body(inv: Invocation, rep: int) -> Any:
    resp = inv.table.get(rep, OutgoingResponse)
    if resp.body is not None:
        return ("err", None)
    resp.body = OutgoingBody(ByteSink(inv.limits.max_body_bytes, inv.body_relay))
    return ("ok", inv.table.add(resp.body))


@types.fn("[method]outgoing-body.write", ("result", (OWN, OutputStream.TYPE), None))
def _out_body_write(inv: Invocation, rep: int) -> Any:
    body = inv.table.get(rep, OutgoingBody)
    if body.written:
        return ("err", None)
    body.written = True
    return ("ok", inv.table.add(OutputStream(body.sink), body))


@types.fn("[static]outgoing-body.finish", ("result", None, ERROR_CODE))
def _out_body_finish(inv: Invocation, rep: int, trailers: int | None) -> Any:
    body = inv.table.get(rep, OutgoingBody)
    if body.children:
        raise GuestTrap("outgoing-body finished while its output-stream is still alive")
    inv.table.take(rep, OutgoingBody)
    if trailers is not None:
        body.trailers = inv.table.take(trailers, Fields)
    body.finished = True
    body.sink.close()
    if body.on_finish is not None:
        body.on_finish(body)
    return ("ok", None)


# response-outparam
@types.fn("[static]response-outparam.set")
def _outparam_set(inv: Invocation, rep: int, response: Any) -> None:
    inv.table.take(rep, ResponseOutparam)
    case, payload = response
    if case == "ok":
        resp = inv.table.take(payload, OutgoingResponse)
        inv.set_head(ResponseHead(resp.status, resp.headers.multidict(),
                                  resp.body.sink if resp.body is not None else None))
    else:
        code, detail = payload if payload else ("internal-error", None)
        inv.set_head(ResponseHead(500, CIMultiDict(), None,
                                  error=code + (f": {detail}" if isinstance(detail, str) else "")))


# outgoing-request / request-options
@types.fn("[constructor]outgoing-request", (OWN, OutgoingRequest.TYPE))
def _out_request(inv: Invocation, headers: int) -> int:
    fields = inv.table.take(headers, Fields)
    fields.immutable = True
    return inv.table.add(OutgoingRequest(fields))


@types.fn("[method]outgoing-request.body", ("result", (OWN, OutgoingBody.TYPE), None))
def _out_req_body(inv: Invocation, rep: int) -> Any:
    req = inv.table.get(rep, OutgoingRequest)
    if req.body is not None:
        return ("err", None)
    req.body = OutgoingBody(ByteSink(inv.limits.max_body_bytes))
    return ("ok", inv.table.add(req.body))


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
    req = inv.table.get(rep, OutgoingRequest)
    return _shared_view(inv, req.headers, req)


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
    resp = inv.table.get(rep, IncomingResponse)
    return _view(inv, resp.headers, resp)


@types.fn("[method]incoming-response.consume", ("result", (OWN, IncomingBody.TYPE), None))
def _resp_consume(inv: Invocation, rep: int) -> Any:
    resp = inv.table.get(rep, IncomingResponse)
    if resp.consumed:
        return ("err", None)
    resp.consumed = True
    return ("ok", inv.table.add(IncomingBody(resp.source), resp))


@types.fn("[method]future-incoming-response.subscribe", (OWN, Pollable.TYPE))
def _future_subscribe(inv: Invocation, rep: int) -> int:
    fut = inv.table.get(rep, FutureIncomingResponse)
    return inv.table.add(Pollable(lambda: fut.future is None or fut.future.done()), fut)


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
    src = ByteSource(body)
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


@types.fn("http-error-code", ("option", ERROR_CODE))
def _http_error_code(inv: Invocation, rep: int) -> None:
    return None


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
    headers = req.headers.multidict()
    body = req.body

    def start(_: Any = None) -> None:
        data = body.sink.data() if body is not None else b""
        fut.future = asyncio.run_coroutine_threadsafe(
            outbound.call(upstream, method, req.path or "/", headers, data, timeouts), inv.loop)
        fut.future.add_done_callback(lambda _f: inv.waker.notify())

    fut = FutureIncomingResponse(None)
    if body is not None and not body.finished:
        placeholder: Future[Any] = Future()  # until the body is finished
        fut.future = placeholder
        body.on_finish = start
    else:
        start()
    return ("ok", inv.table.add(fut))


INTERFACES = [types, outgoing]
