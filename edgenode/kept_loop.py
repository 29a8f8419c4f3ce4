"""The running event loop, kept between calls on the per-request path.

On CPython 3.11 ``asyncio.get_running_loop`` makes a ``getpid`` system call every time
(it checks that the loop belongs to this process).  Objects that schedule callbacks per
request or per loop pass keep the loop instead, and ask for it again once it no longer
runs (a later ``asyncio.run``); the node's workers are started processes, not forks of a
running loop.
"""

from __future__ import annotations

import asyncio

__all__ = ["KeptLoop"]


class KeptLoop:
    """``get()``: the running loop, asked of asyncio only when the kept one is not running."""

    __slots__ = ("_loop",)

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None or not loop.is_running():
            loop = self._loop = asyncio.get_running_loop()
        return loop
