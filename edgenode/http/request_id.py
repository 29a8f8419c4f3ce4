"""One id per request, the same everywhere: ``X-Request-Id`` on the request the origin
and the filters see, on the response, in the access log and in every log line written
while the request runs.

A valid incoming ``X-Request-Id`` is kept (a load balancer in front already assigned
one); otherwise the node makes one: a random per-process prefix and a counter, unique
across workers and restarts, and cheap enough for every cache hit.
"""

from __future__ import annotations

import itertools
import re
import secrets
from contextvars import ContextVar

__all__ = ["RequestIds", "valid_request_id", "current_request_id", "HEADER"]

HEADER = "X-Request-Id"
#: what an incoming id may look like: a UUID, hex, base64url, "req-123", "a1:b2/c3"
_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")

#: the id of the request whose task is running (log lines pick it up)
current_request_id: ContextVar[str | None] = ContextVar("edgenode_request_id", default=None)


def valid_request_id(value: str | None) -> bool:
    """Whether an incoming ``X-Request-Id`` value is kept rather than replaced."""
    return value is not None and _VALID.fullmatch(value) is not None


class RequestIds:
    """Makes ids ``<prefix><counter hex>``, the prefix 12 random hex digits and a dash:
    unique without coordination.  ``prefix`` and ``count`` let a hot path format an id
    straight into bytes (``b"%s%x" % (prefix, next(count))``)."""

    __slots__ = ("prefix", "count", "_text")

    def __init__(self) -> None:
        self._text = secrets.token_hex(6) + "-"
        self.prefix = self._text.encode()
        self.count = itertools.count(1)

    def new(self) -> str:
        return f"{self._text}{next(self.count):x}"

    def pick(self, incoming: str | None) -> str:
        """``incoming`` when it is a valid id, else a new one."""
        return incoming if incoming is not None and _VALID.fullmatch(incoming) else self.new()
