"""Rules on one TX key or its count (CRS's paranoia-level checks, 901xxx's initialisation),
which the engine evaluates without listing the target's values: each case answers 403 (rule
1), 418 (rule 2) or 200 as SecLang's effects of such a rule say, through the real Wasm filter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.filters.conftest import build_filter, make_stage, origin_ok, run_stage  # noqa: F401
from edgenode.http.messages import CIMultiDict, Request

HEAD = 'SecRuleEngine On\nSecDefaultAction "phase:1,log,pass"\nSecDefaultAction "phase:2,log,pass"\n'
DENY = "id:1,phase:2,deny,log"


@pytest.fixture(scope="module")
def waf_wasm(build_filter) -> Path:  # noqa: F811
    return build_filter("waf")


async def status(wasm: Path, rules: str, config: dict[str, Any] | None = None) -> int:
    stage = make_stage(wasm, {"directives": HEAD + rules, **(config or {})}, name="waf")
    terminal, _ = origin_ok()
    resp, _ = await run_stage([stage], Request("GET", "/?q=1", CIMultiDict({"Host": "example.com"}), b""), terminal)
    await stage.close()
    return resp.status


SKIP = ('SecAction "id:10,phase:1,pass,nolog,setvar:tx.level=2"\n'
        'SecRule TX:LEVEL "@lt {n}" "id:11,phase:1,pass,nolog,skipAfter:END"\n'
        'SecAction "id:12,phase:1,pass,nolog,setvar:tx.skipped=1"\n'
        'SecMarker END\n'
        f'SecRule TX:skipped "@eq 1" "{DENY}"')

# (case, rules, status)
CASES: list[tuple[str, str, int]] = [
    ("a match takes skipAfter", SKIP.format(n=3), 200),
    ("a miss does not", SKIP.format(n=2), 403),
    ("a match's setvar sees MATCHED_VAR_NAME and MATCHED_VAR",
     'SecAction "id:10,phase:1,pass,nolog,setvar:tx.score=7"\n'
     "SecRule TX:SCORE \"@ge 5\" \"id:11,phase:1,pass,nolog,setvar:'tx.seen=%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'\"\n"
     f'SecRule TX:seen "@streq TX:score=7" "{DENY}"', 403),
    ("a miss leaves MATCHED_VAR empty",
     'SecAction "id:10,phase:1,pass,nolog,setvar:tx.score=3"\n'
     'SecRule ARGS:q "@streq 1" "id:11,phase:1,pass,nolog"\n'
     'SecRule TX:score "@ge 5" "id:12,phase:1,pass,nolog"\n'
     f'SecRule MATCHED_VAR "@streq 1" "{DENY}"', 200),
    ("the operator's parameter expands macros",
     'SecAction "id:10,phase:1,pass,nolog,setvar:tx.threshold=5,setvar:tx.score=6"\n'
     f'SecRule TX:score "@ge %{{tx.threshold}}" "{DENY}"', 403),
    ("an unset key has no value to compare", f'SecRule TX:unset "@lt 1" "{DENY}"', 200),
    ("a count of an unset key is 0",
     "SecRule &TX:unset \"@eq 0\" \"id:11,phase:1,pass,nolog,setvar:'tx.n=%{MATCHED_VAR}'\"\n"
     f'SecRule TX:n "@streq 0" "{DENY}"', 403),
    ("a count of a set key is 1",
     'SecAction "id:10,phase:1,pass,nolog,setvar:tx.k=x"\n'
     f'SecRule &TX:K "@eq 1" "{DENY}"', 403),
    ("a chain's links run after the check",
     'SecRule &TX:unset "@eq 0" "id:11,phase:1,pass,nolog,chain"\n'
     '  SecRule REQUEST_METHOD "@streq GET" "setvar:tx.chained=1"\n'
     f'SecRule TX:chained "@eq 1" "{DENY}"', 403),
    ("a chain whose link misses has no actions",
     'SecRule &TX:unset "@eq 0" "id:11,phase:1,pass,nolog,chain,setvar:tx.head=1"\n'
     '  SecRule REQUEST_METHOD "@streq POST" "setvar:tx.chained=1"\n'
     f'SecRule TX:chained "@eq 1" "{DENY}"\n'
     'SecRule TX:head "@eq 1" "id:2,phase:2,deny,status:418"', 418),
    ("ctl:ruleRemoveTargetById removes the key",
     'SecAction "id:10,phase:1,pass,nolog,setvar:tx.a=1,ctl:ruleRemoveTargetById=11;TX:a"\n'
     'SecRule TX:a "@eq 1" "id:11,phase:1,pass,nolog,setvar:tx.hit=1"\n'
     f'SecRule TX:hit "@eq 1" "{DENY}"', 200),
    ("the check itself denies", 'SecAction "id:10,phase:1,pass,nolog,setvar:tx.s=9"\n'
     f'SecRule TX:s "@gt 8" "{DENY}"', 403),
]


@pytest.mark.parametrize("rules,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_tx_check(waf_wasm: Path, rules: str, want: int) -> None:
    assert await status(waf_wasm, rules) == want
