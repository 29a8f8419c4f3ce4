"""The Python example function (componentize-py + Spin's Python SDK).

Spin SDK routes (buffered request/response):
  GET  .../hello     plain text with the `greeting` variable, cacheable for 60 s
  POST .../echo      JSON describing the request body
  GET  .../count     a counter in the `default` key-value store
  GET  .../fetch     an outbound request to the `default` upstream (the origin)
Raw wasi:http routes (the Spin SDK's generated bindings), used by the host's tests:
  .../raw/stream?n=N  N chunks written one by one after the response head is set
  .../raw/fields      how the host answers field edits (forbidden, invalid, immutable)
  .../raw/no-response returns without setting the response
  .../raw/finish-open finishes the body while its stream is still open (traps)
  .../raw/trap        raises (the guest traps)
  .../raw/loop        a busy loop (the CPU deadline stops it)
  .../raw/forever     writes forever (max_body_bytes stops it)
"""

import json

from spin_sdk import http, key_value, variables
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports.types import (Fields, HeaderError_Forbidden, HeaderError_Immutable,
                                        HeaderError_InvalidSyntax, IncomingRequest, OutgoingBody,
                                        OutgoingResponse, ResponseOutparam)
from spin_sdk.wit.types import Err, Ok


def _start(response_out: ResponseOutparam, content_type: bytes = b"text/plain"):
    resp = OutgoingResponse(Fields.from_list([("content-type", content_type)]))
    body = resp.body()
    ResponseOutparam.set(response_out, Ok(resp))
    return body, body.write()


def _finish(body, stream) -> None:
    stream.__exit__(None, None, None)
    OutgoingBody.finish(body, None)


def _error_name(exc: Exception) -> str:
    value = getattr(exc, "value", None)
    for cls, name in ((HeaderError_Forbidden, "forbidden"), (HeaderError_Immutable, "immutable"),
                      (HeaderError_InvalidSyntax, "invalid-syntax")):
        if isinstance(value, cls):
            return name
    return type(exc).__name__


def _try(fn) -> str:
    try:
        fn()
        return "ok"
    except Err as exc:
        return _error_name(exc)


def _raw(route: str, query: str, response_out: ResponseOutparam) -> None:
    if route == "stream":
        n = int(query.partition("n=")[2] or 3)
        body, stream = _start(response_out)
        for i in range(n):
            stream.blocking_write_and_flush(f"chunk {i}\n".encode())
        _finish(body, stream)
    elif route == "fields":
        f = Fields()
        report = {
            "append": _try(lambda: f.append("x-ok", b"1")),
            "forbidden": _try(lambda: f.append("connection", b"close")),
            "invalid-name": _try(lambda: f.append("bad name", b"1")),
            "invalid-value": _try(lambda: f.append("x-bad", b"a\r\nb")),
            "from-list-forbidden": _try(lambda: Fields.from_list([("transfer-encoding", b"chunked")])),
        }
        resp = OutgoingResponse(f)
        with resp.headers() as headers:  # a child of the response: dropped before `set`
            report["immutable"] = _try(lambda: headers.append("x-late", b"1"))
            report["get"] = [v.decode() for v in headers.get("X-OK")]
        body = resp.body()
        ResponseOutparam.set(response_out, Ok(resp))
        stream = body.write()
        stream.blocking_write_and_flush(json.dumps(report, sort_keys=True).encode())
        _finish(body, stream)
    elif route == "no-response":
        return
    elif route == "finish-open":
        body, stream = _start(response_out)
        stream.blocking_write_and_flush(b"partial")
        OutgoingBody.finish(body, None)
    elif route == "trap":
        raise RuntimeError("the handler failed on purpose")
    elif route == "loop":
        while True:
            pass
    elif route == "forever":
        body, stream = _start(response_out)
        chunk = b"x" * 65536
        while True:
            stream.blocking_write_and_flush(chunk)
    else:
        body, stream = _start(response_out)
        stream.blocking_write_and_flush(b"no such raw route\n")
        _finish(body, stream)


class IncomingHandler(http.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path, _, query = (request.path_with_query() or "/").partition("?")
        parts = path.split("/")
        if len(parts) >= 2 and parts[-2] == "raw":
            _raw(parts[-1], query, response_out)
            return
        super().handle(request, response_out)

    def handle_request(self, request: Request) -> Response:
        path = request.uri.split("?", 1)[0]
        route = path.rsplit("/", 1)[-1]
        if route == "hello":
            return Response(200, {"content-type": "text/plain; charset=utf-8",
                                  "cache-control": "public, max-age=60"},
                            f"{variables.get('greeting')} from python at {path}\n".encode())
        if route == "echo":
            body = request.body or b""
            try:
                keys = len(json.loads(body))
            except ValueError:
                keys = 0
            doc = {"method": request.method, "bytes": len(body), "keys": keys}
            return Response(200, {"content-type": "application/json"}, json.dumps(doc).encode())
        if route == "count":
            store = key_value.open_default()
            n = int(store.get("count") or b"0") + 1
            store.set("count", str(n).encode())
            return Response(200, {"content-type": "text/plain"}, f"{n}\n".encode())
        if route == "fetch":
            upstream = http.send(Request("GET", "http://default/", {}, None))
            return Response(200, {"content-type": "application/json"},
                            json.dumps({"status": upstream.status, "bytes": len(upstream.body or b"")}).encode())
        return Response(404, {"content-type": "text/plain"}, f"no such route: {path}\n".encode())
