"""While no request-start hook is subscribed the front end calls the chain's first step
itself (``_Entry.attach``: one frame less per request); the hook list is watched, so a
hook subscribed after the node is built (tools, benches) runs from the next request on,
and one removed gives the direct call back; a chain swapped on the entry takes the next
request either way.  Real requests over 127.0.0.1."""

from __future__ import annotations

from typing import Any

import aiohttp
from multidict import CIMultiDict

from edgenode.http.messages import Response
from edgenode.node import Node, _Entry
from edgenode.pipeline.chain import Chain


def is_entry(handler: Any, node: Node) -> bool:
    return getattr(handler, "__self__", None) is node.entry and handler.__func__ is _Entry.__call__


async def get(node: Node, path: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}{path}") as r:
            return r.status, await r.read()


async def test_no_hook_the_chains_first_step_then_hooks_as_they_come_and_go(node: Node) -> None:
    assert node.frontend.handler == node.chain.first and not is_entry(node.frontend.handler, node)
    assert (await get(node, "/obj/direct?size=10"))[0] == 200
    started: list[str] = []
    node.signals.on_request_start.append(lambda ex: started.append(ex.request.target))
    assert is_entry(node.frontend.handler, node)
    assert (await get(node, "/obj/direct?size=11"))[0] == 200
    assert started == ["/obj/direct?size=11"]
    node.signals.on_request_start.pop()
    assert node.frontend.handler == node.chain.first
    assert (await get(node, "/obj/direct?size=12"))[0] == 200
    assert started == ["/obj/direct?size=11"]
    node.signals.on_request_start += [lambda ex: started.append("again")]
    assert is_entry(node.frontend.handler, node)
    assert (await get(node, "/obj/direct?size=13"))[0] == 200
    assert started == ["/obj/direct?size=11", "again"]
    del node.signals.on_request_start[:]
    assert node.frontend.handler == node.chain.first


async def test_a_chain_swapped_while_direct_takes_the_next_request(node: Node) -> None:
    async def origin(ex: Any) -> Response:
        return Response(200, CIMultiDict({"Cache-Control": "no-store"}), b"swapped")

    chain = node.entry.chain = Chain(node.stages, origin)
    assert node.frontend.handler == chain.first
    assert await get(node, "/obj/swapped?size=1k") == (200, b"swapped")
