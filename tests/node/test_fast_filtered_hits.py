"""Filtered hits through the front end's fast path (``FastHits._fast``), on a real
node on 127.0.0.1: a plain GET behind Proxy-Wasm filters is marked plain there and runs
its chain in the loop iteration's batch, where the cache answers from its kept answer
without looking at the fields again; every hook, signal and figure is the general path's.

Each test counts the fast path's runs, so it fails if the hits it checks went the
general way, and compares with the same requests with the fast path off (the general
path: every check made again, the cache's own ``NOT_PLAIN`` pass) byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest

from edgenode.config import StageConfig
from edgenode.frontend.connection import Connection
from edgenode.http.messages import RawRequest
from edgenode.node import Node
from edgenode.observe.accesslog import log_record

ROOT = Path(__file__).resolve().parents[2]
WAT = ROOT / "tests" / "wasm" / "wat"
ROUTING = ROOT / "filters" / "build" / "routing.wasm"

#: the routing filter reading the request's pseudo-headers and fields, setting the
#: origin property, editing both header maps, and answering locally (a fixed reply, a
#: redirect)
ROUTES = {
    "default_origin": "default",
    "routes": [
        {"name": "fixed", "match": {"path_prefix": "/fixed"},
         "respond": {"status": 200, "body": "fixed\n", "headers": {"x-fixed": "1"}}},
        {"name": "moved", "match": {"path_regex": "^/moved/([a-z]+)$"},
         "redirect": {"status": 301, "location": "/obj/$1"}},
        {"name": "edit", "match": {"path_prefix": "/obj/", "headers": {"user-agent": "raw"}},
         "origin": "default",
         "request_headers": {"set": {"x-route": "edit"}},
         "response_headers": {"set": {"content-type": "text/x-edited"}, "add": {"x-extra": "1"},
                              "remove": ["etag"]}},
    ],
}


def wasm(name: str, module: Path, **options: Any) -> StageConfig:
    return StageConfig("wasm", name, {"module": str(module), **options})


class FastCount:
    """Counts the requests the fast path marks plain and hands to the batch itself (the
    front end's ``filtered_started``) and every request started: those, and the ones the
    dispatcher starts (``Dispatcher._start``: the general path's)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, node: Node) -> None:
        self.fe = node.frontend
        self.since = node.frontend.filtered_started
        self.dispatched = 0
        start = Connection._start

        def counted_start(conn: Connection, *args: Any) -> None:
            self.dispatched += 1
            start(conn, *args)

        monkeypatch.setattr(Connection, "_start", counted_start)

    @property
    def fast(self) -> int:
        return self.fe.filtered_started - self.since

    @property
    def general(self) -> int:
        return self.fast + self.dispatched


def mask(data: bytes) -> bytes:
    """An answer with what differs between two runs of the same request masked."""
    data = re.sub(rb"\r\nX-Request-Id: [0-9a-f]{12}-[0-9a-f]+\r\n", b"\r\nX-Request-Id: *\r\n", data)
    data = re.sub(rb"wasm-([\w-]+);dur=[0-9.]+", rb"wasm-\1;dur=*", data)
    data = re.sub(rb"\r\nAge: [0-9]+\r\n", b"\r\nAge: *\r\n", data)  # a second may pass
    data = re.sub(rb"\r\nDate: [^\r]+\r\n", b"\r\nDate: *\r\n", data)
    return re.sub(rb"; ttl=[0-9]+", b"; ttl=*", data)


async def exchange(node: Node, path: str, extra: str = "") -> bytes:
    """One GET on a new connection: the exact response bytes (head and body), masked."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nUser-Agent: raw\r\n{extra}\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        body = await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()
    return mask(head + body)


class Observed:
    """What the node reports per request: its metrics' counters and the access log's
    record (timings masked), through the same signal the access log subscribes to."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.records: list[dict[str, Any]] = []
        #: per request: whether the fast path marked it plain
        self.plain: list[bool] = []
        #: per request: whether its fields multidict was never made (a ``RawRequest``)
        self.raw: list[bool] = []
        node.signals.on_request_end.append(self._record)

    def _record(self, ex: Any, response: Any) -> None:
        self.plain.append(ex.plain != -1)
        self.raw.append(type(ex.request) is RawRequest)
        rec = log_record(ex, response)
        rec["time"] = rec["total_ms"] = "*"
        rec["request_id"] = re.sub(r"^[0-9a-f]{12}-[0-9a-f]+$", "*", rec["request_id"])
        rec["filters"] = sorted(rec.get("filters", {}))  # which filter phases were timed
        self.records.append(rec)

    def counters(self) -> tuple[dict[Any, int], dict[Any, int]]:
        m = self.node.metrics
        return dict(m._requests), dict(m._bytes)


async def both_paths(node: Node, requests: list[tuple[str, str]],
                     monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], list[bytes], Observed, FastCount]:
    """``requests`` answered on the fast path, then again with it off; the answers (and the
    node's records of them) must be the same, so the caller gets both for its checks."""
    seen = Observed(node)
    count = FastCount(monkeypatch, node)
    before = seen.counters()
    fast = [await exchange(node, path, extra) for path, extra in requests]
    mid = seen.counters()
    fast_records = list(seen.records)
    assert count.fast == len(requests)
    fast_path, node.frontend.fast_path = node.frontend.fast_path, None
    try:
        general = [await exchange(node, path, extra) for path, extra in requests]
    finally:
        node.frontend.fast_path = fast_path
    assert count.fast == len(requests) and count.general >= len(requests)
    assert fast == general
    assert fast_records == seen.records[len(fast_records):]  # the access log's lines, timings aside
    assert seen.plain == [True] * len(requests) + [False] * len(requests)

    def added(old: dict[Any, int], new: dict[Any, int]) -> dict[Any, int]:
        return {k: v - old.get(k, 0) for k, v in new.items() if v != old.get(k, 0)}

    after = seen.counters()
    assert added(before[0], mid[0]) == added(mid[0], after[0])  # requests by cache label, class
    assert added(before[1], mid[1]) == added(mid[1], after[1])  # body bytes by cache label
    return fast, general, seen, count


async def test_a_header_filters_hit_is_the_general_paths_byte_for_byte(
        start_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """header_only.wat twice (reads two request fields, adds a response field): the hit
    is answered from the kept head with both fields appended, Cache-Status,
    X-Cache and the request id as the general path writes them, Server-Timing per filter
    when asked; an incoming X-Request-Id is kept."""
    node = await start_node(wasm("first", WAT / "header_only.wat"), wasm("second", WAT / "header_only.wat"))
    path = "/obj/fast-header?size=700"
    await exchange(node, path)  # stored
    fast, _, seen, _ = await both_paths(node, [(path, ""), (path, "X-Edgenode-Timing: 1\r\n"),
                                               (path, "X-Request-Id: abc-123\r\n")], monkeypatch)
    assert b"X-Cache: HIT\r\n" in fast[0] and b"Cache-Status: edgenode; hit; ttl=*\r\n" in fast[0]
    assert b"x-filtered: yes\r\nx-filtered: yes\r\nContent-Length: 700\r\nX-Request-Id: *\r\n\r\n" in fast[0]
    assert b"Server-Timing: wasm-first;dur=*" in fast[1] and b"wasm-second;dur=*" in fast[1]
    assert b"\r\nX-Request-Id: abc-123\r\n" in fast[2]
    assert seen.records[2]["cache"] == "HIT" and seen.records[2]["request_id"] == "abc-123"
    # the filters' reads, Server-Timing's request field and the cache's Host came from
    # the parsed bytes: no fields multidict made (an incoming id takes the general route)
    assert seen.raw == [True, True, False] + [False] * 3
    assert {"first.request_headers", "first.response_headers", "second.request_headers",
            "second.response_headers"} <= set(seen.records[2]["filters"])


async def test_the_routing_filters_hits_local_replies_and_properties_match(
        start_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The routing filter on the fast path: a hit whose response fields it sets, adds and
    removes (written field by field: the kept head no longer holds), the origin property
    it sets (the access log's ``origin``), a fixed local reply and a redirect -- each the
    general path's answer byte for byte."""
    node = await start_node(wasm("routing", ROUTING, config=ROUTES))
    path = "/obj/fast-route?size=300"
    await exchange(node, path)  # stored
    fast, _, seen, _ = await both_paths(node, [(path, ""), ("/fixed", ""), ("/moved/abc", "")], monkeypatch)
    hit, fixed, moved = fast
    assert hit.startswith(b"HTTP/1.1 200 ") and b"X-Cache: HIT\r\n" in hit
    assert b"x-extra: 1\r\n" in hit and b"text/x-edited" in hit and b"ETag" not in hit
    assert fixed.startswith(b"HTTP/1.1 200 ") and fixed.endswith(b"\r\n\r\nfixed\n") and b"x-fixed: 1" in fixed
    assert moved.startswith(b"HTTP/1.1 301 ") and b"location: /obj/abc\r\n" in moved.lower()
    assert [r["origin"] for r in seen.records[:3]] == ["default", None, None]
    assert [r["cache"] for r in seen.records[:3]] == ["HIT", "-", "-"]


async def test_a_pause_on_the_fast_path_goes_on_as_the_general_path(
        start_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """pause.wat holding the response headers until its tick: the request started on the
    fast path continues in a task from the held hook on, and answers as the general path
    does; the next hit stays on the fast path."""
    node = await start_node(wasm("fast-pause", WAT / "pause.wat"))
    path = "/obj/fast-paused?size=50"
    await exchange(node, path)  # stored
    fast, _, _, count = await both_paths(node, [(path, "x-resp: 100t\r\n"), (path, "x-pause: 300t\r\n"),
                                                (path, "")], monkeypatch)
    assert b"x-resumed: 1\r\n" in fast[0] and b"X-Cache: HIT\r\n" in fast[0]
    assert b"X-Cache: HIT\r\n" in fast[1] and b"x-resumed" not in fast[2]


@pytest.mark.parametrize("what", ["trap", "loop", "bomb"])
@pytest.mark.parametrize("where", ["request", "response"])
async def test_a_misbehaving_filter_on_the_fast_path_is_contained(
        start_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, what: str, where: str) -> None:
    """misbehave.wat in per-request isolation trapping, looping past its CPU deadline or
    growing past its memory limit in a hook run on the fast path: that stream gets the
    general path's 503, the next hit is served with the filter."""
    node = await start_node(wasm(f"fast-{what}-{where}", WAT / "misbehave.wat", isolation="per-request",
                                 cpu_deadline_ms=20, memory_limit="2MiB"))
    bad = f"x-misbehave: {what}\r\n" + ("x-misbehave-in: response\r\n" if where == "response" else "")
    path = f"/obj/fast-{what}-{where}?size=100"
    await exchange(node, path)  # stored
    fast, _, _, _ = await both_paths(node, [(path, bad), (path, "")], monkeypatch)
    assert fast[0].startswith(b"HTTP/1.1 503 ") and b"failed" in fast[0]
    assert fast[1].startswith(b"HTTP/1.1 200 ") and b"x-ok: 1\r\n" in fast[1]
    assert node.filters[f"fast-{what}-{where}"].plugin.metrics.traps >= 2  # one per path


async def test_a_miss_started_on_the_fast_path_is_fetched_and_stored(
        start_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain GET that misses is marked on the fast path, runs the filters' request sides
    and goes on to the origin in a task; the stored answer is the next request's hit,
    answered from the kept answer after the filters (``hit_response``)."""
    node = await start_node(wasm("fast-miss", WAT / "header_only.wat"))
    count = FastCount(monkeypatch, node)
    first = await exchange(node, "/obj/fast-miss?size=80")
    second = await exchange(node, "/obj/fast-miss?size=80")
    assert b"X-Cache: MISS\r\n" in first and b"X-Cache: HIT\r\n" in second
    assert first.count(b"x-filtered: yes") == second.count(b"x-filtered: yes") == 1
    assert count.fast == count.general == 2
    assert json.loads(json.dumps(node.stats()))["cache"]["hits"] == 1


async def test_a_filter_that_writes_a_request_field_makes_the_fields_where_it_writes(
        start_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """wire_bytes.wat compares a Cookie's UTF-8 bytes and copies an obs-text field (reads
    from the parsed bytes), then sets a request field: the fields are made there, from
    the same bytes, and the map it reads next, the cache's plain check and the answer
    are the general path's; header_only.wat behind it reads the made fields."""
    node = await start_node(wasm("bytes", WAT / "wire_bytes.wat"), wasm("header", WAT / "header_only.wat"))
    path = "/obj/fast-bytes?size=90"
    await exchange(node, path)  # stored
    cookie = "Cookie: a=\uff1cscript\uff1e\r\nX-Obs: caf\u00e9\r\n"
    fast, _, seen, _ = await both_paths(node, [(path, cookie), (path, "")], monkeypatch)
    assert b"x-cookie-echo: a=\xef\xbc\x9cscript\xef\xbc\x9e\r\n" in fast[0]
    assert b"X-Cache: HIT\r\n" in fast[0] and b"x-filtered: yes\r\n" in fast[0]
    assert seen.raw == [False, False, False, False]  # made by the write, on both paths
    assert [r["cache"] for r in seen.records] == ["HIT"] * 4


def cache_stage(node: Node) -> Any:
    return next(s for s in node.stages if type(s).__name__ == "CacheStage")


@pytest.fixture
def start_lmdb_node(origin_url: str, config_for: Callable[..., Any], run_node: Callable[..., Any],
                    tmp_path: Path) -> Callable[..., Any]:
    """``start_node`` over the shared store, whose objects the cache keeps answers for
    (the memory store vouches for none: ``fast_token``)."""
    async def start(*filters: StageConfig) -> Node:
        cfg = config_for(origin_url)
        cfg.chain = [*filters, StageConfig("cache", "cache")]
        cfg.cache.store = "lmdb"
        cfg.server.state_dir = tmp_path
        return await run_node(cfg, admin=False)

    return start


async def test_a_path_rewritten_to_another_kept_object_gets_that_objects_answer(
        start_lmdb_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The routing filter rewriting ``/alias`` to ``/obj/kept-b``: its hit is b's, not the
    answer kept for the client's own target (there is none) nor a's, though both a and b
    are kept answers reused by the untouched requests; the fast path's answers and
    records are the general path's."""
    routes = {"default_origin": "default",
              "routes": [{"name": "alias", "match": {"path_prefix": "/alias"}, "rewrite": "/obj/kept-b"}]}
    node = await start_lmdb_node(wasm("routing", ROUTING, config=routes))
    a, b = "/obj/kept-a?size=100", "/obj/kept-b?size=200"
    for path in (a, a, b, b):  # stored, then kept for the pair
        await exchange(node, path)
    kept = cache_stage(node)._kept
    assert {(a.encode(), b"t"), (b.encode(), b"t")} <= set(kept)
    hits = cache_stage(node).store.counters["hits"]
    fast, _, seen, _ = await both_paths(node, [(a, ""), ("/alias?size=200", ""), (b, "")], monkeypatch)
    assert fast[1] == fast[2] != fast[0]
    assert len(fast[1].split(b"\r\n\r\n", 1)[1]) == 200
    assert [r["cache"] for r in seen.records] == ["HIT"] * 6
    assert cache_stage(node).store.counters["hits"] - hits == 6
    assert (b"/alias?size=200", b"t") not in kept  # a rewritten target is not the parsed pair


async def test_a_purge_or_expiry_between_kept_hits_is_not_answered_from_the_kept_answer(
        start_lmdb_node: Callable[..., Any]) -> None:
    """A kept answer stops serving the moment its object is purged or its freshness ends
    between two filtered hits: the next request goes to the origin (a MISS) and is kept
    again afterwards."""
    node = await start_lmdb_node(wasm("header", WAT / "header_only.wat"))
    stage = cache_stage(node)
    path = "/obj/kept-purge?size=60"
    for _ in range(3):  # stored, kept, then answered from the kept answer
        await exchange(node, path)
    assert (path.encode(), b"t") in stage._kept
    assert b"X-Cache: HIT\r\n" in await exchange(node, path)
    assert stage.store.purge_url(f"http://t{path}") >= 1
    assert b"X-Cache: MISS\r\n" in await exchange(node, path)
    assert b"X-Cache: HIT\r\n" in await exchange(node, path)
    assert b"X-Cache: HIT\r\n" in await exchange(node, path)  # kept again
    real = stage.clock
    stage.clock = lambda: real() + 10 * 86400.0  # past any freshness the origin gives
    try:
        assert b"X-Cache: HIT\r\n" not in await exchange(node, path)
    finally:
        stage.clock = real
