"""``FunctionStage``: a ``wasi:http`` component answering the requests it matches.

The stage is terminal for its requests (it *is* their origin): a cache stage before it
caches the function's responses under its own Cache-Control, and filters before and
after it run as they do around an origin.  Requests it does not match go on down the
chain.

Execution: *inline* on the event loop's thread when the request body is complete and
the function has no outbound HTTP (the common case: no thread hand-off; the response
is collected, then sent), else *threaded* on a worker thread, with the request body
streamed in and the response streamed out as the guest writes it.  Each request gets
a fresh instance (prewarmed in idle loop iterations) unless ``isolation = "reuse"``.
A trap, a limit or a handler that never answers fails that request only (500, or 503
for a limit), with a log line and a metric.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from edgenode.config import ConfigError, StageConfig
from edgenode.functions._hostcall import Source
from edgenode.functions.capabilities import outbound_policy
from edgenode.functions.component import FunctionLoadError, FunctionRuntime, LoadedFunction, runtime
from edgenode.functions.instance import GuestError, GuestInstance
from edgenode.functions.invocation import Capabilities, Invocation
from edgenode.functions.kv import KeyValueBackend
from edgenode.functions.metrics import FunctionMetrics
from edgenode.functions.options import FunctionOptions, parse_function_options
from edgenode.http.messages import Request, Response, close_body, trailers_of
from edgenode.http.server import error_response
from edgenode.pipeline.exchange import Exchange

__all__ = ["FunctionStage", "FunctionLoadError"]

log = logging.getLogger("edgenode.functions")
Handler = Callable[[Exchange], Awaitable[Response]]
Callout = Callable[[str, Request, float | None], Awaitable[Response]]
#: limit kinds answer 503 (the function is healthy, this request was too big/slow)
_LIMITS = {"cpu", "memory", "timeout", "body"}
_DONE = object()


class FunctionStage:
    """A chain stage serving matching requests from one component."""

    def __init__(self, stage_cfg: StageConfig, *, base_dir: Path, callout: Callout | None = None,
                 upstreams: dict[str, Any] | None = None, kv: KeyValueBackend | None = None,
                 index: int | None = None, fn_runtime: FunctionRuntime | None = None,
                 prewarm: int = 2) -> None:
        self.name = stage_cfg.name
        self._prefix = f"chain[{index}]" if index is not None else f"chain[{stage_cfg.name}]"
        self._base_dir = base_dir
        self._callout = callout
        self._upstreams = upstreams or {}
        self._kv = kv
        self.runtime = fn_runtime or runtime()
        self.metrics = FunctionMetrics()
        self.prewarm = prewarm
        self._pool: list[GuestInstance] = []
        self._refilling = False
        #: used instances, dropped in the next idle loop iteration
        self._retired: list[GuestInstance] = []
        self._reused: GuestInstance | None = None
        self._reuse_busy = False
        #: set when the guest turned out to serve one request per instance
        self._reuse_off = False
        self._executor: ThreadPoolExecutor | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False
        self._options = stage_cfg.options
        self.opts, self.caps, self.loaded = self._build(stage_cfg.options)
        self._loaded_stamp = self._stamp()
        self.runtime.ensure_ticker()

    # --- construction / reload -------------------------------------------------------------
    def _build(self, options: dict[str, Any]) -> tuple[FunctionOptions, Capabilities, LoadedFunction]:
        opts = parse_function_options(options, self._prefix, self._base_dir)
        try:
            outbound = outbound_policy(opts.allowed_outbound_hosts, self._upstreams, self._callout,
                                       opts.limits.timeout, f"{self._prefix}.allowed_outbound_hosts")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if opts.key_value_stores and self._kv is None:
            raise ConfigError(f"{self._prefix}.key_value_stores: no key-value backend on this node")
        caps = Capabilities(outbound, opts.variables, self._kv, opts.key_value_stores, opts.env)
        try:
            loaded = self.runtime.load(opts.component, self.name)
        except FunctionLoadError as exc:
            raise ConfigError(f"{self._prefix}.component: {exc}") from None
        self.metrics.cold_start_s = loaded.load_s
        return opts, caps, loaded

    async def reload(self, stage_cfg: StageConfig | None = None) -> None:
        """Load the component (and settings) again; in-flight requests finish on the old one.

        On any error the running function is left untouched and the error is raised.
        """
        options = stage_cfg.options if stage_cfg is not None else self._options
        stamp = self._stamp()
        self.opts, self.caps, self.loaded = self._build(options)
        self._options = options
        self._loaded_stamp = stamp
        self._pool.clear()
        self._reused = None
        self._reuse_off = False
        self.metrics.reloads += 1
        log.info("function %s: reloaded %s", self.name, self.opts.component)

    # --- the stage contract ----------------------------------------------------------------
    def wrap(self, next_handler: Handler) -> Handler:
        async def handle(exchange: Exchange) -> Response:
            req = exchange.request
            opts = self.opts
            if not req.path.startswith(opts.path_prefix) or (
                    opts.host is not None and req.host.lower().partition(":")[0] != opts.host):
                return await next_handler(exchange)
            if opts.watch and self._watcher is None:
                self._watcher = asyncio.get_running_loop().create_task(self._watch())
            return await self.serve(exchange)
        return handle

    async def serve(self, exchange: Exchange) -> Response:
        t0 = time.perf_counter()
        req = exchange.request
        opts = self.opts
        body = req.body
        self.metrics.requests += 1
        declared = req.headers.get("content-length", "")
        size = len(body) if type(body) is bytes else int(declared) if declared.isdigit() else 0
        if size > opts.limits.max_body_bytes:
            self.metrics.fail("body")
            return error_response(413, f"request body exceeds the function's max_body_bytes "
                                       f"({opts.limits.max_body_bytes})")
        inline = opts.execution == "inline" or (
            opts.execution == "auto" and type(body) is bytes and self.caps.outbound is None)
        if inline and type(body) is not bytes and not await self._buffer(req, opts.limits.max_body_bytes):
            self.metrics.fail("body")
            return error_response(413, f"request body exceeds the function's max_body_bytes "
                                       f"({opts.limits.max_body_bytes})")
        inv = Invocation(limits=opts.limits, caps=self.caps, logger=log, name=self.name,
                         loop=None if inline else asyncio.get_running_loop(), threaded=not inline)
        if inline:
            response = self._serve_inline(inv, req)
        else:
            response = await self._serve_threaded(inv, req)
        total = time.perf_counter() - t0
        self.metrics.total.observe(total)
        self.metrics.host.observe(max(0.0, total - inv.guest_s))
        exchange.add_timing(self.name, "function", total)
        exchange.add_timing(self.name, "guest", inv.guest_s)
        if opts.server_timing and (exchange.server_timing
                                   or req.headers.get("x-edgenode-timing") == "1"):
            response.headers.add("Server-Timing", f"fn-{self.name};dur={total * 1000:.3f}")
        return response

    # --- instances -------------------------------------------------------------------------
    def _instance(self) -> GuestInstance:
        if self.opts.isolation == "reuse" and not self._reuse_off:
            gi = self._reused
            if gi is not None and not gi.broken and not self._reuse_busy:
                self._reuse_busy = True
                return gi
            if gi is None or gi.broken:
                gi = self._reused = self._new_instance()
                self._reuse_busy = True
                return gi
            return self._new_instance()  # the reused one is busy (a threaded request)
        if self._pool:
            gi = self._pool.pop()
        else:
            gi = self._new_instance()
        if self.prewarm and not self._refilling:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return gi
            self._refilling = True
            loop.call_soon(self._refill)
        return gi

    def _release(self, gi: GuestInstance) -> None:
        """After a request: a reused instance becomes free again; any other is dropped in
        an idle loop iteration (freeing a store unmaps its memory: ~0.1-1 ms)."""
        if gi is self._reused:
            self._reuse_busy = False
            if not gi.broken:
                return
            self._reused = None
        self._retired.append(gi)
        if len(self._retired) == 1:
            try:
                asyncio.get_running_loop().call_soon(self._retired.clear)
            except RuntimeError:
                self._retired.clear()

    def _new_instance(self) -> GuestInstance:
        self.metrics.instances += 1
        return GuestInstance(self.runtime, self.loaded, self.opts.limits.memory_bytes)

    def _refill(self) -> None:
        """Start one instance per idle loop iteration until ``prewarm`` wait."""
        if self._closed or len(self._pool) >= self.prewarm or (
                self.opts.isolation != "per-request" and not self._reuse_off):
            self._refilling = False
            return
        try:
            self._pool.append(self._new_instance())
        except GuestError as exc:
            log.error("function %s: cannot start an instance: %s", self.name, exc)
            self._refilling = False
            return
        asyncio.get_running_loop().call_soon(self._refill)

    def _call(self, gi: GuestInstance, inv: Invocation, req: Request, source: Source) -> None:
        # epoch ticks are wall-clock: a guest computing past the timeout is interrupted too
        limits = self.opts.limits
        gi.run(inv, req, source, self.runtime.deadline_ticks(min(limits.cpu_ms, limits.timeout * 1000)))

    # --- inline ----------------------------------------------------------------------------
    def _serve_inline(self, inv: Invocation, req: Request) -> Response:
        try:
            gi = self._instance()
        except GuestError as exc:
            return self._failure("unavailable", f"cannot start an instance: {exc}")
        try:
            self._call(gi, inv, req, self._source(req))
            if inv.head is None and gi is self._reused and gi.calls > 1:
                # some guests answer one request per instance (componentize-js): serve
                # this one on a fresh instance and stop reusing
                log.warning("function %s: its instances serve one request each; reuse is off",
                            self.name)
                self._reuse_off = True
                self._reused = None
                gi = self._instance()
                self._call(gi, inv, req, self._source(req))
        except GuestError as exc:
            return self._failure(exc.kind, str(exc))
        finally:
            self._release(gi)
        if inv.head is None:
            return self._failure("no_response", "the handler returned without setting a response")
        status, headers, sink, error = inv.head
        if error is not None:
            return self._failure("trap", f"the handler answered with error {error}")
        if sink is not None and not sink.closed:
            return self._failure("no_response", "the handler returned without finishing the response body")
        return Response(status, headers, sink.data() if sink is not None else b"")

    @staticmethod
    async def _buffer(req: Request, limit: int) -> bool:
        """Read a streamed request body whole into ``req.body`` (inline execution runs the
        guest once the body is complete); False when it passes ``limit``."""
        body = req.body
        parts, size = [], 0
        try:
            async for chunk in body:  # type: ignore[union-attr]
                size += len(chunk)
                if size > limit:
                    return False
                parts.append(chunk)
        finally:
            await close_body(body)
        req.trailers = trailers_of(body)
        req.body = b"".join(parts)
        return True

    @staticmethod
    def _source(req: Request) -> Source:
        source = Source(bytes(req.body))  # type: ignore[arg-type]
        source.trailers = req.trailers
        return source

    # --- threaded --------------------------------------------------------------------------
    def _threads(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.opts.threads, thread_name_prefix=f"fn-{self.name}")
        return self._executor

    async def _serve_threaded(self, inv: Invocation, req: Request) -> Response:
        loop = asyncio.get_running_loop()
        head_fut: asyncio.Future[tuple[Any, ...]] = loop.create_future()
        chunks: asyncio.Queue[Any] = asyncio.Queue()

        def on_head(head: tuple[Any, ...]) -> None:
            loop.call_soon_threadsafe(lambda: head_fut.done() or head_fut.set_result(head))

        inv.on_head = on_head
        inv.body_relay = lambda chunk: loop.call_soon_threadsafe(chunks.put_nowait, chunk)
        body = req.body
        if type(body) is bytes:
            source = Source(body)
            pump = None
        else:
            source = Source(None, inv)
            pump = loop.create_task(self._pump(body, source, inv.limits.max_body_bytes))  # type: ignore[arg-type]
        try:
            gi = self._instance()
        except GuestError as exc:
            return self._failure("unavailable", f"cannot start an instance: {exc}")

        def run() -> None:
            try:
                self._call(gi, inv, req, source)
            finally:
                loop.call_soon_threadsafe(chunks.put_nowait, _DONE)

        done = loop.run_in_executor(self._threads(), run)
        done.add_done_callback(lambda f: (self._release(gi), f.cancelled() or f.exception()))
        waited, _ = await asyncio.wait({head_fut, done}, timeout=max(0.0, inv.deadline - time.monotonic()),
                                       return_when=asyncio.FIRST_COMPLETED)
        if not waited:
            inv.cancel()
            if pump is not None:
                pump.cancel()
            return self._failure("timeout", f"no response within the wall-clock timeout ({inv.limits.timeout:g}s)")
        if not head_fut.done():
            if pump is not None:
                pump.cancel()
            if source.error is not None and "max_body_bytes" in source.error:
                self.metrics.fail("body")
                return error_response(413, source.error)
            exc = done.exception()
            if isinstance(exc, GuestError):
                return self._failure(exc.kind, str(exc))
            if exc is not None:
                return self._failure("trap", f"host error: {exc!r}")
            return self._failure("no_response", "the handler returned without setting a response")
        status, headers, sink, error = head_fut.result()
        if error is not None:
            return self._failure("trap", f"the handler answered with error {error}")
        if sink is None:
            return Response(status, headers, b"")
        return Response(status, headers, self._relay(inv, chunks, done, pump))

    async def _relay(self, inv: Invocation, chunks: asyncio.Queue[Any], done: asyncio.Future[None],
                     pump: asyncio.Task[None] | None) -> AsyncIterator[bytes]:
        """The response body as the guest writes it; raises (the front end aborts) when the
        guest traps or stops before finishing the body."""
        try:
            while True:
                left = inv.deadline - time.monotonic()
                try:
                    chunk = await asyncio.wait_for(chunks.get(), max(left, 0.0))
                except asyncio.TimeoutError:
                    inv.cancel()
                    self._log_failure("timeout", "response body not finished within the wall-clock timeout")
                    raise
                if chunk is None:
                    return
                if chunk is _DONE:
                    await asyncio.wait({done})
                    exc = done.exception()
                    kind, message = ((exc.kind, str(exc)) if isinstance(exc, GuestError) else
                                     ("no_response", "the handler returned without finishing the response body"))
                    self._log_failure(kind, message)
                    raise RuntimeError(f"function {self.name}: {message}")
                yield chunk
        finally:
            if pump is not None and not pump.done():
                pump.cancel()

    @staticmethod
    async def _pump(body: AsyncIterator[bytes], source: Source, limit: int) -> None:
        size = 0
        try:
            async for chunk in body:
                size += len(chunk)
                if size > limit:
                    source.finish(error=f"request body exceeds max_body_bytes ({limit})")
                    return
                source.feed(chunk)
            source.finish(getattr(body, "trailers", None))
        except asyncio.CancelledError:
            source.finish(error="request cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - a broken client body ends the guest's stream
            source.finish(error=f"request body failed: {exc}")
        finally:
            await close_body(body)

    # --- failures ----------------------------------------------------------------------------
    def _log_failure(self, kind: str, message: str) -> None:
        self.metrics.fail(kind)
        log.error("function %s: %s (%s)", self.name, message, kind, extra={"function": self.name})

    def _failure(self, kind: str, message: str) -> Response:
        self._log_failure(kind, message)
        status = 503 if kind in _LIMITS or kind == "unavailable" else 500
        return error_response(status, f"function {self.name!r} failed: {message}")

    # --- hot reload --------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.opts.component)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    async def _watch(self, interval: float = 0.5) -> None:
        """Reload when the component file changes (a build replaces it atomically)."""
        while not self._closed:
            await asyncio.sleep(interval)
            now = self._stamp()
            if now != self._loaded_stamp and now is not None:
                self._loaded_stamp = now
                try:
                    await self.reload()
                except ConfigError as exc:
                    log.error("function %s: reload failed, keeping the running version: %s", self.name, exc)

    def stats(self) -> dict[str, Any]:
        m = self.metrics
        return {"component": str(self.opts.component), "isolation": self.opts.isolation,
                "requests": m.requests, "failures": dict(m.failures), "instances": m.instances,
                "cold_start_ms": round(m.cold_start_s * 1000, 3), "reloads": m.reloads,
                "imports": self.loaded.imports}

    async def close(self) -> None:
        self._closed = True
        self._pool.clear()
        self._reused = None
        if self._watcher is not None:
            self._watcher.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
