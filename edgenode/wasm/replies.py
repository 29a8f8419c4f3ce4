"""The responses the host itself gives a stream: failure, timeout, buffer limits, reset."""

from __future__ import annotations

from typing import AsyncIterator

from edgenode.http.messages import CIMultiDict, Response

__all__ = ["text_response", "failure_response", "reset_response", "StreamAborted"]


class StreamAborted(Exception):
    """Raised from a response body: the filter broke the response after it started."""


def text_response(status: int, text: str) -> Response:
    body = text.encode()
    headers = CIMultiDict({"Content-Type": "text/plain", "Content-Length": str(len(body))})
    return Response(status, headers, body)


def failure_response(name: str) -> Response:
    """Envoy's fail-closed reply: 503, details wasm_fail_stream."""
    return text_response(503, f"filter {name} failed\n")


def reset_response() -> Response:
    """A response whose body aborts the connection (``proxy_close_stream``)."""
    async def broken() -> AsyncIterator[bytes]:
        raise StreamAborted("stream closed by filter")
        yield b""  # pragma: no cover - makes this an async generator
    return Response(502, CIMultiDict(), broken())
