"""``edgenode bench`` runs end to end on 127.0.0.1: a managed node + origin, and URL mode.

Runs are short (1 s, a few connections); the assertions are about the result's
consistency (every schema field, sums that must agree), never about speed.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from edgenode.bench.generators import wrk_path
from edgenode.bench.progress import Progress
from edgenode.bench.report import to_markdown, write_plots
from edgenode.bench.runner import BenchOptions, run_bench
from edgenode.bench.spec import Workload, parse_workload
from edgenode.config import ConfigError, load_config, with_overrides
from edgenode.node import Node
from edgenode.origin.app import start_origin
from edgenode.origin.settings import OriginSettings

#: a filter that touches request and response headers (Proxy-Wasm ABI 0.2.1)
FILTER_WAT = """
(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 48) "x-bench")
  (data (i32.const 64) "1")
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 48) (i32.const 7) (i32.const 64) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
"""

SUMMARY_KEYS = {"requests", "rps", "status", "errors", "latency_us", "hit_ratio", "bytes_served",
                "origin_requests", "origin_bytes", "origin_requests_saved", "bytes_saved"}


def hot(**kw: object) -> Workload:
    base = dict(name="hot-test", objects=20, zipf=1.1, sizes=[(2048, 1.0)], concurrency=3,
                duration=1.0, ttl=300, origin_latency_ms=1.0)
    base.update(kw)
    return Workload(**base)  # type: ignore[arg-type]


@pytest.fixture
def filter_config(tmp_path: Path) -> Path:
    (tmp_path / "bench.wat").write_text(FILTER_WAT)
    cfg = tmp_path / "node.toml"
    cfg.write_text('[origins.default]\nurl = "http://127.0.0.1:9"\n\n'
                   '[[chain]]\ntype = "wasm"\nname = "hdr"\nmodule = "bench.wat"\n\n'
                   '[[chain]]\ntype = "cache"\n\n[log]\naccess = "off"\n')
    return cfg


def check_consistent(result: dict, objects: int) -> None:
    s = result["summary"]
    assert SUMMARY_KEYS <= set(s)
    assert all(s[k] is not None for k in SUMMARY_KEYS), s
    assert s["requests"] > 0 and s["requests"] == sum(s["status"].values())
    assert 0 < s["hit_ratio"] <= 1
    assert set(s["latency_us"]) == {"p50", "p90", "p99", "max"}
    lat = s["latency_us"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    # every object is fetched at most a few times (collapsing, TTL 300 s), never per request
    assert 0 < s["origin_requests"] <= 2 * objects
    assert s["origin_requests_saved"] == s["requests"] - s["origin_requests"]
    assert s["bytes_saved"] == s["bytes_served"] - s["origin_bytes"]
    assert s["origin_bytes"] >= s["origin_requests"] * 2048 * 0.9
    assert result["latencies_us"] and result["timeline"]
    assert all(p["hits"] <= p["requests"] for p in result["timeline"])
    node_requests = result["node"]["requests"]
    assert sum(p["requests"] for p in result["timeline"]) <= node_requests
    for key in ("workload", "generator", "duration_s", "concurrency", "origin_latency_ms"):
        assert key in result["meta"]


@pytest.mark.parametrize("generator", ["builtin", "wrk"])
async def test_managed_run_with_a_filter(generator: str, filter_config: Path, tmp_path: Path) -> None:
    if generator == "wrk" and wrk_path() is None:
        pytest.skip("wrk is not installed")
    result = await run_bench(BenchOptions(hot(), config=str(filter_config), generator=generator,
                                          progress=False))
    assert result["meta"]["generator"] == generator
    check_consistent(result, objects=20)
    assert not result["summary"]["errors"]
    # in-process timings: every request passes the filter's two header phases once
    phases = result["filters"]["hdr"]
    n = result["node"]["requests"]
    assert phases["request_headers"]["count"] == n and phases["response_headers"]["count"] == n
    for st in phases.values():
        assert 0 < st["p50_us"] <= st["p99_us"]
    md = to_markdown(result)
    assert "| hdr | request_headers |" in md and "| 200 |" in md
    plots = write_plots(result, tmp_path / "out", "t")
    assert {p.name for p in plots} == {"t-latency.png", "t-filters.png", "t-hit-ratio.png"}
    assert all(p.stat().st_size > 1000 for p in plots)


async def test_origin_errors_and_rate(tmp_path: Path) -> None:
    """Injected 5xx are counted by kind; the built-in generator paces to --rate."""
    w = hot(objects=500, zipf=0.5, ttl=0, origin_error_rate=0.5, rate=150.0, concurrency=2)
    result = await run_bench(BenchOptions(w, generator="builtin", progress=False))
    s = result["summary"]
    assert s["requests"] == sum(s["status"].values())
    fivexx = sum(v for k, v in s["status"].items() if k.startswith("5"))
    assert fivexx > 0 and s["errors"]["status_5xx"] == fivexx
    assert s["requests"] <= 150 * result["meta"]["duration_s"] + 3


async def test_a_request_count_sends_the_same_requests_every_run() -> None:
    """``requests = N`` bounds a run by count, so two runs (each on a cold cache of its
    own) ask the origin for exactly the same objects."""
    w = hot(objects=60, zipf=0.8, requests=300, duration=30.0)
    runs = [await run_bench(BenchOptions(w, generator="auto", progress=False)) for _ in range(2)]
    assert [r["meta"]["generator"] for r in runs] == ["builtin", "builtin"]
    assert [r["summary"]["requests"] for r in runs] == [300, 300]
    assert runs[0]["summary"]["origin_requests"] == runs[1]["summary"]["origin_requests"] > 0
    assert runs[0]["meta"]["request_bound"] == 300
    with pytest.raises(ConfigError, match="wrk can neither pace nor count"):
        await run_bench(BenchOptions(w, generator="wrk", progress=False))
    with pytest.raises(ConfigError, match="requests: must be at least 1"):
        parse_workload({"requests": 0}, "w")


async def test_url_mode_scrapes_metrics(filter_config: Path) -> None:
    runner, origin_port = await start_origin(OriginSettings(listen=("127.0.0.1", 0)))
    origin_url = f"http://127.0.0.1:{origin_port}"
    cfg = with_overrides(load_config(filter_config), listen="127.0.0.1:0", origin=origin_url,
                         admin_listen="127.0.0.1:0")
    node = Node(cfg)
    await node.start()
    try:
        result = await run_bench(BenchOptions(
            hot(), url=f"http://127.0.0.1:{node.port}", generator="builtin", progress=False,
            metrics_url=f"http://127.0.0.1:{node.admin_port}/metrics", origin_url=origin_url))
        node_requests = node.metrics.requests
    finally:
        await node.stop(1.0)
        await runner.cleanup()
    s = result["summary"]
    assert s["requests"] > 0 and s["requests"] == sum(s["status"].values())
    assert 0 < s["origin_requests"] <= 40 and s["hit_ratio"] > 0
    assert s["origin_bytes"] is None and s["bytes_saved"] is None  # unknowable from outside
    assert result["timeline"] and sum(p["requests"] for p in result["timeline"]) <= node_requests
    hdr = result["filters"]["hdr"]
    assert hdr["request_headers"]["count"] == s["requests"]
    assert 0 < hdr["request_headers"]["p50_us"] <= hdr["request_headers"]["p99_us"]
    assert "histogram" in result["meta"]["filter_timings"]


async def test_bad_generator_and_duration() -> None:
    with pytest.raises(ConfigError, match="--generator"):
        await run_bench(BenchOptions(hot(), generator="ab", progress=False))
    with pytest.raises(ConfigError, match="duration"):
        await run_bench(BenchOptions(hot(duration=0.0), progress=False))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_rewrites_on_a_tty_and_prints_plain_lines_otherwise() -> None:
    tty = _Terminal()
    p = Progress(10.0, tty)
    p.update(1.0, 1000, 1000.0, 0.5)
    p.update(2.0, 2500, 1500.0, 0.75)
    p.close()
    text = tty.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "2,500" in text and "1,500 req/s" in text and "75.0%" in text
    log = io.StringIO()
    p = Progress(10.0, log, plain_every=5.0)
    for t in range(1, 11):
        p.update(float(t), t * 100, 100.0, None)
    p.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in log.getvalue() and "n/a" in lines[0]


async def test_bad_url() -> None:
    with pytest.raises(ConfigError, match="--url"):
        await run_bench(BenchOptions(hot(), url="https://example.com", progress=False))


def test_recorder_reservoir_keeps_count_and_mean_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgenode.bench import recorder as rec_mod
    from edgenode.http.messages import CIMultiDict, Request
    from edgenode.pipeline.exchange import Exchange

    monkeypatch.setattr(rec_mod, "MAX_SAMPLES", 100)
    rec = rec_mod.NodeRecorder()
    for i in range(1000):
        ex = Exchange(Request("GET", "/", CIMultiDict()))
        ex.x_cache = "HIT" if i % 4 else "MISS"
        ex.add_timing("f", "request_headers", (i % 10 + 1) * 1e-6)
        rec.on_end(ex, None)
    st = rec.filters()["f"]["request_headers"]
    assert st["count"] == 1000 and st["mean_us"] == pytest.approx(5.5)
    assert len(rec.timings[("f", "request_headers")][2]) == 100
    assert 1 <= st["p50_us"] <= st["p99_us"] <= 10
    assert rec.requests == 1000 and rec.hits == 750 and rec.by_cache == {"HIT": 750, "MISS": 250}
