"""What a proxy changes in a message as it passes (RFC 9110 7.6), free of I/O.

Toward the origin: hop-by-hop fields go, ``Via`` and the ``X-Forwarded-*`` family are
added, ``Host`` follows the origin's ``host_header`` policy.  Toward the client:
hop-by-hop fields go and ``Via`` is added.  ``Expect`` is dropped on the way in because
the front end already answered ``100-continue`` to the client itself.  Trailers travel
with the body (forbidden fields were dropped where they were parsed); the announcing
``Trailer`` field is hop-by-hop here, as in RFC 2616, and is not forwarded.
"""

from __future__ import annotations

from multidict import CIMultiDict, getversion

from edgenode.config import OriginConfig
from edgenode.http.headers import append_value, strip_hop_by_hop
from edgenode.http.messages import Request, Response

__all__ = ["forward_request", "forward_response", "origin_authority", "origin_host"]


def origin_authority(origin: OriginConfig) -> str:
    """``host[:port]`` as a Host value for the origin (port omitted when it is 80)."""
    host = f"[{origin.host}]" if ":" in origin.host else origin.host
    return host if origin.port == 80 else f"{host}:{origin.port}"


def origin_host(origin: OriginConfig, client_host: str = "") -> str:
    """The Host value to send, per the origin's ``host_header`` policy (``pass`` falls
    back to the origin's own authority when the client sent none, e.g. a callout)."""
    policy = origin.host_header
    if policy == "pass":
        return client_host or origin_authority(origin)
    if policy == "origin":
        return origin_authority(origin)
    return policy


def forward_request(req: Request, client_ip: str, origin: OriginConfig, via: str) -> Request:
    """A new Request for the origin; ``req`` itself is left untouched.

    ``via`` is the full Via element, e.g. ``"1.1 edgenode"``.  X-Forwarded-For is
    appended to (earlier proxies' entries kept); X-Forwarded-Proto and -Host are set
    from what this edge saw, since a client could put anything there.
    """
    headers: CIMultiDict[str] = strip_hop_by_hop(req.headers.copy())
    headers.popall("expect", None)
    client_host = req.headers.get("host", "")
    headers.popall("host", None)
    headers["Host"] = origin_host(origin, client_host)
    append_value(headers, "Via", via)
    if client_ip:
        append_value(headers, "X-Forwarded-For", client_ip)
    headers["X-Forwarded-Proto"] = req.scheme
    if client_host:
        headers["X-Forwarded-Host"] = client_host
    return Request(req.method, req.target, headers, req.body, "1.1", req.scheme).adopt_trailers(req)


def forward_response(resp: Response, via: str) -> Response:
    """Strip hop-by-hop fields and add ``Via``, in place (the origin's response is ours).

    The response's plain ``fields`` stay valid when that is only a new Via line at the
    end (the common case: no hop-by-hop field, no Via from the origin); otherwise they
    are dropped and their users go through the multidict.
    """
    h = resp.headers
    fields = resp.fields
    strip_hop_by_hop(h)
    if fields is not None and fields[0] == getversion(h) and "via" not in h:
        h.add("Via", via)
        fields[1].append(("Via", via))
        resp.fields = (getversion(h), fields[1])
    else:
        append_value(h, "Via", via)
        resp.fields = None
    return resp
