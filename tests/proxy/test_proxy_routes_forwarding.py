"""Route selection and forwarding header rules (pure functions, no sockets)."""

from __future__ import annotations

from multidict import CIMultiDict

from edgenode.config import OriginConfig, RouteConfig
from edgenode.http.headers import strip_hop_by_hop
from edgenode.http.messages import Request, Response
from edgenode.proxy.forwarding import forward_request, forward_response
from edgenode.proxy.routes import RouteTable


def test_routes_match_host_and_segment_aware_prefix():
    table = RouteTable([
        RouteConfig(origin="api", host="api.example.com", path_prefix="/v1"),
        RouteConfig(origin="wild", host="*.example.com", path_prefix="/"),
        RouteConfig(origin="static", host=None, path_prefix="/static/"),
        RouteConfig(origin="apix", host=None, path_prefix="/api"),
    ], default_origin="default")
    assert table.pick("API.example.com:8080", "/v1") == "api"
    assert table.pick("api.example.com", "/v1/users") == "api"
    assert table.pick("api.example.com", "/v10") == "wild"  # /v1 is not a prefix of /v10
    assert table.pick("a.b.example.com", "/x") == "wild"
    assert table.pick("example.com", "/static/a.css") == "static"  # bare domain != *.example.com
    assert table.pick("other", "/api") == "apix"
    assert table.pick("other", "/api/x") == "apix"
    assert table.pick("other", "/apix") == "default"
    assert table.pick("", "/") == "default"
    assert table.pick("[::1]:8080", "/api") == "apix"


def test_strip_hop_by_hop_includes_connection_tokens():
    headers = CIMultiDict([("Connection", "keep-alive, X-Private"), ("Connection", "x-other"),
                           ("X-Private", "1"), ("X-Other", "2"), ("Keep-Alive", "timeout=5"),
                           ("TE", "trailers"), ("Upgrade", "h2c"), ("Proxy-Authorization", "b"),
                           ("Transfer-Encoding", "chunked"), ("Trailer", "x"),
                           ("Proxy-Connection", "keep-alive"), ("Proxy-Authenticate", "Basic"),
                           ("X-Kept", "yes")])
    assert list(strip_hop_by_hop(headers).items()) == [("X-Kept", "yes")]


def origin(host_header: str = "pass", port: int = 8081) -> OriginConfig:
    return OriginConfig(name="o", url=f"http://10.0.0.9:{port}", host="10.0.0.9", port=port,
                        host_header=host_header)


def test_forward_request_adds_via_and_forwarded_headers():
    req = Request("GET", "/a?b=1", CIMultiDict([
        ("Host", "www.example.com"), ("Via", "1.1 cdn-a"), ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Proto", "https"), ("Connection", "close, X-Drop"), ("X-Drop", "1"),
        ("Expect", "100-continue"), ("Accept", "*/*")]))
    fwd = forward_request(req, "192.0.2.1", origin(), "1.1 edgenode")
    assert fwd.headers["Via"] == "1.1 cdn-a, 1.1 edgenode"
    assert fwd.headers["X-Forwarded-For"] == "203.0.113.9, 192.0.2.1"
    assert fwd.headers["X-Forwarded-Proto"] == "http"
    assert fwd.headers["X-Forwarded-Host"] == "www.example.com"
    assert fwd.headers["Host"] == "www.example.com"
    for gone in ("Connection", "X-Drop", "Expect"):
        assert gone not in fwd.headers
    assert fwd.target == "/a?b=1" and fwd.headers["Accept"] == "*/*"
    assert "X-Drop" in req.headers  # the client's request is left as it was


def test_host_header_policies():
    req = Request("GET", "/", CIMultiDict({"Host": "www.example.com"}))
    assert forward_request(req, "", origin("origin"), "1.1 e").headers["Host"] == "10.0.0.9:8081"
    assert forward_request(req, "", origin("origin", 80), "1.1 e").headers["Host"] == "10.0.0.9"
    assert forward_request(req, "", origin("cdn.internal"), "1.1 e").headers["Host"] == "cdn.internal"
    assert forward_request(req, "", origin("pass"), "1.1 e").headers["Host"] == "www.example.com"


def test_forward_response_strips_and_adds_via():
    resp = Response(200, CIMultiDict([("Connection", "X-Secret"), ("X-Secret", "s"),
                                      ("Transfer-Encoding", "chunked"), ("ETag", '"e"')]))
    out = forward_response(resp, "1.1 edgenode")
    assert dict(out.headers) == {"ETag": '"e"', "Via": "1.1 edgenode"}


def test_forward_response_keeps_plain_fields_only_while_they_match():
    """``Response.fields`` survive a plain Via append and are dropped when a hop-by-hop
    field, an origin's Via or an earlier edit makes them differ from the multidict."""
    from multidict import CIMultiDict, getversion
    from edgenode.http.messages import Response
    from edgenode.proxy.forwarding import forward_response

    def sent(pairs, edit=None):
        h = CIMultiDict(pairs)
        resp = Response(200, h)
        resp.fields = (getversion(h), list(pairs))
        if edit is not None:
            edit(h)
        return forward_response(resp, "1.1 edge")

    plain = sent([("Content-Type", "text/plain"), ("ETag", '"1"')])
    assert plain.fields is not None and plain.fields[0] == getversion(plain.headers)
    assert plain.fields[1] == list(plain.headers.items()) == [
        ("Content-Type", "text/plain"), ("ETag", '"1"'), ("Via", "1.1 edge")]
    assert sent([("Keep-Alive", "5"), ("Upgrade", "h2c")]).fields is None
    assert sent([("Via", "1.0 origin")]).fields is None
    assert sent([("ETag", '"1"')], edit=lambda h: h.add("X-Late", "1")).fields is None
