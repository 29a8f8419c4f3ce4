"""``ResponseWriter._write_wire`` (a hit whose head is kept as bytes) writes exactly what
``_write_bytes_response`` writes for the same response, and declines every answer it
cannot write that way."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict, getversion

from edgenode.frontend.batch import Batch
from edgenode.frontend.response_writer import ResponseWriter
from edgenode.http.messages import Request, Response
from edgenode.pipeline.exchange import Exchange


class Transport:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, parts: list[bytes]) -> None:
        self.data += b"".join(parts)


class Writer(ResponseWriter):
    def __init__(self) -> None:
        self.fe = SimpleNamespace(batch=Batch())  # type: ignore[assignment]
        self.transport = Transport()  # type: ignore[assignment]
        self.closed = self._dead = False


def hit(body: bytes = b"x" * 300, **extra: str) -> Response:
    headers = CIMultiDict({"Content-Type": "text/plain", "Date": "Fri, 15 Jan 2027 08:00:00 GMT",
                           "Age": "3", "X-Cache": "HIT", **extra})
    resp = Response(200, headers, body)
    block = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())
    resp.wire_head = (getversion(headers), block)
    return resp


def exchange(method: str = "GET", version: str = "1.1", rid: str = "abc-1") -> Exchange:
    ex = Exchange(Request(method, "/a", CIMultiDict({"Host": "t"}), version=version))
    ex.request_id = rid
    return ex


def both(make: Any, method: str = "GET", version: str = "1.1", rid: str = "abc-1",
         keep_alive: bool = True) -> tuple[bool, Writer, Exchange, Writer, Exchange]:
    """``_write_wire``'s answer and writer, ``_write_bytes_response``'s over the same input."""
    wire, general = Writer(), Writer()
    ex_wire, ex_general = exchange(method, version, rid), exchange(method, version, rid)
    done = wire._write_wire(ex_wire, make(), keep_alive)
    general._write_bytes_response(ex_general, make(), keep_alive)
    return done, wire, ex_wire, general, ex_general


@pytest.mark.parametrize("size", [0, 300, 70000])
@pytest.mark.parametrize("rid", ["abc-1", ""])
def test_the_same_bytes_as_the_general_writer(size: int, rid: str) -> None:
    done, wire, ex_wire, general, ex_general = both(lambda: hit(b"y" * size), rid=rid)
    assert done
    assert wire.transport.data == general.transport.data  # type: ignore[attr-defined]
    assert (ex_wire.status, ex_wire.response_bytes) == (ex_general.status, ex_general.response_bytes) == (200, size)


def test_a_field_added_to_the_kept_head_is_written() -> None:
    def added() -> Response:
        resp = hit()
        version, block = resp.wire_head  # type: ignore[misc]
        resp.headers.add("x-filtered", "yes")
        resp.wire_head = (getversion(resp.headers), block + b"x-filtered: yes\r\n")
        return resp

    done, wire, _, general, _ = both(added)
    assert done and b"\r\nx-filtered: yes\r\n" in wire.transport.data  # type: ignore[attr-defined]
    assert wire.transport.data == general.transport.data  # type: ignore[attr-defined]


def changed() -> Response:
    resp = hit()
    resp.headers["X-Cache"] = "changed"  # the kept head is stale
    return resp


def with_trailers() -> Response:
    resp = hit()
    resp.trailers = CIMultiDict({"x-sum": "1"})
    return resp


@pytest.mark.parametrize("case", [
    dict(make=changed), dict(make=with_trailers), dict(make=hit, method="HEAD"),
    dict(make=hit, version="1.0"), dict(make=hit, keep_alive=False),
    dict(make=lambda: hit(**{"X-Request-Id": "theirs"})),
    dict(make=lambda: hit(Connection="close")),
    dict(make=lambda: Response(304, hit().headers)),
])
def test_declines_what_only_the_general_writer_writes(case: dict[str, Any]) -> None:
    wire = Writer()
    ex = exchange(case.get("method", "GET"), case.get("version", "1.1"))
    resp = case["make"]()
    if resp.wire_head is None:
        resp.wire_head = (getversion(resp.headers), b"X: y\r\n")
    assert not wire._write_wire(ex, resp, case.get("keep_alive", True))
    assert wire.transport.data == b"" and ex.status == 0  # type: ignore[attr-defined]
