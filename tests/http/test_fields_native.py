"""The per-field passes in C (``edgenode.http._fields``) equal the Python they replace."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, istr

from edgenode.http._fields import Latin1Pairs, field_block, lower_names
from edgenode.cache.policy import _NOT_STORED, build_entry

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
