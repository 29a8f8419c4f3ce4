"""Result files, ``--compare``, and workload errors, through the real ``edgenode bench`` CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from edgenode.bench.recorder import histogram_stats
from edgenode.bench.compare import compare, compare_markdown
from edgenode.bench.report import to_markdown
from edgenode.bench.spec import parse_workload
from edgenode.config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def bench(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgenode", "bench", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_cli_run_writes_json_markdown_plots_and_compares(tmp_path: Path) -> None:
    workload = tmp_path / "tiny.toml"
    workload.write_text('objects = 10\nsizes = [{ size = "1KiB", weight = 1 }]\nconcurrency = 2\n'
                        'duration = "1s"\n[origin]\nlatency_ms = 1\n')
    out = tmp_path / "out"
    for concurrency in ("1", "3"):
        proc = bench(str(workload), "--duration", "1", "--concurrency", concurrency, "--generator",
                     "builtin", "--out", str(out), "--quiet")
        assert proc.returncode == 0, proc.stderr
        assert "| hit_ratio |" in proc.stdout
    jsons = sorted(out.glob("bench-tiny-*.json"), key=lambda p: p.stat().st_mtime)
    assert len(jsons) == 2  # a second run never overwrites the first
    for path in jsons:
        stem = str(path.with_suffix(""))
        for suffix in (".md", "-latency.png", "-hit-ratio.png"):
            assert Path(stem + suffix).stat().st_size > 0, stem + suffix
    first, second = (json.loads(p.read_text()) for p in jsons)
    assert first["meta"]["concurrency"] == 1 and second["meta"]["concurrency"] == 3
    cmp_proc = bench("--compare", str(jsons[0]), str(jsons[1]))
    assert cmp_proc.returncode == 0, cmp_proc.stderr
    rps_row = next(line for line in cmp_proc.stdout.splitlines() if line.startswith("| requests_per_s |"))
    assert rps_row.count("|") == 7 and "%" in rps_row


def _run(duration: float, rate: float, latency_us: float, seed: int, *, hits: float = 0.5,
         errors: int = 0, intervals: int = 10) -> dict:
    """A result as the runner writes it: ``rate`` requests/s for ``duration`` s, a
    timeline of ``intervals`` samples and a latency sample around ``latency_us``."""
    rng = random.Random(seed)
    step = duration / intervals
    timeline = [{"t": round(step * (i + 1), 3), "requests": round(rate * step * rng.uniform(0.97, 1.03)),
                 "hits": 0} for i in range(intervals)]
    requests = sum(p["requests"] for p in timeline)
    sample = [latency_us * rng.uniform(0.8, 1.2) for _ in range(2000)]
    ordered = sorted(sample)
    return {"meta": {"workload": "w", "duration_s": duration},
            "summary": {"requests": requests, "rps": requests / duration, "status": {"200": requests},
                        "errors": {"reset": errors} if errors else {},
                        "latency_us": {"p50": ordered[999], "p90": ordered[1799], "p99": ordered[1979],
                                       "max": ordered[-1]},
                        "hit_ratio": hits, "bytes_served": requests * 1024, "origin_requests": None,
                        "origin_bytes": None, "origin_requests_saved": None, "bytes_saved": None},
            "latencies_us": sample, "timeline": timeline}


def test_compare_uses_rates_not_totals_across_run_lengths() -> None:
    """A 10 s and a 30 s run of the same node: three times the requests, the same rate."""
    short, long = _run(10, 5000, 400, seed=1), _run(30, 5000, 400, seed=2)
    rows = {r.metric: r for r in compare(short, long)}
    assert long["summary"]["requests"] > 2.5 * short["summary"]["requests"]
    for metric in ("requests_per_s", "bytes_per_s", "latency_p50_us", "latency_p99_us", "hit_ratio"):
        assert rows[metric].verdict == "within noise", (metric, rows[metric])
    md = compare_markdown(short, long)
    assert "Runs of different length (10 s vs 30 s)" in md and "within noise" in md
    assert "| requests |" not in md  # no raw totals


def test_compare_judges_differences_outside_the_noise() -> None:
    before, after = _run(10, 5000, 400, seed=3), _run(10, 3500, 600, seed=4, hits=0.3, errors=500)
    rows = {r.metric: r for r in compare(before, after)}
    assert rows["requests_per_s"].verdict == "worse" and rows["requests_per_s"].change < -0.25
    assert rows["latency_p50_us"].verdict == "worse" and rows["latency_p99_us"].verdict == "worse"
    assert rows["hit_ratio"].verdict == "worse" and rows["errors_per_request"].verdict == "worse"
    assert 0 < rows["requests_per_s"].noise < 0.05  # a steady run has a narrow band
    faster = compare(after, before)
    assert {r.metric: r.verdict for r in faster}["requests_per_s"] == "better"


def test_compare_without_samples_reports_but_does_not_judge() -> None:
    a, b = _run(10, 5000, 400, seed=5), _run(10, 9000, 400, seed=6)
    for r in (a, b):
        r["timeline"], r["latencies_us"] = [], []
    rows = {r.metric: r for r in compare(a, b)}
    assert rows["requests_per_s"].change == pytest.approx(b["summary"]["rps"] / a["summary"]["rps"] - 1)
    assert rows["requests_per_s"].verdict == "no noise estimate"
    assert rows["origin_requests_per_request"].verdict == "n/a"  # not measured in either run


def test_markdown_report_with_unknowns() -> None:
    md = to_markdown(_run(5, 1000, 300, seed=7, errors=2))
    assert "| origin_requests | n/a |" in md and "| reset | 2 |" in md


@pytest.mark.parametrize("data,key", [
    ({"objcts": 5}, "objcts"),
    ({"sizes": [{"size": "lots"}]}, "sizes[0].size"),
    ({"sizes": [1]}, "sizes[0]"),
    ({"image_share": 1.5}, "image_share"),
    ({"origin": {"latency_ms": "slow"}}, "origin.latency_ms"),
    ({"origin": {"latncy_ms": 5}}, "origin.latncy_ms"),
    ({"duration": "soon"}, "duration"),
    ({"concurrency": 0}, "concurrency"),
])
def test_workload_errors_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_workload(data, "w")
    assert str(err.value).startswith(key + ":") or f"{key}:" in str(err.value)


def test_cli_workload_error_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("objects = 10\n[origin]\nerror_rate = \"often\"\n")
    proc = bench(str(bad), "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "config error: origin.error_rate:" in proc.stderr
    proc = bench(str(tmp_path / "missing.toml"))
    assert proc.returncode == 2 and "cannot read workload" in proc.stderr
    proc = bench("--concurrency", "0")
    assert proc.returncode == 2 and "--concurrency" in proc.stderr
    assert not list(tmp_path.glob("*.json"))


def test_histogram_quantiles_from_buckets() -> None:
    # 100 observations: 50 in (0, 10µs], 49 in (10µs, 20µs], 1 above 20µs
    buckets = [(1e-5, 50.0), (2e-5, 99.0), (float("inf"), 100.0)]
    st = histogram_stats(buckets, total=1.2e-3, count=100)
    assert st["count"] == 100 and st["mean_us"] == pytest.approx(12.0)
    assert st["p50_us"] == pytest.approx(10.0)
    assert 10.0 < st["p99_us"] <= 20.0


def test_cli_bad_node_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text('[origins.default]\nurl = "http://127.0.0.1:9"\n[cache]\nmax_bytes = "huge"\n')
    proc = bench("--config", str(cfg), "--duration", "1", "--out", str(tmp_path))
    assert proc.returncode == 2 and "cache.max_bytes" in proc.stderr
