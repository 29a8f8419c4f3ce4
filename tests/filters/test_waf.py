"""The WAF filter (filters/waf) through the real Proxy-Wasm host (WasmStage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgenode.http.messages import CIMultiDict, Request
from edgenode.wasm.engine import FilterLoadError
from tests.filters.conftest import ROOT, make_stage, origin_ok, request, run_stage

CORPUS = ROOT.parent / "shared" / "waf-corpus" / "crs-dev.jsonl"


@pytest.fixture(scope="module")
def waf_wasm(build_filter) -> Path:
    return build_filter("waf")


def post(target: str, ctype: str, body: bytes) -> Request:
    h = CIMultiDict({"Host": "example.com", "Content-Type": ctype, "Content-Length": str(len(body))})
    return Request("POST", target, h, body)


async def test_attack_gets_403_with_request_id_and_never_reaches_origin(waf_wasm) -> None:
    stage = make_stage(waf_wasm, {}, name="waf")
    terminal, seen = origin_ok()
    resp, _ = await run_stage([stage], request("/item?id=1%27%20or%20%271%27%3D%271", {"x-request-id": "req-42"}),
                              terminal)
    assert resp.status == 403
    assert b"req-42" in resp.body
    assert resp.headers.get("cache-control") == "no-store"
    assert seen == []


async def test_benign_request_passes_untouched(waf_wasm) -> None:
    stage = make_stage(waf_wasm, {}, name="waf")
    terminal, seen = origin_ok()
    resp, _ = await run_stage([stage], request("/shop?cat=shoes&q=red+boots"), terminal)
    assert resp.status == 200 and resp.body == b"origin"
    assert len(seen) == 1
    assert "x-waf-score" not in resp.headers


async def test_detect_mode_passes_and_tags_the_response(waf_wasm) -> None:
    stage = make_stage(waf_wasm, {"mode": "detect"}, name="waf")
    terminal, seen = origin_ok()
    resp, _ = await run_stage([stage], request("/?q=%3Cscript%3Ealert(1)%3C/script%3E"), terminal)
    assert resp.status == 200 and len(seen) == 1
    assert int(resp.headers["x-waf-score"]) >= 5
    assert "941110" in resp.headers["x-waf-rules"].split(",")


async def test_disabled_rule_and_disabled_path(waf_wasm) -> None:
    attack = "/?q=%3Cscript%3Ex%3C/script%3E"        # only the tag rule (941110) matches
    terminal, seen = origin_ok()
    stage = make_stage(waf_wasm, {"disabled_rules": [941110]}, name="waf")
    assert (await run_stage([stage], request(attack), terminal))[0].status == 200
    stage = make_stage(waf_wasm, {"disabled_paths": [{"prefix": "/cms/", "rules": "all"},
                                                     {"prefix": "/blog/", "rules": [941110]}]}, name="waf")
    assert (await run_stage([stage], request("/cms" + attack[1:].replace("?", "/?", 1)), terminal))[0].status == 200
    assert (await run_stage([stage], request("/blog/" + attack[1:]), terminal))[0].status == 200
    assert (await run_stage([stage], request("/shop/" + attack[1:]), terminal))[0].status == 403
    assert len(seen) == 3


@pytest.mark.parametrize("ctype,body", [
    ("application/x-www-form-urlencoded", b"name=x&comment=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
    ("application/json", b'{"user": {"bio": "<svg onload=alert(1)>"}}'),
    ("multipart/form-data; boundary=B0",
     b"--B0\r\nContent-Disposition: form-data; name=\"bio\"\r\n\r\n<svg onload=alert(1)>\r\n--B0--\r\n"),
])
async def test_body_inspection(waf_wasm, ctype: str, body: bytes) -> None:
    stage = make_stage(waf_wasm, {}, name="waf")
    terminal, seen = origin_ok()
    resp, _ = await run_stage([stage], post("/profile", ctype, body), terminal)
    assert resp.status == 403 and seen == []
    clean = body.replace(b"<svg onload=alert(1)>", b"hello").replace(
        b"%3Cscript%3Ealert(1)%3C%2Fscript%3E", b"hello")
    resp, _ = await run_stage([stage], post("/profile", ctype, clean), terminal)
    assert resp.status == 200 and len(seen) == 1 and seen[0].request.body == clean


async def test_body_beyond_max_body_bytes_is_not_inspected(waf_wasm) -> None:
    stage = make_stage(waf_wasm, {"max_body_bytes": 64}, name="waf")
    terminal, seen = origin_ok()
    body = b"a=" + b"x" * 100 + b"&b=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    resp, _ = await run_stage([stage], post("/f", "application/x-www-form-urlencoded", body), terminal)
    assert resp.status == 200 and seen[0].request.body == body


@pytest.mark.parametrize("config,needle", [
    ({"paranoia": 5}, "paranoia"), ({"mode": "log"}, "mode"), ({"threshold": "5"}, "threshold"),
    ({"disabled_rules": ["x"]}, "disabled_rules"), ({"disabled_paths": [{"rules": "all"}]}, "disabled_paths"),
    ({"tresh": 1}, "tresh"),
])
def test_bad_config_is_rejected_naming_the_key(waf_wasm, config, needle, caplog) -> None:
    with pytest.raises(FilterLoadError):
        make_stage(waf_wasm, config, name="waf")
    assert any(f"waf config: {needle}" in r.getMessage() for r in caplog.records)


def _corpus() -> list[dict]:
    if not CORPUS.exists():
        pytest.fail(f"WAF corpus missing: {CORPUS}")
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


async def test_corpus_paranoia_1_through_the_wasm_filter(waf_wasm) -> None:
    """The issue's target at default settings: >= 90% of the paranoia-1 attacks blocked and
    <= 5% of the paranoia-1 benign near-misses blocked."""
    stage = make_stage(waf_wasm, {}, name="waf")
    terminal, _ = origin_ok()
    attacks = detected = benign = flagged = 0
    for case in _corpus():
        if case["paranoia"] != 1:
            continue
        h = CIMultiDict()
        for k, v in case["headers"]:
            h.add(k, v)
        body = (case["body"] or "").encode("utf-8", "surrogateescape")
        if body:
            h["Content-Length"] = str(len(body))
        resp, _ = await run_stage([stage], Request(case["method"], case["uri"], h, body), terminal)
        blocked = resp.status == 403
        if case["label"] == "attack":
            attacks += 1
            detected += blocked
        else:
            benign += 1
            flagged += blocked
    assert detected / attacks >= 0.90, (detected, attacks)
    assert flagged / benign <= 0.05, (flagged, benign)
