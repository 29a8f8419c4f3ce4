"""What a proxy changes in a message as it passes (RFC 9110 7.6), free of I/O.

Toward the origin: hop-by-hop fields go, ``Via`` and the ``X-Forwarded-*`` family are
added, ``Host`` follows the origin's ``host_header`` policy.  Toward the client:
hop-by-hop fields go and ``Via`` is added.  ``Expect`` is dropped on the way in because
the front end already answered ``100-continue`` to the client itself.  Trailers travel
with the body (forbidden fields were dropped where they were parsed); the announcing
``Trailer`` field is hop-by-hop here, as in RFC 2616, and is not forwarded.

A bodiless request whose fields no stage changed (``Request.raw`` still valid) goes to
the origin as bytes written from the ones the client sent (``forward_head``): the same
head ``forward_request`` and the origin client's encoding would make, without a copy of
the multidict, its edits and a second ``Request``.
"""

from __future__ import annotations

from typing import Callable

from multidict import CIMultiDict, getversion

from edgenode.config import OriginConfig
from edgenode.http._fields import names_disjoint, request_lines
from edgenode.http._origin import request_head, response_forwarder
from edgenode.http.headers import HOP_BY_HOP, append_value, strip_hop_by_hop
from edgenode.http.messages import FROM_BODY, Request, Response

__all__ = ["forward_request", "forward_head", "forward_response", "origin_authority", "origin_host",
           "EDITED_NAMES"]

#: the lower-case names of the fields ``forward_head`` leaves to ``forward_request``:
#: hop-by-hop and framing fields, Expect, and the fields it appends to
EDITED_NAMES = HOP_BY_HOP | {"content-length", "expect", "via", "x-forwarded-for",
                             "x-forwarded-proto", "x-forwarded-host"}
_EDITED = frozenset(name.encode("ascii") for name in EDITED_NAMES)
#: the origin's fields ``forward_response`` changes: hop-by-hop ones and Via
_HOP_OR_VIA = tuple(sorted(HOP_BY_HOP | {"via"}))
#: the hop-by-hop fields the plain pairs drop themselves: the ``Connection: keep-alive``
#: many origins (nginx, Apache) send on every response, and the Keep-Alive it names
_CONNECTION_FIELDS = frozenset({"connection", "keep-alive"})
#: the Connection tokens that name no other field of the message
_CONNECTION_OPTIONS = frozenset({"keep-alive", "close", ""})
_OTHER_HOP_OR_VIA = tuple(sorted(frozenset(_HOP_OR_VIA) - _CONNECTION_FIELDS))


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


def forward_head(req: Request, client_ip: str, origin: OriginConfig, via: str) -> bytes | None:
    """The origin request's head for ``req`` as bytes, equal to what ``forward_request``
    and the origin client's encoding make, built from the client's parsed bytes; None:
    take that general path (no valid ``raw``, a body, or a field it edits).

    The fields go out in the client's order without Host, then Host, Via,
    X-Forwarded-For, -Proto and -Host: where ``forward_request`` puts them when the
    request had none of the last four.
    """
    version = getversion(req.headers)  # first: a RawRequest's raw carries the version once made
    raw = req.raw
    method = req.method
    trailers = req._trailers  # with an empty body in memory, ``FROM_BODY`` means none
    if (raw is None or raw[0] != version or not raw[1] or req.body != b""
            or (method != "GET" and method != "HEAD") or (trailers is not FROM_BODY and trailers)):
        return None
    # the client's lines but Host's, in one C pass; None: an edited field, or CR or LF
    # inside a line (the general path refuses it)
    found = request_lines(raw[1], _EDITED)
    if found is None:
        return None
    block, host = found
    client_host = "" if host is None else host.decode("latin-1")
    tail = _tails.get((client_host, client_ip, req.scheme, via, origin.host, origin.port,
                       origin.host_header))
    if tail is None:
        tail = _tail(client_host, client_ip, req.scheme, via, origin)
        if tail is None:
            return None
    # the tail is checked once when made, the client's lines above; the target here
    return request_head(method, req.target, block, tail)


def _request_head(method: str, target: str, block: bytes, tail: bytes) -> bytes | None:
    """The reference of ``http._origin.request_head``: the request line, ``block`` and
    ``tail`` as one bytes object; None when the target holds CR or LF or a character past
    Latin-1 (the general path refuses or fails on it)."""
    if "\n" in target or "\r" in target:
        return None
    try:
        line = b"%s %s HTTP/1.1" % (method.encode("latin-1"), target.encode("latin-1"))
    except UnicodeEncodeError:
        return None
    return line + block + tail


#: ``_tail``'s results by its arguments (a few per node: clients' Host values and
#: addresses), cleared when full
_tails: dict[tuple[str, str, str, str, str, int, str], bytes] = {}
_TAILS_MAX = 1024


def _tail(client_host: str, client_ip: str, scheme: str, via: str,
          origin: OriginConfig) -> bytes | None:
    """The lines ``forward_head`` writes after the client's (Host, Via, X-Forwarded-*) and
    the blank line; None when a value holds CR or LF (the general path refuses it)."""
    tail = f"Host: {origin_host(origin, client_host)}\r\nVia: {via}\r\n"
    lines = 3  # Host, Via, -Proto
    if client_ip:
        tail += f"X-Forwarded-For: {client_ip}\r\n"
        lines += 1
    tail += f"X-Forwarded-Proto: {scheme}\r\n"
    if client_host:
        tail += f"X-Forwarded-Host: {client_host}\r\n"
        lines += 1
    tail += "\r\n"
    if tail.count("\n") != lines + 1 or tail.count("\r") != lines + 1:
        return None
    if len(_tails) >= _TAILS_MAX:
        _tails.clear()
    data = _tails[(client_host, client_ip, scheme, via, origin.host, origin.port,
                   origin.host_header)] = tail.encode("latin-1")
    return data


def _forward_response(resp: Response, via: str) -> Response:
    """Strip hop-by-hop fields and add ``Via``, in place (the origin's response is ours).

    The response's plain ``fields`` stay valid when that is a new Via line at the end,
    less a ``Connection`` naming only ``keep-alive`` or ``close`` and a ``Keep-Alive``
    (the common cases); otherwise they are dropped and their users go through the
    multidict.  ``forward_response`` runs the commonest case (no hop-by-hop field, no Via
    from the origin) in C (``http._origin.response_forwarder``); this is the reference
    and the path for every other response.
    """
    h = resp.headers
    fields = resp.fields
    # the plain pairs checked in one C call, not a multidict test per hop-by-hop name
    if fields is not None and fields[0] == getversion(h):
        pairs = fields[1] if names_disjoint(fields[1], _HOP_OR_VIA) else _without_connection(fields[1], h)
        if pairs is not None:
            h.add("Via", via)
            pairs.append(("Via", via))
            resp.fields = (getversion(h), pairs)
            return resp
    strip_hop_by_hop(h)
    append_value(h, "Via", via)
    resp.fields = None
    return resp


def _without_connection(pairs: list[tuple[str, str]], h: CIMultiDict[str]) -> list[tuple[str, str]] | None:
    """``pairs`` less Connection and Keep-Alive, both also removed from ``h``, when they are
    its only hop-by-hop or Via fields and Connection names no other field (RFC 9110 7.6.1);
    None, nothing changed, otherwise."""
    if not names_disjoint(pairs, _OTHER_HOP_OR_VIA):
        return None
    for value in h.getall("Connection", ()):
        if not _CONNECTION_OPTIONS.issuperset([token.strip().lower() for token in value.split(",")]):
            return None
    h.popall("Connection", None)
    h.popall("Keep-Alive", None)
    return [pair for pair in pairs if pair[0].lower() not in _CONNECTION_FIELDS]


#: ``_forward_response`` with its common case (the current plain fields, none of
#: ``_HOP_OR_VIA`` among them) in one C call, not a Python frame per miss
forward_response: Callable[[Response, str], Response] = response_forwarder(
    _forward_response, _HOP_OR_VIA, getversion)
