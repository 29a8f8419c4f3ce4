"""Redis callouts from filters (the Higress ABI) through a real redis-server: a
cluster-wide rate limit across two nodes sharing one Redis, a timeout, a server going
away mid-call, and the host functions' argument checks (wat/redis_ratelimit.wat,
wat/envoy_probe.wat)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import aiohttp
import pytest

from edgenode.config import Config, StageConfig, parse_config
from edgenode.node import Node
from edgenode.redis.resp import encode_command
from edgenode.redis.services import RedisServices
from edgenode.wasm.abi import Status
from edgenode.wasm.engine import WasmEngine
from edgenode.wasm.stage import WasmStage

from envoy_probe import OUT, EnvoyProbe
from redis_server import RedisServer
from wasm_helpers import request

WAT = Path(__file__).parent / "wat"
CLUSTER = "outbound|6379||ratelimit.static?db=2"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, password="pw")
    yield server
    server.stop()


def _with_redis(cfg: Config, port: int, **extra: Any) -> Config:
    cfg.redis = parse_config({"origins": {"d": {"url": "http://127.0.0.1:1"}},
                              "redis": {"ratelimit": {"url": f"redis://127.0.0.1:{port}", "password": "pw",
                                                      **extra}}}).redis
    cfg.chain = [StageConfig("wasm", "ratelimit", {"module": str(WAT / "redis_ratelimit.wat"), "config": "5"})]
    return cfg


@pytest.fixture
def start_node(origin_url: str, config_for: Callable[..., Config],
               run_node: Callable[..., Any]) -> Callable[..., Any]:
    async def start(port: int, **extra: Any) -> Node:
        return await run_node(_with_redis(config_for(origin_url), port, **extra), admin=False)

    return start


async def _get(session: aiohttp.ClientSession, node: Node) -> tuple[int, str]:
    async with session.get(f"http://127.0.0.1:{node.port}/echo") as r:
        return r.status, await r.text()


async def test_rate_limit_is_shared_by_two_nodes(redis: RedisServer, start_node: Callable[..., Any]) -> None:
    a, b = await start_node(redis.port), await start_node(redis.port)
    async with aiohttp.ClientSession() as session:
        statuses = [(await _get(session, node))[0] for node in (a, b, a, b, a, b, a)]
    assert statuses == [200] * 5 + [429, 429]  # one counter for both nodes
    assert redis.command("GET", "rl:count", db=2).endswith(b"$1\r\n7\r\n")  # in the database the name selects


async def test_a_silent_server_times_out(start_node: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        node = await start_node(port, timeout="150ms")
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            status, body = await _get(session, node)
        assert (status, body) == (503, "redis unavailable\n")
        assert time.monotonic() - started < 5  # the call's timeout, not the pause timeout
        assert "no reply within 150 ms" in caplog.text
    finally:
        silent.close()


async def test_a_server_going_away_mid_call_fails_the_call(redis: RedisServer, start_node: Callable[..., Any],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    node = await start_node(redis.port, timeout="10s")
    blocker = socket.create_connection(("127.0.0.1", redis.port))
    blocker.sendall(encode_command("AUTH", "pw") + encode_command("DEBUG", "SLEEP", "5"))
    try:
        async with aiohttp.ClientSession() as session:
            pending = asyncio.ensure_future(_get(session, node))
            await asyncio.sleep(0.3)  # the INCR is sent and waits behind DEBUG SLEEP
            assert not pending.done()
            redis.stop()  # the server goes away with the call in flight
            status, body = await asyncio.wait_for(pending, 5)
        assert (status, body) == (503, "redis unavailable\n")
        assert "connection closed by the server" in caplog.text or "Error" in caplog.text
    finally:
        blocker.close()


@pytest.fixture
def probe(engine: WasmEngine, redis: RedisServer) -> Iterator[EnvoyProbe]:
    services = RedisServices(parse_config({"origins": {"d": {"url": "http://127.0.0.1:1"}}, "redis": {
        "cache": {"url": f"redis://127.0.0.1:{redis.port}", "password": "pw"}}}).redis)
    st = WasmStage(StageConfig("wasm", "rp", {"module": str(WAT / "envoy_probe.wat")}), base_dir=WAT,
                   engine=engine, redis=services)
    yield EnvoyProbe(st.vm, request())
    st.vm.close()


async def test_redis_call_argument_checks(probe: EnvoyProbe, caplog: pytest.LogCaptureFixture) -> None:
    def init(cluster: bytes, password: bytes = b"") -> int:
        return probe.call("proxy_redis_init", *probe.put(cluster), 0, 0, *probe.put(password), 500)

    def call(cluster: bytes, query: bytes) -> int:
        return probe.call("proxy_redis_call", *probe.put(cluster), *probe.put(query), OUT)

    with caplog.at_level(logging.WARNING):
        assert init(b"nosuch") == Status.BAD_ARGUMENT
    assert "no [redis] service answers to 'nosuch' (configured: cache)" in caplog.text
    ping = encode_command("PING")
    assert call(b"cache", ping) == Status.BAD_ARGUMENT  # not initialised
    assert init(b"cache") == Status.OK
    assert call(b"cache", ping[:-1]) == Status.BAD_ARGUMENT  # incomplete command
    assert call(b"cache", ping + ping) == Status.BAD_ARGUMENT  # two commands
    assert call(b"cache", b"?bad\r\n") == Status.BAD_ARGUMENT
    assert call(b"cache", encode_command("ECHO", "hi")) == Status.OK
    token = probe.u32(OUT)
    for _ in range(200):
        await asyncio.sleep(0.01)
        if probe.u32(68) == token:
            break
    assert probe.redis_reply() == (token, 0, 8, b"$2\r\nhi\r\n")  # raw RESP in buffer 9
    assert probe.u32(64) == probe.vm.root.id  # delivered to the root context
    assert probe.call("proxy_get_buffer_bytes", 9, 0, 10, 16, 20) == Status.NOT_FOUND  # only in the callback


async def test_wrong_password_from_the_filter_fails_the_call(probe: EnvoyProbe) -> None:
    assert probe.call("proxy_redis_init", *probe.put(b"cache"), 0, 0, *probe.put(b"wrong"), 500) == Status.OK
    assert probe.call("proxy_redis_call", *probe.put(b"cache"), *probe.put(encode_command("PING")), OUT) == Status.OK
    for _ in range(200):
        await asyncio.sleep(0.01)
        if probe.u32(68) == probe.u32(OUT):
            break
    token, status, size, reply = probe.redis_reply()
    assert (token, status, size, reply) == (probe.u32(OUT), 1, 0, b"")
