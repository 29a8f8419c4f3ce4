"""Author tools behind ``edgenode function``: scaffold, case runner, local node.

``run_cases`` replays the filter case-file format (``edgenode filter test``) through a
function stage without a network: ``upstreams`` of the case file answer the function's
outbound requests (an upstream named ``api`` is reached as ``http://api/...``), and
``origin_request`` expectations check the last outbound request.  ``LocalFunctionRun`` is
a real node (cache, then the function) in front of the simulated origin, reloading the
function when its component changes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from edgenode.config import ConfigError, StageConfig
from edgenode.devkit.localnode import LocalNode
from edgenode.devkit.manifest import NAME_RE
from edgenode.devkit.templates import copy_tree
from edgenode.filterdev.cases import CaseFile, CaseResult, check
from edgenode.filterdev.harness import FilterResponse, LogEntry, OriginRequest
from edgenode.functions.project import MANIFEST, FunctionProject
from edgenode.http.messages import CIMultiDict, Request, Response, read_body
from edgenode.pipeline.exchange import Exchange

__all__ = ["new_function", "run_cases", "LocalFunctionRun", "TEMPLATES"]

#: languages with a project template (C functions are written against the ABI by hand)
TEMPLATES = ("js", "python")


# --- new ------------------------------------------------------------------------------------
def new_function(name: str, lang: str, dest: Path) -> list[Path]:
    """Create a project from the template of ``lang``; refuses to overwrite files."""
    if not NAME_RE.match(name):
        raise ConfigError(f"NAME: expected lower-case letters, digits, '-' or '_', got {name!r}")
    if lang not in TEMPLATES:
        raise ConfigError(f"--lang: must be one of {', '.join(TEMPLATES)}")
    if (dest / MANIFEST).exists():
        raise ConfigError(f"{dest / MANIFEST}: already exists")
    root = resources.files("edgenode.functions") / "templates"

    def render(text: str) -> str:
        return text.replace("{{name}}", name)

    return copy_tree(root / lang, dest, render) + copy_tree(root / "common", dest, render)


# --- test -----------------------------------------------------------------------------------
@dataclass
class _Upstream:
    host: str
    port: int = 80


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.entries: list[LogEntry] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(LogEntry(record.levelname.lower(), record.getMessage()))


def run_cases(project: FunctionProject | None, component: Path, cases: CaseFile,
              options: dict[str, Any] | None = None) -> list[CaseResult]:
    """Every case of ``cases`` through ``component`` (each case gets a fresh instance)."""
    return asyncio.run(_run_cases(project, component, cases, options or {}))


async def _run_cases(project: FunctionProject | None, component: Path, cases: CaseFile,
                     options: dict[str, Any]) -> list[CaseResult]:
    from edgenode.functions.kv import MemoryKeyValue
    from edgenode.functions.stage import FunctionStage

    seen: list[OriginRequest] = []

    async def callout(name: str, req: Request, timeout: float | None) -> Response:
        body = await read_body(req.body)
        seen.append(OriginRequest(req.method, req.target, req.headers, body))
        return cases.upstreams[name].response()

    upstreams = {n: _Upstream(n) for n in cases.upstreams}
    stage_opts = {**(project.options if project else {}), **options, "component": str(component)}
    if cases.upstreams and "allowed_outbound_hosts" not in stage_opts:
        stage_opts["allowed_outbound_hosts"] = list(cases.upstreams)
    name = project.name if project else component.stem
    stage = FunctionStage(StageConfig("function", name, stage_opts), base_dir=component.parent,
                          callout=callout, upstreams=upstreams, kv=MemoryKeyValue(), prewarm=0)
    capture = _Capture()
    logger = logging.getLogger("edgenode.functions")
    logger.addHandler(capture)
    results = []
    try:
        for case in cases.cases:
            seen.clear()
            capture.entries.clear()
            headers = CIMultiDict(case.headers)
            headers.setdefault("host", case.host)
            req = Request(case.method, case.path, headers, case.body.encode())
            resp = await stage.serve(Exchange(req))
            try:
                body = await read_body(resp.body)
                error = None
            except Exception as exc:  # noqa: BLE001 - a broken body is the case's failure
                body, error = b"", f"response body failed: {exc}"
            fr = FilterResponse(resp.status, resp.headers, body, seen[-1] if seen else None,
                                logs=list(capture.entries), error=error)
            results.append(CaseResult(case.name, check(fr, case.expect), fr))
    finally:
        logger.removeHandler(capture)
        await stage.close()
    return results


# --- run ------------------------------------------------------------------------------------
class LocalFunctionRun(LocalNode):
    """A node with [cache, this function] that prints every request; see ``LocalNode``."""

    def __init__(self, component: Path, name: str, *, options: dict[str, Any] | None = None,
                 origin_url: str | None = None, listen: tuple[str, int] = ("127.0.0.1", 8080),
                 out: TextIO | None = None) -> None:
        super().__init__(origin_url=origin_url, listen=listen, out=out)
        self.component = component.resolve()
        self.name = name
        self.options = dict(options or {})

    async def start(self) -> None:
        stage = {"type": "function", "name": self.name, "watch": True, **self.options,
                 "component": str(self.component)}
        node = await self._create_node([{"type": "cache"}, stage], self.component.parent)
        node.signals.on_request_end.append(self._request_end)
        await node.start()
        fn = node.functions[self.name]
        self.say(f"edgenode function run: {self.component.name} (cold start "
                 f"{fn.metrics.cold_start_s * 1000:.1f} ms), origin {self.origin_url}{self.origin_note}")
        self.say(f"listening on http://{self.listen[0]}:{node.port}, reloading when "
                 f"{self.component} changes")

    def _request_end(self, exchange: Exchange, response: Response) -> None:
        req = exchange.request
        in_fn = exchange.timings.get((self.name, "function"))
        guest = exchange.timings.get((self.name, "guest"), 0.0)
        where = (f"function={in_fn * 1000:.3f} ms (guest {guest * 1000:.3f} ms)" if in_fn is not None
                 else "function not called")
        self.say(f"#{exchange.id} {req.method} {req.target} -> {exchange.status or response.status} "
                 f"cache={exchange.x_cache or '-'} total={exchange.elapsed * 1000:.2f} ms {where}")
