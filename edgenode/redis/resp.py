"""RESP framing, pure (bytes in, bytes out): no I/O, no decoding beyond what framing needs.

Filters send and receive *raw* RESP (the Higress ABI hands the reply bytes to the guest
as buffer 9), so the client never turns replies into Python values: it only needs to
know where one complete value ends.  RESP2 and RESP3 types are both framed.
"""

from __future__ import annotations

__all__ = ["frame_end", "encode_command", "is_error", "error_text", "RespError"]

#: types whose payload is one CRLF-terminated line
_LINE = frozenset(b"+-:_#,(")
#: types with a length-prefixed payload (bulk string, bulk error, verbatim string)
_BULK = frozenset(b"$!=")
#: aggregate types and how many values each declared element stands for
_AGGREGATE = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2, ord("|"): 2}
#: deepest nesting accepted (a reply nested deeper is refused rather than walked)
MAX_DEPTH = 64


class RespError(ValueError):
    """The bytes are not RESP (a framing error, not a Redis error reply)."""


def _line_end(buf: bytes | bytearray, pos: int) -> int:
    """Index just past the CRLF of the line starting at ``pos``, or -1 if incomplete."""
    end = buf.find(b"\r\n", pos)
    return -1 if end < 0 else end + 2


def _length(buf: bytes | bytearray, start: int, end: int) -> int:
    try:
        return int(buf[start:end - 2])
    except ValueError:
        raise RespError(f"bad length {bytes(buf[start:end - 2])[:20]!r}") from None


def frame_end(buf: bytes | bytearray, pos: int = 0) -> int:
    """End index of the one complete RESP value starting at ``pos``; -1 if more bytes
    are needed.  Raises RespError for bytes that can never become RESP."""
    pending = 1  # values still to read
    depth = 0
    stack: list[int] = []
    while pending:
        if pos >= len(buf):
            return -1
        kind = buf[pos]
        end = _line_end(buf, pos + 1)
        if end < 0:
            return -1
        if kind in _LINE:
            pos = end
        elif kind in _BULK:
            n = _length(buf, pos + 1, end)
            if n < 0:  # null bulk string
                pos = end
            else:
                if len(buf) < end + n + 2:
                    return -1
                if buf[end + n:end + n + 2] != b"\r\n":
                    raise RespError("bulk string not followed by CRLF")
                pos = end + n + 2
        elif kind in _AGGREGATE:
            n = _length(buf, pos + 1, end)
            pos = end
            if n > 0:
                depth += 1
                if depth > MAX_DEPTH:
                    raise RespError("reply nested too deeply")
                stack.append(pending - 1)
                pending = n * _AGGREGATE[kind] + 1
        else:
            raise RespError(f"unknown RESP type byte {kind:#x}")
        pending -= 1
        while not pending and stack:
            pending = stack.pop()
            depth -= 1
    return pos


def encode_command(*args: bytes | str | int) -> bytes:
    """A command as an array of bulk strings (what every Redis server accepts)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def is_error(frame: bytes) -> bool:
    """Whether a complete frame is an error reply (simple or bulk error)."""
    return frame[:1] in (b"-", b"!")


def error_text(frame: bytes) -> str:
    """The message of an error reply (for logs and exceptions)."""
    if frame[:1] == b"!":
        return frame[frame.index(b"\r\n") + 2:-2].decode("utf-8", "replace")
    return frame[1:-2].decode("utf-8", "replace")
