"""The WAF's linear-time first pass (filters/waf/firstpass.c, rxset/) never hides a match.

@rx patterns are translated to Rust `regex` syntax and scanned per source of request
values, joined by newlines, before PCRE2 runs.  The translation widens what a DFA
cannot express (lookarounds, backreferences, atomic groups, possessive quantifiers),
moves anchors to line boundaries and scans values before a final t:lowercase with the
pattern caseless.  Each case below is a rule whose PCRE2 verdict depends on one of those
constructs: it must block exactly when PCRE2 matches, through the real Wasm filter.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from tests.filters.conftest import make_stage, origin_ok, run_stage
from tests.filters.test_waf import DENY, FORM, make_request, send, waf_wasm  # noqa: F401  (fixture)

B64 = base64.b64encode(b"attack").decode()
# (case, pattern and transformations, request, blocked?)
CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("lookahead holds", '"@rx foo(?=bar)" "{d}"', {"target": "/?q=foobar"}, True),
    ("lookahead fails", '"@rx foo(?=bar)" "{d}"', {"target": "/?q=foobaz"}, False),
    ("negative lookbehind", '"@rx (?<!x)b" "{d}"', {"target": "/?q=xb"}, False),
    ("lookbehind", '"@rx (?<=a)b" "{d}"', {"target": "/?q=ab"}, True),
    ("backreference", '"@rx (\\w)\\1" "{d}"', {"target": "/?q=xaay"}, True),
    ("backreference no repeat", '"@rx (\\w)\\1" "{d}"', {"target": "/?q=xayb"}, False),
    ("atomic group", '"@rx (?>a+)b" "{d}"', {"target": "/?q=aab"}, True),
    ("atomic group gives nothing back", '"@rx (?>a+)ab" "{d}"', {"target": "/?q=aab"}, False),
    ("possessive", '"@rx a++b" "{d}"', {"target": "/?q=aab"}, True),
    ("multiline anchors", '"@rx ^admin$" "{d}"', {"target": "/?q=x%0aadmin%0ay"}, True),
    ("start of subject", '"@rx \\Afoo" "{d}"', {"target": "/?q=x%0afoo"}, False),
    ("end of subject", '"@rx foo\\z" "{d}"', {"target": "/?q=xfoo"}, True),
    ("escapes \\h and \\R", '"@rx a\\hb\\Rc" "{d}"', {"target": "/?q=a%09b%0d%0ac"}, True),
    ("escaped slash and hex", '"@rx \\/etc\\/\\x70asswd" "{d}"', {"target": "/?q=..%2fetc%2fpasswd"}, True),
    ("class with escapes", '"@rx [\\x00-\\x08\\-]{{2}}" "{d}"', {"target": "/?q=a--b"}, True),
    ("t:lowercase scanned caseless", '"@rx ^abc$" "{d},t:none,t:lowercase"', {"target": "/?q=ABC"}, True),
    ("t:lowercase still lowercases", '"@rx ^ABC$" "{d},t:none,t:lowercase"', {"target": "/?q=ABC"}, False),
    ("(?-i) under t:lowercase", '"@rx (?i)a(?-i)b" "{d},t:none,t:lowercase"', {"target": "/?q=AB"}, True),
    ("multiMatch sees each step", f'"@rx ^attack$" "{{d}},t:none,t:base64Decode,multiMatch"',
     {"target": f"/?q={B64}"}, True),
    ("recursion runs on PCRE2", '"@rx ^(\\((?1)*\\))$" "{d}"', {"target": "/?q=(())"}, True),
    ("conditional runs on PCRE2", '"@rx ^(a)?(?(1)b|c)$" "{d}"', {"target": "/?q=c"}, True),
    ("no match across two values", '"@rx a.b" "{d}"', {"target": "/?q=xa&r=by"}, False),
    ("pm across two values", '"@pm evil" "{d}"', {"target": "/?q=ev&r=il"}, False),
    ("pm in one value", '"@pm evil" "{d}"', {"target": "/?q=ev&r=xEViLx"}, True),
]


@pytest.mark.parametrize("rule,req,blocked", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_first_pass_keeps_pcre2_verdicts(waf_wasm, rule: str, req: dict[str, Any], blocked: bool) -> None:
    resp, seen = await send(waf_wasm, "SecRule ARGS " + rule.format(d=DENY), **req)
    assert resp.status == (403 if blocked else 200), resp.body
    assert (seen == []) == blocked


async def test_rules_sharing_a_set_report_their_own_matches(waf_wasm) -> None:
    """Twenty rules of one chain land in one set; only those whose pattern matches fire."""
    words = [f"word{i:02d}x" for i in range(20)]
    rules = "\n".join(f'SecRule ARGS "@rx \\b{w}\\b" "id:{100 + i},phase:2,pass,log,msg:\'{w}\'"'
                      for i, w in enumerate(words))
    stage = make_stage(waf_wasm, {"directives": "SecRuleEngine DetectionOnly\n" + rules}, name="waf-set")
    terminal, _ = origin_ok()
    resp, _ = await run_stage([stage], make_request("/?a=word03x&b=xx+word17x+yy"), terminal)
    assert resp.headers["x-waf-rules"].split(",") == ["103", "117"]
    await stage.close()


async def test_large_json_body_finds_the_one_bad_value(waf_wasm) -> None:
    items = [{"id": i, "text": f"an ordinary product description number {i}"} for i in range(400)]
    items[-1]["text"] = "x' union select password from users --"
    body = json.dumps({"items": items}).encode()
    rules = ('SecRule REQUEST_HEADERS:Content-Type "@beginsWith application/json" '
             '"id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"\n'
             f'SecRule ARGS "@rx (?i)union\\s+select" "{DENY},t:none,t:urlDecodeUni"')
    resp, seen = await send(waf_wasm, rules, method="POST", headers={"Content-Type": "application/json"}, body=body)
    assert resp.status == 403 and seen == []
    items[-1]["text"] = "nothing to see"
    body = json.dumps({"items": items}).encode()
    resp, seen = await send(waf_wasm, rules, method="POST", headers={"Content-Type": "application/json"}, body=body)
    assert resp.status == 200 and len(seen) == 1


def products(n: int) -> list[dict[str, Any]]:
    """A large JSON body's items: ordinary text, the digits of each index in it."""
    return [{"id": i, "text": f"an ordinary product description number {i}"} for i in range(n)]


async def json_rules_fired(stage, body: dict[str, Any]) -> list[str]:  # type: ignore[no-untyped-def]
    """The rule ids a detect-only WAF stage reports for ``body`` POSTed as JSON."""
    terminal, _ = origin_ok()
    req = make_request("/api", method="POST", headers={"Content-Type": "application/json"},
                       body=json.dumps(body).encode())
    resp, _ = await run_stage([stage], req, terminal)
    return [r for r in resp.headers.get("x-waf-rules", "").split(",") if r]


async def test_large_input_union_keeps_each_sets_matches(waf_wasm) -> None:
    """Sets without literals of one block, on different chains, also share a union scanned
    first over large inputs: where it matches, each set still reports its own rules."""
    rules = "\n".join([
        'SecRule REQUEST_HEADERS:Content-Type "@beginsWith application/json" '
        '"id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"',
        'SecRule ARGS "@rx \\d{3}-\\d{4}" "id:301,phase:2,pass,log,t:none"',
        'SecRule ARGS "@rx ^[qz]{6}$" "id:302,phase:2,pass,log,t:none,t:urlDecodeUni"',
        'SecRule ARGS "@rx ^[qz]{6}$" "id:303,phase:2,pass,log,t:none,t:lowercase"',
    ])
    stage = make_stage(waf_wasm, {"directives": "SecRuleEngine DetectionOnly\n" + rules}, name="waf-union")
    items = products(400)
    assert await json_rules_fired(stage, {"items": items}) == []
    items[7]["text"] = "call 555-1234"
    items[300]["text"] = "QZQZQZ"
    assert await json_rules_fired(stage, {"items": items}) == ["301", "303"]
    await stage.close()


async def test_unions_over_shapes_keep_digit_specific_matches(waf_wasm) -> None:
    """A union is asked about a large JSON body's argument names and values with their digits
    written as 0, each such shape once, by its patterns with their digits folded: a rule that
    asks for particular digits still matches exactly the values holding them."""
    rules = "\n".join([
        'SecRule REQUEST_HEADERS:Content-Type "@beginsWith application/json" '
        '"id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"',
        'SecRule ARGS "@rx [a-z]{6} 3[0-9]7\\b" "id:401,phase:2,pass,log,t:none"',
        'SecRule ARGS "@rx [a-z]{6} 4[0-9]7\\b" "id:402,phase:2,pass,log,t:none"',
        'SecRule ARGS_NAMES "@rx _3[0-9]9\\.text$" "id:403,phase:2,pass,log,t:none"',
        'SecRule ARGS_NAMES "@rx _4[0-9]9\\.text$" "id:404,phase:2,pass,log,t:none"',
        'SecRule ARGS "@rx ^[qz]{6}$" "id:405,phase:2,pass,log,t:none,t:urlDecodeUni"',
    ])
    stage = make_stage(waf_wasm, {"directives": "SecRuleEngine DetectionOnly\n" + rules}, name="waf-shapes")
    assert await json_rules_fired(stage, {"items": products(300)}) == []
    assert await json_rules_fired(stage, {"items": products(400)}) == ["401", "403"]
    assert await json_rules_fired(stage, {"items": products(500)}) == ["401", "402", "403", "404"]
    await stage.close()


async def test_configure_reports_compile_and_warm_up(waf_wasm, caplog) -> None:
    caplog.set_level(logging.INFO)
    stage = make_stage(waf_wasm, {"directives": f'SecRule ARGS "@rx abc" "{DENY}"'}, name="waf-warm")
    await stage.close()
    assert any("rules compiled in" in r.getMessage() and "warmed up in" in r.getMessage() for r in caplog.records)
    resp, _ = await send(waf_wasm, f'SecRule ARGS "@rx abc" "{DENY}"', target="/?q=xabcx", method="POST",
                         headers=FORM, body=b"z=1")
    assert resp.status == 403


# Repeated values are scanned once and a pure operator's miss is remembered, yet every value
# still counts on its own: exclusions, setvar per value, a later equal value after an excluded one.
COUNT = 'SecRule TX:n "@eq {n}" "id:9,phase:2,deny,log,msg:\'count\'"'
REPEATS: list[tuple[str, str, str, bool]] = [
    ("equal value after an excluded one", f'SecRule ARGS|!ARGS:a "@detectSQLi" "{DENY}"',
     "/?a=1'+or+'1'='1&b=1'+or+'1'='1", True),
    ("excluded value alone", f'SecRule ARGS|!ARGS:a "@detectSQLi" "{DENY}"', "/?a=1'+or+'1'='1&b=hello", False),
    ("repeated miss, then a hit", f'SecRule ARGS "@detectSQLi" "{DENY}"', "/?a=hello&b=hello&c=1'+or+'1'='1", True),
    ("repeated miss only", f'SecRule ARGS "@detectXSS" "{DENY}"', "/?a=hello&b=hello&c=hello", False),
    ("regex after an excluded one", f'SecRule ARGS|!ARGS:a "@rx evil" "{DENY}"', "/?a=evil&b=evil", True),
    ("setvar per repeated regex match",
     'SecRule ARGS "@rx evil" "id:1,phase:2,pass,nolog,setvar:tx.n=+1"\n' + COUNT.format(n=3),
     "/?a=evil&b=evil&c=evil", True),
    ("multiMatch: repeated miss, then a hit", f'SecRule ARGS "@detectSQLi" "{DENY},t:urlDecodeUni,multiMatch"',
     "/?a=hello&b=hello&c=1%2527+or+%25271%2527=%25271", True),
    ("multiMatch: repeated miss only", f'SecRule ARGS "@detectXSS" "{DENY},t:urlDecodeUni,multiMatch"',
     "/?a=hello%2521&b=hello%2521", False),
    ("multiMatch: setvar per repeated match",
     'SecRule ARGS "@detectSQLi" "id:1,phase:2,pass,nolog,t:urlDecodeUni,multiMatch,setvar:tx.n=+1"\n'
     + COUNT.format(n=2), "/?a=1%2527+or+%25271%2527=%25271&b=1%2527+or+%25271%2527=%25271", True),
    ("setvar per repeated libinjection match",
     'SecRule ARGS "@detectSQLi" "id:1,phase:2,pass,nolog,setvar:tx.n=+1"\n' + COUNT.format(n=2),
     "/?a=1'+or+'1'='1&b=1'+or+'1'='1", True),
]


@pytest.mark.parametrize("rules,target,blocked", [c[1:] for c in REPEATS], ids=[c[0] for c in REPEATS])
async def test_repeated_values_each_count(waf_wasm, rules: str, target: str, blocked: bool) -> None:
    resp, seen = await send(waf_wasm, rules, target=target)
    assert resp.status == (403 if blocked else 200), resp.body
    assert (seen == []) == blocked


# A set scans only the headers its rules name; a rule on all headers in the same set sees them all.
HEADER_RULES = (f'SecRule REQUEST_HEADERS:X-Test "@rx evil" "{DENY}"\n'
                'SecRule ARGS "@rx other" "id:2,phase:2,pass,nolog"\n')


@pytest.mark.parametrize("rules,headers,blocked", [
    (HEADER_RULES, {"X-Test": "an evil value"}, True),
    (HEADER_RULES, {"X-Other": "an evil value"}, False),
    (HEADER_RULES + 'SecRule REQUEST_HEADERS "@rx nasty" "id:3,phase:2,deny"', {"X-Other": "nasty"}, True),
    (HEADER_RULES + 'SecRule REQUEST_HEADERS "@rx nasty" "id:3,phase:2,deny"', {"X-Other": "evil"}, False),
], ids=["named header", "other header", "all headers in the same set", "named rule ignores other headers"])
async def test_rules_naming_a_header_scan_that_header(waf_wasm, rules: str, headers: dict[str, str],
                                                     blocked: bool) -> None:
    resp, _ = await send(waf_wasm, rules, target="/?q=1", headers=headers)
    assert resp.status == (403 if blocked else 200), resp.body


# A chain is skipped for a source only when no value holds a byte its steps act on.
@pytest.mark.parametrize("rule,target,blocked", [
    ('"@rx <script" "{d},t:none,t:urlDecodeUni"', "/?a=plain&b=%253cscript", True),
    ('"@rx select" "{d},t:none,t:removeWhitespace"', "/?a=plain&b=sel+ect", True),
    ('"@rx unionselect" "{d},t:none,t:removeComments"', "/?a=plain&b=union/**/select", True),
    ('"@rx unionselect" "{d},t:none,t:replaceComments"', "/?a=plain&b=union/**/select", False),
    ('"@rx ^a b$" "{d},t:none,t:compressWhitespace"', "/?a=plain&b=a%20%09b", True),
    ('"@rx ^ab$" "{d},t:none,t:htmlEntityDecode,t:jsDecode"', "/?a=plain&b=%26%2397;\\x62", True),
    ('"@rx ^AB$" "{d},t:none,t:urlDecodeUni"', "/?a=plain&b=AB", True),
], ids=["urlDecodeUni", "removeWhitespace", "removeComments", "replaceComments keeps a space",
        "compressWhitespace", "entities then js escapes", "nothing to decode"])
async def test_chains_run_wherever_a_value_needs_them(waf_wasm, rule: str, target: str, blocked: bool) -> None:
    resp, _ = await send(waf_wasm, "SecRule ARGS " + rule.format(d=DENY), target=target)
    assert resp.status == (403 if blocked else 200), resp.body


# The literal pass: a set scans only input holding one of its members' required literals,
# looked for in the values after the set's chain, in any case, in every source it scans.
@pytest.mark.parametrize("rule,req,blocked", [
    ('ARGS "@rx (?i)union\\s+select" "{d},t:none,t:urlDecodeUni"', {"target": "/?a=plain&b=%2555NION%20%53elect"},
     True),
    ('ARGS "@rx union\\s+select" "{d},t:none,t:lowercase"', {"target": "/?a=UNION%20SELECT"}, True),
    ('ARGS "@rx union\\s+select" "{d}"', {"target": "/?a=UNION%20SELECT"}, False),
    ('REQUEST_HEADERS:X-Probe "@rx (?i)<script" "{d}"', {"headers": {"X-Probe": "x<SCRIPT>"}}, True),
    ('ARGS|REQUEST_HEADERS "@rx /etc/(?:passwd|shadow)" "{d}"', {"target": "/?a=1", "headers": {"X-P": "/etc/shadow"}},
     True),
    ('ARGS "@rx \\b(?:a(?:bs|cosh?)|sin)\\(" "{d}"', {"target": "/?q=ACOSH(1)"}, False),
    ('ARGS "@rx (?i)\\b(?:a(?:bs|cosh?)|sin)\\(" "{d}"', {"target": "/?q=ACOSH(1)"}, True),
    ('ARGS "@rx (?i)\\b(?:a(?:bs|cosh?)|sin)\\(" "{d}"', {"target": "/?q=cos(1)"}, False),
    ('ARGS "@rx foobar" "{d}"', {"target": "/?a=foo&b=bar"}, False),
], ids=["decoded", "caseless before t:lowercase", "case kept", "one header", "second source", "word list case",
        "word list", "word list miss", "not across values"])
async def test_literal_pass_finds_literals_where_the_set_scans(waf_wasm, rule: str, req: dict[str, Any],
                                                               blocked: bool) -> None:
    resp, _ = await send(waf_wasm, "SecRule " + rule.format(d=DENY), **req)
    assert resp.status == (403 if blocked else 200), resp.body


async def _detected(waf_wasm: Any, rules: str, target: str) -> list[str]:
    """The rule ids a detect-only WAF with ``rules`` reports for a GET of ``target``."""
    stage = make_stage(waf_wasm, {"directives": "SecRuleEngine DetectionOnly\n" + rules}, name="waf-detected")
    terminal, _ = origin_ok()
    resp, _ = await run_stage([stage], make_request(target), terminal)
    await stage.close()
    return resp.headers["x-waf-rules"].split(",")


async def test_rules_with_and_without_literals_in_one_chain(waf_wasm) -> None:
    """Patterns with literals, without, and matching ordinary values sit in separate sets of
    one chain: each still reports its own match."""
    rules = "\n".join([
        'SecRule ARGS "@rx (?i)<script" "id:201,phase:2,pass,log"',
        'SecRule ARGS "@rx [<>]{3}" "id:202,phase:2,pass,log"',
        'SecRule ARGS "@rx ^\\d+$" "id:203,phase:2,pass,log"',
        'SecRule ARGS "@rx (?i)onerror\\s*=" "id:204,phase:2,pass,log"',
    ])
    assert await _detected(waf_wasm, rules, "/?a=%3CScRipt%3E&b=%3C%3C%3C&c=42") == ["201", "202", "203"]


async def test_literal_pass_finds_literals_inside_and_across_other_literals(waf_wasm) -> None:
    """The literal pass's automaton (rxset/src/gate.rs) answers for every set whose literal
    occurs, also where it ends inside another literal ("union5" after "xunion") or starts
    in a partial one ("bcxy" inside "abcxy", past "abcd"'s prefix): four chains, four sets."""
    rules = "\n".join([
        'SecRule ARGS "@rx xunion" "id:301,phase:2,pass,log,t:none"',
        'SecRule ARGS "@rx union[0-9]" "id:302,phase:2,pass,log,t:none,t:urlDecodeUni"',
        'SecRule ARGS "@rx abcd" "id:303,phase:2,pass,log,t:none,t:removeNulls"',
        'SecRule ARGS "@rx bcxy" "id:304,phase:2,pass,log,t:none,t:trim"',
    ])
    assert await _detected(waf_wasm, rules, "/?a=xunion5&b=ABCXY&c=abcxy") == ["301", "302", "304"]


def _large_form(extra: str) -> bytes:
    """A form body whose distinct values and names are ~9 KB (the first pass's large inputs)."""
    return ("&".join(f"field{i}=some+ordinary+text+number+{i}" for i in range(240)) + "&" + extra).encode()


# Two blocks (a marker between them) of patterns without literals, one with a literal: on a
# large body the union of the phase screens ARGS_POST's values and names apart, and a gated
# set scans only the part holding its literal.  A match in either part still blocks.
LARGE_RULES = "\n".join([
    'SecRule ARGS|ARGS_NAMES "@rx ^[0-9]{3}x$" "id:301,phase:2,deny,status:403"',
    'SecMarker "BETWEEN"',
    'SecRule ARGS|ARGS_NAMES "@rx ^q[a-z]{2}z$" "id:302,phase:2,deny,status:403"',
    'SecRule ARGS|ARGS_NAMES "@rx evil[0-9]+done" "id:303,phase:2,deny,status:403"',
])


@pytest.mark.parametrize("extra,blocked", [
    ("tail=123x", True), ("qabz=1", True), ("tail=qabz", True), ("evil42done=1", True), ("a=evil42done", True),
    ("tail=123y", False), ("evil=done", False),
], ids=["value, first block", "name, second block", "value, second block", "literal in a name",
        "literal in a value", "benign", "literal parts apart"])
async def test_large_inputs_screened_per_source(waf_wasm, extra: str, blocked: bool) -> None:
    resp, _ = await send(waf_wasm, LARGE_RULES, method="POST", target="/f", headers=FORM, body=_large_form(extra))
    assert resp.status == (403 if blocked else 200), resp.body
