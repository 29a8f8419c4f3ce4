"""Comparing an ``Entry`` a C maker made with the one its Python reference made, slot by slot."""

from __future__ import annotations

import math

from edgenode.cache.policy import Entry


def entry_slots(e: Entry) -> dict[str, object]:
    """Every slot of ``e``, its prototype fields as their items."""
    out = {name: getattr(e, name) for name in Entry.__slots__}
    out["proto"] = list(e.proto.items())
    return out


def same_value(a: object, b: object) -> bool:
    """Equal values of one type (two NaNs count as equal)."""
    return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))  # type: ignore[arg-type]
