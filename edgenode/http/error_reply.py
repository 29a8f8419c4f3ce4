"""The node's own short error replies (``text/plain``, saying what was wrong)."""

from __future__ import annotations

from multidict import CIMultiDict

from edgenode.http.messages import Response

__all__ = ["error_response"]


def error_response(status: int, message: str, close: bool = False) -> Response:
    """A short ``text/plain`` error reply that says what was wrong."""
    headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "text/plain; charset=utf-8"})
    if close:
        headers["Connection"] = "close"
    return Response(status, headers, f"edgenode: {message}\n".encode())
