"""A lean HTTP/1.1 keep-alive load generator (asyncio Protocol) and a ``wrk`` runner.

The Python generator exists so benchmarks and the demo work on machines without
``wrk`` and so a run can walk a list or generator of paths (wrk without Lua hits one
URL).  It writes raw requests and parses only what framing needs (status,
Content-Length, chunked, Connection) plus the headers it was asked to sample; a
general client such as aiohttp's costs several times more CPU per request and would
measure itself rather than the server.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import shutil
import subprocess
import time
from array import array
from pathlib import Path
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

__all__ = ["LoadResult", "run_load", "percentile", "percentiles", "wrk_available", "run_wrk",
           "parse_wrk_output"]


def percentile(values: Sequence[float], p: float, *, presorted: bool = False) -> float:
    """Linear-interpolated percentile ``p`` (0..100); NaN for no values."""
    if not values:
        return math.nan
    data = values if presorted else sorted(values)
    if len(data) == 1:
        return float(data[0])
    rank = (len(data) - 1) * min(max(p, 0.0), 100.0) / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (rank - lo)


def percentiles(values: Sequence[float], ps: Iterable[float] = (50, 90, 99)) -> dict[str, float]:
    """``{"p50": .., "p90": .., "p99": ..}`` with one sort."""
    data = sorted(values)
    return {f"p{p:g}": percentile(data, p, presorted=True) for p in ps}


@dataclass
class LoadResult:
    """What one load run measured.  Latencies are per request in microseconds."""

    generator: str
    duration_s: float = 0.0
    latencies_us: array = field(default_factory=lambda: array("q"))
    status: Counter = field(default_factory=Counter)
    bytes_received: int = 0
    errors: Counter = field(default_factory=Counter)
    #: header name (lower case) -> Counter of the values seen
    headers: dict[str, Counter] = field(default_factory=dict)
    #: only for wrk, which reports percentiles rather than samples: "p50" -> µs
    reported_percentiles_us: dict[str, float] = field(default_factory=dict)
    #: wrk counts completed requests itself
    reported_requests: int | None = None

    @property
    def requests(self) -> int:
        """Completed responses (any status); errors are counted apart."""
        if self.reported_requests is not None:
            return self.reported_requests
        return sum(self.status.values())

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def latency_us(self, p: float) -> float:
        if self.latencies_us:
            return percentile(self.latencies_us, p)
        return self.reported_percentiles_us.get(f"p{p:g}", math.nan)

    def summary(self) -> dict:
        """A JSON-ready digest (no per-request samples)."""
        if self.latencies_us:
            lat = percentiles(self.latencies_us, (50, 90, 99))
        else:
            lat = {k: v for k, v in self.reported_percentiles_us.items() if k in ("p50", "p90", "p99")}
        return {
            "generator": self.generator,
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rps": round(self.rps, 1),
            "latency_us": {k: round(v, 1) for k, v in lat.items()},
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "bytes_received": self.bytes_received,
            "errors": dict(self.errors),
            "headers": {name: dict(c.most_common(20)) for name, c in self.headers.items()},
        }


class _ResponseError(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class _Conn(asyncio.Protocol):
    """One keep-alive connection; parses one response at a time into a future."""

    def __init__(self, sample: frozenset[bytes], result: LoadResult) -> None:
        self.sample = sample
        self.result = result
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.head_only = False
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.state = "head"  # head | length | chunk_size | chunk_data | trailers | eof
        self.remaining = 0
        self.status = 0
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if self.state == "eof":
                self._finish()
            else:
                self.waiter.set_exception(_ResponseError("reset"))

    def send(self, data: bytes, head_only: bool) -> asyncio.Future:
        assert self.transport is not None
        self.head_only = head_only
        self.waiter = asyncio.get_running_loop().create_future()
        self._reset()
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.result.bytes_received += len(data)
        if self.waiter is None or self.waiter.done():
            return  # bytes after a complete response: the next read will fail cleanly
        self.buf += data
        try:
            self._parse()
        except _ResponseError as exc:
            self.waiter.set_exception(exc)

    def _finish(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, self.keep_alive))

    def _parse(self) -> None:
        buf = self.buf
        while True:
            if self.state == "head":
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > 65536:
                        raise _ResponseError("protocol")
                    return
                self._head(bytes(buf[:end]))
                del buf[:end + 4]
                if self.state == "done":
                    return self._finish()
            elif self.state == "length":
                take = min(self.remaining, len(buf))
                del buf[:take]
                self.remaining -= take
                if self.remaining == 0:
                    return self._finish()
                return
            elif self.state == "chunk_size":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                try:
                    size = int(bytes(buf[:end]).split(b";", 1)[0], 16)
                except ValueError:
                    raise _ResponseError("protocol") from None
                del buf[:end + 2]
                if size == 0:
                    self.state = "trailers"
                else:
                    self.state, self.remaining = "chunk_data", size + 2
            elif self.state == "chunk_data":
                take = min(self.remaining, len(buf))
                del buf[:take]
                self.remaining -= take
                if self.remaining:
                    return
                self.state = "chunk_size"
            elif self.state == "trailers":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                del buf[:end + 2]
                if end == 0:
                    return self._finish()
            else:  # "eof": body runs to connection close
                buf.clear()
                return

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise _ResponseError("protocol")
        try:
            self.status = int(parts[1])
        except ValueError:
            raise _ResponseError("protocol") from None
        self.keep_alive = parts[0] == b"HTTP/1.1"
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise _ResponseError("protocol") from None
            elif name == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
            elif name == b"connection":
                token = value.lower()
                if b"close" in token:
                    self.keep_alive = False
                elif b"keep-alive" in token:
                    self.keep_alive = True
            if name in self.sample:
                key = name.decode("latin-1")
                self.result.headers.setdefault(key, Counter())[value.decode("latin-1")] += 1
        if self.head_only or self.status in (204, 304) or 100 <= self.status < 200:
            self.state = "done"
        elif chunked:
            self.state = "chunk_size"
        elif length is not None:
            self.state, self.remaining = ("done", 0) if length == 0 else ("length", length)
        else:
            self.state, self.keep_alive = "eof", False


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, _ResponseError):
        return exc.kind
    if isinstance(exc, ConnectionRefusedError):
        return "connect_refused"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    return type(exc).__name__


async def run_load(
    host: str,
    port: int,
    paths: Sequence[str] | Iterator[str],
    *,
    connections: int = 16,
    duration: float | None = None,
    requests: int | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    host_header: str | None = None,
    sample_headers: Iterable[str] = (),
    timeout: float = 10.0,
    rate: float | None = None,
) -> LoadResult:
    """Drive ``connections`` keep-alive connections until ``duration`` s or ``requests`` done.

    ``paths``: a sequence is cycled, an iterator is consumed (the run ends when it
    runs out).  Failed attempts count in ``errors`` by kind (connect_refused, reset,
    timeout, protocol) and use up the request budget, so a dead server cannot make a
    count-bounded run loop forever.  ``rate`` (requests/s over all connections) paces
    request starts to a fixed schedule; a request is never sent before its slot.
    """
    if (duration is None) == (requests is None):
        raise ValueError("give exactly one of duration= or requests=")
    if connections < 1:
        raise ValueError("connections must be at least 1")
    if isinstance(paths, str):
        raise TypeError("paths: give a list or an iterator of paths, not one string")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    source: Iterator[str] = itertools.cycle(paths) if isinstance(paths, Sequence) else iter(paths)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    host_value = host_header or f"{host}:{port}"
    prefix = f"{method} "
    suffix = f" HTTP/1.1\r\nHost: {host_value}\r\nUser-Agent: edgenode-loadgen\r\n{extra}\r\n"
    cache: dict[str, bytes] = {}
    sample = frozenset(h.lower().encode() for h in sample_headers)
    head_only = method.upper() == "HEAD"
    result = LoadResult(generator="python")
    budget = [requests if requests is not None else -1]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration if duration is not None else math.inf
    pace = [loop.time(), 0]  # schedule start, requests scheduled so far (rate only)

    def next_request() -> bytes | None:
        if loop.time() >= deadline or budget[0] == 0:
            return None
        try:
            path = next(source)
        except StopIteration:
            return None
        budget[0] -= 1
        data = cache.get(path)
        if data is None:
            data = (prefix + path + suffix).encode("latin-1")
            if len(cache) < 100_000:
                cache[path] = data
        return data

    async def worker() -> None:
        conn: _Conn | None = None
        lat = result.latencies_us
        while (req := next_request()) is not None:
            if rate:
                slot = pace[0] + pace[1] / rate
                pace[1] += 1
                if slot > loop.time():
                    await asyncio.sleep(slot - loop.time())
            try:
                if conn is None or conn.closed:
                    _, conn = await asyncio.wait_for(
                        loop.create_connection(lambda: _Conn(sample, result), host, port), timeout)
                t0 = time.perf_counter_ns()
                status, keep = await asyncio.wait_for(conn.send(req, head_only), timeout)
                lat.append((time.perf_counter_ns() - t0) // 1000)
                result.status[status] += 1
                if not keep:
                    conn.transport.close()  # type: ignore[union-attr]
                    conn = None
            except (OSError, asyncio.TimeoutError, _ResponseError) as exc:
                result.errors[_error_kind(exc)] += 1
                if conn is not None and conn.transport is not None:
                    conn.transport.abort()
                conn = None
                await asyncio.sleep(0.001)  # a dead server must not turn this into a busy loop
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    t_start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    result.duration_s = time.perf_counter() - t_start
    return result


def wrk_available() -> str | None:
    return shutil.which("wrk")


_UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0, "m": 60_000_000.0}
_SIZE_B = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _duration_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"wrk: cannot read latency {text!r}")
    return float(m.group(1)) * _UNIT_US[m.group(2)]


def parse_wrk_output(text: str) -> LoadResult:
    """Read the summary of ``wrk --latency`` (no Lua script) into a LoadResult."""
    result = LoadResult(generator="wrk")
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)([KMGT]?B) read", text)
    if not m:
        raise ValueError("wrk: no 'N requests in T' line in its output:\n" + text)
    result.reported_requests = int(m.group(1))
    result.duration_s = _duration_us(m.group(2) + m.group(3)) / 1_000_000
    result.bytes_received = int(float(m.group(4)) * _SIZE_B[m.group(5)])
    dist = text.split("Latency Distribution", 1)
    if len(dist) == 2:
        for pm in re.finditer(r"^\s+(\d+(?:\.\d+)?)%\s+([\d.]+(?:us|ms|s|m))\s*$", dist[1], re.M):
            result.reported_percentiles_us[f"p{float(pm.group(1)):g}"] = _duration_us(pm.group(2))
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if se:
        for kind, value in zip(("connect", "read", "write", "timeout"), se.groups()):
            if int(value):
                result.errors[kind] = int(value)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    bad = int(non2xx.group(1)) if non2xx else 0
    result.status["2xx/3xx"] = result.reported_requests - bad
    if bad:
        result.status["other"] = bad
    return result


def run_wrk(url: str, *, connections: int, duration: float, threads: int = 1,
            headers: dict[str, str] | None = None, wrk: str | None = None,
            script: Path | None = None, script_args: Sequence[str] = ()) -> LoadResult:
    """Run ``wrk --latency`` (blocking) and parse its summary; needs ``wrk`` on PATH.

    ``script``: a Lua script (``-s``, e.g. one whose ``request()`` makes a new path per
    request) that leaves wrk's summary as it is; ``script_args`` reach its ``init``."""
    binary = wrk or wrk_available()
    if binary is None:
        raise FileNotFoundError("wrk is not installed (benchmarks/setup_reference.sh installs it)")
    cmd = [binary, "--latency", f"-t{max(1, min(threads, connections))}", f"-c{connections}",
           f"-d{max(1, round(duration))}s", "--timeout", "10s"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if script_args:
        cmd += ["--", *script_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    return parse_wrk_output(proc.stdout)
