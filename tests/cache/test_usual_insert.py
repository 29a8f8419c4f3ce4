"""The usual entries' rows written in C (``_record.UsualWriter``, ``_Txn.insert_all``) are
byte for byte the rows ``_Txn.insert`` writes: the same stores made through both, over
generated entries (Surrogate-Keys, large bodies, Vary, keys other than their URL,
replacements, evictions), leave the same databases and read back the same; what the C
writer leaves alone goes to ``insert``; an error inside it stores nothing."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from edgenode.cache import lmdb_store
from edgenode.cache._record import UsualWriter
from edgenode.cache.codec import INLINE_BODY
from edgenode.cache.lmdb_store import SharedStore, _h, _Txn
from edgenode.cache.policy import Entry, build_entry
from edgenode.cache.store_files import DB_NAMES
from edgenode.config import CacheConfig

NOW = time.time()


def _entry(rng: random.Random, path: str, keyed: float = 0.0) -> Entry:
    """A generated entry; ``keyed``: the chance that its key is not its URL."""
    url = f"http://example.com{path}"
    key = url if rng.random() >= keyed else url + "\nx-device:" + rng.choice(["mobile", "tablet"])
    headers = CIMultiDict({"Cache-Control": "max-age=60", "Date": "Fri, 15 Jan 2027 08:00:00 GMT"})
    req = CIMultiDict()
    if rng.random() < 0.5:
        headers["Surrogate-Key"] = " ".join(rng.sample(["a", "tag-b", "long-tag-c", "é-d", "e"],
                                                       rng.randint(1, 3)))
    if rng.random() < 0.15:
        headers["Vary"] = "Accept-Encoding"
        req["Accept-Encoding"] = rng.choice(["gzip", "br", ""])
    size = rng.choice([0, 5, 1024, INLINE_BODY, INLINE_BODY + 1, 20000])
    return build_entry(key=key, url=url, status=200, reason="OK", resp_headers=headers,
                       body=rng.randbytes(size), req_headers=req,
                       request_time=NOW, response_time=NOW, heuristic_fraction=0.1,
                       heuristic_max=86400)


def _passes(seed: int, keyed: float) -> list[list[tuple[Entry, bool]]]:
    """Loop passes of stores: each an entry and whether its key is looked up first (in a
    single-process node, a key looked up and found absent is stored without a read)."""
    rng = random.Random(seed)
    paths = [f"/p{i}" for i in range(300)]  # some stored twice: replacements
    return [[(_entry(rng, rng.choice(paths), keyed), rng.random() < 0.85) for _ in range(rng.randint(1, 9))]
            for _ in range(30)]


def _dump(store: SharedStore) -> dict[str, list[tuple[bytes, bytes]]]:
    with store.env.begin() as txn:
        return {name: [(bytes(k), bytes(v)) for k, v in txn.cursor(db=store.files.dbs[name])]
                for name in DB_NAMES}


async def _run(path: Path, passes: list[list[tuple[Entry, bool]]], *, alone: bool,
               max_bytes: int) -> SharedStore:
    store = SharedStore(CacheConfig(max_bytes=max_bytes), path, alone=alone, clock=lambda: NOW)
    for stores in passes:
        for e, look in stores:
            if look:
                store.lookup(e.key, CIMultiDict())
        for e, _ in stores:
            assert store.put(e)
        await asyncio.sleep(0)  # the pass ends: one commit
    return store


def _encode_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each entry's record made once, for both runs: a record's bytes depend on which of
    its strings have other references at the time (``RecordWriter``'s back-references),
    and the rows compared are the writers', not the records'."""
    records: dict[int, tuple[Entry, bytes]] = {}
    real = lmdb_store.encode

    def once(entry: Entry) -> bytes:
        return records.setdefault(id(entry), (entry, real(entry)))[1]

    monkeypatch.setattr(lmdb_store, "encode", once)


def _python_inserts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``insert_all`` as the loop of ``insert`` it stands for (the reference)."""
    def each(self: _Txn, batch: list[tuple[Entry, bytes, bool]]) -> None:
        for entry, record, new in batch:
            self.insert(entry, record, new)

    monkeypatch.setattr(_Txn, "insert_all", each)


def _count_inserts(monkeypatch: pytest.MonkeyPatch) -> list[Entry]:
    seen: list[Entry] = []
    insert = _Txn.insert

    def counted(self: _Txn, entry: Entry, record: bytes, new: bool = False) -> None:
        seen.append(entry)
        insert(self, entry, record, new)

    monkeypatch.setattr(_Txn, "insert", counted)
    return seen


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("keyed", [0.0, 0.05])
@pytest.mark.parametrize("alone,max_bytes", [(True, 1 << 30), (True, 120_000), (False, 1 << 30)])
async def test_the_c_rows_are_the_python_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int,
                                              keyed: float, alone: bool, max_bytes: int) -> None:
    """``max_bytes`` 120,000: the store evicts (``make_room``: ``insert``'s); ``keyed``:
    a key other than its URL writes a URL index row, and from then on every entry is
    ``insert``'s (its URL may be known through the index)."""
    passes = _passes(seed, keyed)
    _encode_once(monkeypatch)
    with monkeypatch.context() as m:
        _python_inserts(m)
        reference = await _run(tmp_path / "py", passes, alone=alone, max_bytes=max_bytes)
    python = _count_inserts(monkeypatch)
    native = await _run(tmp_path / "c", passes, alone=alone, max_bytes=max_bytes)
    try:
        assert _dump(native) == _dump(reference)
        assert native.stats()["entries"] == reference.stats()["entries"] > 0
        for e, _ in {e.key: (e, 0) for stores in passes for e, _ in stores}.values():
            req = CIMultiDict({"Accept-Encoding": e.vary_values[0]} if e.vary else {})
            got, want = native.lookup(e.key, req)[0], reference.lookup(e.key, req)[0]
            assert (got is None) == (want is None)
            if got is not None and want is not None:
                assert (got.body, got.headers, got.surrogate_keys) == (want.body, want.headers, want.surrogate_keys)
        stored = sum(len(stores) for stores in passes)
        if alone and max_bytes > 1 << 20 and not keyed:
            assert 0 < len(python) < stored / 2  # most entries were usual: written in C
        elif not alone:
            assert len(python) == stored  # no key is known absent: every entry reads its rows
    finally:
        native.close()
        reference.close()


async def test_a_key_other_than_its_url_turns_the_rest_of_the_pass_to_insert(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a pass writes a URL index row, a later new key that is its URL must look for
    the URL in that index (its URL count), which only ``insert`` does."""
    rng = random.Random(7)
    usual = [_entry(rng, f"/u{i}") for i in range(10)]
    plain = [e for e in usual if e.key == e.url and not e.vary][:3]
    keyed = build_entry(key=plain[1].url + "\nx-device:mobile", url=plain[1].url, status=200,
                        reason="OK", resp_headers=CIMultiDict({"Cache-Control": "max-age=60"}),
                        body=b"k", req_headers=CIMultiDict(), request_time=NOW, response_time=NOW,
                        heuristic_fraction=0.1, heuristic_max=86400)
    python = _count_inserts(monkeypatch)
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        for e in plain:
            store.lookup(e.key, CIMultiDict())
        for e in (plain[0], keyed, plain[1], plain[2]):
            store.put(e)
        await asyncio.sleep(0)
        assert python == [keyed, plain[1], plain[2]]
        assert store.stats()["urls"] == 3 and store.stats()["entries"] == 4
    finally:
        store.close()


def _writer_call(store: SharedStore, writer: UsualWriter, batch: list[tuple[Entry, bytes, bool]]) -> None:
    def work(w: _Txn) -> None:
        writer(w.txn.put, w._rows, batch, w.totals, store.max_bytes, store, w.insert)

    with store.env.begin(write=True) as txn:
        work(_Txn(store, txn))


def test_an_error_inside_the_writer_stores_nothing(tmp_path: Path) -> None:
    """A failing hash (or put) raises out of the call, so the transaction is aborted: no
    row of the batch, not even the objects before the failure, is stored."""
    calls = [0]

    def failing(text: str, size: int) -> bytes:
        calls[0] += 1
        if calls[0] > 4:
            raise RuntimeError("hash failed")
        return _h(text, size)

    rng = random.Random(3)
    batch = [(e, lmdb_store.encode(e), True) for e in
             (_entry(rng, f"/e{i}") for i in range(40)) if e.key == e.url][:4]
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        before = _dump(store)
        with pytest.raises(RuntimeError, match="hash failed"):
            _writer_call(store, UsualWriter(Entry, failing, INLINE_BODY), batch)
        assert _dump(store) == before
    finally:
        store.close()


@pytest.mark.parametrize("bad", [
    lambda text, size: b"short",
    lambda text, size: "not bytes",
])
def test_a_hash_of_the_wrong_kind_is_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="digest"):
        UsualWriter(Entry, bad, INLINE_BODY)


def test_arguments_of_other_types_are_refused(tmp_path: Path) -> None:
    writer = UsualWriter(Entry, _h, INLINE_BODY)
    with pytest.raises(TypeError):
        writer(None, (), [], {}, 0, None, None)
    with pytest.raises(TypeError):
        UsualWriter(dict, _h, INLINE_BODY)  # no slots to read
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        with store.env.begin(write=True) as txn:
            w = _Txn(store, txn)
            with pytest.raises(TypeError, match="batch items"):
                writer(txn.put, w._rows, [("not", "a")], w.totals, 1 << 30, store, w.insert)
    finally:
        store.close()


async def test_surrogate_keys_past_the_writers_memo_are_the_python_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer keeps Surrogate-Keys' hashes in a memo of its own that starts again when
    full: more distinct tags than it keeps still write the rows ``insert`` writes."""
    def tagged(i: int) -> Entry:
        tags = " ".join(f"t{i}-{j}" for j in range(60)) + " shared"
        return build_entry(key=f"http://example.com/t{i}", url=f"http://example.com/t{i}", status=200,
                           reason="OK", resp_headers=CIMultiDict({"Cache-Control": "max-age=60",
                                                                  "Surrogate-Key": tags}),
                           body=b"t", req_headers=CIMultiDict(), request_time=NOW,
                           response_time=NOW, heuristic_fraction=0.1, heuristic_max=86400)

    passes = [[(tagged(i), True) for i in range(p * 8, p * 8 + 8)] for p in range(3)]
    _encode_once(monkeypatch)
    with monkeypatch.context() as m:
        _python_inserts(m)
        reference = await _run(tmp_path / "py", passes, alone=True, max_bytes=1 << 30)
    python = _count_inserts(monkeypatch)
    native = await _run(tmp_path / "c", passes, alone=True, max_bytes=1 << 30)
    try:
        assert python == []
        assert _dump(native) == _dump(reference)
        assert len(_dump(native)["tag"]) == 24 * 61
        assert native.purge_keys(["shared"]) == 24 and native.stats()["entries"] == 0
    finally:
        native.close()
        reference.close()
