"""Signed control messages: every purge, config version and heartbeat carries an
HMAC-SHA256 made with the shared fleet key, and is checked before anything is applied.

Wire format (JSON)::

    {"v": 1, "sig": "<hex HMAC-SHA256(key, body)>", "body": "<the message, as JSON text>"}

The body is signed as the exact text that travels, so no canonical JSON is needed.
Anything that does not verify or does not match its schema raises ``BadMessage`` with
the reason, and the receiver logs and drops it.  Free of I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["BadMessage", "seal", "open_sealed", "PurgeOrder", "parse_purge", "new_purge", "PURGE_KINDS"]

PURGE_KINDS = ("url", "key", "all")
#: a purge older than this is refused (longer than the purge stream keeps messages)
MAX_PURGE_AGE = 7 * 86400.0


class BadMessage(ValueError):
    """A control message that must not be applied; the text says why."""


def seal(key: bytes, body: dict[str, Any]) -> bytes:
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    sig = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    return json.dumps({"v": 1, "sig": sig, "body": text}).encode()


def open_sealed(key: bytes, data: bytes, kind: str) -> dict[str, Any]:
    """The verified body of ``data``, which must be a message of type ``kind``."""
    try:
        outer = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadMessage("not JSON") from None
    if not isinstance(outer, dict) or outer.get("v") != 1:
        raise BadMessage("not a version 1 envelope")
    text, sig = outer.get("body"), outer.get("sig")
    if not isinstance(text, str) or not isinstance(sig, str):
        raise BadMessage("envelope without body or sig")
    want = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig):
        raise BadMessage("bad signature (wrong fleet key, or tampered)")
    try:
        body = json.loads(text)
    except ValueError:
        raise BadMessage("signed body is not JSON") from None
    if not isinstance(body, dict) or body.get("type") != kind:
        raise BadMessage(f"expected a {kind!r} message, got type {body.get('type') if isinstance(body, dict) else None!r}")
    return body


@dataclass(frozen=True)
class PurgeOrder:
    """One fleet-wide purge; ``id`` makes it idempotent across redeliveries."""

    id: str
    kind: str
    values: tuple[str, ...]
    soft: bool
    issued_at: float
    issuer: str

    def body(self) -> dict[str, Any]:
        return {"type": "purge", "id": self.id, "kind": self.kind, "values": list(self.values),
                "soft": self.soft, "issued_at": self.issued_at, "issuer": self.issuer}


def new_purge(kind: str, values: list[str], soft: bool, issuer: str) -> PurgeOrder:
    order = PurgeOrder(uuid.uuid4().hex, kind, tuple(values), soft, time.time(), issuer)
    return parse_purge(order.body())


def parse_purge(body: dict[str, Any], now: float | None = None) -> PurgeOrder:
    pid, kind, values = body.get("id"), body.get("kind"), body.get("values")
    if not isinstance(pid, str) or not 8 <= len(pid) <= 64:
        raise BadMessage("purge.id: expected a string of 8-64 characters")
    if kind not in PURGE_KINDS:
        raise BadMessage(f"purge.kind: must be one of {', '.join(PURGE_KINDS)}, got {kind!r}")
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise BadMessage("purge.values: expected a list of non-empty strings")
    if (kind == "all") != (not values):
        raise BadMessage("purge.values: empty for kind 'all', at least one value otherwise")
    soft, issued = body.get("soft"), body.get("issued_at")
    if not isinstance(soft, bool):
        raise BadMessage("purge.soft: expected true or false")
    if isinstance(issued, bool) or not isinstance(issued, (int, float)):
        raise BadMessage("purge.issued_at: expected a timestamp")
    if (now if now is not None else time.time()) - issued > MAX_PURGE_AGE:
        raise BadMessage("purge.issued_at: too old (replayed?)")
    issuer = body.get("issuer", "")
    return PurgeOrder(pid, kind, tuple(values), soft, float(issued), str(issuer))
