"""The usual origin request without the pool's coroutine: ``http._origin.send_idle`` (C)
against its reference ``OriginPool._send_idle`` over generated pool states, the upstream
taking it (a stale connection's request replayed, a cancelled one's connection aborted),
the message's end clearing its own waiter, and the idle release in C."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any, Callable

import pytest
from multidict import CIMultiDict, getversion

from dataplane_support import RawOrigin, abort_writer, node_config, read_request_head
from edgenode.http import client
from edgenode.http.client import OriginPool, _OriginConnection, send_idle
from edgenode.http.messages import Request
from edgenode.pipeline.exchange import Exchange
from edgenode.proxy.upstream import Upstream
from edgenode.config import OriginConfig
from test_origin_native import PythonConnection

HEAD = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

SendIdle = Callable[..., Any]


def origin_cfg_for(port: int, **kw: Any) -> OriginConfig:
    return OriginConfig(name="t", url=f"http://127.0.0.1:{port}", host="127.0.0.1", port=port, **kw)


def reference(pool: OriginPool, *args: Any) -> Any:
    return pool._send_idle(*args)


async def answers_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_request_head(reader)
        writer.write(OK)
        await writer.drain()


async def pool_in_state(port: int, rng: random.Random) -> tuple[OriginPool, list[Any], dict[str, Any]]:
    """A pool with 0-3 idle connections, each open, aborted or expired, and the request's
    own case (no loop yet, the pool closed, a body, a head not bytes)."""
    pool = OriginPool(origin_cfg_for(port))
    case = rng.choice(["usual"] * 8 + ["no loop", "closed", "body", "str head"])
    conns: list[Any] = []
    if case != "no loop":
        opened = rng.choice([0, 1, 2, 3, 3])
        responses = await asyncio.gather(*(pool.request(Request("GET", "/x", CIMultiDict({"Host": "t"})))
                                           for _ in range(opened)))
        assert all(r.body == b"hello" for r in responses)
        conns = list(pool._idle)
        if not conns:
            pool.loop = asyncio.get_running_loop()
        for conn in conns:
            state = rng.choice(["open", "open", "open", "aborted", "expired"])
            if state == "aborted":
                conn.abort()
            elif state == "expired":
                conn.idle_since -= pool.keep_for + 1
    if case == "closed":
        pool._closed = True
    body = b"x" if case == "body" else b""
    head: Any = HEAD.decode() if case == "str head" else HEAD
    return pool, conns, {"body": body, "head": head}


def pool_seen(pool: OriginPool, conns: list[Any]) -> tuple[Any, ...]:
    return (pool.requests, pool.reused, [conns.index(c) for c in pool._idle],
            [(c.closed, c.uses, c._busy) for c in conns])


async def one_case(seed: int, port: int, fn: SendIdle) -> list[Any]:
    rng = random.Random(seed)
    pool, conns, req_case = await pool_in_state(port, rng)
    try:
        req = Request("GET", "/x", CIMultiDict({"Host": "t"}), req_case["body"])
        sent = fn(pool, req, req_case["head"], None)
        seen: list[Any] = [pool_seen(pool, conns)]
        if sent is None:
            seen.append(None)
        else:
            conn, waiter = sent
            assert conn._head_waiter is waiter and conn in pool._heads
            response = await asyncio.wait_for(waiter, 5)
            seen.append((conns.index(conn), response.status, response.body))
            await asyncio.sleep(0)
            seen.append(pool_seen(pool, conns))
        return seen
    finally:
        await pool.close()


@pytest.mark.parametrize("seed", range(40))
async def test_send_idle_does_what_its_reference_does(seed: int) -> None:
    origin = await RawOrigin(answers_each).start()
    try:
        assert await one_case(seed, origin.port, send_idle) == await one_case(seed, origin.port, reference)
    finally:
        await origin.close()


@pytest.mark.parametrize("conn_class", [_OriginConnection, PythonConnection])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_the_message_end_clears_its_own_waiter(conn_class: type, method: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Its owner needs no ``settled`` once the response is all in; a HEAD answer's waiter
    gets the head before its message ends and the connection goes back idle."""
    monkeypatch.setattr(client, "_OriginConnection", conn_class)
    origin = await RawOrigin(answers_each).start()
    pool = OriginPool(origin_cfg_for(origin.port))
    try:
        response = await pool.request(Request(method, "/x", CIMultiDict({"Host": "t"})))
        assert response.status == 200 and response.body == (b"hello" if method == "GET" else b"")
        (conn,) = pool._idle
        assert conn._head_waiter is None
        head = HEAD.replace(b"GET", method.encode())
        sent = send_idle(pool, Request(method, "/x", CIMultiDict({"Host": "t"})), head)
        assert sent is not None and (await sent[1]).status == 200
        await asyncio.sleep(0)
        assert sent[0]._head_waiter is None and pool.idle_count == 1
    finally:
        await pool.close()
        await origin.close()


def exchange(target: str = "/x") -> Exchange:
    """A request as the front end makes it (its parsed bytes kept: ``forward_head`` takes it)."""
    raw = [(b"Host", b"t")]
    headers = CIMultiDict([(n.decode(), v.decode()) for n, v in raw])
    req = Request("GET", target, headers)
    req.raw = (getversion(headers), raw)
    return Exchange(req, client=("192.0.2.1", 1))


def upstream_for(port: int, **origin: Any) -> Upstream:
    return Upstream(node_config({"default": {"url": f"http://127.0.0.1:{port}", **origin}}))


def counting_requests(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    real = OriginPool.request

    def spy(self: OriginPool, *args: Any, **kw: Any) -> Any:
        calls["request"] += 1
        return real(self, *args, **kw)
    monkeypatch.setattr(OriginPool, "request", spy)
    return calls


async def test_the_upstream_sends_the_usual_request_on_an_idle_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_requests(monkeypatch)
    origin = await RawOrigin(answers_each).start()
    upstream = upstream_for(origin.port)
    try:
        for _ in range(3):
            response = await upstream(exchange())
            assert (response.status, response.body) == (200, b"hello")
            assert response.headers["Via"] == "1.1 edgenode"
        pool = upstream.pools["default"]
        assert calls["request"] == 1  # the first opened the connection; the others took it idle
        assert (pool.requests, pool.opened, pool.reused, pool.idle_count) == (3, 1, 2, 1)
    finally:
        await upstream.close()
        await origin.close()


async def test_a_stale_idle_connection_replays_the_usual_request_on_a_new_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    served = Counter[str]()

    async def one_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served["connections"] += 1
        await read_request_head(reader)
        writer.write(OK)
        await writer.drain()
        if served["connections"] == 1:
            await read_request_head(reader)  # the second request on this connection...
            abort_writer(writer)  # ...finds it dead, as if the origin had timed it out
            return
        await asyncio.sleep(1)

    calls = counting_requests(monkeypatch)
    origin = await RawOrigin(one_then_drop).start()
    upstream = upstream_for(origin.port)
    try:
        assert (await upstream(exchange())).body == b"hello"
        response = await upstream(exchange())
        assert (response.status, response.body) == (200, b"hello")
        pool = upstream.pools["default"]
        assert (pool.requests, pool.retries, pool.opened, calls["request"]) == (2, 1, 2, 2)
    finally:
        await upstream.close()
        await origin.close()


async def test_a_cancelled_usual_request_aborts_its_connection() -> None:
    heads = asyncio.Event()

    async def answers_once_then_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(OK)
        await writer.drain()
        await read_request_head(reader)
        heads.set()
        await asyncio.sleep(30)

    origin = await RawOrigin(answers_once_then_silent).start()
    upstream = upstream_for(origin.port)
    try:
        assert (await upstream(exchange())).body == b"hello"
        pool = upstream.pools["default"]
        (conn,) = pool._idle
        task = asyncio.ensure_future(upstream(exchange()))
        await asyncio.wait_for(heads.wait(), 5)
        assert conn._busy and pool.idle_count == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert conn.closed and conn._head_waiter is None
        await asyncio.sleep(0.05)
        assert (pool.open_count, pool.idle_count) == (0, 0)
    finally:
        await upstream.close()
        await origin.close()


async def test_a_first_byte_timeout_on_an_idle_connection_is_a_504() -> None:
    async def answers_once_then_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(30)

    origin = await RawOrigin(answers_once_then_silent).start()
    upstream = upstream_for(origin.port, first_byte_timeout="0.2s")
    try:
        assert (await upstream(exchange())).body == b"hello"
        ex = exchange()
        response = await upstream(ex)
        assert response.status == 504 and ex.props["upstream_error"] == "first_byte_timeout"
        assert upstream.pools["default"].idle_count == 0
    finally:
        await upstream.close()
        await origin.close()


@pytest.mark.parametrize("waiting", [False, True])
@pytest.mark.parametrize("sweeping", [False, True])
@pytest.mark.parametrize("conn_class", [_OriginConnection, PythonConnection])
async def test_the_release_puts_a_connection_back_as_the_pools_method_does(
        conn_class: type, sweeping: bool, waiting: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C release (a running sweep, no one waiting) and the pool's ``_release`` (the
    sweep started, a waiting request handed the connection) leave the same pool."""
    monkeypatch.setattr(client, "_OriginConnection", conn_class)
    origin = await RawOrigin(answers_each).start()
    pool = OriginPool(origin_cfg_for(origin.port, max_connections=1))
    loop = asyncio.get_running_loop()
    try:
        req = Request("GET", "/x", CIMultiDict({"Host": "t"}))
        first = await pool.request(req)
        (conn,) = pool._idle
        before = conn.idle_since
        if not sweeping:
            pool._sweeper.cancel()
            pool._sweeper = None
        sent = send_idle(pool, req, HEAD)
        assert sent is not None
        other = asyncio.ensure_future(pool.request(req)) if waiting else None
        await asyncio.sleep(0)
        assert (await sent[1]).body == first.body
        if other is not None:
            assert (await asyncio.wait_for(other, 5)).body == b"hello"
            assert pool.reused == 2
        else:
            assert pool._idle == [conn] and before <= conn.idle_since <= loop.time()
        assert pool._sweeper is not None and pool.open_count == 1
    finally:
        await pool.close()
        await origin.close()
