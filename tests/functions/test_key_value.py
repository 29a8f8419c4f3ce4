"""Functions' key-value stores (Spin's ``key-value``): both backends, per-store limits and
Spin's errors through a real guest, and the node-wide LMDB store behind real worker
processes (``serve --workers 2``): a value one worker sets is read by the other, and it
survives a restart."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import aiohttp
import pytest

from edgenode.config import ConfigError, parse_config
from edgenode.functions.kv import (KeyValueError, LmdbKeyValue, MemoryKeyValue, StoreFull,
                                   UnavailableKeyValue, open_key_value)
from edgenode.functions.options import STORE_BYTES, parse_key_value_stores

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))
from cluster_support import one_connection_per_worker, start_cluster, stop_cluster, write_conf  # noqa: E402

PY = "/fn/py/"


@pytest.fixture(params=["memory", "lmdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    kv = MemoryKeyValue() if request.param == "memory" else LmdbKeyValue(tmp_path / "kv", 1 << 30, owner=True)
    yield kv
    kv.close()


def test_backends_keep_stores_apart_and_bound_each(backend: Any) -> None:
    backend.set("fn\0a", "k", b"12345", 100)
    backend.set("fn\0b", "k", b"x", 100)
    assert backend.get("fn\0a", "k") == b"12345" and backend.get("fn\0b", "k") == b"x"
    assert backend.usage("fn\0a") == 6  # key + value bytes
    backend.set("fn\0a", "k", b"123", 100)  # an overwrite counts the difference
    assert backend.usage("fn\0a") == 4
    with pytest.raises(StoreFull, match=r"store 'a' is full: 4 of 10 bytes used, this write needs 7 more"):
        backend.set("fn\0a", "k2", b"12345", 10)
    assert backend.get("fn\0a", "k2") is None and backend.usage("fn\0a") == 4  # nothing written
    backend.set("fn\0a", "k2", b"1", 100)
    assert sorted(backend.keys("fn\0a")) == ["k", "k2"] and backend.keys("fn\0b") == ["k"]
    backend.delete("fn\0a", "k")
    backend.delete("fn\0a", "missing")
    assert backend.keys("fn\0a") == ["k2"] and backend.usage("fn\0a") == 3


def test_lmdb_store_persists_and_replaces_garbage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kv = LmdbKeyValue(tmp_path / "kv", 1 << 30, owner=True)
    kv.set("fn\0default", "k", b"kept", 100)
    kv.close()
    kv = LmdbKeyValue(tmp_path / "kv", 1 << 30, owner=False)
    assert kv.get("fn\0default", "k") == b"kept" and kv.usage("fn\0default") == 5
    kv.close()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "data.mdb").write_bytes(b"not lmdb at all" * 1000)
    with pytest.raises(KeyValueError):
        LmdbKeyValue(tmp_path / "bad", 1 << 30, owner=False)  # a worker never wipes
    with caplog.at_level(logging.ERROR):
        kv = LmdbKeyValue(tmp_path / "bad", 1 << 30, owner=True)
    assert any("not a readable LMDB environment" in m for m in caplog.messages)
    assert kv.keys("fn\0default") == []
    kv.close()


def test_the_backend_follows_the_cache_store(tmp_path: Path) -> None:
    def cfg(store: str, state: Path) -> Any:
        return parse_config({"server": {"state_dir": str(state)}, "cache": {"store": store},
                             "origins": {"default": {"url": "http://127.0.0.1:9"}},
                             "chain": [{"type": "function", "name": "f", "component": "f.wasm",
                                        "key_value_stores": {"default": "1MiB"}}]})

    assert isinstance(open_key_value(cfg("memory", tmp_path), owner=True), MemoryKeyValue)
    assert open_key_value(cfg("memory", tmp_path), owner=True, shared_only=True) is None
    kv = open_key_value(cfg("lmdb", tmp_path), owner=True)
    assert isinstance(kv, LmdbKeyValue) and kv.path == tmp_path / "function-kv"
    kv.close()
    (tmp_path / "file").write_text("a file where the state directory should be")
    broken = open_key_value(cfg("lmdb", tmp_path / "file"), owner=True)
    assert isinstance(broken, UnavailableKeyValue)
    with pytest.raises(KeyValueError, match="key-value storage unavailable"):
        broken.get("f\0default", "k")


def test_store_limits_in_the_config() -> None:
    assert parse_key_value_stores(["a", "b"], "k") == {"a": STORE_BYTES, "b": STORE_BYTES}
    assert parse_key_value_stores({"a": "1KiB", "b": 10}, "k") == {"a": 1024, "b": 10}
    with pytest.raises(ConfigError, match=r"k\.a: must be a positive size"):
        parse_key_value_stores({"a": 0}, "k")
    with pytest.raises(ConfigError, match="k: expected an array of store labels or a table"):
        parse_key_value_stores("default", "k")


def _stage(component: Path, stores: Any) -> dict[str, Any]:
    return {"type": "function", "name": "hello-py", "component": str(component),
            "match": {"path_prefix": PY}, "key_value_stores": stores}


async def test_spin_errors_reach_the_guest(serve: Callable[..., Any], http: aiohttp.ClientSession,
                                           py_component: Path) -> None:
    node, base = await serve([_stage(py_component, {"default": "1KiB", "tiny": 100})], cache=False)

    async def kv(query: str) -> str:
        async with http.get(base + PY + "kv/" + query) as r:
            assert r.status == 200
            return await r.text()

    assert await kv("set?key=a&size=500") == "ok"
    assert await kv("get?key=a") == "500" and await kv("exists?key=a") == "true"
    assert await kv("set?key=b&size=600") == ("Other: store 'default' is full: 501 of 1024 bytes used, "
                                              "this write needs 601 more")
    assert await kv("get?key=b") == "none" and await kv("keys") == '["a"]'
    assert await kv("set?store=tiny&key=a&size=10") == "ok"
    assert await kv("get?store=tiny&key=a") == "10"  # each store its own data
    assert await kv("set?key=" + "k" * 256) == "Other: key longer than 255 bytes"
    assert await kv("set?store=secret&key=a") == "AccessDenied"
    assert await kv("delete?key=a") == "ok" and await kv("keys") == "[]"
    assert node._state.function_kv.usage("hello-py\0default") == 0


async def test_one_store_for_all_workers_kept_across_restarts(origin_url: str, tmp_path: Path,
                                                              py_component: Path) -> None:
    # the state directory comes from EDGENODE_STATE_DIR (one per test), as both starts see it
    conf = write_conf(tmp_path, origin_url, f'''
[[chain]]
type = "function"
name = "hello-py"
component = "{py_component}"
match = {{ path_prefix = "{PY}" }}
key_value_stores = ["default"]
''')
    cluster = await start_cluster(conf)
    try:
        async with aiohttp.ClientSession() as s:
            conns = await one_connection_per_worker(cluster, s)
            for worker, expect in ((0, b"1\n"), (1, b"2\n"), (0, b"3\n")):
                await conns[worker].send(PY + "count")
                assert await conns[worker].response() == (200, expect)
            for conn in conns.values():
                conn.close()
    finally:
        assert await stop_cluster(cluster) == 0
    cluster = await start_cluster(conf)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{cluster.port}{PY}count") as r:
                assert await r.text() == "4\n"
    finally:
        assert await stop_cluster(cluster) == 0
