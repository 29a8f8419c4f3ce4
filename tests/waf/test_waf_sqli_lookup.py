"""@detectSQLi's keyword lookups answered from kept answers (filters/waf/inject.c,
sqli_detect) give libinjection_sqli's verdicts and fingerprints.

tests/waf/waf_sqli_lookup_check.c builds natively against the same libinjection sources the
filter links and compares sqli_detect with libinjection_sqli on generated SQL-ish values
(keywords in every case, barewords, numbers, quotes, comments, operators), many of them
injections, with far more distinct words than the kept answers hold.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.filters.conftest import FILTERS, build_filter  # noqa: F401  (fixture)

LIBINJ = FILTERS / "build" / "deps" / "libinjection-python-1.1.6" / "libinjection" / "src"
CHECK = Path(__file__).with_name("waf_sqli_lookup_check.c")


def test_kept_keyword_answers_agree_with_libinjection(build_filter, tmp_path: Path) -> None:  # noqa: F811
    build_filter("waf")   # fetches libinjection's sources into filters/build/deps
    exe = tmp_path / "sqli_lookup_check"
    sources = [CHECK, FILTERS / "waf" / "inject.c",
               *(LIBINJ / f"libinjection_{m}.c" for m in ("sqli", "xss", "html5"))]
    build = subprocess.run([sys.executable, "-m", "ziglang", "cc", "-O2", "-w", f"-I{LIBINJ}",
                            f"-I{FILTERS / 'waf'}", "-o", str(exe), *map(str, sources)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), "300000", "29"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[:2000]
    fields = run.stdout.split()
    counts = dict(zip(fields[::2], map(int, fields[1::2])))
    assert counts["checked"] == 300_000 and counts["mismatches"] == 0
    # injections are common among the values (otherwise the fingerprints prove little)
    assert counts["sqli"] > 5_000
