"""``hit_response`` repeats ``_kept_hit``'s rule inline (a frame fewer per filtered hit):
both hand out the kept answer under the same terms and count it as a hit, and both stop
the moment the store stops vouching for the object, the clock leaves the answer's span or
the entry's answer is replaced."""

from __future__ import annotations

import time
from pathlib import Path

from multidict import CIMultiDict

from edgenode.cache.directives import format_http_date
from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.stage import CacheStage
from edgenode.config import CacheConfig
from edgenode.http.messages import Request, Response, raw_request
from edgenode.pipeline.chain import Chain
from edgenode.pipeline.exchange import RAW_PLAIN, Exchange

PAIR = (b"/obj", b"example.com")


async def _origin(ex: Exchange) -> Response:
    fields = CIMultiDict([("Cache-Control", "max-age=600"), ("Date", format_http_date(time.time()))])
    return Response(200, fields, b"x" * 300, "OK")


async def _kept_stage(tmp_path: Path) -> CacheStage:
    """A stage over an LMDB store holding /obj, its answer kept for ``PAIR``."""
    stage = CacheStage(CacheConfig(), SharedStore(CacheConfig(), tmp_path / "c", alone=True))
    out = stage.handle(Exchange(Request("GET", "/obj", CIMultiDict({"Host": "example.com"}))),
                       Chain([], _origin))
    assert not isinstance(out, Response) and (await out).status == 200
    stage.store.flush()
    assert _hit(stage) is not None and PAIR in stage._kept  # type: ignore[operator]
    return stage


def _hit(stage: CacheStage) -> Response | None:
    ex = Exchange(raw_request("GET", "/obj", [(b"Host", b"example.com")]))
    ex.plain = RAW_PLAIN
    ex.parsed = PAIR
    return stage.hit_response(ex)


def _both_serve(stage: CacheStage) -> bool:
    """Whether ``_kept_hit`` and ``hit_response`` each answered from the kept answer, and
    agree; each counted as a hit whatever answered."""
    kept = stage._kept[PAIR]  # type: ignore[index]
    hits = stage.store.counters["hits"]
    by_rule = stage._kept_hit(PAIR) is kept
    assert stage.store.counters["hits"] == hits + by_rule
    resp = _hit(stage)
    assert stage.store.counters["hits"] == hits + by_rule + (resp is not None)
    by_hit = resp is not None and resp.wire_head[1] is kept.hit.block  # type: ignore[index]
    assert by_hit == by_rule
    return by_hit


async def test_the_kept_answer_serves_until_the_store_stops_vouching(tmp_path: Path) -> None:
    stage = await _kept_stage(tmp_path)
    assert _both_serve(stage)
    stage.store.purge_url("http://example.com/obj")
    assert not _both_serve(stage)
    assert _hit(stage) is None  # purged: the general step fetches it


async def test_the_kept_answer_serves_only_inside_its_span(tmp_path: Path) -> None:
    stage = await _kept_stage(tmp_path)
    kept = stage._kept[PAIR]  # type: ignore[index]
    real = stage.clock
    stage.clock = lambda: kept.hi + 0.5  # a later whole second of Age
    try:
        assert not _both_serve(stage)
    finally:
        stage.clock = real


async def test_the_kept_answer_serves_only_while_its_entry_holds_it(tmp_path: Path) -> None:
    stage = await _kept_stage(tmp_path)
    kept = stage._kept[PAIR]  # type: ignore[index]
    kept.entry.hit = None  # as a 304's update in place resets it
    assert not _both_serve(stage)
