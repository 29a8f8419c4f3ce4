"""Per-request CPU cost of a fresh 1 KB cache hit: edgenode's cache vs hishel 2.0's sans-IO core.

Prints a table and writes benchmarks/results/cache_policy.json.  Three rows:
  hishel IdleClient.next     - hishel's reuse decision for one stored entry (no I/O)
  edgenode policy            - our key + lookup + freshness decision
  edgenode CacheStage hit    - the whole stage hit path: key, lookup, freshness,
                               response headers (Age, Cache-Status, X-Cache)
Run: python benchmarks/bench_cache_policy.py [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from pathlib import Path

from hishel import Entry as HEntry, Request as HRequest, Response as HResponse
from hishel._core._headers import Headers as HHeaders
from hishel._core._spec import FromCache, IdleClient
from multidict import CIMultiDict

from edgenode.cache.directives import format_http_date
from edgenode.cache.policy import FRESH, build_entry, evaluate, request_directives
from edgenode.cache.stage import CacheStage
from edgenode.cache.store import CacheStore
from edgenode.config import CacheConfig
from edgenode.http.messages import Request, Response
from edgenode.pipeline.exchange import Exchange

BODY = b"x" * 1024
ORIGIN_HEADERS = {"Content-Type": "text/plain", "Cache-Control": "public, max-age=3600",
                  "ETag": '"abc"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT", "Server": "origin"}
REQ_HEADERS = {"Host": "example.com", "User-Agent": "bench/1.0", "Accept": "*/*",
               "Accept-Encoding": "gzip"}


def per_call_us(fn, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    return best


def bench_hishel(n: int) -> float:
    now = time.time()
    headers = {k.lower(): v for k, v in ORIGIN_HEADERS.items()} | {"date": format_http_date(now)}
    req = HRequest("GET", "http://example.com/a", HHeaders(dict(REQ_HEADERS)))
    entry = HEntry(uuid.uuid4(), req, HResponse(200, HHeaders(headers)))
    state = IdleClient(options={"shared": True})

    def once():
        r = state.next(HRequest("GET", "http://example.com/a", HHeaders(dict(REQ_HEADERS))), [entry])
        assert isinstance(r, FromCache)
    return per_call_us(once, n)


def setup_stage() -> tuple[CacheStage, float]:
    now = time.time()
    cfg = CacheConfig()
    store = CacheStore(cfg)
    stage = CacheStage(cfg, store)
    entry = build_entry(key="http://example.com/a", url="http://example.com/a", status=200, reason="OK",
                        resp_headers=CIMultiDict(ORIGIN_HEADERS | {"Date": format_http_date(now)}),
                        body=BODY, req_headers=CIMultiDict(REQ_HEADERS), request_time=now,
                        response_time=now, heuristic_fraction=0.1, heuristic_max=86400.0)
    store.put(entry)
    return stage, now


def bench_policy(n: int) -> float:
    stage, _ = setup_stage()
    keys, store, clock = stage.keys, stage.store, stage.clock

    def once():
        req = Request("GET", "/a", CIMultiDict(REQ_HEADERS))
        _, key = keys.for_request(req)
        entry, _ = store.lookup(key, req.headers)
        assert evaluate(entry, clock(), request_directives(req.headers))[0] == FRESH  # type: ignore[arg-type]
    return per_call_us(once, n)


def bench_stage(n: int) -> float:
    stage, _ = setup_stage()

    async def terminal(ex: Exchange) -> Response:
        raise AssertionError("a hit must not reach the origin")
    handler = stage.wrap(terminal)

    async def run() -> float:
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n):
                resp = await handler(Exchange(Request("GET", "/a", CIMultiDict(REQ_HEADERS))))
            best = min(best, (time.perf_counter() - t) / n * 1e6)
        assert resp.headers["X-Cache"] == "HIT" and resp.body == BODY
        return best
    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    rows = [("hishel 2.0 IdleClient.next (decision only)", bench_hishel(args.n)),
            ("edgenode policy (key+lookup+decision)", bench_policy(args.n)),
            ("edgenode CacheStage hit (incl. Exchange, headers)", bench_stage(args.n))]
    print(f"{'fresh 1 KB hit, per request':52} {'µs':>8}")
    for name, us in rows:
        print(f"{name:52} {us:8.2f}")
    out = Path(__file__).parent / "results" / "cache_policy.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"n": args.n, "us_per_request": dict(rows)}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
