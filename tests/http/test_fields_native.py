"""The per-field passes in C (``edgenode.http._fields``) equal the Python they replace."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, istr

import re

from edgenode.http._fields import Latin1Pairs, field_block, lower_names, names_disjoint, request_lines
from edgenode.cache.policy import _NOT_STORED, build_entry
from edgenode.proxy.forwarding import EDITED_NAMES

CASES = [
    [],
    [("Content-Type", "text/plain"), ("Cache-Control", "max-age=60"), ("Age", "3"),
     ("Content-Length", "4"), ("Surrogate-Key", "a b"), ("ETag", '"x"'), ("X-Ünïcode", "café")],
    [("ETAG", '"y"'), ("x-lower", "v"), ("Connection", "close"), ("Keep-Alive", "timeout=5")],
    [("X-Bad", "a\r\nInjected: 1"), ("Date", "Tue, 01 Jul 2025 10:00:00 GMT")],
    [("X-Lf", "a\nb")],
    [("X-Wide", "snow \u2603"), ("Server", "s")],
    [("X-Empty", ""), ("Vary", "Accept")],
]


def python_block(pairs: list[tuple[str, str]], drop: frozenset[str]):
    """What ``build_entry`` computed before: filter, join, line counts, Latin-1."""
    stored = [pair for pair in pairs if pair[0].lower() not in drop]
    text = "\r\n".join(map(": ".join, stored)) + "\r\n" if stored else ""
    block = None
    if text.count("\n") == len(stored) and text.count("\r") == len(stored):
        try:
            block = text.encode("latin-1")
        except UnicodeEncodeError:
            pass
    return stored, block, len(text)


@pytest.mark.parametrize("pairs", CASES)
def test_field_block_equals_the_python_passes(pairs):
    for drop in (_NOT_STORED, frozenset(), frozenset({"x-ünïcode", "etag"}), {"server"}):
        assert field_block(pairs, drop) == python_block(pairs, drop)
        names = {"kept-before"}
        assert field_block(pairs, drop, names) == python_block(pairs, drop)
        assert names == {k.lower() for k, _ in pairs} | {"kept-before"}  # stored or dropped
    assert lower_names(pairs) == {k.lower() for k, _ in pairs}


def test_names_come_back_as_plain_lower_case_str():
    names = lower_names([(istr("X-Multi"), "1"), ("already", "2"), ("ÀB", "3")])
    assert names == {"x-multi", "already", "àb"}
    assert all(type(n) is str for n in names)


def test_the_stored_pairs_are_the_callers_tuples():
    pairs = [("A", "1"), ("Age", "2"), ("B", "3")]
    stored, _, _ = field_block(pairs, _NOT_STORED)
    assert stored == [("A", "1"), ("B", "3")] and stored[0] is pairs[0] and stored is not pairs


@pytest.mark.parametrize("bad", [[("A", 1)], [(1, "a")], [("A",)], ["A: 1"], ("not", "a list")])
def test_anything_but_str_pairs_is_refused(bad):
    with pytest.raises(TypeError):
        field_block(bad, _NOT_STORED)
    with pytest.raises(TypeError):
        lower_names(bad)
    with pytest.raises(TypeError):
        field_block(bad, _NOT_STORED, set())


def test_the_names_argument_must_be_a_set():
    for names in (frozenset(), [], {"a": 1}):
        with pytest.raises(TypeError):
            field_block([("A", "1")], _NOT_STORED, names)


def test_an_entry_with_a_field_a_hit_cannot_write_has_no_wire_block():
    for value in ("a\r\nInjected: 1", "snow \u2603"):
        e = build_entry(key="k", url="http://h/", status=200, reason="OK",
                        resp_headers=CIMultiDict([("Cache-Control", "max-age=60"), ("X-V", value)]),
                        body=b"body", req_headers=CIMultiDict(), request_time=1e9, response_time=1e9,
                        heuristic_fraction=0.1, heuristic_max=86400.0)
        assert e.wire is None and ("X-V", value) in e.headers
    ok = build_entry(key="k", url="http://h/", status=200, reason="OK",
                     resp_headers=CIMultiDict([("Cache-Control", "max-age=60"), ("X-V", "café")]),
                     body=b"body", req_headers=CIMultiDict(), request_time=1e9, response_time=1e9,
                     heuristic_fraction=0.1, heuristic_max=86400.0)
    assert ok.wire == "Cache-Control: max-age=60\r\nX-V: café\r\nDate: Sun, 09 Sep 2001 01:46:40 GMT\r\n".encode("latin-1")


def test_latin1_pairs_appends_what_the_python_callback_did():
    target: list[tuple[str, str]] = []
    on_header = Latin1Pairs(target)
    raw = [(b"Content-Type", b"text/plain"), (b"X-Latin", b"caf\xe9 \xff"), (b"Empty", b"")]
    for name, value in raw:
        assert on_header(name, value) is None
    assert target == [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw]
    assert on_header.target is target and all(type(v) is str for pair in target for v in pair)


@pytest.mark.parametrize("args", [(b"a",), (b"a", b"b", b"c"), ("a", b"b"), (b"a", None)])
def test_latin1_pairs_refuses_anything_but_two_bytes(args):
    target: list[tuple[str, str]] = []
    with pytest.raises(TypeError):
        Latin1Pairs(target)(*args)
    assert target == []
    with pytest.raises(TypeError):
        Latin1Pairs(("not", "a list"))


_EDITED_RE = re.compile(rb"\r\n(?:%s):" % b"|".join(re.escape(n.encode()) for n in sorted(EDITED_NAMES)))
_EDITED = frozenset(n.encode() for n in EDITED_NAMES)


def python_request_lines(pairs: list[tuple[bytes, bytes]]):
    """What ``forward_head`` computed before: the joined block, a search for an edited
    name, the Host line cut out, the CR/LF counts (and a Host value with CR or LF,
    which ``_tail`` refused afterwards)."""
    block = b"\r\n" + b"\r\n".join(map(b": ".join, pairs)) + b"\r\n"
    low = block.lower()
    if _EDITED_RE.search(low) is not None:
        return None
    lines = len(pairs)
    at = low.find(b"\r\nhost:")
    host = None
    if at >= 0:
        end = block.index(b"\r\n", at + 2)
        host = block[at + 8:end]
        block = block[:at] + block[end:]
        lines -= 1
    if block.count(b"\n") != lines + 1 or block.count(b"\r") != lines + 1:
        return None
    if host is not None and (b"\n" in host or b"\r" in host):
        return None
    return block, host


REQUESTS = [
    [(b"Host", b"example.com"), (b"User-Agent", b"wrk"), (b"Accept", b"*/*")],
    [(b"user-agent", b"x"), (b"HOST", b"a:8080"), (b"X-Request-Id", b"abc")],
    [(b"Accept", b"*/*")],
    [(b"Host", b"h"), (b"X-Forwarded-For", b"1.2.3.4")],
    [(b"Host", b"h"), (b"VIA", b"1.1 other")],
    [(b"Host", b"h"), (b"Te", b"trailers")],
    [(b"Host", b"h"), (b"X-Ok", b"a\r\nvia: 1")],
    [(b"Host", b"h\nx"), (b"A", b"1")],
    [(b"Hostname", b"n"), (b"Host", b"h"), (b"X-Via", b"v"), (b"Connectionx", b"c")],
]


@pytest.mark.parametrize("pairs", REQUESTS)
def test_request_lines_equal_the_python_passes(pairs):
    assert request_lines(pairs, _EDITED) == python_request_lines(pairs)


def test_request_lines_refuse_a_second_host_and_anything_but_bytes_pairs():
    assert request_lines([(b"Host", b"a"), (b"host", b"b")], _EDITED) is None
    with pytest.raises(TypeError):
        request_lines([("Host", "a")], _EDITED)
    with pytest.raises(TypeError):
        request_lines([(b"Host",)], _EDITED)


def lines_by_sets(pairs, edited):
    """``request_lines``' answer by set tests on the lower-cased names: the reference of
    its look-ups skipped by length."""
    names = [n.lower() for n, _ in pairs]
    if any(b"\r" in n + v or b"\n" in n + v for n, v in pairs) or names.count(b"host") > 1:
        return None
    if any(n in edited for n in names if n != b"host"):
        return None
    block = b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in pairs if n.lower() != b"host")
    host = next((v for n, v in pairs if n.lower() == b"host"), None)
    return block, host


NAME_POOL = [b"Host", b"HOST", b"hOsT", b"Hosts", b"Hos", b"User-Agent", b"Connection", b"CONNECTION",
             b"Keep-Alivf", b"Via", b"vIA", b"Te", b"Tf", b"X-Request-Id", b"X" * 63, b"X" * 64, b"x" * 70,
             b"Transfer-Encoding", b"X-Forwarded-Host", b"X-Forwarded-Hosz", b"Accept"]


@pytest.mark.parametrize("seed", range(200))
def test_request_lines_look_up_by_length_what_set_tests_find(seed):
    import random
    rng = random.Random(seed)
    pairs = [(rng.choice(NAME_POOL), rng.choice([b"v", b"a b", b""])) for _ in range(rng.randint(0, 5))]
    long_name = bytes(b"x" * 70)
    edited = rng.choice([_EDITED, _EDITED | {long_name}, frozenset({b"accept"}), set(_EDITED)])
    assert request_lines(pairs, edited) == lines_by_sets(pairs, edited)


def test_request_lines_read_a_changed_set_again():
    edited = {b"accept"}
    pairs = [(b"Host", b"h"), (b"User-Agent", b"u")]
    assert request_lines(pairs, edited) is not None
    edited.add(b"user-agent")
    assert request_lines(pairs, edited) is None
    assert request_lines(pairs, frozenset({b"x"})) is not None
    assert request_lines(pairs, frozenset({b"user-agent"})) is None


HOP_OR_VIA = ("connection", "keep-alive", "te", "transfer-encoding", "upgrade", "via")


@pytest.mark.parametrize("pairs", CASES + [
    [("VIA", "1.1 o")], [("Transfer-Encoding", "chunked")], [("x-te", "1"), ("TE", "trailers")],
    [("Viä", "1")], [("Conn\u0113ction", "close")], [("Keep-Alivf", "1"), ("Upgrad", "x")],
])
def test_names_disjoint_equals_the_set_test(pairs):
    expected = {k.lower() for k, _ in pairs}.isdisjoint(HOP_OR_VIA)
    wide = any(max(map(ord, k), default=0) > 0xFF for k, _ in pairs)
    # a name beyond Latin-1 is left to the multidict (False), whatever it is
    assert names_disjoint(pairs, HOP_OR_VIA) is (expected and not wide)


def test_names_disjoint_refuses_bad_input():
    for bad in ([("A",)], [(1, "a")], "not a list"):
        with pytest.raises(TypeError):
            names_disjoint(bad, HOP_OR_VIA)
    with pytest.raises(TypeError):
        names_disjoint([("a", "b")], ("vïa",))
