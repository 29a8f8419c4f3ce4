"""``edgenode bench filter``: per-phase cost of one real (WAT-compiled) filter, no sockets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgenode.bench.filtercost import filter_cost_markdown, measure_filter
from edgenode.config import ConfigError

from tests.bench.test_runner import FILTER_WAT

REPO = Path(__file__).resolve().parents[2]

REJECTING_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
"""


@pytest.fixture
def wat(tmp_path: Path) -> Path:
    path = tmp_path / "hdr.wat"
    path.write_text(FILTER_WAT)
    return path


@pytest.mark.parametrize("isolation", ["shared", "per-request"])
async def test_phases_cold_start_and_memory(wat: Path, isolation: str) -> None:
    r = await measure_filter(wat, iterations=50, isolation=isolation)
    assert r["statuses"] == {"200": 50}
    phases = r["phases"]
    assert {"request_headers", "response_headers", "request_total"} <= set(phases)
    assert phases["request_total"]["p50_us"] > phases["request_headers"]["p50_us"]
    for name in ("request_headers", "response_headers"):
        st = phases[name]
        assert st["count"] == 50 and 0 < st["p50_us"] <= st["p99_us"]
    cold = r["cold_start_ms"]
    assert set(cold) == {"compile", "cached_deserialize", "instantiate", "on_vm_start", "on_configure"}
    assert cold["compile"] > 0 and cold["cached_deserialize"] > 0 and cold["instantiate"] > 0
    assert cold["on_vm_start"] > 0 and cold["on_configure"] > 0  # the module exports both
    assert r["memory"]["guest_linear_bytes"] == 2 * 65536  # (memory 2), never grown
    assert r["meta"]["isolation"] == isolation and r["meta"]["abi"] == "0.2.1"
    md = filter_cost_markdown(r)
    assert "| request_headers | 50 |" in md and "| compile |" in md


async def test_rejected_config_and_bad_iterations(tmp_path: Path, wat: Path) -> None:
    bad = tmp_path / "reject.wat"
    bad.write_text(REJECTING_WAT)
    with pytest.raises(ConfigError, match="proxy_on_configure rejected"):
        await measure_filter(bad, '{"x": 1}', iterations=5)
    with pytest.raises(ConfigError, match="--iterations"):
        await measure_filter(wat, iterations=0)


def test_cli_bench_filter(wat: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "edgenode", "bench", "filter", str(wat),
                           "--iterations", "20", "--config", '{"a": 1}', "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| response_headers | 20 |" in proc.stdout
    [written] = out.glob("filter-hdr-*.json")
    assert json.loads(written.read_text())["phases"]["request_headers"]["count"] == 20
    missing = subprocess.run([sys.executable, "-m", "edgenode", "bench", "filter", str(tmp_path / "no.wasm")],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr
