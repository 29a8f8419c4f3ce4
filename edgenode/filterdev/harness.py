"""Run one Proxy-Wasm filter on requests with no network: the Python API behind
``edgenode filter test`` and the pytest ``filter`` fixture.

The filter runs in the real host (``WasmStage``: same callbacks, same failure policy),
but the origin is a terminal handler that answers from a spec, and the guest's clocks
and randomness are fixed (a frozen wall clock, a seeded RNG), so a run repeats exactly.

    from edgenode.filterdev import FilterHarness
    with FilterHarness("build/hello.wasm", config={"greeting": "hi"}) as f:
        resp = f.request("GET", "/a", headers={"x-name": "bob"})
        assert resp.status == 200 and resp.origin_request.headers["x-filter"] == "hello"
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from edgenode.config import StageConfig
from edgenode.http.messages import CIMultiDict, Request, Response, read_body
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.engine import WasmEngine
from edgenode.wasm.stage import WasmStage
from edgenode.wasm.vm import HostEnv

__all__ = ["FilterHarness", "FilterResponse", "OriginReply", "OriginRequest", "CallbackEvent",
           "LogEntry", "FIXED_EPOCH_NS", "LEVEL_NAMES", "action_name"]

#: the frozen wall clock's default reading: 2026-01-01T00:00:00Z
FIXED_EPOCH_NS = 1_767_225_600 * 10**9
LEVEL_NAMES = {5: "trace", logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
           logging.ERROR: "error", logging.CRITICAL: "critical"}
_ACTIONS = {0: "Continue", 1: "StopIteration", 2: "StopIteration(2)", 3: "StopAllIterationAndBuffer",
            4: "StopAllIterationAndWatermark"}
_STREAM_EXPORTS = ("proxy_on_request_headers", "proxy_on_request_body", "proxy_on_response_headers",
                   "proxy_on_response_body")

HeadersIn = Union[Mapping[str, str], Sequence[tuple[str, str]], None]


def action_name(export: str, result: int | None) -> str:
    """How a callback's return value reads: an Envoy action for stream hooks, else the int."""
    if result is None:
        return "trap"
    if export in _STREAM_EXPORTS:
        return _ACTIONS.get(result, str(result))
    return str(result)


def _headers(value: HeadersIn) -> CIMultiDict[str]:
    items = value.items() if isinstance(value, Mapping) else (value or [])
    return CIMultiDict((str(k), str(v)) for k, v in items)


def _bytes(value: bytes | str | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else bytes(value)


@dataclass
class OriginRequest:
    """What reached the origin after the filter's request work."""

    method: str
    target: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


@dataclass
class OriginReply:
    """What the synthesised origin answers (default: 200 text/plain "ok")."""

    status: int = 200
    headers: HeadersIn = None
    body: bytes | str = b"ok\n"

    def response(self) -> Response:
        headers = _headers(self.headers)
        if "content-type" not in headers:
            headers["Content-Type"] = "text/plain"
        body = _bytes(self.body)
        headers["Content-Length"] = str(len(body))
        return Response(self.status, headers, body)


Origin = Union[OriginReply, Callable[[OriginRequest], OriginReply]]


@dataclass
class CallbackEvent:
    """One guest call: the export, its phase, its result (None = it trapped), its time."""

    export: str
    phase: str | None
    result: int | None
    seconds: float

    @property
    def action(self) -> str:
        return action_name(self.export, self.result)


@dataclass
class LogEntry:
    level: str
    message: str


@dataclass
class FilterResponse:
    """The client's view of one request plus what happened inside the filter."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    #: None when the filter answered without contacting the origin
    origin_request: OriginRequest | None
    logs: list[LogEntry] = field(default_factory=list)
    callbacks: list[CallbackEvent] = field(default_factory=list)
    #: set when the stream failed in the filter (trap, broken response body)
    error: str | None = None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def origin_called(self) -> bool:
        return self.origin_request is not None

    @property
    def timings(self) -> dict[str, float]:
        """Seconds spent in the filter per phase (request_headers, response_body, ...)."""
        out: dict[str, float] = {}
        for ev in self.callbacks:
            if ev.phase is not None:
                out[ev.phase] = out.get(ev.phase, 0.0) + ev.seconds
        return out


class _Capture(logging.Handler):
    def __init__(self, sink: list[LogEntry]) -> None:
        super().__init__(level=1)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(LogEntry(LEVEL_NAMES.get(record.levelno, str(record.levelno)), record.getMessage()))


class FilterHarness:
    """One filter VM (``isolation = "shared"``, as in production) fed by ``request()``.

    ``config``: the plugin configuration (str/bytes, or a dict/list sent as JSON).
    ``origin``: default reply of the synthesised origin, or a function of the request.
    ``upstreams``: replies for ``proxy_http_call`` by upstream name.
    ``clock_ns``/``seed``: the frozen wall clock and the RNG seed the guest sees.
    ``options``: any other wasm stage option (``log_level``, ``memory_limit``, ...).
    """

    def __init__(self, wasm: str | Path, config: Any = "", *, root_id: str = "", name: str = "filter",
                 origin: Origin | None = None, upstreams: Mapping[str, Origin] | None = None,
                 clock_ns: int = FIXED_EPOCH_NS, seed: int = 0, options: Mapping[str, Any] | None = None,
                 engine: WasmEngine | None = None) -> None:
        self.wasm = Path(wasm).resolve()
        self.name = name
        self.origin: Origin = origin or OriginReply()
        self.upstreams = dict(upstreams or {})
        self.now_ns = clock_ns
        self._rng = random.Random(seed)
        self.logs: list[LogEntry] = []
        self.callbacks: list[CallbackEvent] = []
        self._logger = logging.getLogger(f"edgenode.filter.{name}")
        self._saved = (self._logger.level, self._logger.propagate)
        self._handler = _Capture(self.logs)
        self._logger.addHandler(self._handler)
        self._logger.setLevel(1)
        self._logger.propagate = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requests = 0
        env = HostEnv(wall_ns=lambda: self.now_ns, monotonic_ns=lambda: self.now_ns,
                      random_bytes=self._rng.randbytes)
        opts: dict[str, Any] = {"module": str(self.wasm), "log_level": "info", **(options or {})}
        if isinstance(config, bytes):
            config = config.decode()
        if config not in ("", None):
            opts["config"] = config
        if root_id:
            opts["root_id"] = root_id
        try:
            self.stage = WasmStage(StageConfig("wasm", name, opts), base_dir=self.wasm.parent,
                                   callout=self._callout, upstreams=set(self.upstreams) or None,
                                   engine=engine, host_env=env, observer=self._observe)
        except BaseException:
            self._restore_logger()
            raise
        self._startup_logs = len(self.logs)
        self._handler_chain = self.stage.wrap(self._terminal)
        self._origin_seen: OriginRequest | None = None

    # --- hooks ----------------------------------------------------------------------
    def _observe(self, filter_name: str, export: str, phase: str | None, seconds: float,
                 result: int | None, exchange: Exchange | None) -> None:
        self.callbacks.append(CallbackEvent(export, phase, result, seconds))

    async def _terminal(self, exchange: Exchange) -> Response:
        req = exchange.request
        seen = OriginRequest(req.method, req.target, CIMultiDict(req.headers), await read_body(req.body))
        self._origin_seen = seen
        reply = self.origin(seen) if callable(self.origin) else self.origin
        return reply.response()

    async def _callout(self, upstream: str, request: Request, timeout: float | None) -> Response:
        spec = self.upstreams[upstream]  # KeyError -> BAD_ARGUMENT to the guest
        seen = OriginRequest(request.method, request.target, CIMultiDict(request.headers),
                             await read_body(request.body))
        reply = spec(seen) if callable(spec) else spec
        return reply.response()

    # --- API ------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the guest's clock forward (it never moves on its own)."""
        self.now_ns += int(seconds * 1e9)

    async def arequest(self, method: str, path: str, headers: HeadersIn = None,
                       body: bytes | str = b"", host: str = "example.com",
                       origin: Origin | None = None) -> FilterResponse:
        """Send one request through the filter (use this form inside async tests)."""
        hdrs = _headers(headers)
        if "host" not in hdrs:
            hdrs["Host"] = host
        data = _bytes(body)
        if data:
            hdrs["Content-Length"] = str(len(data))
        exchange = Exchange(Request(method, path, hdrs, data))
        exchange.start_wall = self.now_ns / 1e9
        self._requests += 1
        exchange.id = self._requests  # request.id / connection.id repeat from run to run
        first_log, first_call = len(self.logs), len(self.callbacks)
        self._origin_seen = None
        saved_origin = self.origin
        if origin is not None:
            self.origin = origin
        error = None
        try:
            response = await self._handler_chain(exchange)
            try:
                payload = await read_body(response.body)
            except Exception as exc:  # noqa: BLE001 - a body broken by the filter is a result
                payload, error = b"", f"response body aborted: {exc}"
        finally:
            self.origin = saved_origin
        vm = self.stage.vm
        if error is None and vm is not None and vm.failed is not None:
            error = vm.failed
        return FilterResponse(response.status, response.headers, payload, self._origin_seen,
                              self.logs[first_log:], self.callbacks[first_call:], error)

    def request(self, method: str, path: str, headers: HeadersIn = None, body: bytes | str = b"",
                host: str = "example.com", origin: Origin | None = None) -> FilterResponse:
        """Synchronous ``arequest`` (for plain pytest tests and scripts)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("FilterHarness.request() called inside a running event loop; "
                               "use `await harness.arequest(...)` in async code")
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(
            self.arequest(method, path, headers, body, host, origin))

    @property
    def startup_logs(self) -> list[LogEntry]:
        """What the filter logged before the first request (vm start, configure)."""
        return self.logs[:self._startup_logs]

    def close(self) -> None:
        vm = self.stage.vm
        if vm is not None:
            vm.close()
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        self._restore_logger()

    def _restore_logger(self) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._saved[0])
        self._logger.propagate = self._saved[1]

    def __enter__(self) -> "FilterHarness":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
