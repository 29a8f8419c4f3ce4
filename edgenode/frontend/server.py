"""The client-facing HTTP/1.1 front end: ``asyncio.Protocol`` + httptools (+ uvloop).

Why not aiohttp: on this node's 1 KB cache hit an aiohttp server spends ~110 µs of CPU
per request, a bare Protocol with httptools ~15 µs.  So the front end stays lean on the
hot path.  Its parts, one module each: ``connection.py`` (one client connection: its
lifecycle, flow control, closing, timers), ``request_parser.py`` (bytes to requests,
limits, malformed input), ``request_head.py`` (target and framing checks),
``request_body.py`` (a streamed request body with back-pressure), ``fast_hits.py``
(fresh cache hits answered from the parser callback), ``dispatch.py`` (requests run in
order: synchronous steps, a task only when one waits), ``batch.py`` (a loop iteration's
requests run and answered together), ``response_writer.py``, and ``state.py`` (what the
connections share with this server).
"""

from __future__ import annotations

import asyncio
import logging
import socket

from edgenode.config import ServerConfig
from edgenode.frontend.connection import Connection
from edgenode.frontend.state import FastPath, FrontEndState, OnComplete, RequestHandler
from edgenode.http.listen import listen_error

__all__ = ["FrontEnd", "install_event_loop"]

log = logging.getLogger("edgenode.frontend")


def install_event_loop() -> bool:
    """Install uvloop's event loop policy when it is importable; return whether it was."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


class FrontEnd(FrontEndState):
    """The listening side of the node: accepts connections and runs ``handler``."""

    def __init__(self, handler: RequestHandler, cfg: ServerConfig,
                 on_complete: OnComplete | None = None,
                 fast_path: FastPath | None = None) -> None:
        super().__init__(handler, cfg, on_complete, fast_path)
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self, host: str | None = None, port: int | None = None,
                    reuse_port: bool = False, sock: socket.socket | None = None) -> None:
        """Listen on ``host:port`` (defaults: cfg.listen) or on an already bound ``sock``."""
        self.loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await self.loop.create_server(
                lambda: Connection(self), sock=sock, backlog=1024)
        else:
            if host is None or port is None:
                host, port = self.cfg.listen
            try:
                self._server = await self.loop.create_server(
                    lambda: Connection(self), host, port, reuse_port=reuse_port or None,
                    backlog=1024)
            except OSError as exc:
                raise listen_error("server.listen", host, port, exc) from None
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else 0

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, let in-flight requests finish for up to ``grace`` seconds,
        close idle keep-alive connections, then force-close whatever is left."""
        if self._server is not None:
            self._server.close()
        if self.connections:
            self._all_gone = self.loop.create_future()
            for conn in list(self.connections):
                conn.start_shutdown()
            if self.connections:
                try:
                    await asyncio.wait_for(asyncio.shield(self._all_gone), grace)
                except asyncio.TimeoutError:
                    log.warning("shutdown grace over: aborting %d connection(s)",
                                len(self.connections))
                    for conn in list(self.connections):
                        conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
