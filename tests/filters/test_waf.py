"""The SecLang WAF filter (filters/waf) through the real Proxy-Wasm host (WasmStage).

Each unit case compiles a few directives into the real Wasm filter and sends one
request: rule id 1 denies (403) when the construct under test behaves as SecLang
says, so a wrong operator, transformation, variable or action shows up as a 200.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest

from edgenode.config import StageConfig
from edgenode.http.messages import CIMultiDict, Request
from edgenode.wasm.engine import FilterLoadError
from edgenode.wasm.metrics import metrics_for
from edgenode.bench.workload import ATTACK_SAMPLES
from tests.filters.conftest import make_stage, origin_ok, run_stage

HEAD = ('SecRuleEngine On\nSecRequestBodyAccess On\n'
        'SecDefaultAction "phase:1,log,auditlog,pass"\nSecDefaultAction "phase:2,log,auditlog,pass"\n')
DENY = "id:1,phase:2,deny,log,msg:'hit'"


@pytest.fixture(scope="module")
def waf_wasm(build_filter) -> Path:
    return build_filter("waf")


def make_request(target: str = "/", method: str = "GET", headers: dict[str, str] | None = None,
                 body: bytes | None = None) -> Request:
    h = CIMultiDict({"Host": "example.com", "User-Agent": "test-agent"})
    h.update(headers or {})
    if body is not None:
        h["Content-Length"] = str(len(body))
    return Request(method, target, h, body or b"")


async def send(wasm: Path, rules: str, name: str = "waf", config: dict[str, Any] | None = None, **req: Any):
    stage = make_stage(wasm, {"directives": HEAD + rules, **(config or {})}, name=name)
    terminal, seen = origin_ok()
    resp, _ = await run_stage([stage], make_request(**req), terminal)
    await stage.close()
    return resp, seen


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# (case, rules, request, blocked?)
def _multipart_parts(fields: int) -> bytes:
    """`fields` plain fields with a Content-Type each, then a part `up` with image/png."""
    parts = [f'--XyZ\r\nContent-Disposition: form-data; name="f{i}"\r\nContent-Type: text/plain\r\n\r\nv\r\n'
             for i in range(fields)]
    parts.append('--XyZ\r\nContent-Disposition: form-data; name="up"; filename="a.png"\r\n'
                 'Content-Type: image/png\r\n\r\nPNG\r\n--XyZ--\r\n')
    return "".join(parts).encode()


CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    # operators
    ("rx", f'SecRule ARGS:q "@rx ^a+b$" "{DENY}"', {"target": "/?q=aaab"}, True),
    ("rx no match", f'SecRule ARGS:q "@rx ^a+b$" "{DENY}"', {"target": "/?q=aaabc"}, False),
    ("implicit rx", f'SecRule ARGS:q "b{{2}}" "{DENY}"', {"target": "/?q=abba"}, True),
    ("negated", f'SecRule ARGS:q "!@rx ^[0-9]+$" "{DENY}"', {"target": "/?q=12x"}, True),
    ("pm case-insensitive", f'SecRule ARGS "@pm foo BAR" "{DENY}"', {"target": "/?a=xxbarxx"}, True),
    ("pm hex bytes", f'SecRule ARGS "@pm |41 42|c" "{DENY}"', {"target": "/?a=xABCx"}, True),
    ("streq", f'SecRule REQUEST_METHOD "@streq PUT" "{DENY}"', {"method": "PUT"}, True),
    ("contains", f'SecRule REQUEST_URI "@contains admin" "{DENY}"', {"target": "/x/admin/y"}, True),
    ("containsWord", f'SecRule ARGS:q "@containsWord drop" "{DENY}"', {"target": "/?q=a+drop+b"}, True),
    ("containsWord inside a word", f'SecRule ARGS:q "@containsWord drop" "{DENY}"', {"target": "/?q=dropped"}, False),
    ("beginsWith", f'SecRule REQUEST_FILENAME "@beginsWith /api/" "{DENY}"', {"target": "/api/v1"}, True),
    ("endsWith", f'SecRule REQUEST_FILENAME "@endsWith .php" "{DENY}"', {"target": "/x/index.php?a=1"}, True),
    ("within", f'SecRule REQUEST_METHOD "!@within GET HEAD" "{DENY}"', {"method": "DELETE"}, True),
    ("eq", f'SecRule &ARGS "@eq 2" "{DENY}"', {"target": "/?a=1&b=2"}, True),
    ("gt", f'SecRule ARGS:n "@gt 10" "{DENY}"', {"target": "/?n=11"}, True),
    ("le", f'SecRule ARGS:n "@le 10" "{DENY}"', {"target": "/?n=11"}, False),
    ("lt", f'SecRule ARGS:n "@lt 10" "{DENY}"', {"target": "/?n=-3"}, True),
    ("ge with macro", 'SecAction "id:2,phase:1,pass,nolog,setvar:tx.limit=3"\n'
                      f'SecRule ARGS:n "@ge %{{tx.limit}}" "{DENY}"', {"target": "/?n=3"}, True),
    ("ipMatch", f'SecRule REMOTE_ADDR "@ipMatch 10.0.0.0/8,127.0.0.0/8" "{DENY}"', {}, True),
    ("validateByteRange", f'SecRule ARGS "@validateByteRange 32-126" "{DENY}"', {"target": "/?a=x%01"}, True),
    # 1-255 is checked eight bytes a step: a NUL past the first eight
    ("validateByteRange, NUL after eight bytes", f'SecRule ARGS "@validateByteRange 1-255" "{DENY}"',
     {"target": "/?a=abcdefghij%00k"}, True),
    ("validateByteRange 1-255, no NUL", f'SecRule ARGS "@validateByteRange 1-255" "{DENY}"',
     {"target": "/?a=abcdefghij%01%FFk"}, False),
    # ^.*$ (answered without PCRE2) captures the whole value, newlines included
    ("rx ^.*$ captures the value", 'SecRule ARGS:q "@rx ^.*$" "id:2,phase:2,pass,nolog,capture,setvar:tx.got=%{tx.0}"\n'
     f'SecRule TX:got "@rx ^ab\\ncd$" "{DENY}"', {"target": "/?q=ab%0Acd"}, True),
    # an unanchored literal key regex (a substring test, caseless; the last character optional)
    ("literal key regex", 'SecAction "id:2,phase:1,pass,nolog,setvar:tx.x_Multipart_Headers_Content_Type=1"\n'
     f'SecRule TX:/MULTIPART_HEADERS_CONTENT_TYPES*/ "@eq 1" "{DENY}"', {}, True),
    ("literal key regex, no such key", 'SecAction "id:2,phase:1,pass,nolog,setvar:tx.multipart_headers_content=1"\n'
     f'SecRule TX:/MULTIPART_HEADERS_CONTENT_TYPES*/ "@eq 1" "{DENY}"', {}, False),
    ("validateUrlEncoding", f'SecRule QUERY_STRING "@validateUrlEncoding" "{DENY}"', {"target": "/?a=%zz"}, True),
    ("validateUtf8Encoding", f'SecRule ARGS "@validateUtf8Encoding" "{DENY}"', {"target": "/?a=%c3%28"}, True),
    ("unconditionalMatch", f'SecRule REQUEST_URI "@unconditionalMatch" "{DENY}"', {}, True),
    ("detectSQLi", f'SecRule ARGS "@detectSQLi" "{DENY}"', {"target": "/?id=1%27%20or%20%271%27%3D%271"}, True),
    ("detectSQLi benign", f'SecRule ARGS "@detectSQLi" "{DENY}"', {"target": "/?id=hello+world"}, False),
    ("detectXSS", f'SecRule ARGS "@detectXSS" "{DENY}"', {"target": "/?x=%3Cscript%3Ealert(1)%3C/script%3E"}, True),
    # transformations (the deny rule compares the transformed value exactly)
    ("lowercase", f'SecRule ARGS:a "@streq abc" "{DENY},t:lowercase"', {"target": "/?a=AbC"}, True),
    ("urlDecodeUni", f'SecRule ARGS:a "@streq <a>" "{DENY},t:urlDecodeUni"', {"target": "/?a=%253Ca%253E"}, True),
    ("urlDecodeUni %u full width", f'SecRule ARGS:a "@streq <" "{DENY},t:urlDecodeUni"', {"target": "/?a=%25uff1c"}, True),
    ("htmlEntityDecode", f'SecRule ARGS:a "@streq <b>\'" "{DENY},t:htmlEntityDecode"',
     {"target": "/?a=%26lt%3Bb%26%23x3e%3B%26%2339%3B"}, True),
    ("jsDecode", f'SecRule ARGS:a "@streq AB" "{DENY},t:jsDecode"', {"target": "/?a=%5Cx41%5Cu0042"}, True),
    ("cssDecode", f'SecRule ARGS:a "@streq js" "{DENY},t:cssDecode"', {"target": "/?a=%5C6a%5C73"}, True),
    ("cmdLine", f'SecRule ARGS:a "@streq c/at x" "{DENY},t:cmdLine"', {"target": "/?a=C%5E%27/%22AT+++X"}, True),
    # cmdLine returns a value it would not change as it is: each byte it changes, alone
    ("cmdLine unchanged", f'SecRule ARGS:a "@streq c/at x(" "{DENY},t:cmdLine"', {"target": "/?a=c/at+x("}, True),
    ("cmdLine space before /", f'SecRule ARGS:a "@streq a/b" "{DENY},t:cmdLine"', {"target": "/?a=a+/b"}, True),
    ("cmdLine space before (", f'SecRule ARGS:a "@streq a(b" "{DENY},t:cmdLine"', {"target": "/?a=a+(b"}, True),
    ("cmdLine double space", f'SecRule ARGS:a "@streq a b" "{DENY},t:cmdLine"', {"target": "/?a=a++b"}, True),
    ("cmdLine comma", f'SecRule ARGS:a "@streq a b" "{DENY},t:cmdLine"', {"target": "/?a=a%2Cb"}, True),
    ("cmdLine caret", f'SecRule ARGS:a "@streq ab" "{DENY},t:cmdLine"', {"target": "/?a=a%5Eb"}, True),
    ("cmdLine upper case", f'SecRule ARGS:a "@streq ab" "{DENY},t:cmdLine"', {"target": "/?a=aB"}, True),
    ("cmdLine one value of several changes", f'SecRule ARGS "@rx ^a b$" "{DENY},t:cmdLine"',
     {"target": "/?x=plain+text&a=A%3Bb"}, True),
    ("cmdLine no value changes", f'SecRule ARGS "@rx ^a;b$" "{DENY},t:cmdLine"', {"target": "/?x=plain&a=ab"}, False),
    ("compressWhitespace", f'SecRule ARGS:a "@streq a b" "{DENY},t:compressWhitespace"', {"target": "/?a=a%20%09%0Ab"}, True),
    # compressWhitespace and normalizePath return a value they would not change as it is
    ("compressWhitespace unchanged", f'SecRule ARGS:a "@streq a b c" "{DENY},t:compressWhitespace"', {"target": "/?a=a+b+c"}, True),
    ("compressWhitespace double space", f'SecRule ARGS:a "@streq a b" "{DENY},t:compressWhitespace"', {"target": "/?a=a++b"}, True),
    ("compressWhitespace tab", f'SecRule ARGS:a "@streq a b" "{DENY},t:compressWhitespace"', {"target": "/?a=a%09b"}, True),
    ("compressWhitespace nbsp", f'SecRule ARGS:a "@streq a b" "{DENY},t:compressWhitespace"', {"target": "/?a=a%A0b"}, True),
    ("compressWhitespace double space in another value", f'SecRule ARGS "@rx ^(?:a b|p q)$" "{DENY},t:compressWhitespace"',
     {"target": "/?x=p++q&a=a+b"}, True),
    ("compressWhitespace no value changes", f'SecRule ARGS "@rx a  b" "{DENY},t:compressWhitespace"', {"target": "/?x=p+q&a=a+b"}, False),
    ("removeWhitespace", f'SecRule ARGS:a "@streq ab" "{DENY},t:removeWhitespace"', {"target": "/?a=a%20%09b"}, True),
    ("removeNulls", f'SecRule ARGS:a "@streq ab" "{DENY},t:removeNulls"', {"target": "/?a=a%00b"}, True),
    ("replaceComments", f'SecRule ARGS:a "@streq a b" "{DENY},t:replaceComments"', {"target": "/?a=a/*x*/b"}, True),
    ("normalizePath", f'SecRule ARGS:a "@streq /a/c" "{DENY},t:normalizePath"', {"target": "/?a=/a/./b/../c"}, True),
    ("normalizePath unchanged", f'SecRule ARGS:a "@streq a.b" "{DENY},t:normalizePath"', {"target": "/?a=a.b"}, True),
    ("normalizePath relative", f'SecRule ARGS:a "@streq a/b" "{DENY},t:normalizePath"', {"target": "/?a=a/./b"}, True),
    ("normalizePath one value of several changes", f'SecRule ARGS "@rx ^a/b$" "{DENY},t:normalizePath"',
     {"target": "/?x=plain&a=a//b"}, True),
    ("normalizePath no value changes", f'SecRule ARGS "@rx ^a//b$" "{DENY},t:normalizePath"', {"target": "/?x=plain&a=ab"}, False),
    # dotted values keep unless one ends in '.' ("." normalizes to "")
    ("normalizePath a final dot among dotted values", f'SecRule ARGS "@rx ^$" "{DENY},t:normalizePath"',
     {"target": "/?x=a.b&a=."}, True),
    ("normalizePath dotted values only", f'SecRule ARGS "@rx ^$" "{DENY},t:normalizePath"', {"target": "/?x=a.b&a=c.d"}, False),
    ("normalizePathWin backslash only", f'SecRule ARGS:a "@streq a/b" "{DENY},t:normalizePathWin"', {"target": "/?a=a%5C.%5Cb"}, True),
    ("normalizePathWin", f'SecRule ARGS:a "@streq /a/c" "{DENY},t:normalizePathWin"', {"target": "/?a=%5Ca%5Cb%5C..%5Cc"}, True),
    ("utf8toUnicode", f'SecRule ARGS:a "@streq %u00e9" "{DENY},t:utf8toUnicode"', {"target": "/?a=%C3%A9"}, True),
    ("base64Decode", f'SecRule ARGS:a "@streq secret" "{DENY},t:base64Decode"',
     {"target": "/?a=" + base64.b64encode(b"secret").decode().rstrip("=")}, True),
    ("hexDecode", f'SecRule ARGS:a "@streq AB" "{DENY},t:hexDecode"', {"target": "/?a=4142"}, True),
    ("length", f'SecRule ARGS:a "@eq 5" "{DENY},t:length"', {"target": "/?a=hello"}, True),
    ("length, three digits", f'SecRule ARGS:a "@streq 123" "{DENY},t:length"', {"target": "/?a=" + "x" * 123}, True),
    ("length of an empty value", f'SecRule ARGS:a "@streq 0" "{DENY},t:length"', {"target": "/?a=&b=1"}, True),
    ("trim", f'SecRule ARGS:a "@streq x" "{DENY},t:trim"', {"target": "/?a=%20x%20"}, True),
    ("escapeSeqDecode", f'SecRule ARGS:a "@streq A" "{DENY},t:escapeSeqDecode"', {"target": "/?a=%5Cx41"}, True),
    ("t:none resets", f'SecRule ARGS:a "@streq ABC" "{DENY},t:lowercase,t:none"', {"target": "/?a=ABC"}, True),
    ("multiMatch sees the raw value", f'SecRule ARGS:a "@streq %41" "{DENY},t:urlDecode,multiMatch"', {"target": "/?a=%2541"}, True),
    # variables and selectors
    ("ARGS_NAMES", f'SecRule ARGS_NAMES "@streq evil" "{DENY}"', {"target": "/?evil=1"}, True),
    ("ARGS_GET vs ARGS_POST", f'SecRule ARGS_POST:a "@streq 1" "{DENY}"', {"target": "/?a=1"}, False),
    ("ARGS_POST", f'SecRule ARGS_POST:a "@streq 1" "{DENY}"',
     {"method": "POST", "headers": FORM, "body": b"a=1"}, True),
    ("header key case-insensitive", f'SecRule REQUEST_HEADERS:X-Thing "@streq v" "{DENY}"', {"headers": {"x-thing": "v"}}, True),
    ("REQUEST_HEADERS_NAMES", f'SecRule REQUEST_HEADERS_NAMES "@rx ^x-evil$" "{DENY}"', {"headers": {"X-Evil": "1"}}, True),
    ("REQUEST_COOKIES", f'SecRule REQUEST_COOKIES:sid "@streq abc" "{DENY}"', {"headers": {"Cookie": "a=1; sid=abc"}}, True),
    ("REQUEST_COOKIES_NAMES", f'SecRule REQUEST_COOKIES_NAMES "@streq sid" "{DENY}"', {"headers": {"Cookie": "sid=1"}}, True),
    ("REQUEST_FILENAME decoded", f'SecRule REQUEST_FILENAME "@streq /a b" "{DENY}"', {"target": "/a%20b?x=1"}, True),
    ("REQUEST_BASENAME", f'SecRule REQUEST_BASENAME "@streq f.php" "{DENY}"', {"target": "/d/f.php?x=1"}, True),
    ("REQUEST_URI_RAW", f'SecRule REQUEST_URI_RAW "@streq /a%20b?x=1" "{DENY}"', {"target": "/a%20b?x=1"}, True),
    ("REQUEST_LINE", f'SecRule REQUEST_LINE "@rx ^GET /p\\?q=1 HTTP/1\\.1$" "{DENY}"', {"target": "/p?q=1"}, True),
    ("REQUEST_PROTOCOL", f'SecRule REQUEST_PROTOCOL "@streq HTTP/1.1" "{DENY}"', {}, True),
    ("QUERY_STRING", f'SecRule QUERY_STRING "@streq a=1&b=2" "{DENY}"', {"target": "/?a=1&b=2"}, True),
    ("REQUEST_BODY", f'SecRule REQUEST_BODY "@contains needle" "{DENY}"',
     {"method": "POST", "headers": {"Content-Type": "text/plain"}, "body": b"hay needle hay"}, True),
    ("count selector", f'SecRule &REQUEST_HEADERS:X-Missing "@eq 0" "{DENY}"', {}, True),
    # a key's items counted by the collection's index, in a small collection and an indexed one
    ("count of a repeated key", f'SecRule &ARGS_GET:a "@eq 2" "{DENY}"', {"target": "/?a=1&b=2&a=3"}, True),
    ("count of a repeated key, indexed", f'SecRule &ARGS_GET:a "@eq 3" "{DENY}"',
     {"target": "/?" + "&".join(f"k{i}=v" for i in range(20)) + "&a=1&A=2&a=3"}, True),
    ("count of a TX key", 'SecAction "id:2,phase:1,pass,nolog,setvar:tx.k=1"\n'
                          f'SecRule &TX:K "@eq 1" "{DENY},chain"\n SecRule &TX:missing "@eq 0"', {}, True),
    # `^lit` (multiline) matches after a '\n' of a key that does not start with lit: a key shorter
    # than a word, the newline in a full word, and in the last (overlapping) word only
    *((f"key regex ^literal after a newline at {k}",
       f'SecRule ARGS:k "@rx ." "id:2,phase:1,pass,nolog,setvar:\'tx.%{{ARGS.k}}=1\'"\n'
       f'SecRule TX:/^lit_/ "@eq 1" "{DENY}"', {"target": f"/?k={'x' * k}%0Alit_{rest}"}, True)
      for k, rest in ((1, ""), (9, "yyyyyy"), (16, ""))),
    ("key regex ^literal, no newline", 'SecRule ARGS:k "@rx ." "id:2,phase:1,pass,nolog,setvar:\'tx.%{ARGS.k}=1\'"\n'
                                       f'SecRule TX:/^lit_/ "@eq 1" "{DENY}"', {"target": "/?k=xxxxxxxxxlit_yyyyyy"}, False),
    ("exclusion", f'SecRule ARGS|!ARGS:safe "@rx <" "{DENY}"', {"target": "/?safe=%3C"}, False),
    ("regex key", f'SecRule ARGS:/^tok_/ "@rx x" "{DENY}"', {"target": "/?tok_1=x"}, True),
    ("regex exclusion", f'SecRule ARGS|!ARGS:/^tok_/ "@rx x" "{DENY}"', {"target": "/?tok_1=x"}, False),
    ("UNIQUE_ID is the request id", f'SecRule UNIQUE_ID "@streq rid-7" "{DENY}"', {"headers": {"X-Request-Id": "rid-7"}}, True),
    ("TX and setvar arithmetic", 'SecAction "id:2,phase:1,pass,nolog,setvar:tx.s=2,setvar:tx.s=+3,setvar:tx.s=-1"\n'
                                 f'SecRule TX:s "@eq 4" "{DENY}"', {}, True),
    ("setvar per matched value", 'SecRule ARGS "@rx x" "id:2,phase:2,pass,nolog,setvar:tx.n=+1"\n'
                                 f'SecRule TX:n "@eq 3" "{DENY}"', {"target": "/?a=x&b=x&c=x"}, True),
    # actions
    ("chain: all links", f'SecRule REQUEST_METHOD "@streq POST" "{DENY},chain"\n SecRule ARGS:a "@streq 1"',
     {"method": "POST", "headers": FORM, "body": b"a=1"}, True),
    ("chain: a link fails", f'SecRule REQUEST_METHOD "@streq POST" "{DENY},chain"\n SecRule ARGS:a "@streq 2"',
     {"method": "POST", "headers": FORM, "body": b"a=1"}, False),
    # the name is the variable's name, then ':' and the key (copied by lengths of 1 to 40 bytes)
    *[(f"MATCHED_VAR_NAME, a {n}-byte key", f'SecRule ARGS "@rx ^s" "{DENY},chain"\n SecRule MATCHED_VAR_NAME "@streq ARGS:{"k" * n}"',
       {"target": f"/?{'k' * n}=secret"}, True) for n in (1, 3, 5, 12, 20, 40)],
    ("MATCHED_VAR_NAME of a scalar", f'SecRule REQUEST_URI "@rx ^/p" "{DENY},chain"\n SecRule MATCHED_VAR_NAME "@streq REQUEST_URI"',
     {"target": "/p"}, True),
    ("chain sees MATCHED_VAR", f'SecRule ARGS "@rx ^s" "{DENY},chain"\n SecRule MATCHED_VAR "@streq secret"', {"target": "/?a=secret"}, True),
    ("capture", f'SecRule ARGS:a "@rx ^(\\w+)-(\\d+)$" "{DENY},capture,chain"\n SecRule TX:2 "@streq 42"', {"target": "/?a=abc-42"}, True),
    ("skipAfter", 'SecRule REQUEST_URI "@unconditionalMatch" "id:2,phase:2,pass,nolog,skipAfter:END"\n'
                  f'SecRule REQUEST_URI "@unconditionalMatch" "{DENY}"\nSecMarker END', {}, False),
    ("block uses SecDefaultAction", 'SecDefaultAction "phase:2,log,deny,status:418"\n'
                                    'SecRule ARGS:a "@streq 1" "id:1,phase:2,block"', {"target": "/?a=1"}, True),
    ("pass does not block", 'SecRule ARGS:a "@streq 1" "id:1,phase:2,pass"', {"target": "/?a=1"}, False),
    ("allow stops the rules", 'SecRule REQUEST_FILENAME "@streq /ok" "id:2,phase:1,allow,nolog"\n'
                              f'SecRule REQUEST_URI "@unconditionalMatch" "{DENY}"', {"target": "/ok"}, False),
    ("ctl:ruleRemoveById", 'SecRule REQUEST_FILENAME "@beginsWith /cms/" "id:2,phase:1,pass,nolog,ctl:ruleRemoveById=1"\n'
                           f'SecRule ARGS "@rx <" "{DENY}"', {"target": "/cms/?x=%3C"}, False),
    ("ctl:ruleRemoveTargetById", 'SecRule REQUEST_FILENAME "@beginsWith /cms/" '
                                 '"id:2,phase:1,pass,nolog,ctl:ruleRemoveTargetById=1;ARGS:body"\n'
                                 f'SecRule ARGS "@rx <" "{DENY}"', {"target": "/cms/?body=%3C"}, False),
    ("ctl:ruleEngine=Off", 'SecRule REQUEST_FILENAME "@streq /off" "id:2,phase:1,pass,nolog,ctl:ruleEngine=Off"\n'
                           f'SecRule REQUEST_URI "@unconditionalMatch" "{DENY}"', {"target": "/off"}, False),
    ("ctl:requestBodyProcessor=JSON", 'SecRule REQUEST_HEADERS:Content-Type "@rx json" '
                                      '"id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"\n'
                                      f'SecRule ARGS:json.user.name "@streq eve" "{DENY}"',
     {"method": "POST", "headers": {"Content-Type": "application/json"}, "body": b'{"user": {"name": "eve"}}'}, True),
    ("JSON arrays", 'SecRule REQUEST_HEADERS:Content-Type "@rx json" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"\n'
                    f'SecRule ARGS:json.tags.array_1 "@streq b" "{DENY}"',
     {"method": "POST", "headers": {"Content-Type": "application/json"}, "body": b'{"tags": ["a", "b"]}'}, True),
    # strings are scanned eight bytes a step for '"', '\\' and control bytes: escapes at every offset
    *((f"JSON escape at offset {k}",
       'SecRule REQUEST_HEADERS:Content-Type "@rx json" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"\n'
       f'SecRule ARGS:json.s "@streq {"x" * k}q\\"A{"y" * (13 - k)}" "{DENY}"',
       {"method": "POST", "headers": {"Content-Type": "application/json"},
        "body": b'{"s": "' + b"x" * k + b'q\\"\\u0041' + b"y" * (13 - k) + b'"}'}, True) for k in range(0, 12, 3)),
    ("JSON control byte in a long string", 'SecRule REQUEST_HEADERS:Content-Type "@rx json" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"\n'
                                           f'SecRule REQBODY_ERROR "@eq 1" "{DENY}"',
     {"method": "POST", "headers": {"Content-Type": "application/json"}, "body": b'{"s": "abcdefghijklm\x01nopq"}'}, True),
    ("REQBODY_ERROR on bad JSON", 'SecRule REQUEST_HEADERS:Content-Type "@rx json" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"\n'
                                  f'SecRule REQBODY_ERROR "@eq 1" "{DENY}"',
     {"method": "POST", "headers": {"Content-Type": "application/json"}, "body": b'{"a": [1, 2'}, True),
    ("XML text", 'SecRule REQUEST_HEADERS:Content-Type "@rx xml" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"\n'
                 f'SecRule XML:/* "@contains hello" "{DENY}"',
     {"method": "POST", "headers": {"Content-Type": "text/xml"}, "body": b"<a><b>hel</b>lo</a>"}, True),
    ("XML attributes", 'SecRule REQUEST_HEADERS:Content-Type "@rx xml" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"\n'
                       f'SecRule XML://@* "@streq a<b" "{DENY}"',
     {"method": "POST", "headers": {"Content-Type": "text/xml"}, "body": b'<a x="a&lt;b"/>'}, True),
    ("multipart fields and files", f'SecRule FILES:up "@streq x.php" "{DENY},chain"\n SecRule ARGS_POST:f "@streq v"',
     {"method": "POST", "headers": {"Content-Type": "multipart/form-data; boundary=XyZ"},
      "body": b'--XyZ\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n--XyZ\r\n'
              b'Content-Disposition: form-data; name="up"; filename="x.php"\r\n\r\n<?php\r\n--XyZ--\r\n'}, True),
    # part headers are named after their part once its Content-Disposition is read: found by
    # that name in a small collection and in an indexed one (more than 16 header lines)
    ("multipart part headers by name", f'SecRule MULTIPART_PART_HEADERS:up "@contains image/png" "{DENY}"',
     {"method": "POST", "headers": {"Content-Type": "multipart/form-data; boundary=XyZ"},
      "body": _multipart_parts(1)}, True),
    ("multipart part headers by name, indexed", f'SecRule MULTIPART_PART_HEADERS:up "@contains image/png" "{DENY}"',
     {"method": "POST", "headers": {"Content-Type": "multipart/form-data; boundary=XyZ"},
      "body": _multipart_parts(12)}, True),
    ("multipart strictness", f'SecRule MULTIPART_STRICT_ERROR "@eq 1" "{DENY},chain"\n SecRule MULTIPART_DATA_BEFORE "@eq 1"',
     {"method": "POST", "headers": {"Content-Type": "multipart/form-data; boundary=XyZ"},
      "body": b'junk\r\n--XyZ\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n--XyZ--\r\n'}, True),
    # directives
    ("SecRuleRemoveById", f'SecRule REQUEST_URI "@unconditionalMatch" "{DENY}"\nSecRuleRemoveById 1', {}, False),
    ("SecRuleRemoveByTag", f'SecRule REQUEST_URI "@unconditionalMatch" "{DENY},tag:\'noisy\'"\nSecRuleRemoveByTag noisy', {}, False),
    ("SecRuleUpdateTargetById", f'SecRule ARGS "@rx <" "{DENY}"\nSecRuleUpdateTargetById 1 "!ARGS:html"',
     {"target": "/?html=%3Cb%3E"}, False),
    ("SecRuleEngine DetectionOnly", f'SecRuleEngine DetectionOnly\nSecRule REQUEST_URI "@unconditionalMatch" "{DENY}"', {}, False),
]


@pytest.mark.parametrize("rules,req,blocked", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_seclang_unit(waf_wasm, rules: str, req: dict[str, Any], blocked: bool) -> None:
    resp, seen = await send(waf_wasm, rules, **req)
    expected = (418 if "status:418" in rules else 403) if blocked else 200
    assert resp.status == expected, resp.body
    assert (seen == []) == blocked


async def test_status_and_redirect_actions(waf_wasm) -> None:
    resp, _ = await send(waf_wasm, 'SecRule REQUEST_URI "@unconditionalMatch" "id:1,phase:1,deny,status:429"')
    assert resp.status == 429
    resp, _ = await send(waf_wasm, 'SecRule REQUEST_URI "@unconditionalMatch" '
                                   '"id:1,phase:1,redirect:https://example.net/blocked?u=%{REQUEST_FILENAME}"',
                         target="/p")
    assert resp.status == 302 and resp.headers["location"] == "https://example.net/blocked?u=/p"


@pytest.mark.parametrize("rules,reason", [
    ('SecRuleFoo On', "directives:1: unknown directive 'SecRuleFoo'"),
    ('SecRule ARGS "@nope x" "id:1"', "directives:1: unknown operator '@nope'"),
    ('SecRule NOPE "@rx x" "id:1"', "directives:1: unknown variable 'NOPE'"),
    ('SecRule ARGS "@rx x" "id:1,frobnicate"', "directives:1: unknown action 'frobnicate'"),
    ('SecRule ARGS "@rx x" "id:1,t:rot13"', "directives:1: unknown transformation t:rot13"),
    ('\n\nSecRule ARGS "@rx (unclosed" "id:1"', "directives:3: invalid regular expression at offset 9"),
    ('SecRule ARGS "@rx x" "phase:2"', "directives:1: rule has no id"),
    ('SecRule ARGS "@rx x" "id:1,chain"', "directives:1: the last rule has `chain` but no rule follows"),
    ('Include nothing/*.conf', "directives:1: Include: no file matches 'nothing/*.conf'"),
    ('SecRule ARGS "@pmFromFile words.data" "id:1"', "directives:1: @pmFromFile: file 'words.data' not found"),
])
async def test_bad_rules_are_rejected_with_location(waf_wasm, rules: str, reason: str, caplog) -> None:
    caplog.set_level(logging.ERROR)
    with pytest.raises(FilterLoadError):
        make_stage(waf_wasm, {"directives": rules}, name="waf-bad")
    assert reason in caplog.text


async def test_rule_files_from_the_host_with_location_in_errors(waf_wasm, tmp_path: Path, caplog) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.conf").write_text(HEAD + 'SecRule ARGS "@pmFromFile words.data" "id:1,phase:2,deny"\n')
    (rules / "words.data").write_text("# comment\nalpha\nbeta\n")
    opts = {"files": {"r": str(rules)}, "cpu_deadline_ms": 2000}
    stage = make_stage(waf_wasm, {"directives": ["Include r/*.conf"]}, name="waf-files", **opts)
    terminal, seen = origin_ok()
    assert (await run_stage([stage], make_request("/?q=xBETAx"), terminal))[0].status == 403
    assert (await run_stage([stage], make_request("/?q=gamma"), terminal))[0].status == 200
    await stage.close()
    (rules / "b.conf").write_text("SecRule ARGS\n")
    caplog.set_level(logging.ERROR)
    with pytest.raises(FilterLoadError):
        make_stage(waf_wasm, {"directives": ["Include r/*.conf"]}, name="waf-files", **opts)
    assert "r/b.conf:1: SecRule: expected VARIABLES OPERATOR [ACTIONS]" in caplog.text


async def test_default_ruleset_blocks_attack_samples_and_passes_benign(waf_wasm) -> None:
    stage = make_stage(waf_wasm, {}, name="waf-default")
    terminal, seen = origin_ok()
    for family, target in ATTACK_SAMPLES:
        resp, _ = await run_stage([stage], make_request(target), terminal)
        assert resp.status == 403, (family, target)
    for target in ("/", "/shop?cat=shoes&q=red+boots", "/search?q=select+a+size&page=2", "/a/b.html"):
        resp, _ = await run_stage([stage], make_request(target), terminal)
        assert resp.status == 200, target
    assert len(seen) == 4
    await stage.close()


async def test_blocked_request_audit_line_metrics_and_request_id(waf_wasm, caplog) -> None:
    caplog.set_level(logging.INFO)
    stage = make_stage(waf_wasm, {}, name="waf-audit")
    terminal, seen = origin_ok()
    resp, _ = await run_stage([stage], make_request("/item?id=1%27%20or%20%271%27%3D%271",
                                                    headers={"X-Request-Id": "req-42"}), terminal)
    assert resp.status == 403 and seen == []
    assert b"req-42" in resp.body and resp.headers["x-request-id"] == "req-42"
    assert resp.headers["cache-control"] == "no-store"
    audit = [r.getMessage() for r in caplog.records if "waf audit" in r.getMessage()]
    assert len(audit) == 1
    assert '"request_id":"req-42"' in audit[0] and '"action":"blocked"' in audit[0]
    assert '"id":101200' in audit[0] and '"var":"ARGS:id"' in audit[0]
    metrics = {m.name: m.value for m in metrics_for("waf-audit").user_metrics()}
    assert metrics["waf_requests_blocked"] == 1
    assert metrics["waf_rule_hits_101200"] == 1 and metrics["waf_rule_hits_199000"] == 1
    assert metrics["waf_matches_sqli"] == 1
    await stage.close()


async def test_detect_mode_reports_rules_and_score_and_passes(waf_wasm, caplog) -> None:
    caplog.set_level(logging.INFO)
    stage = make_stage(waf_wasm, {"mode": "detect"}, name="waf-detect")
    terminal, seen = origin_ok()
    resp, _ = await run_stage([stage], make_request("/?q=%3Cscript%3Ealert(1)%3C/script%3E"), terminal)
    assert resp.status == 200 and len(seen) == 1
    assert int(resp.headers["x-waf-score"]) >= 5
    assert {"101300", "199000"} <= set(resp.headers["x-waf-rules"].split(","))
    assert any('"action":"flagged"' in r.getMessage() for r in caplog.records)
    await stage.close()


@pytest.mark.parametrize("action,attack_at_end,status", [
    ("Reject", False, 413),
    ("ProcessPartial", False, 403),     # the attack is in the inspected first part
    ("ProcessPartial", True, 200),      # the attack is past the limit: not inspected
])
async def test_body_limit_behaviour(waf_wasm, action: str, attack_at_end: bool, status: int) -> None:
    rules = (f"SecRequestBodyNoFilesLimit 1000\nSecRequestBodyLimitAction {action}\n"
             f'SecRule ARGS "@contains attack" "{DENY}"')
    filler = b"&pad=" + b"x" * 2000
    body = filler + b"&a=attack" if attack_at_end else b"a=attack" + filler
    resp, seen = await send(waf_wasm, rules, method="POST", headers=FORM, body=body)
    assert resp.status == status
    assert (seen != []) == (status == 200)


async def test_reload_swaps_the_ruleset_and_a_bad_one_keeps_the_old(waf_wasm) -> None:
    def cfg(rules: str) -> StageConfig:
        return StageConfig(type="wasm", name="waf-reload",
                           options={"module": str(waf_wasm), "config": {"directives": HEAD + rules}})

    stage = make_stage(waf_wasm, {"directives": HEAD + f'SecRule ARGS:a "@streq 1" "{DENY}"'}, name="waf-reload")
    terminal, _ = origin_ok()
    assert (await run_stage([stage], make_request("/?a=1"), terminal))[0].status == 403
    await stage.reload(cfg(f'SecRule ARGS:a "@streq 2" "{DENY}"'))
    assert (await run_stage([stage], make_request("/?a=1"), terminal))[0].status == 200
    assert (await run_stage([stage], make_request("/?a=2"), terminal))[0].status == 403
    with pytest.raises(FilterLoadError):
        await stage.reload(cfg('SecRule ARGS "@rx (" "id:1"'))
    assert (await run_stage([stage], make_request("/?a=2"), terminal))[0].status == 403
    await stage.close()


async def test_catastrophic_regex_hits_the_match_limit_and_is_counted(waf_wasm) -> None:
    # the first pass (a DFA) sees that `b` can match, so PCRE2 runs and backtracks in ^(a+)+$
    rules = ("SecPcreMatchLimit 1000\n"
             f'SecRule ARGS:a "@rx ^(a+)+$|b" "{DENY}"\n'
             f'SecRule TX:MSC_PCRE_LIMITS_EXCEEDED "@eq 1" "id:3,phase:2,deny,status:500"')
    resp, _ = await send(waf_wasm, rules, name="waf-limit", target="/?a=" + "a" * 40 + "b")
    assert resp.status == 500
    assert {m.name: m.value for m in metrics_for("waf-limit").user_metrics()}["waf_regex_match_limit_hits"] >= 1


def test_config_errors_name_the_key(waf_wasm, caplog) -> None:
    caplog.set_level(logging.ERROR)
    with pytest.raises(FilterLoadError):
        make_stage(waf_wasm, {"mode": "loud"}, name="waf-cfg")
    assert 'mode: must be "block" or "detect"' in caplog.text
