"""A request whose steps wait runs them in a task of its own (``Dispatcher.run_steps``):
an ``asyncio.Task`` made directly and named ``TASK_NAME`` (``loop.create_task`` would
format a name per task), unless the loop has a task factory, which then makes it.  Over
real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

from edgenode.config import ServerConfig
from edgenode.frontend.dispatch import TASK_NAME
from edgenode.frontend.server import FrontEnd
from edgenode.http.messages import Response
from edgenode.pipeline.exchange import Exchange


async def request_task(factory: Any = None) -> tuple[asyncio.Task[Any], bytes]:
    """The task of one GET whose handler waits, seen while it waits, and the answer."""
    release = asyncio.Event()

    async def waits(ex: Exchange) -> Response:
        await release.wait()
        return Response(200, body=b"done")

    loop = asyncio.get_running_loop()
    fe = FrontEnd(waits, ServerConfig())
    await fe.start("127.0.0.1", 0)
    old = loop.get_task_factory()
    loop.set_task_factory(factory)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", fe.port)
        writer.write(b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        for _ in range(100):
            tasks = [c._task for c in fe.connections if c._task is not None]  # type: ignore[attr-defined]
            if tasks:
                break
            await asyncio.sleep(0.01)
        release.set()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        loop.set_task_factory(old)
        await fe.shutdown(0.1)
    assert len(tasks) == 1
    return tasks[0], answer


async def test_the_task_is_made_directly_and_named_once() -> None:
    task, answer = await request_task()
    assert type(task) is asyncio.Task and task.get_name() == TASK_NAME
    assert task.get_coro().__qualname__ == "Dispatcher._run"  # type: ignore[union-attr]
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\ndone")


async def test_a_loop_task_factory_makes_it() -> None:
    made: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kw)
        if getattr(coro, "__qualname__", "") == "Dispatcher._run":
            made.append(task)
        return task

    task, answer = await request_task(factory)
    assert made == [task] and task.get_name() != TASK_NAME
    assert answer.endswith(b"\r\n\r\ndone")
