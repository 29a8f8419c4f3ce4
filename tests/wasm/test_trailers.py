"""HTTP trailers through Proxy-Wasm filters, on a real node with real sockets.

A raw client sends chunked requests with trailer sections, a raw origin answers with
chunked responses carrying trailers (helpers of tests/proxy/test_proxy_trailers.py),
and WAT filters (tests/wasm/wat/trailers*.wat) log every stream callback they get to
linear memory, so the tests check the hook order (last body callback eos=0, then the
trailers hook), the counts passed, the edits arriving at the origin and the client,
map 7 of a callout, and that without trailers the hooks are never called.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proxy"))

from dataplane_support import node_config, start_node  # noqa: E402
from test_proxy_trailers import (TrailerOrigin, chunked_request, chunked_response,  # noqa: E402
                                 parse)
from test_proxy_trailers import _roundtrip as roundtrip  # noqa: E402

from edgenode.cache.stage import CacheStage  # noqa: E402
from edgenode.config import StageConfig  # noqa: E402
from edgenode.pipeline.stage import build_chain  # noqa: E402
from edgenode.wasm.stage import WasmStage  # noqa: E402

WAT = Path(__file__).parent / "wat"
BAD_ARGUMENT = 2
REQ_BODY, REQ_TRAILERS, RESP_BODY, RESP_TRAILERS, CALL_RESPONSE, EARLY_ADD = 1, 2, 3, 4, 5, 6


def events(stage: WasmStage, width: int = 3) -> list[tuple[int, ...]]:
    """The filter's event log since the last call (and clear it)."""
    mem = stage.vm.mem  # type: ignore[union-attr]
    n = mem.read_u32(1996)
    data = mem.read(2000, n * 4 * width)
    mem.write_u32(1996, 0)
    return [struct.unpack_from(f"<{width}I", data, 4 * width * i) for i in range(n)]


def fields(pairs: list[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in pairs}


class Harness:
    """A node (front end + upstream) whose chain is the given filters (+ cache)."""

    def __init__(self, engine: Any, origin: TrailerOrigin, modules: list[str], cache: bool = False,
                 upstream: TrailerOrigin | None = None, **options: Any) -> None:
        top: dict[str, Any] = {}
        if upstream is not None:
            top["upstreams"] = {"cb": {"url": f"http://127.0.0.1:{upstream.port}"}}
        self.cfg = node_config({"o": {"url": f"http://127.0.0.1:{origin.port}"}}, **top)
        self.engine = engine
        self.modules = modules
        self.cache = cache
        self.options = options
        self.stages: list[WasmStage] = []

    def chain(self, up: Any) -> Any:
        for i, module in enumerate(self.modules):
            self.stages.append(WasmStage(
                StageConfig("wasm", f"trl-{module.split('.')[0]}-{i}",
                            {"module": str(WAT / module), **self.options}),
                base_dir=WAT, callout=up.callout, upstreams=list(self.cfg.upstreams),
                engine=self.engine))
        stages: list[Any] = list(self.stages)
        if self.cache:
            stages.append(CacheStage(self.cfg.cache))
        return build_chain(stages, up)

    async def __aenter__(self) -> Harness:
        self.node = await start_node(self.cfg, self.chain)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.node.close()
        for st in self.stages:
            await st.close()


GET = b"GET /t HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("pieces", [1, 6], ids=["one-read", "streamed"])
async def test_both_hooks_in_envoy_order_and_edits_reach_origin_and_client(engine, pieces) -> None:
    answer = chunked_response([b"a" * 3000, b"b" * 3000], "X-Status: done\r\nX-Digest: d1\r\n")
    origin = await TrailerOrigin(answer, pieces).start()
    try:
        async with Harness(engine, origin, ["trailers.wat"]) as h:
            req = chunked_request([b"hello ", b"world"], "X-Checksum: abc123\r\nX-Other: 2\r\n",
                                  extra="Connection: close\r\n")
            [resp] = await roundtrip(h.node.port, req)
            log = events(h.stages[0])
            # request: body callbacks all eos=0 (each refusing an early map-1 add), then
            # the trailers hook with the number of trailer fields
            req_log = [e for e in log if e[0] in (REQ_BODY, REQ_TRAILERS, EARLY_ADD)]
            bodies = [e for e in req_log if e[0] == REQ_BODY]
            # (the filter returns Continue, so each call sees only the new data)
            assert all(e[2] == 0 for e in bodies) and sum(e[1] for e in bodies) == 11
            assert [e for e in req_log if e[0] == EARLY_ADD] == [(EARLY_ADD, BAD_ARGUMENT, 0)] * len(bodies)
            assert req_log[-1] == (REQ_TRAILERS, 2, 0)
            resp_log = [e for e in log if e[0] in (RESP_BODY, RESP_TRAILERS)]
            assert resp_log[-1] == (RESP_TRAILERS, 2, 0)
            assert all(e[2] == 0 for e in resp_log[:-1]) and sum(e[1] for e in resp_log[:-1]) == 6000
            assert log.index(req_log[-1]) < log.index(resp_log[0])  # request hooks first

            [sent] = origin.requests
            assert sent.body == b"hello world"
            assert fields(sent.trailers) == {"x-checksum": "abc123", "x-other": "edited",
                                             "x-filter-saw": "abc123"}
            assert resp.complete and resp.body == b"a" * 3000 + b"b" * 3000
            assert fields(resp.trailers) == {"x-status": "filtered", "x-resp-saw": "done"}
    finally:
        await origin.close()


async def test_without_trailers_the_hooks_are_never_called(engine) -> None:
    origin = await TrailerOrigin(chunked_response([b"chunked"], "")).start()
    plain = await TrailerOrigin(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain").start()
    try:
        for up in (origin, plain):
            async with Harness(engine, up, ["trailers.wat"]) as h:
                for raw in (GET,
                            b"POST /p HTTP/1.1\r\nHost: test.local\r\nContent-Length: 3\r\n"
                            b"Connection: close\r\n\r\nabc",
                            chunked_request([b"abc", b"de"], "", extra="Connection: close\r\n")):
                    [resp] = await roundtrip(h.node.port, raw)
                    assert resp.status == 200 and resp.trailers == []
                    log = events(h.stages[0])
                    codes = [e[0] for e in log]
                    assert REQ_TRAILERS not in codes and RESP_TRAILERS not in codes
                    resp_bodies = [e for e in log if e[0] == RESP_BODY]
                    assert resp_bodies[-1][2] == 1  # the last body callback is the end
                    req_bodies = [e for e in log if e[0] == REQ_BODY]
                    if raw is not GET:
                        assert req_bodies[-1][2] == 1 and sum(e[1] for e in req_bodies) == 5 - (raw[0:4] == b"POST" and b"Content-Length" in raw) * 2
                    assert up.requests[-1].trailers == []
    finally:
        await origin.close()
        await plain.close()


async def test_body_only_filter_gets_eos_and_may_add_trailers(engine) -> None:
    """No trailers hooks: the last body callback is the end, trailers readable and addable."""
    origin = await TrailerOrigin(chunked_response([b"x" * 100], "X-Status: done\r\n"), 4).start()
    plain = await TrailerOrigin(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain").start()
    try:
        async with Harness(engine, origin, ["trailers_add.wat"]) as h:
            req = chunked_request([b"abc"], "X-T: 1\r\n", extra="Connection: close\r\n")
            [resp] = await roundtrip(h.node.port, req)
            log = events(h.stages[0])
            assert (1, 3, 1) in log and (7, 0, 0) in log and (8, 0, 0) in log
            assert fields(origin.requests[-1].trailers) == {"x-t": "1", "x-req-added": "1"}
            assert fields(resp.trailers) == {"x-status": "done", "x-body-saw": "done",
                                             "x-resp-added": "1"}
        async with Harness(engine, plain, ["trailers_add.wat"]) as h:
            # neither message had trailers: the filter's additions create them
            raw = b"POST /p HTTP/1.1\r\nHost: test.local\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
            [resp] = await roundtrip(h.node.port, raw)
            [sent] = plain.requests
            assert sent.body == b"abc" and fields(sent.trailers) == {"x-req-added": "1"}
            assert resp.body == b"plain" and fields(resp.trailers) == {"x-resp-added": "1"}
            assert resp.header("Transfer-Encoding") == "chunked"
    finally:
        await origin.close()
        await plain.close()


async def test_trailers_only_filter_and_header_filter_pass_trailers(engine) -> None:
    """Hooks without body hooks (streamed and bytes bodies), behind a header-only filter."""
    answer = chunked_response([b"c" * 2000, b"d" * 2000], "X-Status: done\r\n",
                              head="Cache-Control: max-age=60\r\n")
    origin = await TrailerOrigin(answer, 6).start()
    try:
        async with Harness(engine, origin, ["header_only.wat", "trailers_only.wat"], cache=True) as h:
            req = chunked_request([b"abc"], "X-T: 1\r\n", path="/t", extra="Connection: close\r\n")
            [resp] = await roundtrip(h.node.port, req)
            assert fields(origin.requests[-1].trailers) == {"x-t": "1", "x-seen-by": "trailers-only"}
            assert resp.body == b"c" * 2000 + b"d" * 2000
            assert fields(resp.trailers) == {"x-status": "done", "x-seen-by": "trailers-only"}
            assert events(h.stages[1], 2) == [(2, 1), (4, 1)]
            for expect in ("MISS", "HIT", "HIT"):  # hits: a bytes body with a per-hit copy
                [got] = parse(await _get(h.node.port))
                assert got.header("X-Cache") == expect and got.header("x-filtered") == "yes"
                assert got.trailers == [("X-Status", "done"), ("x-seen-by", "trailers-only")]
                assert events(h.stages[1], 2) == [(4, 1)]
            assert len(origin.requests) == 2
    finally:
        await origin.close()


async def _get(port: int) -> bytes:
    from dataplane_support import exchange_raw
    return await exchange_raw(port, GET)


async def test_trailers_hook_holds_for_a_callout_and_reads_map_7(engine) -> None:
    origin = await TrailerOrigin(chunked_response([b"ok"], "")).start()
    callee = await TrailerOrigin(chunked_response([b"cb"], "X-Call-Trailer: t7\r\n")).start()
    try:
        async with Harness(engine, origin, ["trailers.wat"], upstream=callee) as h:
            req = chunked_request([b"data"], "X-Hold: 1\r\nX-Checksum: c1\r\n",
                                  extra="Connection: close\r\n")
            [resp] = await roundtrip(h.node.port, req)
            assert resp.status == 200 and resp.body == b"ok"
            log = events(h.stages[0])
            assert (REQ_TRAILERS, 2, 0) in log
            # the call response came while the trailers were held: 1 trailer, :status + headers
            [call] = [e for e in log if e[0] == CALL_RESPONSE]
            assert call[1] == 1 and call[2] >= 2
            assert log.index(call) < log.index(next(e for e in log if e[0] == RESP_BODY))
            assert [m.trailers for m in callee.requests] == [[]]
            [sent] = origin.requests
            assert fields(sent.trailers) == {"x-hold": "1", "x-checksum": "c1", "x-other": "edited",
                                             "x-filter-saw": "c1", "x-call-trailer": "t7",
                                             "x-held": "released"}
    finally:
        await origin.close()
        await callee.close()


@pytest.mark.parametrize("pieces", [1, 6], ids=["one-read", "streamed"])
async def test_held_response_is_released_from_the_trailers_hook(engine, pieces) -> None:
    origin = await TrailerOrigin(chunked_response([b"e" * 3000, b"f" * 3000], "X-Status: done\r\n"),
                                 pieces).start()
    plain = await TrailerOrigin(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain").start()
    try:
        async with Harness(engine, origin, ["trailers_hold.wat"], allow_on_headers_stop_iteration=True) as h:
            [resp] = await roundtrip(h.node.port, GET)
            assert resp.complete and resp.body == b"e" * 3000 + b"f" * 3000
            assert fields(resp.trailers) == {"x-status": "done", "x-held-resp": "yes"}
            log = events(h.stages[0])
            assert log[-2] == (RESP_BODY, 6000, 0) and log[-1] == (RESP_TRAILERS, 1, 0)
        async with Harness(engine, plain, ["trailers_hold.wat"], allow_on_headers_stop_iteration=True) as h:
            [resp] = await roundtrip(h.node.port, GET)
            assert resp.body == b"plain" and resp.trailers == []
            assert events(h.stages[0])[-1] == (RESP_BODY, 5, 1)
    finally:
        await origin.close()
        await plain.close()


async def test_cache_hit_trailers_pass_body_and_trailers_hooks(engine) -> None:
    answer = chunked_response([b"g" * 500], "X-Status: done\r\nX-Digest: d1\r\n",
                              head="Cache-Control: max-age=60\r\n")
    origin = await TrailerOrigin(answer).start()
    try:
        async with Harness(engine, origin, ["trailers.wat"], cache=True) as h:
            for expect in ("MISS", "HIT", "HIT"):
                [got] = parse(await _get(h.node.port))
                assert got.header("X-Cache") == expect and got.body == b"g" * 500
                assert fields(got.trailers) == {"x-status": "filtered", "x-resp-saw": "done"}
                log = [e for e in events(h.stages[0]) if e[0] in (RESP_BODY, RESP_TRAILERS)]
                assert log[-1] == (RESP_TRAILERS, 2, 0) and log[-2][2] == 0
            assert len(origin.requests) == 1
    finally:
        await origin.close()


async def test_local_reply_and_trap_in_the_request_trailers_hook(engine) -> None:
    origin = await TrailerOrigin(chunked_response([b"ok"], "")).start()
    try:
        async with Harness(engine, origin, ["trailers_misbehave.wat"]) as h:
            [resp] = await roundtrip(h.node.port, chunked_request([b"abc"], "X-Deny: 1\r\n",
                                                                  extra="Connection: close\r\n"))
            assert resp.status == 403 and resp.body == b"denied by trailers"
            [resp] = await roundtrip(h.node.port, chunked_request([b"abc"], "X-Trap: 1\r\n",
                                                                  extra="Connection: close\r\n"))
            assert resp.status == 503 and b"failed" in resp.body
            assert origin.requests == []  # the body was held back until the hook ran
        async with Harness(engine, origin, ["trailers_misbehave.wat"], failure_policy="fail_open") as h:
            [resp] = await roundtrip(h.node.port, chunked_request([b"abc"], "X-Trap: 1\r\n",
                                                                  extra="Connection: close\r\n"))
            assert resp.status == 200
            [sent] = origin.requests  # the filter is skipped: body and trailers go on untouched
            assert sent.body == b"abc" and fields(sent.trailers) == {"x-trap": "1"}
    finally:
        await origin.close()


@pytest.mark.parametrize("policy", ["fail_closed", "fail_open"])
async def test_trap_in_the_response_trailers_hook_of_a_streamed_response(engine, policy) -> None:
    origin = await TrailerOrigin(chunked_response([b"h" * 4000], "X-Trap: 1\r\n"), 4).start()
    try:
        async with Harness(engine, origin, ["trailers_misbehave.wat"], failure_policy=policy) as h:
            [resp] = await roundtrip(h.node.port, GET)
            assert resp.status == 200 and resp.body == b"h" * 4000  # sent before the trailers
            if policy == "fail_closed":  # the client never sees a complete-looking response
                assert not resp.complete
            else:
                assert resp.complete and fields(resp.trailers) == {"x-trap": "1"}
    finally:
        await origin.close()


async def test_per_request_instances_bind_the_trailers_hooks_on_use(engine) -> None:
    origin = await TrailerOrigin(chunked_response([b"pr"], "X-Status: done\r\n")).start()
    try:
        async with Harness(engine, origin, ["trailers.wat"], isolation="per-request") as h:
            for i in range(3):  # each stream a fresh instance (from the snapshot)
                req = chunked_request([b"abc"], f"X-Checksum: c{i}\r\n", extra="Connection: close\r\n")
                [resp] = await roundtrip(h.node.port, req)
                assert fields(origin.requests[-1].trailers) == {
                    "x-checksum": f"c{i}", "x-filter-saw": f"c{i}", "x-other": "edited"}
                assert fields(resp.trailers) == {"x-status": "filtered", "x-resp-saw": "done"}
            assert h.stages[0].stats()["snapshot"] is True
    finally:
        await origin.close()
