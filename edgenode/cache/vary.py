"""Vary: how a request's selecting fields compare with the stored request's (RFC 9111 §4.1).

§4.1 lets a cache normalise selecting field values when it knows the field's semantics,
so requests that mean the same thing share one variant.  Every field gets the generic
treatment (field lines combined, list members trimmed, inner whitespace folded).  The
proactive negotiation fields of RFC 9110 §12.5 are lists of case-insensitive tokens
ranked by qvalue, where member order carries no meaning: their members are lowercased,
parameters respaced, ``q`` spelt canonically and members sorted by preference.

Accept-Language gets one more step (RFC 9110 §12.5.4): a stored response whose
Content-Language is what a new request most prefers is the one the origin would pick
for it, so it is selected even when the two Accept-Language values differ.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["normalise_field", "prefers_language"]

#: RFC 9110 §12.5.2-12.5.4: weighted lists of case-insensitive tokens
_WEIGHTED = frozenset({"accept-charset", "accept-encoding", "accept-language"})


def _members(values: Iterable[str]) -> list[str]:
    return [" ".join(m.split()) for m in ",".join(values).split(",") if m.strip()]


def _qvalue(text: str) -> float | None:
    """RFC 9110 §12.4.2 ``qvalue``: 0 to 1 with at most three decimals; None if invalid."""
    whole, _, frac = text.partition(".")
    if whole not in ("0", "1") or len(frac) > 3 or (frac and not frac.isdigit()):
        return None
    q = float(text)
    return q if q <= 1 else None


def _weighted(members: list[str]) -> list[tuple[float, str]] | None:
    """``(q, canonical member without q)`` pairs; None when a qvalue is invalid."""
    out = []
    for member in members:
        token, *params = member.split(";")
        q = 1.0
        rest = []
        for param in params:
            name, _, value = param.partition("=")
            name = name.strip().lower()
            if name == "q":
                parsed = _qvalue(value.strip())
                if parsed is None:
                    return None
                q = parsed
            elif name:
                rest.append(f";{name}={value.strip()}")
        out.append((q, token.strip().lower() + "".join(rest)))
    return out


#: normalised weighted values by raw value (up to 256 characters): clients send few distinct
#: ones, and every hit on a response that varies on Accept-Encoding compares one
_memo: dict[tuple[str, str], str] = {}
_MEMO_SIZE = 1024


def normalise_field(values: list[str], name: str = "") -> str | None:
    """A request field as Vary compares it (``name`` lowercase); None when absent."""
    if not values:
        return None
    if name not in _WEIGHTED:
        return ",".join(_members(values))
    raw = (name, ",".join(values))
    out = _memo.get(raw)
    if out is None:
        members = _members(values)
        ranked = _weighted(members)
        if ranked is None:
            out = ",".join(members)
        else:
            ranked.sort(key=lambda m: (-m[0], m[1]))
            out = ",".join(m if q == 1 else f"{m};q={q:g}" for q, m in ranked)
        if len(raw[1]) <= 256:
            if len(_memo) >= _MEMO_SIZE:
                _memo.clear()
            _memo[raw] = out
    return out


def prefers_language(accept_language: list[str], content_language: str | None) -> bool:
    """Whether the request's single most preferred language range matches the response's
    one Content-Language tag (RFC 4647 §3.3.1 basic filtering; ``*`` names no language)."""
    if not accept_language or not content_language or "," in content_language:
        return False
    ranked = _weighted(_members(accept_language))
    if not ranked:
        return False
    ranked.sort(key=lambda m: -m[0])
    top_q, top = ranked[0]
    if top_q <= 0 or (len(ranked) > 1 and ranked[1][0] == top_q):
        return False
    tag = content_language.strip().lower()
    lang_range = top.split(";", 1)[0]
    return lang_range != "*" and (tag == lang_range or tag.startswith(lang_range + "-"))
