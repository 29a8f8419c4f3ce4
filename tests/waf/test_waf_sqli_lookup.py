"""@detectSQLi's keyword lookups answered from kept answers (filters/waf/inject.c,
sqli_detect) give libinjection_sqli's verdicts and fingerprints.

tests/waf/waf_sqli_lookup_check.c builds natively against the same libinjection sources the
filter links and compares sqli_detect with libinjection_sqli on generated SQL-ish values
(keywords in every case, barewords, numbers, quotes, comments, operators), many of them
injections, with far more distinct words than the kept answers hold.
"""

from __future__ import annotations

from pathlib import Path

from tests.filters.conftest import build_filter, run_inject_check  # noqa: F401  (fixture)

CHECK = Path(__file__).with_name("waf_sqli_lookup_check.c")


def test_kept_keyword_answers_agree_with_libinjection(build_filter, tmp_path: Path) -> None:  # noqa: F811
    build_filter("waf")   # fetches libinjection's sources into filters/build/deps
    counts = run_inject_check(CHECK, tmp_path / "sqli_lookup_check", "300000", "29")
    assert counts["checked"] == 300_000 and counts["mismatches"] == 0
    # injections are common among the values (otherwise the fingerprints prove little)
    assert counts["sqli"] > 5_000
