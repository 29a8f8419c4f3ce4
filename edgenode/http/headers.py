"""Header helpers shared by the front end, the origin client and forwarding.

Pure functions on ``CIMultiDict``: hop-by-hop removal (RFC 9110 7.6.1), list-valued
field appends, and a once-per-second cached ``Date`` value for the hot path.
"""

from __future__ import annotations

import time
from email.utils import formatdate

from multidict import CIMultiDict

__all__ = [
    "HOP_BY_HOP", "connection_tokens", "strip_hop_by_hop", "append_value", "DateCache",
    "split_host_port",
]

#: fields that describe one connection and never travel past a proxy
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "proxy-authenticate", "proxy-authorization",
})


def connection_tokens(headers: CIMultiDict[str]) -> set[str]:
    """Lower-cased field names listed in every ``Connection`` header."""
    tokens: set[str] = set()
    for value in headers.getall("connection", ()):
        for token in value.split(","):
            token = token.strip().lower()
            if token:
                tokens.add(token)
    return tokens


def strip_hop_by_hop(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """Remove hop-by-hop fields and the fields named by ``Connection``, in place.

    Returns ``headers`` for chaining.  The common case (no ``Connection`` header and no
    other hop-by-hop field) costs one membership test per hop-by-hop name.
    """
    if "connection" in headers:
        for token in connection_tokens(headers):
            headers.popall(token, None)
    for name in HOP_BY_HOP:
        if name in headers:
            del headers[name]
    return headers


def append_value(headers: CIMultiDict[str], name: str, value: str) -> None:
    """Append to a comma-separated list field (Via, X-Forwarded-For), keeping one line."""
    existing = headers.getall(name, None)
    if existing:
        headers[name] = ", ".join([*existing, value])
    else:
        headers[name] = value


def split_host_port(host: str) -> tuple[str, str]:
    """Split a Host value into (lower-case host, port or ""), IPv6 literals included."""
    host = host.strip()
    if host.startswith("["):
        end = host.find("]")
        if end != -1:
            rest = host[end + 1:]
            return host[: end + 1].lower(), rest[1:] if rest.startswith(":") else ""
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name.lower(), port
    return host.lower(), ""


class DateCache:
    """The IMF-fixdate ``Date`` value, recomputed at most once per second."""

    __slots__ = ("_second", "value", "line")

    def __init__(self) -> None:
        self._second = -1
        self.value = ""
        #: the complete header line, ready to splice into a response head
        self.line = ""

    def get_line(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self.value = formatdate(now, usegmt=True)
            self.line = f"Date: {self.value}\r\n"
        return self.line
