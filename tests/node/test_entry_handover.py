"""The front end hands each request to the node's entry as its bound ``__call__`` (a
frame in the caller's interpreter invocation, not through ``slot_tp_call``) once a
request-start hook is subscribed (before that, to the chain's first step itself:
tests/node/test_entry_direct.py): the request-start signals still run, and a chain
swapped on the entry takes the next request."""

from __future__ import annotations

from typing import Any

import aiohttp
from multidict import CIMultiDict

from edgenode.http.messages import Response
from edgenode.node import Node, _Entry
from edgenode.pipeline.chain import Chain


async def test_the_handler_is_the_entrys_bound_call_and_follows_its_chain(node: Node) -> None:
    started: list[str] = []
    node.signals.on_request_start.append(lambda ex: started.append(ex.request.target))
    handler = node.frontend.handler
    assert handler.__self__ is node.entry and handler.__func__ is _Entry.__call__  # type: ignore[attr-defined]

    async def origin(ex: Any) -> Response:
        return Response(200, CIMultiDict({"Cache-Control": "no-store"}), b"swapped")

    node.entry.chain = Chain(node.stages, origin)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}/obj/handover?size=1k") as r:
            assert r.status == 200 and await r.read() == b"swapped"
    assert started == ["/obj/handover?size=1k"]
