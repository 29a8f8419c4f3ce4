"""The Redis client behind filter callouts: RESP framing (pure), the ``[redis.NAME]``
config section, cluster-name resolution, and the pool against a real redis-server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import pytest

from edgenode.config import ConfigError, parse_config
from edgenode.redis.pool import RedisCallError, RedisPool, RedisTarget, RedisTimeout
from edgenode.redis.resp import RespError, encode_command, frame_end
from edgenode.redis.services import RedisServices, resolve_cluster

from redis_server import RedisServer


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), password="s3cret")
    yield server
    server.stop()


@pytest.mark.parametrize("frame", [b"+OK\r\n", b"-ERR no\r\n", b":-7\r\n", b"$3\r\nabc\r\n", b"$-1\r\n",
                                   b"*-1\r\n", b"*0\r\n", b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
                                   b"%1\r\n+k\r\n:1\r\n", b"_\r\n", b"#t\r\n", b",1.5\r\n",
                                   b"!5\r\nERR x\r\n", b"=7\r\ntxt:abc\r\n", b">2\r\n+a\r\n+b\r\n"])
def test_frame_end_finds_each_complete_value_and_waits_on_every_prefix(frame: bytes) -> None:
    assert frame_end(frame + b"+NEXT\r\n") == len(frame)
    for cut in range(len(frame)):
        assert frame_end(frame[:cut]) == -1


def test_frame_end_refuses_what_is_not_resp() -> None:
    for bad in (b"?x\r\n", b"$abc\r\n", b"$3\r\nabcXY", b"*" + b"1\r\n*" * 100 + b"0\r\n"):
        with pytest.raises(RespError):
            frame_end(bad)
    assert encode_command("SET", "k", 5) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n"


def _config(redis: dict) -> dict:
    return parse_config({"origins": {"default": {"url": "http://127.0.0.1:1"}}, "redis": redis}).redis


def test_redis_section_parses_and_names_bad_keys() -> None:
    cfg = _config({"rl": {"url": "redis://u:pw@10.0.0.5:6380/3", "timeout": "250ms",
                          "aliases": ["outbound|6380||rl.default.svc.cluster.local"]}})["rl"]
    assert (cfg.host, cfg.port, cfg.db, cfg.username, cfg.password, cfg.timeout) == \
        ("10.0.0.5", 6380, 3, "u", "pw", 0.25)
    with pytest.raises(ConfigError, match=r"^redis\.rl\.url: required"):
        _config({"rl": {}})
    with pytest.raises(ConfigError, match=r"^redis\.rl\.url: expected redis://.*\(TLS is not supported\)"):
        _config({"rl": {"url": "rediss://h"}})
    with pytest.raises(ConfigError, match=r"^redis\.rl\.colour: unknown key"):
        _config({"rl": {"url": "redis://h", "colour": "red"}})


def test_cluster_names_resolve_like_higress_names_them() -> None:
    configs = _config({"cache": {"url": "redis://h/1", "aliases": ["my-envoy-cluster"]}})
    assert resolve_cluster("cache", configs).db == 1
    assert resolve_cluster("cache?db=4&buffer_flush_timeout=0", configs).db == 4
    assert resolve_cluster("outbound|6379||cache.static", configs) is not None
    assert resolve_cluster("outbound|6379||cache.dns?db=2", configs).db == 2
    assert resolve_cluster("my-envoy-cluster", configs) is not None
    for unknown in ("other", "outbound|6379||other.static", "cache?db=x"):
        assert resolve_cluster(unknown, configs) is None


async def test_pool_authenticates_selects_and_reuses(redis: RedisServer) -> None:
    services = RedisServices(_config({"r": {"url": f"redis://127.0.0.1:{redis.port}", "password": "s3cret"}}))
    pool = services.pool(services.resolve("r?db=5"))
    try:
        assert await pool.call(encode_command("SET", "k", "v"), 2) == b"+OK\r\n"
        assert await pool.call(encode_command("GET", "k"), 2) == b"$1\r\nv\r\n"
        assert await pool.call(encode_command("NOSUCH"), 2) == b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n"
        assert pool.opened == 1
        assert redis.command("GET", "k", db=5).endswith(b"$1\r\nv\r\n")  # it went to db 5
        assert redis.command("GET", "k").endswith(b"$-1\r\n")
    finally:
        await services.close()
    wrong = RedisPool(RedisTarget("127.0.0.1", redis.port, password="nope"))
    with pytest.raises(RedisCallError, match="AUTH refused"):
        await wrong.call(encode_command("PING"), 2)


async def test_pool_times_out_and_recovers(redis: RedisServer) -> None:
    pool = RedisPool(RedisTarget("127.0.0.1", redis.port, password="s3cret"))
    try:
        with pytest.raises(RedisTimeout):
            await pool.call(encode_command("DEBUG", "SLEEP", "0.3"), 0.05)
        await asyncio.sleep(0.3)
        # the timed-out connection was closed: its late reply cannot answer this call
        assert await pool.call(encode_command("ECHO", "x"), 2) == b"$1\r\nx\r\n"
        assert pool.opened == 2
    finally:
        await pool.close()


async def test_pool_reports_a_refused_connection() -> None:
    pool = RedisPool(RedisTarget("127.0.0.1", 1))
    with pytest.raises(RedisCallError, match="connect to 127.0.0.1:1 failed"):
        await pool.call(encode_command("PING"), 2)
