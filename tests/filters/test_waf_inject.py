"""The WAF's libinjection shortcuts (filters/waf/inject.c) never change a verdict.

@detectSQLi and @detectXSS skip libinjection for values it would call benign anyway (one
SQL token; no `<` or `=`).  tests/filters/waf_inject_check.c builds natively against the
same libinjection sources the filter links and compares the shortcuts with libinjection
on a million generated values, many of them at the edges of the shortcuts' domain.
"""

from __future__ import annotations

from pathlib import Path

from tests.filters.conftest import run_inject_check
from tests.filters.test_waf import DENY, send, waf_wasm  # noqa: F401  (fixture)

CHECK = Path(__file__).with_name("waf_inject_check.c")


def test_shortcuts_agree_with_libinjection(waf_wasm, tmp_path: Path) -> None:
    counts = run_inject_check(CHECK, tmp_path / "inject_check", "1000000", "12")
    assert counts["mismatches"] == 0
    # the generated values reach both shortcuts often (otherwise the check proves little)
    assert counts["sqli_short"] > 300_000 and counts["xss_short"] > 300_000


async def test_detect_operators_through_the_filter(waf_wasm) -> None:
    sqli = f'SecRule ARGS "@detectSQLi" "{DENY}"'
    xss = f'SecRule ARGS "@detectXSS" "{DENY}"'
    resp, _ = await send(waf_wasm, sqli, target="/?a=json.items.array_0.id&b=12345")
    assert resp.status == 200
    resp, _ = await send(waf_wasm, sqli, target="/?a=12345&b=1%20union%20select.1%20from%20users")
    assert resp.status == 403
    resp, _ = await send(waf_wasm, xss, target="/?a=x%20onerror%20alert(1)")
    assert resp.status == 200
    resp, _ = await send(waf_wasm, xss, target="/?a=x%20onerror%3Dalert(1)")
    assert resp.status == 403
