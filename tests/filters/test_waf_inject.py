"""The WAF's libinjection shortcuts (filters/waf/inject.c) never change a verdict.

@detectSQLi and @detectXSS skip libinjection for values it would call benign anyway (one
SQL token; no `<` or `=`).  tests/filters/waf_inject_check.c builds natively against the
same libinjection sources the filter links and compares the shortcuts with libinjection
on a million generated values, many of them at the edges of the shortcuts' domain.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.filters.conftest import FILTERS
from tests.filters.test_waf import DENY, send, waf_wasm  # noqa: F401  (fixture)

LIBINJ = FILTERS / "build" / "deps" / "libinjection-python-1.1.6" / "libinjection" / "src"
CHECK = Path(__file__).with_name("waf_inject_check.c")


def test_shortcuts_agree_with_libinjection(waf_wasm, tmp_path: Path) -> None:
    exe = tmp_path / "inject_check"
    sources = [CHECK, FILTERS / "waf" / "inject.c",
               *(LIBINJ / f"libinjection_{m}.c" for m in ("sqli", "xss", "html5"))]
    build = subprocess.run([sys.executable, "-m", "ziglang", "cc", "-O2", "-w", f"-I{LIBINJ}",
                            f"-I{FILTERS / 'waf'}", "-o", str(exe), *map(str, sources)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), "1000000", "12"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[:2000]
    fields = run.stdout.split()
    counts = dict(zip(fields[::2], map(int, fields[1::2])))
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
