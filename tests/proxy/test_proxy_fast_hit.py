"""The front end's synchronous cache-hit fast path against the general path.

Every script runs twice, on a node with the fast path and on one without it (same
origin, same fixed clock), and both must put exactly the same bytes on the wire and
leave the same metrics and cache counters behind.  A spy around the fast path shows
which requests it answered, so the tests also fail if it stops being taken.
"""

from __future__ import annotations

import email.utils
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from dataplane_support import RawClient, start_aiohttp
from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.policy import build_entry, refresh_entry
from edgenode.config import StageConfig, load_config, parse_config, with_overrides
from edgenode.cache import stage as cache_stage
from edgenode.cache.stage import CacheStage
from edgenode.http.headers import NOT_PLAIN
from edgenode.http.messages import CIMultiDict, Prebuilt
from edgenode.node import Node

NOW = 1_800_000_000.0
DATE = email.utils.formatdate(NOW, usegmt=True)

#: ("send", request bytes) on a new connection | ("advance", seconds) | ("purge", (kind,
#: values, soft)) | ("store", (target, body)): another worker's store of the target
Step = tuple[str, Any]

#: another worker process of the node: stores an object in the node's LMDB store
OTHER_WORKER = f"""
import sys
from pathlib import Path
from multidict import CIMultiDict
from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.policy import build_entry, refresh_entry
from edgenode.config import CacheConfig
path, url, body, now = sys.argv[1:]
store = SharedStore(CacheConfig(), Path(path), owner=False)
headers = CIMultiDict({{"Cache-Control": "max-age=600", "Date": "{DATE}", "X-Thing": "other"}})
assert store.put(build_entry(key=url, url=url, status=200, reason="OK", resp_headers=headers,
                             body=body.encode(), req_headers=CIMultiDict(), request_time=float(now),
                             response_time=float(now), heuristic_fraction=0.1, heuristic_max=3600))
store.flush()
store.close()
"""


class Spy:
    """Delegates to the node's fast path and records the targets it answered."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.filtered = inner.filtered
        self.asked: list[str] = []
        self.answered: list[str] = []

    def answer(self, target: bytes, host: bytes, fields: Callable[[], Any], get: bool,
               start: float) -> Prebuilt | None:
        self.asked.append(target.decode("latin-1"))
        hit = self.inner.answer(target, host, fields, get, start)
        if hit is not None:  # (no script here writes to a closed connection)
            self.answered.append(f"{'GET' if get else 'HEAD'} {target.decode('latin-1')}")
        return hit


async def origin() -> tuple[web.AppRunner, int]:
    async def obj(request: web.Request) -> web.Response:
        size = int(request.query.get("size", "300"))
        headers = {"Cache-Control": f"max-age={request.query.get('ttl', '600')}", "ETag": '"v1"',
                   "Date": DATE, "X-Thing": "a"}
        return web.Response(body=b"b" * size, headers=headers, content_type="text/plain")

    async def vary(request: web.Request) -> web.Response:
        coding = request.headers.get("Accept-Encoding", "none")
        return web.Response(body=f"coding={coding}".encode(), content_type="text/plain",
                            headers={"Cache-Control": "max-age=600", "Vary": "Accept-Encoding",
                                     "Date": DATE})

    app = web.Application()
    app.router.add_get("/obj/{name}", obj)
    app.router.add_get("/vary", vary)
    return await start_aiohttp(app)


async def run(origin_port: int, fast: bool, steps: list[Step], *,
              key_headers: list[str] | None = None, workers: int = 1) -> dict[str, Any]:
    """Run ``steps`` on a fresh node; the bytes each connection got and what was counted.
    ``workers`` > 1: the node's store is shared (it takes leases and watches the
    generation a store opened by another worker moves)."""
    cfg = with_overrides(load_config(), listen="127.0.0.1:0", origin=f"http://127.0.0.1:{origin_port}")
    cfg.chain = [StageConfig("cache", "cache")]
    cfg.cache.path = cfg.server.state_dir / f"{'fast' if fast else 'slow'}-{workers}"  # empty
    cfg.log.access = "off"
    if key_headers:
        cfg.cache.key.headers = key_headers
    node = Node(cfg, admin=False, workers=workers)
    now = [NOW]
    cache = node.cache
    assert cache is not None
    cache.clock = cache.store.clock = lambda: now[0]
    spy = Spy(node.frontend.fast_path)
    node.frontend.fast_path = spy if fast else None
    fresh = cache._fresh
    decided: list[str] = []  # the targets ``_fresh`` decided (the others were kept answers)

    def counted_fresh(scheme: str, target: str, *rest: Any) -> Any:
        decided.append(target)
        return fresh(scheme, target, *rest)

    cache._fresh = counted_fresh  # type: ignore[method-assign]
    await node.start()
    wire: list[bytes] = []
    try:
        for kind, arg in steps:
            if kind == "advance":
                now[0] += arg
                continue
            if kind == "purge":
                node.purge(*arg)
                continue
            if kind == "store":
                target, body = arg
                url = cache.keys.for_parts("http", "fast.test", target, CIMultiDict)[1]
                subprocess.run([sys.executable, "-c", OTHER_WORKER, str(cache.store.path), url,  # type: ignore[attr-defined]
                                body, repr(now[0])], check=True, timeout=60)
                continue
            client = await RawClient.connect(node.port)
            try:
                await client.send(arg)
                wire.append(same_ids(await client.read_until_close()))
            finally:
                await client.close()
    finally:
        await node.stop(1.0)
    return {"wire": wire, "answered": spy.answered, "asked": spy.asked, "decided": decided,
            "stats": {k: v for k, v in node.metrics.snapshot().items() if k != "uptime_seconds"},
            "cache": {k: v for k, v in node.cache.stats().items() if k != "path"},
            "metrics": _counted(node.metrics.exposition())}


def same_ids(raw: bytes) -> bytes:
    """Every node makes its own request ids, and the two runs may straddle a second of the
    clock (the node's own Date on its error answers; the origin's DATE stays): the bytes
    compared are the rest."""
    raw = re.sub(rb"\r\nX-Request-Id: [!-~]+\r\n", b"\r\nX-Request-Id: *\r\n", raw)
    return re.sub(rb"\r\nDate: (?!" + re.escape(DATE.encode()) + rb"\r\n)[^\r]+\r\n", b"\r\nDate: *\r\n", raw)


def _counted(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every exposition sample except timings (bucket placement and sums of durations)."""
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            timed = fam.type == "histogram" and not s.name.endswith("_count")
            if not timed and s.name != "edgenode_start_time_seconds":
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def get(path: str, *extra: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: fast.test", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


CLOSE = "Connection: close"


async def both(steps: list[Step], **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    runner, port = await origin()
    try:
        fast = await run(port, True, steps, **kw)
        slow = await run(port, False, steps, **kw)
    finally:
        await runner.cleanup()
    for key in ("wire", "stats", "cache", "metrics"):
        assert fast[key] == slow[key], key
    assert slow["asked"] == []
    return fast, slow


async def test_hits_get_head_http10_and_close_are_byte_identical() -> None:
    prime = ("send", get("/obj/a", CLOSE))
    pipelined = b"".join([get("/obj/a"), get("/obj/a", method="HEAD"),
                          get("/obj/a", "Connection: keep-alive", version="1.0"),
                          get("/obj/a", CLOSE)])
    fast, _ = await both([prime, ("send", pipelined), ("send", get("/obj/a", version="1.0"))])
    assert fast["answered"] == ["GET /obj/a", "HEAD /obj/a", "GET /obj/a", "GET /obj/a", "GET /obj/a"]
    text = fast["wire"][1].decode("latin-1")
    assert text.count("HTTP/1.1 200 OK\r\n") == 4
    assert ("\r\nAge: 0\r\nCache-Status: edgenode; hit; ttl=600\r\nX-Cache: HIT\r\n"
            "Content-Length: 300\r\nX-Request-Id: *\r\n\r\n") in text
    assert text.count("b" * 300) == 3  # HEAD: the length, no body
    assert "Content-Length: 300\r\nX-Request-Id: *\r\nConnection: keep-alive\r\n\r\n" in text
    assert text.endswith("Content-Length: 300\r\nX-Request-Id: *\r\nConnection: close\r\n\r\n"
                         + "b" * 300)
    assert fast["wire"][2].decode("latin-1").count("Connection: close\r\n") == 1
    assert fast["stats"]["requests_by_cache_status"] == {"MISS": 1, "HIT": 5}
    assert fast["cache"]["hits"] == 5


async def test_age_and_ttl_move_on_and_stale_entries_fall_back() -> None:
    steps: list[Step] = [
        ("send", get("/obj/short?ttl=5", CLOSE)),
        ("send", get("/obj/short?ttl=5", CLOSE)),
        ("advance", 2.5),
        ("send", get("/obj/short?ttl=5") + get("/obj/short?ttl=5", CLOSE)),
        ("advance", 10),  # stale now: revalidated through the chain
        ("send", get("/obj/short?ttl=5", CLOSE)),
    ]
    fast, _ = await both(steps)
    assert fast["answered"] == ["GET /obj/short?ttl=5"] * 3
    assert b"Age: 2\r\nCache-Status: edgenode; hit; ttl=2\r\n" in fast["wire"][2]
    assert b"X-Cache: HIT" not in fast["wire"][3]
    assert fast["asked"].count("/obj/short?ttl=5") == 5  # the stale one was asked, and declined


async def test_kept_answers_follow_age_purges_and_other_workers_stores() -> None:
    """The stage hands its last answer for a (target, Host) out again only while nothing it
    depends on moved: the whole-second Age, a purge (soft or not), another worker's store."""
    k = get("/obj/k")
    steps: list[Step] = [
        ("advance", 0.25),  # inside a second of the clock: Age and ttl keep their seconds a while
        ("send", get("/obj/k", CLOSE)),
        ("send", k + k + get("/obj/k", CLOSE)),  # the first decided, then kept
        ("advance", 0.5),
        ("send", get("/obj/k", CLOSE)),  # the same seconds: kept
        ("advance", 0.6),
        ("send", k + get("/obj/k", CLOSE)),  # Age 1: decided again, then kept
        ("store", ("/obj/k", "from another worker")),
        ("send", k + get("/obj/k", CLOSE)),  # the other worker's object, then kept
        ("purge", ("url", ["http://fast.test/obj/k"], True)),  # soft: stale, revalidated
        ("send", get("/obj/k", CLOSE)),
        ("send", k + get("/obj/k", CLOSE)),
        ("purge", ("url", ["http://fast.test/obj/k"], False)),
        ("send", get("/obj/k", CLOSE)),  # a miss
        ("send", get("/obj/k", CLOSE)),
    ]
    for workers in (1, 2):
        fast, _ = await both(steps, workers=workers)
        wire = fast["wire"]
        assert b"Age: 0\r\n" in wire[2] and b"Age: 1\r\n" in wire[3]
        assert wire[4].count(b"from another worker") == 2 and b"X-Thing: other" in wire[4]
        assert b"X-Cache: HIT" not in wire[5] and b"from another worker" not in wire[5]
        assert b"X-Cache: MISS" in wire[7] and b"X-Cache: HIT" in wire[8]
        assert fast["answered"] == ["GET /obj/k"] * 11
        # kept answers were handed out (the LRU note's epoch may end between two sends:
        # then one more is decided by ``_fresh``)
        assert len(fast["decided"]) < len(fast["asked"]) == 14


async def test_vary_and_key_header_hits() -> None:
    gzip, br = "Accept-Encoding: gzip", "Accept-Encoding: br"
    steps: list[Step] = [
        ("send", get("/vary", gzip, CLOSE)),
        ("send", get("/vary", br, CLOSE)),
        ("send", get("/vary", gzip) + get("/vary", br) + get("/vary", "Accept-Encoding:  gzip ")
         + get("/vary", "Accept-Encoding: zstd") + get("/vary", gzip, CLOSE)),
    ]
    fast, _ = await both(steps)
    # zstd: a new variant, fetched; the gzip queued behind that miss takes the general path
    assert fast["answered"] == ["GET /vary"] * 3
    assert b"coding=zstd" in fast["wire"][2] and fast["wire"][2].count(b"X-Cache: HIT") == 4

    tenants: list[Step] = [
        ("send", get("/obj/t", "X-Tenant: one", CLOSE)), ("send", get("/obj/t", "X-Tenant: two", CLOSE)),
        ("send", get("/obj/t", "X-Tenant: one") + get("/obj/t", "X-Tenant: two")
         + get("/obj/t", "X-Tenant: one", CLOSE))]
    fast, _ = await both(tenants, key_headers=["X-Tenant"])
    assert fast["answered"] == ["GET /obj/t"] * 3
    assert fast["cache"]["misses"] == 2


async def test_large_bodies_and_a_miss_inside_a_pipeline() -> None:
    steps: list[Step] = [
        ("send", get("/obj/big?size=100000", CLOSE)),
        ("send", get("/obj/mid?size=20000", CLOSE)),
        ("send", get("/obj/big?size=100000") + get("/obj/mid?size=20000")
         + get("/obj/new") + get("/obj/mid?size=20000") + get("/obj/big?size=100000", CLOSE)),
    ]
    fast, _ = await both(steps)
    # requests queued behind the miss take the general path; the bytes do not change
    assert fast["answered"] == ["GET /obj/big?size=100000", "GET /obj/mid?size=20000"]
    assert fast["wire"][2].count(b"X-Cache: HIT") == 4
    assert fast["wire"][2].count(b"b" * 100000) == 2


async def test_requests_that_are_not_plain_take_the_general_path() -> None:
    extras = {
        "cache-control": ["Cache-Control: max-age=0"], "pragma": ["Pragma: no-cache"],
        "authorization": ["Authorization: Bearer x"], "if-match": ['If-Match: "v1"'],
        "if-none-match": ['If-None-Match: "v1"'], "if-modified-since": [f"If-Modified-Since: {DATE}"],
        "if-unmodified-since": [f"If-Unmodified-Since: {DATE}"], "if-range": ['If-Range: "v1"', "Range: bytes=0-9"],
        "range": ["Range: bytes=0-9"], "content-length": ["Content-Length: 0"],
        "expect": ["Expect: 100-continue"], "upgrade": ["Connection: upgrade", "Upgrade: websocket"],
    }
    chunked = ("send", b"GET /obj/p HTTP/1.1\r\nHost: fast.test\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n0\r\n\r\n")
    assert {n.decode() for n in NOT_PLAIN} == set(extras) | {"transfer-encoding"}
    steps: list[Step] = [("send", get("/obj/p", CLOSE))]
    steps += [("send", get("/obj/p", *lines, CLOSE)) for lines in extras.values()]
    steps += [chunked, ("send", get("http://fast.test/obj/p", CLOSE)),  # absolute form
              ("send", get("/obj/p", "Host: fast.test", CLOSE))]  # two Host fields: 400
    fast, _ = await both(steps)
    assert fast["asked"] == ["/obj/p"]  # only the first request (a miss) was plain
    assert b" 206 " in fast["wire"][steps.index(("send", get("/obj/p", "Range: bytes=0-9", CLOSE)))]
    assert fast["wire"][-1].startswith(b"HTTP/1.1 400 ")


async def test_raw_host_request_ids_connection_and_bodies_on_one_connection() -> None:
    """What the head sink decides as the fields come (the Host as parsed, which keys the
    kept answer; X-Request-Id; Connection) and the end of a message with a body (the
    sink's ``complete`` calls back only then), mixed with fast hits on one connection."""
    latin = b"GET /obj/h HTTP/1.1\r\nHost: caf\xe9.test\r\n\r\n"
    chunked = (b"GET /obj/a HTTP/1.1\r\nHost: fast.test\r\nTransfer-Encoding: chunked\r\n"
               b"Trailer: X-Sum\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n")
    sized = b"GET /obj/a HTTP/1.1\r\nHost: fast.test\r\nContent-Length: 3\r\n\r\nxyz"
    steps: list[Step] = [
        ("advance", 0.25),  # inside a second: Age and ttl keep their seconds a while
        ("send", get("/obj/a", CLOSE)),
        ("send", latin.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")),
        ("send", latin + latin + get("/obj/a", "X-Request-Id: given") + get("/obj/a", "Connection: keep-alive")
         + get("/obj/a", "x-request-id: a", "X-Request-Id: b") + chunked + get("/obj/a") + sized
         + get("/obj/a", CLOSE)),
        ("send", get("/obj/a", "X-Request-Id: a", "X-Request-Id: b", CLOSE)),
    ]
    fast, _ = await both(steps)
    # the second latin-1 Host's hit is a kept answer; the repeated id takes the general
    # path, and what follows it on the connection queues behind it
    assert fast["answered"] == ["GET /obj/h", "GET /obj/h", "GET /obj/a", "GET /obj/a"]
    assert fast["decided"].count("/obj/h") < fast["asked"].count("/obj/h") == 3  # one kept
    assert fast["wire"][2].count(b"HTTP/1.1 200 OK\r\n") == 9
    assert b"X-Request-Id: *\r\n" in fast["wire"][3] and fast["asked"][-1] == "/obj/a"


async def test_other_request_hooks_see_every_request() -> None:
    runner, port = await origin()
    cfg = with_overrides(load_config(), listen="127.0.0.1:0", origin=f"http://127.0.0.1:{port}")
    cfg.chain = [StageConfig("cache", "cache")]
    cfg.log.access = "off"
    node = Node(cfg, admin=False)
    spy = Spy(node.frontend.fast_path)
    node.frontend.fast_path = spy
    await node.start()
    seen: list[str] = []
    try:
        client = await RawClient.connect(node.port)
        await client.send(get("/obj/h"))
        await client.read_response()
        await client.send(get("/obj/h"))
        await client.read_response()
        node.signals.on_request_end.append(lambda ex, resp: seen.append(ex.x_cache))
        await client.send(get("/obj/h") + get("/obj/h", CLOSE))
        await client.read_until_close()
        await client.close()
    finally:
        await node.stop(1.0)
        await runner.cleanup()
    assert spy.answered == ["GET /obj/h"]
    assert seen == ["HIT", "HIT"]
    assert node.metrics.snapshot()["requests_by_cache_status"] == {"MISS": 1, "HIT": 3}


def test_fast_hit_declines_what_it_cannot_answer_whole() -> None:
    stage = CacheStage(parse_config({"origins": {"o": {"url": "http://127.0.0.1:1"}}}).cache,
                       clock=lambda: NOW)
    no_fields: Callable[[], Any] = lambda: CIMultiDict()  # noqa: E731

    def store(path: str, status: int = 200, trailers: Any = None, **headers: str) -> None:
        url = f"http://fast.test{path}"
        entry = build_entry(key=url, url=url, status=status, reason="", resp_headers=CIMultiDict(
            {"Cache-Control": "max-age=60", "Date": DATE, **headers}), body=b"x" if status != 204 else b"",
            req_headers=CIMultiDict(), request_time=NOW, response_time=NOW,
            heuristic_fraction=0.1, heuristic_max=3600, trailers=trailers)
        assert stage.store.put(entry)

    store("/ok")
    store("/trailers", trailers=CIMultiDict({"X-Sum": "1"}))
    store("/empty", status=204)
    store("/nocache", **{"Cache-Control": "no-cache"})
    store("/odd", **{"X-Cache": "from-origin"})  # no pre-serialised block
    store("/rid", **{"X-Request-Id": "stored"})  # the general path replaces it
    hit = stage.fast_hit(b"/ok", b"fast.test", no_fields)
    assert hit is not None and hit.block.endswith(b"X-Cache: HIT\r\n")
    assert stage.fast_hit(b"/ok", b"fast.test", no_fields) is hit  # same second: reused
    for path in ("/trailers", "/empty", "/nocache", "/odd", "/absent"):
        assert stage.fast_hit(path.encode(), b"fast.test", no_fields) is None, path
    assert stage.store.counters["hits"] == 2
    assert stage.fast_hit(b"/rid", b"fast.test", no_fields) is None


async def test_a_failing_fast_path_leaves_the_request_to_the_chain() -> None:
    class Broken(Spy):
        def answer(self, target: bytes, host: bytes, fields: Callable[[], Any], get: bool,
                   start: float) -> Prebuilt | None:
            self.asked.append(target.decode("latin-1"))
            raise RuntimeError("fast path bug")

    runner, port = await origin()
    cfg = with_overrides(load_config(), listen="127.0.0.1:0", origin=f"http://127.0.0.1:{port}")
    cfg.chain = [StageConfig("cache", "cache")]
    cfg.log.access = "off"
    node = Node(cfg, admin=False)
    broken = Broken(node.frontend.fast_path)
    node.frontend.fast_path = broken
    await node.start()
    try:
        client = await RawClient.connect(node.port)
        await client.send(get("/obj/b"))
        await client.read_response()
        await client.send(get("/obj/b", CLOSE))
        wire = await client.read_until_close()
        await client.close()
    finally:
        await node.stop(1.0)
        await runner.cleanup()
    assert broken.asked == ["/obj/b", "/obj/b"]
    assert wire.startswith(b"HTTP/1.1 200 OK\r\n") and b"X-Cache: HIT" in wire


def test_kept_answers_only_while_the_store_and_the_clock_vouch(tmp_path: Path) -> None:
    """``fast_hit``'s kept answer against ``_fresh``, without a loop (the LRU note's epoch
    moves only with a commit): kept in the same Age and ttl seconds, decided again when one
    moves, after a local store, a purge, a 304's update in place, and never for Vary."""
    now = [NOW + 0.25]
    cfg = parse_config({"origins": {"o": {"url": "http://127.0.0.1:1"}}}).cache
    store = SharedStore(cfg, tmp_path / "c", alone=True, clock=lambda: now[0])
    stage = CacheStage(cfg, store, clock=lambda: now[0])
    decided: list[str] = []
    fresh = stage._fresh

    def counted_fresh(scheme: str, target: str, *rest: Any) -> Any:
        decided.append(target)
        return fresh(scheme, target, *rest)

    stage._fresh = counted_fresh  # type: ignore[method-assign]
    no_fields: Callable[[], Any] = lambda: CIMultiDict({"Accept-Encoding": "gzip"})  # noqa: E731

    def put(path: str, body: bytes = b"x", **headers: str) -> Any:
        url = f"http://fast.test{path}"
        entry = build_entry(key=url, url=url, status=200, reason="OK", resp_headers=CIMultiDict(
            {"Cache-Control": "max-age=60", "Date": DATE, **headers}), body=body,
            req_headers=CIMultiDict({"Accept-Encoding": "gzip"}), request_time=NOW,
            response_time=NOW, heuristic_fraction=0.1, heuristic_max=3600)
        assert store.put(entry)
        return entry

    def hit(path: str = "/k") -> Prebuilt | None:
        return stage.fast_hit(path.encode(), b"fast.test", no_fields)

    put("/k")
    first = hit()
    assert first is not None and b"Age: 0\r\n" in first.block
    now[0] += 0.5
    assert hit() is first and hit() is first
    assert decided == ["/k"]
    now[0] += 0.5  # Age 1, ttl 58: a new answer, kept in turn
    second = hit()
    assert second is not None and b"Age: 1\r\n" in second.block and hit() is second
    assert decided == ["/k"] * 2
    put("/k", b"replaced")  # a local store replaces the key's object
    third = hit()
    assert third is not None and third.body == b"replaced" and hit() is third
    assert decided == ["/k"] * 3
    entry = store.newest("http://fast.test/k")  # the object the store keeps decoded
    assert entry is not None and entry.hit is third
    refresh_entry(entry, CIMultiDict({"X-Revalidated": "1"}), now[0], now[0], 0.1, 3600)
    fourth = hit()  # updated in place by a 304 (the store's write may fail): decided again
    assert fourth is not None and b"X-Revalidated: 1\r\n" in fourth.block
    assert decided == ["/k"] * 4
    assert store.purge_url("http://fast.test/k", soft=True) == 1
    assert hit() is None and hit() is None  # stale
    assert store.purge_url("http://fast.test/k") == 1
    assert hit() is None
    assert decided == ["/k"] * 7
    put("/v", Vary="Accept-Encoding")
    assert hit("/v") is not None and hit("/v") is not None
    assert decided[7:] == ["/v"] * 2  # a Vary variant: decided every time
    now[0] = NOW + 59.5  # the last half second of freshness, then stale
    put("/e")
    assert hit("/e") is not None and hit("/e") is not None
    now[0] = NOW + 60.0
    assert hit("/e") is None
    assert decided[9:] == ["/e", "/e"]
    assert store.counters["hits"] == 12
    store.close()


def test_kept_answers_table_full_adds_none_until_a_sweep(tmp_path: Path, monkeypatch: Any) -> None:
    """Objects hit in turn beyond the table's size: no answer is added while it is full
    (each such hit is decided, not kept), and once the kept answers' spans have ended a
    sweep (at most once a second) makes room again."""
    monkeypatch.setattr(cache_stage, "_KEPT_ENTRIES", 2)
    now = [NOW + 0.25]
    cfg = parse_config({"origins": {"o": {"url": "http://127.0.0.1:1"}}}).cache
    store = SharedStore(cfg, tmp_path / "c", alone=True, clock=lambda: now[0])
    stage = CacheStage(cfg, store, clock=lambda: now[0])
    fields: Callable[[], Any] = lambda: CIMultiDict()  # noqa: E731
    for path in ("/a", "/b", "/c"):
        url = f"http://fast.test{path}"
        assert store.put(build_entry(key=url, url=url, status=200, reason="OK", resp_headers=CIMultiDict(
            {"Cache-Control": "max-age=60", "Date": DATE}), body=b"x", req_headers=CIMultiDict(),
            request_time=NOW, response_time=NOW, heuristic_fraction=0.1, heuristic_max=3600))
    for path in ("/a", "/b", "/c", "/c"):
        assert stage.fast_hit(path.encode(), b"fast.test", fields) is not None
    assert stage._kept is not None and sorted(stage._kept) == [(b"/a", b"fast.test"), (b"/b", b"fast.test")]
    now[0] += 0.5  # still full, the spans not ended: /c is answered, not kept
    assert stage.fast_hit(b"/c", b"fast.test", fields) is not None
    assert sorted(stage._kept) == [(b"/a", b"fast.test"), (b"/b", b"fast.test")]
    now[0] += 1.0  # Age 1: /a's and /b's spans have ended, and the last sweep is a second old
    assert stage.fast_hit(b"/c", b"fast.test", fields) is not None
    assert sorted(stage._kept) == [(b"/c", b"fast.test")]
