"""One request id everywhere, through the default chain: the X-Request-Id the origin and
the filters see, the response header, the access log line and the filters' log lines;
a compact text access line under the original target; a WARN when an origin fails."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict

from edgenode.node import Node
from edgenode.observe.logs import RequestIdFormatter

ATTACK = "/obj/a?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"


async def _get(node: Node, path: str, **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}{path}", headers=headers) as r:
            return r.status, r.headers.copy(), await r.read()


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_one_id_in_header_origin_and_access_log(make_node, tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    node = await make_node(access=str(log), format="json")
    _, h_given, echoed = await _get(node, "/echo/given", **{"X-Request-Id": "lb-7f3a:42"})
    _, h_bad, _ = await _get(node, "/echo/bad", **{"X-Request-Id": "has space <and> junk"})
    _, h_none, echoed_none = await _get(node, "/echo/none")
    await node.stop(1.0)
    recs = _records(log)
    assert h_given["X-Request-Id"] == "lb-7f3a:42"  # a valid incoming id is kept
    assert json.loads(echoed)["headers"]["x-request-id"] == "lb-7f3a:42"  # and forwarded
    assert h_bad["X-Request-Id"] != "has space <and> junk"  # an invalid one is replaced
    generated = h_none["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", generated)
    assert json.loads(echoed_none)["headers"]["x-request-id"] == generated
    assert [r["request_id"] for r in recs] == ["lb-7f3a:42", h_bad["X-Request-Id"], generated]


async def test_hits_get_their_own_id(node: Node) -> None:
    ids = set()
    for _ in range(3):
        status, headers, _ = await _get(node, "/obj/rid-hit?size=1k")
        assert status == 200
        ids.add(headers["X-Request-Id"])
    assert len(ids) == 3


async def test_filter_log_lines_carry_the_request_id(node: Node) -> None:
    """The WAF's own log line and the host's formatter name the id the client got back."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(RequestIdFormatter("%(name)s: %(message)s"))
    waf_log = logging.getLogger("edgenode.filter.waf")
    waf_log.addHandler(handler)
    try:
        status, headers, _ = await _get(node, ATTACK)
    finally:
        waf_log.removeHandler(handler)
    assert status == 403
    rid = headers["X-Request-Id"]
    lines = [line for line in out.getvalue().splitlines() if line.startswith("edgenode.filter.waf:")]
    assert lines and all(line.endswith(f" rid={rid}") for line in lines)
    assert any(f'"request_id":"{rid}"' in line for line in lines)  # the WAF's own audit record


async def test_compact_text_line_with_the_original_image_path(make_node, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    node = await make_node(access=str(log), format="text")
    status, headers, _ = await _get(node, "/img/w=120,f=png/image/logged.jpg")
    assert status == 200 and headers["Content-Type"] == "image/png"
    await _get(node, "/obj/plain-line?size=2k", **{"User-Agent": "x" * 300, "Referer": "y" * 300})
    await node.stop(1.0)
    lines = log.read_text().splitlines()
    image = lines[0].split(" ")
    assert image[2:8] == ["GET", "/img/w=120,f=png/image/logged.jpg", "200", image[5], "MISS", image[7]]
    assert image[-1] == headers["X-Request-Id"]
    assert all(len(line) < 200 for line in lines), lines


async def test_json_line_has_the_details_and_the_upstream_target(make_node, tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    node = await make_node(access=str(log), format="json")
    await _get(node, "/img/w=64/image/detail.jpg", **{"User-Agent": "agent/1"})
    await node.stop(1.0)
    rec = _records(log)[0]
    assert rec["target"] == "/img/w=64/image/detail.jpg"
    assert rec["url"] == f"http://127.0.0.1:{node.port}/img/w=64/image/detail.jpg"
    assert rec["upstream_target"] == "/image/detail.jpg"
    assert rec["user_agent"] == "agent/1" and rec["filters"] and rec["origin"] == "default"


async def test_failing_origin_is_warned_once_per_interval(config_for,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    cfg = config_for("http://127.0.0.1:9")  # nothing listens there
    node = Node(cfg)
    await node.start()
    try:
        with caplog.at_level(logging.WARNING, logger="edgenode.origin"):
            for i in range(5):
                status, _, body = await _get(node, f"/obj/down{i}")
                assert status == 502 and b"cannot connect" in body
        warns = [r.getMessage() for r in caplog.records if r.name == "edgenode.origin"]
        assert len(warns) == 1 and warns[0].startswith("origin 'default' is failing: connect_error: ")
        text = node.metrics.exposition().decode()
        assert 'edgenode_origin_errors_total{kind="connect_error",origin="default"} 5.0' in text
    finally:
        await node.stop(1.0)
