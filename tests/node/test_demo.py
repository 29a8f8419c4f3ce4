"""``edgenode demo`` end to end: the edge mix through the default chain, as a process.

One run (module-scoped, 600 seeded requests) is shared by the assertions; the mix
itself is checked without sockets in test_demo_mix.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """stdout of ``python -m edgenode demo --requests 600``, run outside the repo."""
    cwd = tmp_path_factory.mktemp("demo-cwd")
    out = subprocess.run([sys.executable, "-m", "edgenode", "demo", "--requests", "600"],
                         capture_output=True, text=True, timeout=120, cwd=cwd,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return out.stdout


def row(report: str, name: str) -> str:
    m = re.search(rf"^{re.escape(name)}\s{{2,}}(.+)$", report, re.M)
    assert m, f"no {name!r} row in:\n{report}"
    return m.group(1)


def test_every_request_answered_without_server_errors(demo: str) -> None:
    assert row(demo, "requests") == "600"
    assert row(demo, "errors") == "none"
    statuses = dict(part.split(": ") for part in row(demo, "status codes").split(", "))
    assert sum(map(int, statuses.values())) == 600
    assert not [code for code in statuses if code.startswith("5")], statuses
    assert set(statuses) == {"200", "403"}, statuses  # 403 only from the WAF
    assert row(demo, "server errors (5xx)") == "0"


def test_cache_hit_ratio_and_stored_objects(demo: str) -> None:
    ratio = float(row(demo, "hit ratio").rstrip("%"))
    assert 0 < ratio < 100
    m = re.fullmatch(r"(\d+) objects stored, ([\d,]+) bytes, (\d+) collapsed, \d+ evictions",
                     row(demo, "cache"))
    assert m and int(m.group(1)) > 0 and int(m.group(2).replace(",", "")) > 0
    hits, misses = map(int, row(demo, "cache hits / misses").split(" / "))
    saved = int(row(demo, "origin requests saved").split()[0])
    assert hits > 0 and saved >= hits  # blocked and locally answered requests never reach the origin


def test_waf_blocks_every_attack_sample_and_nothing_else(demo: str) -> None:
    mix = dict((k, int(v)) for k, v in (p.rsplit(" ", 1) for p in row(demo, "request mix").split(", ")))
    m = re.fullmatch(r"(\d+) \(client saw (\d+) 403s; (\d+) attack samples sent\)",
                     row(demo, "WAF blocks (403)"))
    assert m, row(demo, "WAF blocks (403)")
    blocked, seen, sent = map(int, m.groups())
    assert blocked > 0 and blocked == seen == sent == mix["attack"]
    families = row(demo, "WAF rule families")
    for family in ("sqli", "xss", "rce", "lfi"):
        assert re.search(rf"\b{family} [1-9]", families), families


def test_images_transformed_from_large_jpegs_per_accept(demo: str) -> None:
    m = re.match(r"(\d+) \(0 failed\), ([\d.]+) (MB|kB) -> ([\d.]+) (MB|kB)",
                 row(demo, "images transformed"))
    assert m, row(demo, "images transformed")
    assert int(m.group(1)) > 0
    size = {"MB": 1e6, "kB": 1e3}
    assert float(m.group(4)) * size[m.group(5)] < float(m.group(2)) * size[m.group(3)]
    assert re.fullmatch(r"2000x1500 JPEG x\d+", row(demo, "image sources"))
    auto = row(demo, "format=auto by Accept")
    assert re.search(r"avif: image/avif \d+", auto) and re.search(r"webp: image/webp \d+", auto)
    assert re.search(r"legacy: image/jpeg \d+", auto)
    assert "image/avif" not in auto.split("webp:")[1], auto  # only the avif browser gets AVIF


def test_function_routes_behind_the_cache(demo: str) -> None:
    mix = dict((k, int(v)) for k, v in (p.rsplit(" ", 1) for p in row(demo, "request mix").split(", ")))
    functions = row(demo, "functions")
    calls = {name: int(n) for name, n in re.findall(r"(hello-js|hello-py): (\d+) calls", functions)}
    assert set(calls) == {"hello-js", "hello-py"} and all(n > 0 for n in calls.values()), functions
    assert sum(calls.values()) <= mix["function"]  # cacheable answers come from the cache
    assert "0 failed" in functions and "cold start" in functions
    assert f"Of {mix['function']} requests to the edge functions' routes" in demo


def test_filter_timings_and_narrative(demo: str) -> None:
    table = demo[demo.index("filter p50 µs"):demo.index("what happened:")].splitlines()
    assert "request_headers" in table[0]
    rows = {line.split()[0]: line.split()[1:] for line in table[1:]}
    assert set(rows) == {"routing", "waf", "image-accept", "image"}
    assert int(rows["routing"][0]) == 600  # the first stage sees every request
    assert float(rows["waf"][1]) > 0
    story = demo[demo.index("what happened:"):].splitlines()[1:]
    assert 3 <= len(story) <= 5 and all(line.startswith("  - ") for line in story)
    assert "health checks" in demo and "WAF blocked" in demo
