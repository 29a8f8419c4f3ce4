"""``edgenode filter run``: a real node with one filter in front of an origin, and a log view.

The node is a ``LocalNode`` with chain = [this filter, cache].  Every guest
callback is printed with its result and time (through the host's per-callback observer),
every ``proxy_log`` line as it happens, and a summary per request.  ``watch`` reloads the
filter when its .wasm changes (``WasmStage.reload``: in-flight requests finish on the old
VM; a module that fails to load leaves the running one in place).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, TextIO

from edgenode.devkit.localnode import LocalNode
from edgenode.filterdev.harness import LEVEL_NAMES, action_name
from edgenode.http.messages import Response
from edgenode.pipeline.exchange import Exchange

__all__ = ["LocalRun"]


class _LogView(logging.Handler):
    def __init__(self, out: "LocalRun") -> None:
        super().__init__(level=1)
        self.run = out

    def emit(self, record: logging.LogRecord) -> None:
        self.run.say(f"     log {LEVEL_NAMES.get(record.levelno, record.levelno):<5} {record.getMessage()}")


class LocalRun(LocalNode):
    """A node with [this filter, cache] that prints every callback; see ``LocalNode``."""

    def __init__(self, wasm: Path, config: str = "", *, root_id: str = "", name: str = "filter",
                 origin_url: str | None = None, listen: tuple[str, int] = ("127.0.0.1", 8080),
                 options: dict[str, Any] | None = None, watch: bool = False,
                 watch_interval: float = 0.5, out: TextIO | None = None) -> None:
        super().__init__(origin_url=origin_url, listen=listen, out=out)
        self.wasm = wasm.resolve()
        self.config = config
        self.root_id = root_id
        self.name = name
        self.options = dict(options or {})
        self.watch = watch
        self.watch_interval = watch_interval
        self.reloads = 0
        self._watcher: asyncio.Task[None] | None = None
        self._logger = logging.getLogger(f"edgenode.filter.{name}")
        self._log_view = _LogView(self)

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        stage = {"type": "wasm", "name": self.name, "module": str(self.wasm), "log_level": "debug",
                 **self.options}
        if self.config:
            stage["config"] = self.config
        if self.root_id:
            stage["root_id"] = self.root_id
        self._logger.addHandler(self._log_view)
        self._logger.setLevel(1)
        self._logger.propagate = False
        loaded = self._stamp()  # before loading: a change from here on triggers a reload
        try:
            node = await self._create_node([stage, {"type": "cache"}], self.wasm.parent)
        except BaseException:
            self._detach_log()
            raise
        filt = node.filters[self.name]
        filt.observer = filt.plugin.observer = self._observe
        node.signals.on_request_start.append(self._request_start)
        node.signals.on_request_end.append(self._request_end)
        await node.start()
        self.say(f"edgenode filter run: {self.wasm.name} (ABI {filt.stats()['abi']}) in front of "
                 f"{self.origin_url}{self.origin_note}")
        self.say(f"listening on http://{self.listen[0]}:{node.port}"
                 + (f", watching {self.wasm}" if self.watch else ""))
        if self.watch:
            self._watcher = asyncio.create_task(self._watch(loaded))

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except asyncio.CancelledError:
                pass
        await super().stop()
        self._detach_log()

    def _detach_log(self) -> None:
        self._logger.removeHandler(self._log_view)
        self._logger.propagate = True
        self._logger.setLevel(logging.NOTSET)

    # --- the log view ---------------------------------------------------------------
    def _observe(self, filter_name: str, export: str, phase: str | None, seconds: float,
                 result: int | None, exchange: Exchange | None) -> None:
        if phase is None:
            return
        where = f"#{exchange.id}" if exchange is not None else "vm"
        self.say(f"{where:>4} {phase:<20} {action_name(export, result):<26} {seconds * 1000:8.3f} ms")

    def _request_start(self, exchange: Exchange) -> None:
        req = exchange.request
        self.say(f"#{exchange.id} {req.method} {req.target}")

    def _request_end(self, exchange: Exchange, response: Response) -> None:
        req = exchange.request
        in_filter = sum(s for (n, _), s in exchange.timings.items() if n == self.name)
        self.say(f"#{exchange.id} -> {exchange.status or response.status} {req.method} {req.target} "
                 f"cache={exchange.x_cache or '-'} total={exchange.elapsed * 1000:.2f} ms "
                 f"filter={in_filter * 1000:.3f} ms")

    # --- watch ----------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.wasm)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    async def _watch(self, seen: tuple[int, int] | None) -> None:
        """Poll the module; reload once a change has been stable for one interval."""
        while True:
            await asyncio.sleep(self.watch_interval)
            now = self._stamp()
            if now == seen or now is None:
                continue
            await asyncio.sleep(self.watch_interval)
            if self._stamp() != now:
                continue  # still being written
            seen = now
            try:
                await self.node.filters[self.name].reload()
            except Exception as exc:  # noqa: BLE001 - a bad build keeps the old filter
                self.say(f"reload failed, keeping the previous filter: {exc}")
            else:
                self.reloads += 1
                self.say(f"reloaded {self.wasm.name} ({now[1]} bytes)")
