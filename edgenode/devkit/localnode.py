"""A real node on this machine for one author module: ``edgenode filter run`` and
``edgenode function run``.

The node is the production one (``Node``, admin and access log off), in front of the
simulated origin started in-process unless ``origin_url`` names another.  Subclasses say
where their module sits in the chain and what to print per request.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from edgenode.config import parse_config

__all__ = ["LocalNode", "serve_until_signal"]


class LocalNode:
    """Start with ``await start()``, stop with ``await stop()``; ``port`` is the node's port."""

    def __init__(self, *, origin_url: str | None, listen: tuple[str, int], out: TextIO | None) -> None:
        self.origin_url = origin_url
        self.listen = listen
        self.out = out or sys.stdout
        self.node: Any = None
        #: " (simulated origin)" once this object started the origin itself
        self.origin_note = ""
        self._origin_runner: Any = None

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    @property
    def port(self) -> int:
        return self.node.port

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        if self.node is not None:
            await self.node.stop(grace=1.0)
        await self._cleanup_origin()

    async def _create_node(self, chain: list[dict[str, Any]], base_dir: Path) -> Any:
        """The (not yet started) node serving ``chain``; a node that fails to load stops the origin."""
        from edgenode.node import Node

        if self.origin_url is None:
            from edgenode.origin.app import start_origin
            from edgenode.origin.settings import OriginSettings

            self._origin_runner, oport = await start_origin(OriginSettings(listen=("127.0.0.1", 0)))
            self.origin_url = f"http://127.0.0.1:{oport}"
            self.origin_note = " (simulated origin)"
        try:
            cfg = parse_config({
                "server": {"listen": f"{self.listen[0]}:{self.listen[1]}"},
                "admin": {"listen": "off"},
                "origins": {"default": {"url": self.origin_url}},
                "chain": chain,
                "log": {"access": "off"},
            }, base_dir)
            self.node = Node(cfg, admin=False)
        except BaseException:
            await self._cleanup_origin()
            raise
        return self.node

    async def _cleanup_origin(self) -> None:
        if self._origin_runner is not None:
            await self._origin_runner.cleanup()
            self._origin_runner = None


def serve_until_signal(runner: LocalNode) -> None:
    """Run ``runner`` until SIGINT or SIGTERM, then stop it (the CLIs' ``run``)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await runner.start()
        try:
            await stop.wait()
        finally:
            await runner.stop()

    asyncio.run(main())
