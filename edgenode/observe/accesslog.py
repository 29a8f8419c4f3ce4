"""Access log: one line per request, compact text or JSON.

The text line keeps to what an operator scans for (time, client, method, the target as
the client sent it, status, body bytes, cache status, total time, request id), about
110 characters plus the target; JSON adds the details (URL, protocol, origin and its
time, referer, user agent, per-filter timings, the target sent upstream when a filter
rewrote it).  The request id is the one in the ``X-Request-Id`` headers and in log lines
written while the request ran.

Formatting is pure (``format_text`` / ``format_json``); :class:`AccessLog` buffers the
lines and writes them in batches, at most every ``flush_interval`` seconds or when
the buffer passes ``max_buffer`` bytes, so a busy loop pays one write call per batch
instead of one per request.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, TextIO

from edgenode.config import ConfigError, LogConfig
from edgenode.http.messages import Response
from edgenode.pipeline.exchange import Exchange

__all__ = ["AccessLog", "log_record", "format_text", "format_json"]


_second: list[Any] = [-1, ""]  # the last formatted second: lines come in bursts


def _iso(ts: float) -> str:
    """ISO 8601 UTC with milliseconds; the date part is formatted once per second."""
    sec, us = divmod(round(ts * 1_000_000), 1_000_000)
    if sec != _second[0]:
        _second[0], _second[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second[1]}.{us // 1000:03d}Z"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def log_record(exchange: Exchange, response: Response | None, worker: int | None = None) -> dict[str, Any]:
    """The fields of one access-log line, as plain data."""
    req = exchange.request
    rid = exchange.request_id or (f"{worker}-{exchange.id}" if worker is not None else str(exchange.id))
    target = exchange.target
    rec: dict[str, Any] = {
        "time": _iso(exchange.start_wall),
        "client": exchange.client[0],
        "method": req.method,
        "target": target,
        "url": f"{req.scheme}://{req.host}{target}",
        "protocol": f"HTTP/{req.version}",
        "status": exchange.status or (response.status if response is not None else 0),
        "bytes": exchange.response_bytes,
        "cache": exchange.x_cache or "-",
        "origin": exchange.origin,
        "origin_ms": _ms(exchange.origin_time),
        "total_ms": _ms(exchange.elapsed),
        "request_id": rid,
        "referer": req.headers.get("referer"),
        "user_agent": req.headers.get("user-agent"),
    }
    if req.target != target:
        rec["upstream_target"] = req.target  # a filter rewrote it (an image variant's source)
    if exchange.timings:
        rec["filters"] = {f"{name}.{phase}": _ms(sec) for (name, phase), sec in exchange.timings.items()}
    return rec


def _field(value: str) -> str:
    """A space-free, printable field (a request target never has spaces; bytes outside
    printable ASCII are escaped so a line cannot be forged)."""
    if value.isascii() and value.isprintable() and " " not in value:
        return value
    return "".join(c if "!" <= c <= "~" else f"\\x{ord(c):02x}" for c in value) or "-"


def format_text(rec: dict[str, Any]) -> str:
    """``time client METHOD target status bytes cache total_ms request_id``, e.g.
    ``2026-05-01T10:00:00.123Z 10.0.0.7 GET /a?b=1 200 1024 HIT 0.412ms 5f0c9e21d3a8-1c``."""
    return (f'{rec["time"]} {rec["client"] or "-"} {_field(rec["method"])} {_field(rec["target"])} '
            f'{rec["status"]} {rec["bytes"]} {rec["cache"]} {rec["total_ms"]:.3f}ms {rec["request_id"]}')


def format_json(rec: dict[str, Any]) -> str:
    return json.dumps(rec, separators=(",", ":"), ensure_ascii=False)


class AccessLog:
    """Buffered access log writer for one process (one event loop)."""

    def __init__(self, cfg: LogConfig, worker: int | None = None, flush_interval: float = 0.2,
                 max_buffer: int = 64 * 1024) -> None:
        self.enabled = cfg.access != "off"
        self._format = format_json if cfg.format == "json" else format_text
        self._worker = worker
        self._interval = flush_interval
        self._max = max_buffer
        self._buf: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._owned = False
        self._out: TextIO | None = None
        if cfg.access == "stdout":
            self._out = sys.stdout
        elif cfg.access == "stderr":
            self._out = sys.stderr
        elif self.enabled:
            try:
                self._out = open(cfg.access, "a", encoding="utf-8", buffering=1 << 16)
            except OSError as exc:
                raise ConfigError(f"log.access: cannot open {cfg.access!r}: {exc.strerror}") from None
            self._owned = True

    def log(self, exchange: Exchange, response: Response | None) -> None:
        if not self.enabled:
            return
        line = self._format(log_record(exchange, response, self._worker)) + "\n"
        self._buf.append(line)
        self._size += len(line)
        if self._size >= self._max:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)
            except RuntimeError:  # no loop (direct use from sync code): write now
                self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buf or self._out is None:
            return
        data = "".join(self._buf)
        self._buf.clear()
        self._size = 0
        try:
            self._out.write(data)
            self._out.flush()
        except (OSError, ValueError):  # closed pipe or file: logging must not take the node down
            pass

    def close(self) -> None:
        self.flush()
        if self._owned and self._out is not None:
            self._out.close()
            self._out = None
