"""The cache key the fast path made for a request it declined (the usual miss) is handed to
the cache stage's ``handle`` on the request's exchange (``Exchange.cache_key``), so the key
is built once per miss; a request whose scheme, target or fields changed after the front
end made it (a handler in front of the cache) gets the key of the changed request.  Over a
real node on 127.0.0.1 with the simulated origin: which keys ``handle`` built, and under
which key the answer was stored."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest
from multidict import CIMultiDict

from edgenode.config import StageConfig
from edgenode.http.messages import Request
from edgenode.node import Node
from edgenode.pipeline.exchange import Exchange


async def fetch(node: Node, target: str, extra: str = "") -> bytes:
    """One GET of ``target`` (Host: t) on a new connection, the answer read to its close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n".encode())
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


@pytest.fixture
def cache_node(origin_url: str, config_for: Callable[..., Any],
               run_node: Callable[..., Any]) -> Callable[..., Any]:
    async def start(key_headers: list[str] | None = None) -> tuple[Node, list[tuple[str, str]]]:
        """A cache-first node (every head asks the fast path) and the keys its stage's
        ``handle`` built itself (``for_request``)."""
        cfg = config_for(origin_url)
        cfg.chain = [StageConfig("cache", "cache")]
        cfg.cache.store = "memory"
        if key_headers:
            cfg.cache.key.headers = key_headers
        node = await run_node(cfg, admin=False)
        assert node.frontend.fast_path is not None and node.cache is not None
        keys = node.cache.keys
        built: list[tuple[str, str]] = []
        own = keys.for_request

        def for_request(req: Request) -> tuple[str, str]:
            made = own(req)
            built.append(made)
            return made

        keys.for_request = for_request  # type: ignore[method-assign]
        return node, built

    return start


def stored(node: Node, key: str) -> bool:
    assert node.cache is not None
    return node.cache.store.lookup(key, CIMultiDict())[0] is not None


@pytest.mark.parametrize("key_headers", [None, ["Accept-Language"]])
async def test_a_declined_miss_is_keyed_once(cache_node: Callable[..., Any], key_headers: Any) -> None:
    node, built = await cache_node(key_headers)
    heads = [("/obj/a?size=10", ""), ("/obj/b?size=10", "X-Request-Id: mine-1\r\n"),  # the Python maker
             ("/obj/c?size=10", "Accept-Language: fr\r\n"), ("/obj/c?size=10", "Accept-Language: de\r\n")]
    first = [await fetch(node, target, extra) for target, extra in heads]
    # the last is a second key of /obj/c only when the key takes Accept-Language
    assert [b"X-Cache: MISS" in out for out in first] == [True] * 3 + [key_headers is not None]
    assert built == []  # every miss's key came from the fast path's decline
    # stored under those keys: the same requests are hits now
    assert all([b"X-Cache: HIT" in await fetch(node, target, extra) for target, extra in heads])
    assert built == []


def change_target(ex: Exchange) -> None:
    req = ex.request
    ex.request = Request(req.method, "/obj/other?size=10", req.headers, req.body, req.version)


def change_host(ex: Exchange) -> None:
    ex.request.headers["Host"] = "elsewhere"


def change_scheme(ex: Exchange) -> None:
    ex.request.scheme = "https"


@pytest.mark.parametrize("change, url", [
    (change_target, "http://t/obj/other?size=10"),
    (change_host, "http://elsewhere/obj/x?size=10"),
    (change_scheme, "https://t/obj/x?size=10"),
])
async def test_a_request_changed_before_the_cache_gets_its_own_key(
        cache_node: Callable[..., Any], change: Callable[[Exchange], None], url: str) -> None:
    node, built = await cache_node()
    first = node.frontend.handler

    def changing(ex: Exchange) -> Any:  # a step in front of the cache that edits the request
        change(ex)
        return first(ex)

    node.frontend.handler = changing
    out = await fetch(node, "/obj/x?size=10")
    assert out.startswith(b"HTTP/1.1 200 ") and b"X-Cache: MISS" in out
    assert [u for u, _ in built] == [url]  # built by ``handle`` for the changed request
    assert stored(node, built[0][1]) and not stored(node, "http://t/obj/x?size=10")
