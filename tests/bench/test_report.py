"""Result files, ``--compare``, and workload errors, through the real ``edgenode bench`` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgenode.bench.recorder import histogram_stats
from edgenode.bench.report import compare, compare_markdown, to_markdown
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
    second["summary"]["rps"] = first["summary"]["rps"] / 2
    after = tmp_path / "after.json"
    after.write_text(json.dumps(second))
    cmp_proc = bench("--compare", str(jsons[0]), str(after))
    assert cmp_proc.returncode == 0, cmp_proc.stderr
    rps_row = next(line for line in cmp_proc.stdout.splitlines() if line.startswith("| rps |"))
    assert "| 0.500 | worse |" in rps_row


def _result(rps: float, p99: float, errors: dict[str, int]) -> dict:
    return {"meta": {"workload": "w"},
            "summary": {"requests": 100, "rps": rps, "status": {"200": 100}, "errors": errors,
                        "latency_us": {"p50": 10.0, "p90": 20.0, "p99": p99, "max": 90.0},
                        "hit_ratio": 0.5, "bytes_served": 1000, "origin_requests": None,
                        "origin_bytes": None, "origin_requests_saved": None, "bytes_saved": None}}


def test_compare_rows_and_markdown_with_unknowns() -> None:
    a, b = _result(1000.0, 50.0, {}), _result(1500.0, 40.0, {"reset": 2})
    rows = {r["metric"]: r for r in compare(a, b)}
    assert rows["rps"]["ratio"] == pytest.approx(1.5) and rows["rps"]["better"] is True
    assert rows["latency_p99_us"]["better"] is True  # lower latency is better
    assert rows["errors"]["ratio"] is None  # 0 -> 2 has no ratio
    assert "origin_requests" not in rows  # unknown (null) values are not compared
    md = to_markdown(b)
    assert "| origin_requests | n/a |" in md and "| reset | 2 |" in md and "| 200 | 100 |" in md
    assert compare_markdown(a, b).count("\n") == len(rows) + 2


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
