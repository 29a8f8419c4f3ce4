"""Checks of a request head that decide its target and framing (no I/O)."""

from __future__ import annotations

from multidict import CIMultiDict

__all__ = ["Reject", "METHODS", "absolute_target", "check_transfer_encoding"]

#: method names as str without a decode per request
METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}


class Reject(Exception):
    """Raised inside parser callbacks to answer with a 4xx/5xx and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def absolute_target(method: str, target: str, headers: CIMultiDict[str]) -> str:
    """Turn an absolute-form target into origin-form; its authority replaces Host."""
    if target == "*" and method == "OPTIONS":
        return target
    lower = target[:8].lower()
    if lower.startswith("http://") or lower.startswith("https://"):
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        authority, path = (rest, "/") if slash == -1 else (rest[:slash], rest[slash:])
        if "?" in authority:
            authority, _, query = authority.partition("?")
            path = "/?" + query
        if not authority or "@" in authority:
            raise Reject(400, "bad absolute request target")
        headers.popall("host", None)
        headers["Host"] = authority
        return path
    raise Reject(400, "request target must be an absolute path or absolute URL")


def check_transfer_encoding(values: list[str], version: str) -> None:
    """Allow exactly ``chunked``: anything else is a smuggling risk or unsupported."""
    if version == "1.0":
        raise Reject(400, "Transfer-Encoding is not allowed in HTTP/1.0 requests")
    codings = [c.strip().lower() for v in values for c in v.split(",") if c.strip()]
    if not codings or codings[-1] != "chunked" or codings.count("chunked") != 1:
        raise Reject(400, "Transfer-Encoding must end with a single 'chunked'")
    if len(codings) > 1:
        raise Reject(501, f"transfer coding {codings[0]!r} is not supported")
