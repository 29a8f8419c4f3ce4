"""Failure types of the data plane, so stages map each kind to the right status.

Origin failures before the response head become 502/504 in ``proxy/upstream.py``;
failures after it surface from the body iterator, so the front end aborts the client
connection and the cache never stores a truncated object.
"""

from __future__ import annotations

__all__ = [
    "OriginError", "OriginConnectError", "OriginTimeout", "OriginProtocolError",
    "OriginBodyError", "ClientBodyError",
]


class OriginError(Exception):
    """Base of every failure talking to an origin."""


class OriginConnectError(OriginError):
    """The origin could not be reached, or dropped the connection before answering."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OriginTimeout(OriginError):
    """An origin timeout; ``kind`` is ``connect``, ``first_byte``, ``between_bytes`` or ``callout``."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"origin {kind.replace('_', ' ')} timeout")
        self.kind = kind


class OriginProtocolError(OriginError):
    """The origin answered with something that is not a valid HTTP/1.x response head;
    ``kind`` names it for metrics (``protocol_error``, ``head_too_large``)."""

    def __init__(self, reason: str, kind: str = "protocol_error") -> None:
        super().__init__(reason)
        self.kind = kind


class OriginBodyError(OriginError):
    """The response body broke after its head was sent (reset, EOF, bad framing)."""


class ClientBodyError(Exception):
    """The client's request body could not be read in full (disconnect, bad chunking)."""
