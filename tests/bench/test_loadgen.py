"""The load generator against real local servers: counts, framing, errors by kind."""

from __future__ import annotations

import asyncio
import math
import socket

import pytest

from edgenode.bench.loadgen import (parse_wrk_output, percentile, percentiles, run_load, run_wrk,
                                    wrk_available)
from edgenode.origin.app import start_origin
from edgenode.origin.settings import OriginSettings


@pytest.fixture
async def origin_port():
    runner, port = await start_origin(OriginSettings(listen=("127.0.0.1", 0)))
    yield port
    await runner.cleanup()


def test_percentiles():
    values = list(range(1, 101))
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 100
    assert percentile([7], 99) == 7
    assert math.isnan(percentile([], 50))
    assert percentiles([3, 1, 2], (50, 99)) == {"p50": 2, "p99": pytest.approx(2.98)}


async def test_counts_bytes_and_header_samples(origin_port):
    paths = ["/obj/a?size=1k", "/obj/b?size=10k&cc=no-store"]
    r = await run_load("127.0.0.1", origin_port, paths, connections=4, requests=300,
                       sample_headers=["Cache-Control"])
    assert r.generator == "python"
    assert r.requests == 300 and r.status == {200: 300}
    assert len(r.latencies_us) == 300 and min(r.latencies_us) > 0
    assert r.bytes_received > 150 * 1024 + 150 * 10 * 1024
    assert r.headers["cache-control"] == {"public, max-age=60": 150, "no-store": 150}
    assert not r.errors
    s = r.summary()
    assert s["requests"] == 300 and set(s["latency_us"]) == {"p50", "p90", "p99"}
    assert s["latency_us"]["p50"] <= s["latency_us"]["p99"]


async def test_chunked_no_body_and_head(origin_port):
    paths = ["/stream?size=100k&chunk=3000&chunked=1", "/status/204", "/obj/c?size=5000",
             "/status/404"]
    r = await run_load("127.0.0.1", origin_port, paths, connections=2, requests=40)
    assert r.status == {200: 20, 204: 10, 404: 10}
    assert not r.errors
    # HEAD answers carry Content-Length but no body: the parser must not wait for one.
    h = await run_load("127.0.0.1", origin_port, ["/obj/c?size=5000"], connections=2,
                       requests=10, method="HEAD", timeout=5)
    assert h.status == {200: 10} and not h.errors


async def test_iterator_of_paths_ends_the_run(origin_port):
    r = await run_load("127.0.0.1", origin_port, (f"/counter/it{i}" for i in range(7)),
                       connections=3, duration=30)
    assert r.requests == 7


async def test_refused_port_counts_connect_errors():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        r = await run_load("127.0.0.1", port, ["/"], connections=3, requests=12)
    assert r.errors == {"connect_refused": 12}
    assert r.requests == 0


async def test_reset_mid_body_counts_as_reset(origin_port):
    r = await run_load("127.0.0.1", origin_port, ["/reset-mid-body?size=100k", "/obj/ok"],
                       connections=1, requests=6)
    assert r.errors["reset"] == 3
    assert r.status == {200: 3}


async def _raw_server(answer: bytes | None) -> tuple[asyncio.AbstractServer, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if answer is None:
                await reader.read()  # never answer
            else:
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_body_until_close_and_reconnect():
    server, port = await _raw_server(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello")
    async with server:
        r = await run_load("127.0.0.1", port, ["/"], connections=2, requests=6)
    assert r.status == {200: 6} and not r.errors


async def test_garbage_and_timeouts_by_kind():
    server, port = await _raw_server(b"NOT HTTP AT ALL\r\n\r\n")
    async with server:
        r = await run_load("127.0.0.1", port, ["/"], connections=1, requests=3)
    assert r.errors == {"protocol": 3}
    server, port = await _raw_server(None)
    async with server:
        r = await run_load("127.0.0.1", port, ["/"], connections=2, requests=2, timeout=0.2)
    assert r.errors == {"timeout": 2}


def test_bad_arguments():
    with pytest.raises(ValueError):
        asyncio.run(run_load("127.0.0.1", 1, ["/"], duration=1, requests=1))
    with pytest.raises(ValueError):
        asyncio.run(run_load("127.0.0.1", 1, ["/"], requests=1, connections=0))


WRK_SAMPLE = """\
Running 2s test @ http://127.0.0.1:8080/obj/a
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.50us  100.20us   3.10ms   90.00%
    Req/Sec    19.50k     1.20k   21.00k    70.00%
  Latency Distribution
     50%  401.00us
     75%  450.00us
     90%  520.00us
     99%    1.20ms
  77777 requests in 2.00s, 95.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  38888.50
Transfer/sec:     47.75MB
"""


def test_parse_wrk_output():
    r = parse_wrk_output(WRK_SAMPLE)
    assert r.generator == "wrk"
    assert r.requests == 77777 and r.duration_s == pytest.approx(2.0)
    assert r.rps == pytest.approx(38888.5)
    assert r.latency_us(50) == pytest.approx(401.0) and r.latency_us(99) == pytest.approx(1200.0)
    assert r.errors == {"read": 2, "timeout": 1}
    assert r.status == {"2xx/3xx": 77772, "other": 5}
    assert r.bytes_received == int(95.5 * 1024 * 1024)
    with pytest.raises(ValueError):
        parse_wrk_output("wrk: unknown option")


@pytest.mark.skipif(not wrk_available(), reason="wrk not installed (benchmarks/setup_reference.sh)")
async def test_run_wrk_against_origin(origin_port):
    r = await asyncio.to_thread(run_wrk, f"http://127.0.0.1:{origin_port}/obj/w?size=1k",
                                connections=4, duration=1, threads=1)
    assert r.generator == "wrk" and r.requests > 0
    assert "p50" in r.summary()["latency_us"]
