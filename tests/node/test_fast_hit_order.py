"""Cache-only hits answered from the parser callback (``fast_hits.py``) are held with the
loop iteration's other answers (``Batch.send``) and written after its reads.  Through a
real node on 127.0.0.1: pipelined on one connection with general-path requests, a
malformed request, ``Connection: close``, HTTP/1.0 and a client that leaves mid-batch,
every answer arrives in order with the bytes the general path writes for it."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from typing import Any, Callable

import pytest

from edgenode.config import StageConfig
from edgenode.frontend.batch import Batch
from edgenode.node import Node
from wire_support import send_and_read


@pytest.fixture
async def node(origin_url: str, config_for: Callable[..., Any],
               run_node: Callable[..., Any]) -> Node:
    cfg = config_for(origin_url)
    cfg.chain = [StageConfig("cache", "cache")]
    cfg.cache.store = "memory"
    node = await run_node(cfg, admin=False)
    assert node.frontend.fast_path is not None
    for size in (64, 65, 66):
        await exchange(node, f"GET /obj/o{size}?size={size} HTTP/1.1\r\nHost: t\r\n\r\n")
    return node


def hit(size: int, extra: str = "", version: str = "1.1") -> str:
    return f"GET /obj/o{size}?size={size} HTTP/{version}\r\nHost: t\r\n{extra}\r\n"


POST = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"


async def exchange(node: Node, data: str) -> bytes:
    """Send ``data`` on a new connection and read until the node closes it (or 1 s of
    quiet); the bytes with the per-request fields masked."""
    out = await send_and_read(node.port, data, 1.0)
    out = re.sub(rb"(?i)(x-request-id\"?(:|,)\s*\"?)[0-9a-z-]+", rb"\1*", out)
    out = re.sub(rb"\r\nAge: [0-9]+\r\n", b"\r\nAge: *\r\n", out)
    out = re.sub(rb"; ttl=[0-9]+", b"; ttl=*", out)
    return re.sub(rb"\r\nDate: [^\r]+\r\n", b"\r\nDate: *\r\n", out)


class Holds:
    """Counts the writes held outside a batch's steps (the fast hits': ``send_kept`` for
    the kept answers, ``send`` for the others)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.outside = 0
        for name in ("send", "send_kept"):
            monkeypatch.setattr(Batch, name, self._counting(getattr(Batch, name)))

    def _counting(self, send: Callable[..., None]) -> Callable[..., None]:
        def counting(batch: Batch, transport: Any, *data: Any) -> None:
            if not batch.running:
                self.outside += 1
            send(batch, transport, *data)
        return counting


CASES = {
    # hits, a request with a body (the general path, streamed from the origin), more
    # hits, then a malformed request: answered last, then the connection closes
    "mixed-then-malformed": (hit(64) + hit(65) + POST + hit(66) + hit(64)
                             + "GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n",
                             [b"200", b"200", b"200", b"200", b"200", b"400"]),
    # a hit asking to close: nothing after it is answered
    "close": (hit(64) + hit(65, "Connection: close\r\n") + hit(66),
              [b"200", b"200"]),
    # HTTP/1.0 with keep-alive, then without it (closes)
    "http10": (hit(64) + hit(65, "Connection: keep-alive\r\n", "1.0") + hit(66, "", "1.0") + hit(64),
               [b"200", b"200", b"200"]),
    # a general-path answer written straight to the socket after held hits
    "post-between": (hit(64) + POST + hit(65) + POST, [b"200", b"200", b"200", b"200"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_held_fast_hits_keep_order_and_bytes(node: Node, case: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data, statuses = CASES[case]
    holds = Holds(monkeypatch)
    fast = await exchange(node, data)
    assert holds.outside >= 1  # the fast path answered and its write was held
    monkeypatch.setattr(node.frontend, "fast_path", None)
    general = await exchange(node, data)
    assert re.findall(rb"HTTP/1.1 (\d+) ", fast) == statuses
    assert fast == general


async def test_hits_answer_in_request_order(node: Node) -> None:
    """Three different objects pipelined come back as asked, byte counts included."""
    out = await exchange(node, hit(66) + hit(64) + hit(65) + hit(66, "Connection: close\r\n"))
    lengths = [int(n) for n in re.findall(rb"Content-Length: (\d+)\r\n", out)]
    assert lengths == [66, 64, 65, 66]


async def test_a_client_leaving_mid_batch_strands_nothing(
        node: Node, caplog: pytest.LogCaptureFixture) -> None:
    """Clients that pipeline hits and reset their connection in the same loop iteration
    as others' hits: the others get every answer in order, nothing fails."""
    caplog.set_level(logging.ERROR)
    loop = asyncio.get_running_loop()
    leavers = []
    for _ in range(8):
        sock = socket.create_connection(("127.0.0.1", node.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        leavers.append(sock)
    stayer = socket.create_connection(("127.0.0.1", node.port))
    stayer.setblocking(False)
    many = (hit(64) + hit(65) + hit(66)) * 5
    for sock in leavers:
        sock.sendall(many.encode())
    stayer.sendall((many + hit(64, "Connection: close\r\n")).encode())
    for sock in leavers:
        sock.close()  # SO_LINGER 0: a reset, possibly before the answers are written
    out = b""
    while True:
        more = await asyncio.wait_for(loop.sock_recv(stayer, 1 << 20), 5)
        if not more:
            break
        out += more
    stayer.close()
    lengths = [int(n) for n in re.findall(rb"Content-Length: (\d+)\r\n", out)]
    assert lengths == [64, 65, 66] * 5 + [64]
    assert (await exchange(node, hit(65, "Connection: close\r\n"))).count(b"HTTP/1.1 200") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
