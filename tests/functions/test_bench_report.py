"""``edgenode bench function``: cold start and per-request cost of a component built here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgenode.bench.functioncost import measure_function
from edgenode.config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_bench_function_cli_writes_the_report(c_component: Path, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "edgenode", "bench", "function", str(c_component),
                          "--path", "/fn/c/echo", "--method", "POST", "--body", "x" * 1024,
                          "--iterations", "20", "--compile", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 0, out.stderr
    assert "# function cost: hello-c.wasm" in out.stdout and "POST /fn/c/echo (1024 body bytes)" in out.stdout
    (written,) = tmp_path.glob("function-hello-c-*.json")
    result = json.loads(written.read_text())
    cold = result["cold_start_ms"]
    assert cold["compile"] > 0 and cold["load"] > 0 and cold["first_instance"] > 0
    assert set(result["modes"]) == {"fresh", "fresh, prewarmed", "reuse"}
    for mode, r in result["modes"].items():
        assert r["n"] == 20 and r["statuses"] == [200], (mode, r)
        assert 0 < r["host_p50_us"] <= r["total_p50_us"]
    assert result["modes"]["reuse"]["instances"] == 1
    assert result["modes"]["fresh"]["instances"] >= 20


async def test_bench_function_refuses_bad_input(c_component: Path) -> None:
    with pytest.raises(ConfigError, match="--iterations: must be at least 1"):
        await measure_function(c_component, iterations=0)
    out = subprocess.run([sys.executable, "-m", "edgenode", "bench", "function", str(c_component),
                          "--config", "[1]"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 2 and "--config: expected a JSON object of stage options" in out.stderr
