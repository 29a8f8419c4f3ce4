"""Plain GET/HEAD heads the fast path does not answer (misses, a fast path turned off, a
request queued behind one in flight) go to the general path through ``_plain_head``,
without ``_request_head``'s checks, which the sink has decided already.  Through a real
node on 127.0.0.1 and the simulated origin: the answers are byte for byte the general
path's for the same script, an incoming X-Request-Id is kept, and a head that is not
plain still gets ``_request_head``'s refusals."""

from __future__ import annotations

import re
from typing import Any, Callable

import pytest

from edgenode.config import StageConfig
from edgenode.frontend.connection import Connection
from edgenode.node import Node
from wire_support import send_and_read


def get(name: str, extra: str = "", version: str = "1.1", method: str = "GET") -> str:
    return f"{method} /obj/{name}?size=100 HTTP/{version}\r\nHost: t\r\n{extra}\r\n"


# every request misses on a fresh node: a new id, a kept incoming id, an invalid incoming id
# (replaced), HTTP/1.0 keep-alive, a HEAD, two pipelined, then one that closes
SCRIPT = (get("a") + get("b", "X-Request-Id: client-id-7\r\n") + get("c", "X-Request-Id: bad id!\r\n")
          + get("d", "Connection: keep-alive\r\n", "1.0") + get("e", method="HEAD")
          + get("f") + get("g") + get("h", "Connection: close\r\n"))


async def exchange(node: Node, data: str) -> bytes:
    """Send ``data`` on a new connection and read until the node closes it (or 2 s of
    quiet)."""
    return await send_and_read(node.port, data, 2.0)


def masked(out: bytes) -> bytes:
    """``out`` without what differs between two runs: generated ids, dates, ages."""
    out = re.sub(rb"X-Request-Id: (?!client-id-7\r)[^\r]+", b"X-Request-Id: *", out)
    out = re.sub(rb"\r\n(Date|Last-Modified|Expires): [^\r]+", rb"\r\n\1: *", out)
    return re.sub(rb"\r\nAge: [0-9]+", b"\r\nAge: *", out)


@pytest.fixture
def start(origin_url: str, config_for: Callable[..., Any],
          run_node: Callable[..., Any]) -> Callable[[bool], Any]:
    async def start_node(fast: bool) -> Node:
        cfg = config_for(origin_url)
        cfg.chain = [StageConfig("cache", "cache")]
        cfg.cache.store = "memory"  # a fresh cache per node: every request misses
        node = await run_node(cfg, admin=False)
        assert node.frontend.fast_path is not None
        if not fast:
            node.frontend.fast_path = None
        return node

    return start_node


async def test_plain_misses_answer_as_the_general_path(start: Callable[[bool], Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    plain: list[str] = []
    checked: list[str] = []
    plain_head, request_head = Connection._plain_head, Connection._request_head

    def spy_plain(conn: Connection, method: str, *args: Any) -> None:
        plain.append(method)
        plain_head(conn, method, *args)

    def spy_checked(conn: Connection, method: str, *args: Any) -> None:
        checked.append(method)
        request_head(conn, method, *args)

    monkeypatch.setattr(Connection, "_plain_head", spy_plain)
    monkeypatch.setattr(Connection, "_request_head", spy_checked)
    fast = await exchange(await start(True), SCRIPT)
    assert plain == ["GET"] * 4 + ["HEAD"] + ["GET"] * 3 and checked == []
    general = await exchange(await start(False), SCRIPT)
    statuses = re.findall(rb"HTTP/1.[01] (\d+) ", fast)
    assert statuses == [b"200"] * 8
    assert fast.count(b"X-Cache: MISS") == 8
    assert b"X-Request-Id: client-id-7\r\n" in fast
    assert b"bad id!" not in fast
    assert masked(fast) == masked(general)


@pytest.mark.parametrize("head, status", [
    ("GET /obj/x?size=1 HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n", b"400"),  # two Hosts
    ("GET /obj/x?size=1 HTTP/1.1\r\n\r\n", b"400"),  # no Host
    ("CONNECT t:443 HTTP/1.1\r\nHost: t\r\n\r\n", b"405"),
    ("GET /obj/x?size=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", b"501"),
])
async def test_heads_that_are_not_plain_are_still_checked(start: Callable[[bool], Any], head: str,
                                                          status: bytes) -> None:
    out = await exchange(await start(True), head)
    assert re.findall(rb"HTTP/1.1 (\d+) ", out) == [status]
