"""Issue-coverage gaps closed against the full Node (default chain: routing, WAF, cache,
image filters) on real sockets: request head limits and bad input through the whole node,
every access-log field, and config errors naming the key for several origins and routes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from edgenode.cli import main
from edgenode.node import Node

BOUND = 10.0


async def raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), BOUND)
    finally:
        writer.close()


async def get(node: Node, path: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}{path}") as r:
            return r.status, r.headers.get("X-Cache", ""), await r.read()


def status_of(data: bytes) -> int:
    assert data.startswith(b"HTTP/1.1 "), data[:100]
    return int(data.split(b" ", 2)[1])


BAD_HEADS = {
    # name: (bytes, expected status)
    "header block over server.max_header_bytes (16 KiB)":
        (b"GET /obj/x HTTP/1.1\r\nHost: a\r\n"
         + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(20)) + b"\r\n", 431),
    "one header line over the limit": (b"GET /obj/x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n", 431),
    "request line over the limit": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    "malformed request line": (b"GET\x00/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "invalid header byte": (b"GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\x01b\r\n\r\n", 400),
    "conflicting Content-Length and Transfer-Encoding":
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", list(BAD_HEADS))
async def test_bad_heads_through_the_full_node(node: Node, name: str) -> None:
    data, expected = BAD_HEADS[name]
    # a slow good request stays in flight on another connection while the bad one is refused
    slow = asyncio.create_task(get(node, "/slow?delay_ms=200"))
    reply = await raw(node.port, data)
    assert status_of(reply) == expected
    assert b"connection: close" in reply.lower()
    assert (await slow)[0] == 200
    assert (await get(node, "/obj/after-bad?size=10"))[0] == 200


async def test_header_block_just_under_the_limit_is_served(node: Node) -> None:
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(12))  # ~12 KiB < 16 KiB
    reply = await raw(node.port, b"GET /obj/ok?size=10 HTTP/1.1\r\nHost: a\r\n" + pad
                      + b"Connection: close\r\n\r\n")
    assert status_of(reply) == 200


FIELDS = {"time", "client", "method", "url", "status", "bytes", "cache", "origin_ms", "total_ms"}


async def test_access_log_json_has_every_field_for_miss_hit_and_error(make_node, tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    node = await make_node(access=str(path), format="json")
    miss = await get(node, "/obj/alog?size=321")
    hit = await get(node, "/obj/alog?size=321")
    gone = await get(node, "/status/404")
    reply = await raw(node.port, b"GET /obj/alog?size=321 HTTP/1.1\r\nHost: a\r\n"
                      b"X-Big: " + b"b" * 20000 + b"\r\n\r\n")
    assert (miss[1], hit[1], gone[0], status_of(reply)) == ("MISS", "HIT", 404, 431)
    await node.stop(1.0)
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    served = [r for r in recs if r["status"] != 431]
    assert len(served) == 3
    for rec in served:
        assert FIELDS <= rec.keys(), FIELDS - rec.keys()
        assert rec["client"] == "127.0.0.1" and rec["method"] == "GET"
        assert rec["time"].endswith("Z") and isinstance(rec["total_ms"], float)
    r_miss, r_hit, r_404 = served
    assert r_miss["url"] == f"http://127.0.0.1:{node.port}/obj/alog?size=321"
    assert (r_miss["status"], r_miss["bytes"], r_miss["cache"]) == (200, 321, "MISS")
    assert r_miss["origin_ms"] > 0 and r_miss["total_ms"] >= r_miss["origin_ms"]
    assert (r_hit["status"], r_hit["bytes"], r_hit["cache"]) == (200, 321, "HIT")
    assert r_hit["origin_ms"] is None  # a hit never went to the origin
    assert r_404["status"] == 404 and r_404["bytes"] == len(gone[2]) and r_404["origin_ms"] > 0


async def test_access_log_text_has_every_field(make_node, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    node = await make_node(access=str(path), format="text")
    await get(node, "/obj/tlog?size=77")
    await node.stop(1.0)
    line = path.read_text().splitlines()[0]
    time, client, rest = line.split(" ", 2)
    assert time.startswith("20") and time.endswith("Z") and client == "127.0.0.1"
    assert rest.startswith("GET /obj/tlog?size=77 200 77 MISS ")
    total_ms = float(rest.split()[-2].removesuffix("ms"))
    assert total_ms > 0 and len(line) < 200


MULTI = '''
[origins.a]
url = "http://127.0.0.1:1"
[origins.b]
url = "http://127.0.0.1:2"
host_header = "origin"
{b_extra}
[origins.c]
url = "http://127.0.0.1:3"
{c_extra}
[[routes]]
host = "a.test"
origin = "a"
[[routes]]
path_prefix = "/b/"
origin = "b"
[[routes]]
{route_extra}
'''


@pytest.mark.parametrize("b_extra,c_extra,route_extra,key", [
    ('connect_timeout = "soon"', "", 'origin = "c"', "origins.b.connect_timeout"),
    ("", 'first_byte_timeout = -1', 'origin = "c"', "origins.c.first_byte_timeout"),
    ("", 'between_bytes_timeout = true', 'origin = "c"', "origins.c.between_bytes_timeout"),
    ("", "max_connections = 0", 'origin = "c"', "origins.c.max_connections"),
    ('hots_header = "x"', "", 'origin = "c"', "origins.b.hots_header"),
    ("", "", 'origin = "d"', "routes[2].origin"),
    ("", "", 'origin = "c"\npath_prefix = "img/"', "routes[2].path_prefix"),
    ("", "", 'path_prefix = "/c/"', "routes[2].origin"),
    ("", "", 'origin = "c"\nhost = 5', "routes[2].host"),
    ("", "", 'origin = "c"\nprefix = "/c/"', "routes[2].prefix"),
])
def test_config_errors_with_several_origins_and_routes_name_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], b_extra: str, c_extra: str,
        route_extra: str, key: str) -> None:
    conf = tmp_path / "multi.toml"
    conf.write_text(MULTI.format(b_extra=b_extra, c_extra=c_extra, route_extra=route_extra))
    assert main(["serve", "--config", str(conf), "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"edgenode: config error: {key}: "), err
    assert len(err) > len(f"edgenode: config error: {key}: ") + 5  # a reason follows the key


def test_several_origins_and_routes_load(tmp_path: Path) -> None:
    from edgenode.config import load_config

    conf = tmp_path / "multi.toml"
    conf.write_text(MULTI.format(b_extra='connect_timeout = "250ms"', c_extra="",
                                 route_extra='origin = "c"\npath_prefix = "/c/"'))
    cfg = load_config(conf)
    assert list(cfg.origins) == ["a", "b", "c"] and cfg.default_origin == "a"
    assert cfg.origins["b"].connect_timeout == 0.25 and cfg.origins["b"].host_header == "origin"
    assert [(r.host, r.path_prefix, r.origin) for r in cfg.routes] == [
        ("a.test", "/", "a"), (None, "/b/", "b"), (None, "/c/", "c")]


def test_workers_auto_means_one_per_core(tmp_path: Path) -> None:
    import os

    from edgenode.cli import _node_config, build_parser
    from edgenode.config import load_config

    args = build_parser().parse_args(["serve", "--workers", "auto", "--listen", "127.0.0.1:0"])
    assert _node_config(args).server.workers == (os.cpu_count() or 1)
    conf = tmp_path / "auto.toml"
    conf.write_text('[server]\nworkers = "auto"\n[origins.default]\nurl = "http://127.0.0.1:1"\n')
    assert load_config(conf).server.workers == (os.cpu_count() or 1)
