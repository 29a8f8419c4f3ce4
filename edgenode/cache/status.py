"""RFC 9211 Cache-Status members and the X-Cache short form.

Our member is appended after any the origin sent (the list runs from the origin
towards the client, so the cache closest to the client is last).
"""

from __future__ import annotations

import functools
import math

__all__ = ["hit", "forwarded", "plain"]


def hit(name: str, ttl: float, detail: str | None = None) -> str:
    s = f"{name}; hit; ttl={math.floor(ttl)}"
    return f"{s}; detail={detail}" if detail else s


@functools.lru_cache(maxsize=256)  # every miss asks for one of a few: answered without a frame
def forwarded(name: str, fwd: str, *, fwd_status: int | None = None, stored: bool = False,
              collapsed: bool = False, ttl: float | None = None, detail: str | None = None) -> str:
    parts = [name, f"fwd={fwd}"]
    if fwd_status is not None:
        parts.append(f"fwd-status={fwd_status}")
    if ttl is not None:
        parts.append(f"ttl={math.floor(ttl)}")
    if stored:
        parts.append("stored")
    if collapsed:
        parts.append("collapsed")
    if detail:
        parts.append(f"detail={detail}")
    return "; ".join(parts)


def plain(name: str, detail: str) -> str:
    """Neither hit nor forwarded (e.g. only-if-cached with nothing stored)."""
    return f"{name}; detail={detail}"
