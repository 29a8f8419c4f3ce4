"""Regex sets whose members are all one class of bytes (921140/921190's `[\\n\\r]`), which the
engine does not scan but tells by the values' bytes: each rule still matches exactly the
values holding one of its bytes, on a collection, a header by name and the path, alone or
beside a rule the sets scan on the same values, through the real Wasm filter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.filters.conftest import build_filter, make_stage, origin_ok, run_stage  # noqa: F401
from edgenode.http.messages import CIMultiDict, Request

HEAD = 'SecRuleEngine On\nSecDefaultAction "phase:1,log,pass"\nSecDefaultAction "phase:2,log,pass"\n'

# the two CRS rules' shape: one set of class members only, under t:urlDecodeUni
CLASSES = ('SecRule REQUEST_HEADERS_NAMES|REQUEST_HEADERS|ARGS "@rx [\\n\\r]" '
           '"id:1,phase:1,deny,status:403,t:none,t:urlDecodeUni"\n'
           'SecRule REQUEST_FILENAME "@rx [\\n\\r]" "id:2,phase:1,deny,status:418,t:none,t:urlDecodeUni"\n'
           'SecRule REQUEST_HEADERS:X-One "@rx [<>]" "id:3,phase:1,deny,status:406,t:none,t:urlDecodeUni"\n')
# a class rule beside a rule with literals on the same values
MIXED = ('SecRule ARGS "@rx [\\n\\r]" "id:1,phase:1,deny,status:403,t:none"\n'
         'SecRule ARGS "@rx (?i)select\\s+\\w+\\s+from" "id:2,phase:1,deny,status:418,t:none"\n')


@pytest.fixture(scope="module")
def waf_wasm(build_filter) -> Path:  # noqa: F811
    return build_filter("waf")


async def status(wasm: Path, rules: str, target: str, headers: dict[str, str]) -> int:
    stage = make_stage(wasm, {"directives": HEAD + rules}, name="waf")
    terminal, _ = origin_ok()
    h = CIMultiDict({"Host": "example.com", **headers})
    resp, _ = await run_stage([stage], Request("GET", target, h, b""), terminal)
    await stage.close()
    return resp.status


# (case, rules, target, headers, status)
CASES: list[tuple[str, str, str, dict[str, str], int]] = [
    ("no class byte anywhere", CLASSES, "/a/b?q=blue+shoes&r=1", {"Accept": "text/html"}, 200),
    ("a newline in an argument", CLASSES, "/a?q=blue%0Ashoes", {}, 403),
    ("an encoded one in a header value", CLASSES, "/a?q=1", {"X-Two": "a%0Db"}, 403),
    ("a carriage return in a header value", CLASSES, "/a?q=1", {"X-Two": "a\rb"}, 403),
    ("one in the path", CLASSES, "/a%250Ab?q=1", {}, 418),
    ("the header by name, its own member", CLASSES, "/a?q=1", {"X-One": "<b>"}, 406),
    ("the header by name, no match", CLASSES, "/a?q=1", {"X-One": "b"}, 200),
    ("beside: the class member", MIXED, "/?q=a%0Db&r=2", {}, 403),
    ("beside: the scanned member", MIXED, "/?q=select+a+from+b", {}, 418),
    ("beside: neither", MIXED, "/?q=a+b", {}, 200),
]


@pytest.mark.parametrize("rules,target,headers,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_class_set(waf_wasm: Path, rules: str, target: str, headers: dict[str, str], want: int) -> None:
    assert await status(waf_wasm, rules, target, headers) == want
