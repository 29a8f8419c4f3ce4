"""The OWASP Core Rule Set, unchanged, in the WAF filter.

* CRS v4 from ../shared/crs through a running node built from
  benchmarks/configs/waf-crs.toml, on a fixed sample of the CRS-derived corpus:
  the node blocks exactly what libmodsecurity + CRS blocked (the corpus's
  reference verdicts).  The full corpus is scored by benchmarks/bench_waf.py.
* Debian's modsecurity-crs (CRS 3.3, installed by `make system`) loads unchanged,
  response-side files included, and blocks a classic attack.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from edgenode.config import load_config, with_overrides
from edgenode.node import Node
from tests.filters.conftest import ROOT, make_stage, origin_ok, run_stage
from tests.filters.test_waf import make_request

CORPUS = ROOT.parent / "shared" / "waf-corpus" / "crs-dev-v2.jsonl"
CRS_CONFIG = ROOT / "benchmarks" / "configs" / "waf-crs.toml"
DEBIAN_RULES = Path("/usr/share/modsecurity-crs/rules")
DEBIAN_SETUP = Path("/etc/modsecurity/crs")
SAMPLE_EVERY = 15      # ~150 of the 2241 lines: every family, both verdicts


def sample() -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in CORPUS.read_text(encoding="utf-8").splitlines() if x.strip()]
    return lines[::SAMPLE_EVERY]


def raw_request(rec: dict[str, Any]) -> bytes:
    """The request exactly as the corpus gives it (as shared/waf-corpus/score.py sends it)."""
    head = f"{rec['method']} {rec['uri']} {rec.get('version') or 'HTTP/1.1'}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in rec["headers"]) + "\r\n"
    return (head.encode("utf-8", "surrogateescape")
            + (rec["body"].encode("utf-8", "surrogateescape") if rec.get("body") else b""))


def status_of(port: int, payload: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return int(buf.split(b" ", 2)[1])


@pytest.fixture
async def crs_node(build_filter) -> AsyncIterator[int]:
    build_filter("waf")
    # the WAF answers or forwards: a closed origin port (502) is fine for verdicts
    cfg = with_overrides(load_config(str(CRS_CONFIG)), listen="127.0.0.1:0", origin="http://127.0.0.1:9",
                         admin_listen="off")
    node = Node(cfg, admin=False)
    await node.start("127.0.0.1", 0)
    try:
        yield node.port
    finally:
        await node.stop(1.0)


async def test_crs_v4_blocks_what_libmodsecurity_blocks(crs_node: int) -> None:
    import asyncio

    lines = sample()
    statuses = await asyncio.gather(*(asyncio.to_thread(status_of, crs_node, raw_request(r)) for r in lines))
    disagree = [(r["id"], s, r["crs"]["pl1"]) for r, s in zip(lines, statuses)
                if s != 400 and (s == 403) != r["crs"]["pl1"]]
    assert sum(r["crs"]["pl1"] for r in lines) > 50           # the sample has both verdicts
    assert disagree == []
    assert sum(s == 400 for s in statuses) <= 1               # rejected by the HTTP front end


async def test_debian_crs_3_loads_unchanged_and_blocks(build_filter) -> None:
    assert DEBIAN_RULES.is_dir() and DEBIAN_SETUP.is_dir(), "modsecurity-crs is in the Makefile's DEB_PACKAGES"
    wasm = build_filter("waf")
    directives = ["Include base/base.conf", "Include setup/crs-setup.conf", "Include crs/*.conf"]
    stage = make_stage(wasm, {"directives": directives}, name="waf-debian",
                       files={"base": str(ROOT / "filters" / "waf" / "rules"), "setup": str(DEBIAN_SETUP),
                              "crs": str(DEBIAN_RULES)},
                       cpu_deadline_ms=10000, memory_limit="512MiB")
    terminal, seen = origin_ok()
    resp, _ = await run_stage([stage], make_request("/?id=1%27%20union%20select%20password%20from%20users--"),
                              terminal)
    assert resp.status == 403 and seen == []
    resp, _ = await run_stage([stage], make_request("/shop?cat=shoes", headers={"Accept": "text/html"}), terminal)
    assert resp.status == 200
    await stage.close()
