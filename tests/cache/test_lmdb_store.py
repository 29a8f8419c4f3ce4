"""The LMDB store on its own: what survives a restart, format checks, the node lock, the
node-wide byte bound, purges seen by another process, leases, and failing disks."""

from __future__ import annotations

import logging
import marshal
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from multidict import CIMultiDict

from edgenode.cache.codec import FORMAT
from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.passthrough import PassThroughStore
from edgenode.cache.policy import Entry, build_entry
from edgenode.cache.ranges import Partial
from edgenode.cache.store_open import open_store
from edgenode.cache.store_files import StoreInUse
from edgenode.config import CacheConfig

REPO = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0


def entry(path: str, body: bytes = b"x" * 100, *, at: float = NOW, **headers: str) -> Entry:
    h = CIMultiDict({"Cache-Control": "max-age=60", "Date": "Fri, 15 Jan 2027 08:00:00 GMT"})
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    url = f"http://example.com{path}"
    return build_entry(key=url, url=url, status=200, reason="OK", resp_headers=h, body=body,
                       req_headers=CIMultiDict(), request_time=at, response_time=at,
                       heuristic_fraction=0.1, heuristic_max=86400)


def open_at(path: Path, **cfg: object) -> SharedStore:
    return SharedStore(CacheConfig(**cfg), path, clock=lambda: NOW)  # type: ignore[arg-type]


def test_objects_survive_a_restart_with_their_times(tmp_path: Path) -> None:
    store = open_at(tmp_path / "c")
    e = entry("/a", b"hello", Age="5", ETag='"v1"', Surrogate_Key="k1 k2")
    assert store.put(e)
    store.close()
    store = open_at(tmp_path / "c")
    got, any_variant = store.lookup("http://example.com/a", CIMultiDict())
    assert got is not None and any_variant and got is not e
    assert got.body == b"hello" and got.etag == '"v1"' and got.surrogate_keys == ("k1", "k2")
    assert got.headers == e.headers and got.wire == e.wire and got.proto == e.proto
    # freshness and Age come from the stored times, not from when the store was reopened
    assert got.fresh_until == e.fresh_until and got.age(NOW + 10) == e.age(NOW + 10) == 15
    assert store.stats()["entries"] == 1 and store.stats()["bytes"] == e.size
    store.close()


def test_other_format_or_garbage_is_wiped_with_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c"
    store = open_at(path)
    store.put(entry("/a"))
    with store.env.begin(write=True) as txn:
        txn.put(b"format", b"edgenode-cache/0/old", db=store.files.dbs["meta"])
    store.close()
    with caplog.at_level(logging.WARNING, "edgenode.cache.store"):
        store = open_at(path)
    assert "has format edgenode-cache/0/old, this node writes " + FORMAT + ": wiping it" in caplog.text
    assert store.lookup("http://example.com/a", CIMultiDict()) == (None, False)
    assert store.stats()["entries"] == 0 and store.put(entry("/b"))
    store.close()

    caplog.clear()
    (path / "data.mdb").write_bytes(os.urandom(64 * 1024))
    with caplog.at_level(logging.WARNING, "edgenode.cache.store"):
        store = open_at(path)
    assert "is not a readable LMDB environment" in caplog.text and "wiping it" in caplog.text
    assert store.stats()["entries"] == 0
    store.close()


def test_a_store_of_the_previous_layout_is_wiped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A store written by the release before this layout (format version 1: metadata,
    bodies, ticks and LRU rows in databases of their own) is wiped on open, never read."""
    import hashlib
    import lmdb

    from edgenode.cache.codec import FIELDS

    path = tmp_path / "c"
    path.mkdir()
    old = "edgenode-cache/1/" + hashlib.sha256(" ".join(FIELDS).encode()).hexdigest()[:16]
    env = lmdb.open(str(path), max_dbs=8, map_size=64 << 20)
    dbs = {n: env.open_db(n.encode()) for n in ("meta", "obj", "body", "tick", "lru", "url", "tag", "inval")}
    with env.begin(write=True) as txn:
        txn.put(b"format", old.encode(), db=dbs["meta"])
        txn.put(b"entries", (1).to_bytes(8, "big"), db=dbs["meta"])
        txn.put(b"\x01" * 24, marshal.dumps((1,)), db=dbs["obj"])
        txn.put(b"\x01" * 24, b"old body", db=dbs["body"])
    env.close()
    with caplog.at_level(logging.WARNING, "edgenode.cache.store"):
        store = open_at(path)
    assert f"has format {old}, this node writes {FORMAT}: wiping it" in caplog.text
    assert FORMAT.startswith("edgenode-cache/2/")
    assert store.stats()["entries"] == 0 and store.put(entry("/a", b"new"))
    store.close()
    store = open_at(path)
    got = store.lookup("http://example.com/a", CIMultiDict())[0]
    assert got is not None and got.body == b"new" and store.stats()["entries"] == 1
    store.close()


def test_objects_in_lru_order_small_bodies_inline(tmp_path: Path) -> None:
    """The layout: objects keyed by tick (LRU order, a promotion moves one to the end), a
    body up to ``INLINE_BODY`` inside the object's value and a larger one on its own, no
    URL index row for a key that is its URL; every row goes with its object."""
    from edgenode.cache.codec import INLINE_BODY, unpack

    store = open_at(tmp_path / "c")
    small, large = b"s" * INLINE_BODY, b"L" * (INLINE_BODY + 1)
    for name, body in (("a", small), ("b", large), ("c", small)):
        assert store.put(entry(f"/{name}", body, Surrogate_Key=f"t-{name}"))

    def rows() -> tuple[list[str], dict[str, int]]:
        dbs = store.files.dbs
        with store.env.begin() as txn:
            order = [unpack(v)[1].url.rsplit("/", 1)[1] for _, v in txn.cursor(db=dbs["obj"])]
            counts = {n: txn.stat(dbs[n])["entries"] for n in ("key", "obj", "body", "url", "tag")}
        return order, counts

    order, counts = rows()
    assert order == ["a", "b", "c"]
    assert counts == {"key": 3, "obj": 3, "body": 1, "url": 0, "tag": 3}
    store.close()
    store = open_at(tmp_path / "c")
    got = {n: store.lookup(f"http://example.com/{n}", CIMultiDict())[0] for n in "abc"}
    assert [got[n].body for n in "abc"] == [small, large, small]  # type: ignore[union-attr]
    store.close()  # writes the three LRU notes: a, b, c promoted in the order they were read
    store = open_at(tmp_path / "c")
    assert store.lookup("http://example.com/a", CIMultiDict())[0] is not None
    store._commit(lambda w: None, None)  # the note on a: it moves behind b and c
    assert rows()[0] == ["b", "c", "a"]
    assert store.purge_url("http://example.com/b") == 1 and store.purge_keys(["t-c"]) == 1
    order, counts = rows()
    assert order == ["a"] and counts == {"key": 1, "obj": 1, "body": 0, "url": 0, "tag": 1}
    assert store.stats()["urls"] == 1 and store.stats()["entries"] == 1
    store.close()


def test_keys_other_than_their_url_keep_the_url_index(tmp_path: Path) -> None:
    """With ``[cache.key] headers`` a key is the URL plus header values: the URL index
    names its keys, so a URL purge finds every one, and ``urls`` counts URLs, not keys."""
    store = open_at(tmp_path / "c")
    url = "http://example.com/k"
    for key in (url, url + "\nx-device:mobile", url + "\nx-device:desktop"):
        e = build_entry(key=key, url=url, status=200, reason="OK",
                        resp_headers=CIMultiDict({"Cache-Control": "max-age=60"}), body=b"k",
                        req_headers=CIMultiDict(), request_time=NOW, response_time=NOW,
                        heuristic_fraction=0.1, heuristic_max=86400)
        assert store.put(e)
    assert store.put(entry("/other"))
    with store.env.begin() as txn:
        assert txn.stat(store.files.dbs["url"])["entries"] == 2
    assert store.stats()["urls"] == 2 and store.stats()["entries"] == 4
    assert store.purge_url(url) == 3
    with store.env.begin() as txn:
        assert txn.stat(store.files.dbs["url"])["entries"] == 0
    assert store.stats()["urls"] == 1 and store.stats()["entries"] == 1
    store.close()


def test_one_node_per_store(tmp_path: Path) -> None:
    first = open_at(tmp_path / "c")
    with pytest.raises(StoreInUse, match=r"cache.path: .* is in use by another running node \(pid \d+\)"):
        open_at(tmp_path / "c")
    first.close()
    open_at(tmp_path / "c").close()  # free again once the first node closed it


def test_byte_bound_lru_and_variants(tmp_path: Path) -> None:
    store = open_at(tmp_path / "c", max_bytes=4000, max_object_bytes=2000)
    sizes = []
    for name in "abcd":
        e = entry(f"/{name}", b"z" * 600)
        sizes.append(e.size)
        assert store.put(e)
    assert store.lookup("http://example.com/a", CIMultiDict())[0] is not None  # a is recent now
    assert store.put(entry("/e", b"z" * 600))
    assert store.lookup("http://example.com/b", CIMultiDict())[0] is None  # the oldest untouched
    stats = store.stats()
    assert stats["bytes"] <= 4000 and stats["evictions"] == 1 and stats["entries"] == 4
    # two variants of one key; a change of what the origin varies on replaces both
    for lang in ("en", "de"):
        h = CIMultiDict({"Accept-Language": lang})
        e = build_entry(key="http://example.com/v", url="http://example.com/v", status=200, reason="OK",
                        resp_headers=CIMultiDict({"Cache-Control": "max-age=60", "Vary": "Accept-Language"}),
                        body=lang.encode(), req_headers=h, request_time=NOW, response_time=NOW,
                        heuristic_fraction=0.1, heuristic_max=86400)
        assert store.put(e)
    got, _ = store.lookup("http://example.com/v", CIMultiDict({"Accept-Language": "de"}))
    assert got is not None and got.body == b"de"
    assert store.lookup("http://example.com/v", CIMultiDict({"Accept-Language": "fr"})) == (None, True)
    assert store.put(entry("/v", b"plain"))
    got, _ = store.lookup("http://example.com/v", CIMultiDict({"Accept-Language": "en"}))
    assert got is not None and got.body == b"plain"
    assert not store.put(entry("/huge", b"z" * 5000))  # larger than the whole store
    store.close()


def test_purges_and_refresh(tmp_path: Path) -> None:
    store = open_at(tmp_path / "c")
    store.put(entry("/a?x=1", Surrogate_Key="grp one"))
    store.put(entry("/b", Surrogate_Key="grp two"))
    store.put(entry("/c", Surrogate_Key="three"))
    assert store.purge_url("http://EXAMPLE.com:80/a?x=1") == 1
    assert store.lookup("http://example.com/a?x=1", CIMultiDict())[0] is None
    assert store.purge_keys(["grp", "three"], soft=True) == 2
    got = store.lookup("http://example.com/c", CIMultiDict())[0]
    assert got is not None and got.fresh_until <= NOW  # soft: still there, stale
    # a 304 refresh is written back: fresh again after a restart
    got.fresh_until = NOW + 600
    store.refresh(got)
    store.close()
    store = open_at(tmp_path / "c")
    again = store.lookup("http://example.com/c", CIMultiDict())[0]
    assert again is not None and again.fresh_until == NOW + 600
    assert store.stats()["urls"] == 2
    assert store.purge_all() == 2 and store.stats()["entries"] == store.stats()["bytes"] == 0
    assert store.lookup("http://example.com/b", CIMultiDict()) == (None, False)
    store.close()


# -- another process on the same store ---------------------------------------------------------
_PEER = textwrap.dedent("""
    import sys, time
    from multidict import CIMultiDict
    from edgenode.cache.lmdb_store import SharedStore
    from edgenode.config import CacheConfig
    store = SharedStore(CacheConfig(), __import__("pathlib").Path(sys.argv[1]), owner=False)
    for line in sys.stdin:
        cmd, arg = line.split()
        if cmd == "get":
            e = store.lookup_lazy(arg, CIMultiDict)
            print("none" if e is None else e.body.decode(), flush=True)
        elif cmd == "lease":
            print(store.leases.acquire(arg), flush=True)
        elif cmd == "release":
            store.leases.release(arg)
            print("ok", flush=True)
        elif cmd == "put":  # no event loop here: committed at once
            from tests.cache.test_lmdb_store import entry
            store.put(entry(arg, b"peer", at=time.time()))
            print("ok", flush=True)
""")


class Peer:
    """A second process on the store (as another worker would be)."""

    def __init__(self, path: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-c", _PEER, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, cmd: str, arg: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{cmd} {arg}\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


def test_another_process_sees_stores_purges_and_leases(tmp_path: Path) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c")
    peer = Peer(tmp_path / "c")
    try:
        key = "http://example.com/a"
        store.put(entry("/a", b"one", at=time.time()))
        assert peer.ask("get", key) == "one"  # read, and now kept decoded in the peer
        store.put(entry("/a", b"two", at=time.time()))  # replaced: the peer drops its copy
        assert peer.ask("get", key) == "two"
        assert store.purge_url(key) == 1
        assert peer.ask("get", key) == "none"  # visible as soon as the purge returned
        store.put(entry("/a", b"three", at=time.time()))
        assert peer.ask("get", key) == "three"
        assert store.purge_all() == 1
        assert peer.ask("get", key) == "none"
        # a lease held by one process is refused to the other until released
        assert store.leases.acquire(key)
        assert peer.ask("lease", key) == "False" and store.leases.held_elsewhere(key) is False
        store.leases.release(key)
        assert peer.ask("lease", key) == "True" and store.leases.held_elsewhere(key)
        assert not store.leases.acquire(key)
        peer.proc.kill()  # a dead holder never leaves its lease behind
        peer.proc.wait(10)
        assert store.leases.acquire(key)
    finally:
        if peer.proc.poll() is None:
            peer.close()
        store.close()


def test_unwritable_store_leaves_a_pass_through_node(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.ERROR, "edgenode.cache.store"):
        store = open_store(CacheConfig(store="lmdb"), blocker / "cache")
    assert isinstance(store, PassThroughStore)
    assert "serving as a pass-through proxy" in caplog.text
    assert not store.put(entry("/a")) and store.lookup_lazy("k", CIMultiDict) is None
    assert store.stats()["store"] == "pass-through" and "cannot create" in store.stats()["state"]


_FULL = textwrap.dedent("""
    import sys
    from multidict import CIMultiDict
    from edgenode.cache.lmdb_store import SharedStore
    from edgenode.config import CacheConfig
    sys.path.insert(0, sys.argv[2])
    from test_lmdb_store import entry
    store = SharedStore(CacheConfig(), __import__("pathlib").Path(sys.argv[1]))
    stored = [store.put(entry(f"/o{i}", bytes(64 * 1024))) for i in range(40)]
    print(stored.count(True), stored.count(False), store.stats()["state"], flush=True)
    # what was stored before the disk filled up is still served
    print(store.lookup(f"http://example.com/o0", CIMultiDict())[0] is not None, flush=True)
""")


def test_full_disk_stops_storing_and_keeps_serving(tmp_path: Path) -> None:
    """A file size limit (as a full disk does) makes commits fail: the store says so,
    stores nothing more, keeps what it has, and the process goes on."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", _FULL, str(tmp_path / "c"), str(Path(__file__).parent)],
                         capture_output=True, text=True, env=env, preexec_fn=limit, timeout=60)
    assert out.returncode == 0, out.stderr
    ok, failed, state, *_ = out.stdout.split(maxsplit=3)
    assert int(ok) >= 1 and int(failed) >= 1 and state == "writes"
    assert out.stdout.splitlines()[1] == "True"
    assert "write failed" in out.stderr and "not storing new objects" in out.stderr


def test_codec_keeps_every_entry_field() -> None:
    from edgenode.cache.codec import FIELDS, decode, decode_record, encode

    e = entry("/t", b"body", Surrogate_Control="max-age=9")
    e.trailers = CIMultiDict({"X-Sum": "1"})
    e.partial = Partial(100, ((0, 1), (50, 51)))
    back = decode(decode_record(encode(e)), e.body)
    for name in FIELDS + ("body",):
        assert getattr(back, name) == getattr(e, name), name
    assert isinstance(back.trailers, CIMultiDict) and isinstance(back.partial, Partial)
    assert marshal.loads(encode(e))[FIELDS.index("key")] == e.key


def test_a_new_key_moves_no_generation_a_change_does(tmp_path: Path) -> None:
    """A miss stored under a key no process holds is logged for no one (other workers need
    not catch up on every miss); replacing it, or adding a variant beside it, is logged,
    and another process sees each."""
    store = SharedStore(CacheConfig(), tmp_path / "c")
    peer = Peer(tmp_path / "c")
    key = "http://example.com/new"
    try:
        seq = store.files.seq()
        assert store.put(entry("/new", b"one", at=time.time()))
        assert store.files.seq() == seq
        assert peer.ask("get", key) == "one"  # read, and now kept decoded in the peer
        assert store.put(entry("/new", b"two", at=time.time()))
        assert store.files.seq() == seq + 1
        assert peer.ask("get", key) == "two"
        h = CIMultiDict({"Cache-Control": "max-age=60", "Vary": "Accept"})
        for accept in ("a", "b"):
            assert store.put(build_entry(
                key=key + "v", url=key + "v", status=200, reason="OK", resp_headers=h, body=accept.encode(),
                req_headers=CIMultiDict({"Accept": accept}), request_time=time.time(),
                response_time=time.time(), heuristic_fraction=0.1, heuristic_max=86400))
        assert store.files.seq() == seq + 2  # the second variant: holders of the first must look
    finally:
        peer.close()
        store.close()


def test_a_single_process_node_takes_no_leases(tmp_path: Path) -> None:
    """Collapsing across processes is only needed when several serve from the store."""
    cfg = CacheConfig(store="lmdb")
    alone = open_store(cfg, tmp_path / "one")
    assert isinstance(alone, SharedStore) and alone.leases is None
    alone.close()
    for owner in (True, False):  # the master of two workers, and a worker (one per process)
        shared = open_store(cfg, tmp_path / "many", owner=owner, workers=2)
        assert isinstance(shared, SharedStore) and shared.leases is not None
        shared.close()


def test_max_bytes_is_the_nodes_bound_with_either_store(tmp_path: Path) -> None:
    """Per-process memory stores split ``max_bytes`` (the merged /stats adds up to it);
    the lmdb store is one bound for every process that opens it."""
    from edgenode.workers import merge_stats

    cfg = CacheConfig(store="memory", max_bytes=256 << 20)
    parts = [{"cache": open_store(cfg, tmp_path / "unused", workers=2).stats()} for _ in range(2)]
    assert [p["cache"]["max_bytes"] for p in parts] == [128 << 20, 128 << 20]
    assert merge_stats(parts)["cache"]["max_bytes"] == 256 << 20
    shared = open_store(CacheConfig(store="lmdb", max_bytes=256 << 20), tmp_path / "c", workers=2)
    assert isinstance(shared, SharedStore) and shared.stats()["max_bytes"] == 256 << 20
    shared.close()
