"""The origin request's head written from the client's parsed bytes (``forward_head``)
is the head the general path (``forward_request`` + the origin client's encoding) makes,
and a request whose fields changed after parsing never takes it."""

from __future__ import annotations

import asyncio

import pytest
from multidict import CIMultiDict, getversion

from dataplane_support import RawClient, RawOrigin, node_config, parse_responses, start_node
from edgenode.config import OriginConfig
from edgenode.http.client import _encode_head
from edgenode.http.messages import Request, raw_request
from edgenode.proxy.forwarding import EDITED_NAMES, forward_head, forward_request

VIA = "1.1 edgenode"


def origin(host_header: str = "pass") -> OriginConfig:
    return OriginConfig(name="o", url="http://10.0.0.9:8081", host="10.0.0.9", port=8081,
                        host_header=host_header)


def parsed(raw: list[tuple[bytes, bytes]], method: str = "GET", target: str = "/a?b=1") -> Request:
    """A request as the front end makes it: fields decoded from ``raw``, ``raw`` kept."""
    headers = CIMultiDict([(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw])
    req = Request(method, target, headers)
    req.raw = (getversion(headers), raw)
    return req


def general(req: Request, client_ip: str, policy: str = "pass") -> bytes:
    return _encode_head(forward_request(req, client_ip, origin(policy), VIA))[0]


@pytest.mark.parametrize("raw", [
    [(b"Host", b"www.example.com"), (b"User-Agent", b"wrk")],
    [(b"Accept", b"*/*"), (b"hOsT", b"a.example:8080"), (b"X-Request-Id", b"r-1")],
    [(b"User-Agent", b"curl")],                       # HTTP/1.0 without Host
    [(b"Host", b"")],
    [(b"Host", b"h"), (b"X-Text", b"\xe9t\xe9"), (b"Accept-Encoding", b"gzip")],
])
@pytest.mark.parametrize("client_ip", ["192.0.2.1", ""])
@pytest.mark.parametrize("policy", ["pass", "origin", "static.example"])
def test_the_raw_head_equals_the_general_paths(raw, client_ip, policy):
    req = parsed(raw)
    head = forward_head(req, client_ip, origin(policy), VIA)
    assert head is not None
    assert head == general(req, client_ip, policy)


def test_a_raw_request_whose_fields_nothing_made_takes_the_raw_head():
    """A filtered plain request's ``RawRequest`` reaches forwarding with its fields not
    made: forward_head makes them and still writes the head from the parsed bytes."""
    raw = [(b"Host", b"www.example.com"), (b"User-Agent", b"wrk")]
    head = forward_head(raw_request("GET", "/a?b=1", list(raw)), "192.0.2.1", origin(), VIA)
    assert head is not None
    assert head == general(parsed(list(raw)), "192.0.2.1")


@pytest.mark.parametrize("raw", [
    [(b"Host", b"h"), (b"Via", b"1.0 cdn-a")],
    [(b"Host", b"h"), (b"X-Forwarded-For", b"203.0.113.9")],
    [(b"Host", b"h"), (b"x-forwarded-proto", b"https")],
    [(b"Host", b"h"), (b"X-Forwarded-Host", b"x")],
    [(b"Host", b"h"), (b"Connection", b"close, X-Drop"), (b"X-Drop", b"1")],
    [(b"Host", b"h"), (b"TE", b"trailers")],
    [(b"Host", b"h"), (b"Expect", b"100-continue")],
    [(b"Host", b"h"), (b"Content-Length", b"0")],
])
def test_fields_forward_request_edits_take_the_general_path(raw):
    req = parsed(raw)
    assert forward_head(req, "192.0.2.1", origin(), VIA) is None
    assert b"\r\nHost: h\r\n" in general(req, "192.0.2.1")  # which still forwards it


def test_every_edited_name_in_any_case_takes_the_general_path():
    for name in EDITED_NAMES:
        for spelt in (name, name.upper(), name.title()):
            req = parsed([(b"Host", b"h"), (spelt.encode(), b"1"), (b"Accept", b"*/*")])
            assert forward_head(req, "", origin(), VIA) is None, spelt
        near = parsed([(b"Host", b"h"), (b"X-" + name.encode(), b"1"), (name.encode() + b"-x", b"1")])
        assert forward_head(near, "", origin(), VIA) == general(near, ""), name


def test_changed_fields_a_body_or_another_method_take_the_general_path():
    raw = [(b"Host", b"h")]
    changed = parsed(raw)
    changed.headers["X-Added"] = "1"  # a stage edited the fields after parsing
    assert forward_head(changed, "", origin(), VIA) is None
    assert b"X-Added: 1\r\n" in general(changed, "")
    with_body = parsed(raw)
    with_body.body = b"x"
    assert forward_head(with_body, "", origin(), VIA) is None
    assert forward_head(parsed(raw, method="POST"), "", origin(), VIA) is None
    with_trailers = parsed(raw)
    with_trailers.trailers = CIMultiDict({"X-T": "1"})
    assert forward_head(with_trailers, "", origin(), VIA) is None
    newline = parsed(raw, target="/a\r\nX-Injected: 1")  # a target a filter broke
    assert forward_head(newline, "", origin(), VIA) is None
    with pytest.raises(ValueError):
        general(newline, "")
    assert forward_head(Request("GET", "/", CIMultiDict({"Host": "h"})), "", origin(), VIA) is None


async def test_the_origin_receives_the_general_paths_head_over_sockets():
    """Through a real front end and origin client: a plain request's head is the one
    ``forward_request`` makes from the fields the stages saw; an absolute-form target
    (which replaces Host after parsing) and a stage's edit are honoured."""
    heads: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    org = await RawOrigin(record).start()
    seen: list[Request] = []

    def stage(upstream):
        async def handle(ex):
            if ex.request.target == "/edited":
                ex.request.headers["X-Stage"] = "yes"
            seen.append(ex.request)
            expected.append(forward_head(ex.request, ex.client[0], upstream.pool("o").cfg, upstream.via))
            return await upstream(ex)
        return handle

    expected: list[bytes | None] = []
    node = await start_node(node_config({"o": {"url": f"http://127.0.0.1:{org.port}"}}), stage)
    client = await RawClient.connect(node.port)
    try:
        await client.send(b"GET /plain?q=1 HTTP/1.1\r\nHost: test.local\r\nUser-Agent: t\r\n"
                          b"Accept: */*\r\n\r\n"
                          b"GET http://abs.example/abs HTTP/1.1\r\nHost: test.local\r\n\r\n"
                          b"GET /edited HTTP/1.1\r\nHost: test.local\r\n\r\n"
                          b"GET /via HTTP/1.1\r\nHost: test.local\r\nVia: 1.0 cdn-a\r\n"
                          b"Connection: close\r\n\r\n")
        responses = parse_responses(await client.read_until_close())
    finally:
        await client.close()
        await node.close()
        await org.close()
    assert [r.status for r in responses] == [200, 200, 200, 200]
    assert len(heads) == 4
    for req, head in zip(seen, heads):
        assert head == general(req, "127.0.0.1")
    assert heads[0].startswith(b"GET /plain?q=1 HTTP/1.1\r\nUser-Agent: t\r\nAccept: */*\r\n"
                               b"X-Request-Id: ")
    # only the plain request went out as the raw path's bytes
    assert expected == [heads[0], None, None, None]
    assert b"\r\nHost: abs.example\r\n" in heads[1] and b"test.local" not in heads[1]
    assert b"\r\nX-Stage: yes\r\n" in heads[2]
    assert b"\r\nVia: 1.0 cdn-a, 1.1 edgenode\r\n" in heads[3] and b"Connection" not in heads[3]
