"""The live progress line of ``edgenode bench``.

On a terminal one line is rewritten in place (``\\r``); otherwise (CI logs, pipes) a
plain line is printed every ``plain_every`` seconds so logs stay readable.
"""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["Progress", "format_line"]


def format_line(elapsed: float, duration: float, requests: int, rps: float,
                hit_ratio: float | None) -> str:
    hr = "  n/a" if hit_ratio is None else f"{hit_ratio:5.1%}"
    return (f"[{elapsed:6.1f}s/{duration:.0f}s] requests {requests:>10,}  "
            f"now {rps:>9,.0f} req/s  hit ratio {hr}")


class Progress:
    def __init__(self, duration: float, stream: TextIO | None = None, plain_every: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.duration = duration
        self.tty = self.stream.isatty()
        self.plain_every = plain_every
        self._last_plain = 0.0
        self._width = 0

    def update(self, elapsed: float, requests: int, rps: float, hit_ratio: float | None) -> None:
        line = format_line(elapsed, self.duration, requests, rps, hit_ratio)
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()
        elif elapsed - self._last_plain >= self.plain_every:
            self._last_plain = elapsed
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
