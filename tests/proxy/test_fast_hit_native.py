"""The fast path's C helpers (``frontend/_fasthit.c``) against what they replace: the
Python check of a head's raw fields (now decided by the ``HeadSink`` as they come), the
kept answer's ``%`` formatting, httptools' ``get_http_version`` for a head without a
Connection field, and the parser callbacks (``HeadSink``) that were ``RequestParser``
methods."""

from __future__ import annotations

import itertools

import httptools
import pytest

from edgenode.frontend._fasthit import HeadSink, kept_answer
from edgenode.frontend.request_head import Reject
from edgenode.http.headers import NOT_PLAIN

Raw = list[tuple[bytes, bytes]]


def reference(raw: Raw) -> tuple[bytes, bytes | None] | None:
    """The loop ``FastHits._fast`` ran before: none of NOT_PLAIN, one Host, at most one
    X-Request-Id."""
    host: bytes | None = None
    incoming: bytes | None = None
    for name, value in raw:
        low = name.lower()
        if low in NOT_PLAIN:
            return None
        if low == b"host":
            if host is not None:
                return None
            host = value
        elif low == b"x-request-id":
            if incoming is not None:
                return None
            incoming = value
    return None if host is None else (host, incoming)


def _refuse() -> None:
    raise AssertionError("no limit is reached here")


def sink_of(raw: Raw, not_plain: frozenset[bytes] = NOT_PLAIN) -> HeadSink:
    """A sink that took ``raw`` as httptools hands a head's fields over."""
    sink = HeadSink(1 << 20, _refuse, 1 << 20, _refuse, not_plain)
    sink.begin()
    for name, value in raw:
        sink(name, value)
    return sink


def plain(sink: HeadSink) -> tuple[bytes, bytes | None] | None:
    """The sink's answer in ``reference``'s terms."""
    return None if sink.host is None else (sink.host, sink.incoming)


FIELDS: Raw = [(b"Host", b"example.com"), (b"HOST", b"other.example"), (b"host", b"caf\xe9.example"),
               (b"X-Request-Id", b"abc-1"), (b"x-request-ID", b"abc-2"), (b"User-Agent", b"wrk"),
               (b"Accept", b"*/*"), (b"Hostx", b"no"), (b"Hos", b"no"), (b"X-Request-Idx", b"no"),
               (b"", b"empty name"), (b"A" * 300, b"long name")]
FIELDS += [(name.upper(), b"1") for name in sorted(NOT_PLAIN)]
FIELDS += [(name.title(), b"1") for name in sorted(NOT_PLAIN)]


@pytest.mark.parametrize("size", [0, 1, 2, 3])
def test_head_sink_decides_plain_as_the_python_check(size: int) -> None:
    heads = list(itertools.permutations(FIELDS, size)) if size < 3 else \
        [list(t) for t in itertools.islice(itertools.permutations(FIELDS, 3), 0, None, 7)]
    decided = {True: 0, False: 0}
    for head in heads:
        raw = list(head)
        got = plain(sink_of(raw))
        assert got == reference(raw), raw
        decided[got is not None] += 1
    if size:
        assert decided[True] and decided[False]  # both outcomes exercised


def test_head_sink_follows_the_set_it_is_given() -> None:
    raw = [(b"Host", b"a"), (b"Accept", b"*/*")]
    assert plain(sink_of(raw, frozenset({b"accept"}))) is None
    assert plain(sink_of(raw, NOT_PLAIN)) == (b"a", None)
    assert plain(sink_of(raw, frozenset())) == (b"a", None)
    with pytest.raises(TypeError):
        sink_of(raw, frozenset({"accept"}))  # type: ignore[arg-type]  # names are bytes
    with pytest.raises(TypeError):
        sink_of(raw, set(NOT_PLAIN))  # type: ignore[arg-type]
    assert plain(sink_of(raw + [(b"Range", b"bytes=0-1")], NOT_PLAIN)) is None
    # two sinks with their own sets, fed in turn
    strict, usual = sink_of([], frozenset({b"accept"})), sink_of([])
    for name, value in raw:
        strict(name, value)
        usual(name, value)
    assert (plain(strict), plain(usual)) == (None, (b"a", None))


def test_head_sink_decides_the_head_it_is_in() -> None:
    sink = sink_of([(b"Host", b"a"), (b"X-Request-Id", b"r"), (b"Connection", b"close")])
    assert (sink.host, sink.incoming, sink.connection) == (b"a", b"r", True)
    sink.begin()
    assert (sink.host, sink.incoming, sink.connection) == (None, None, False)
    sink(b"Host", b"b")
    assert (sink.host, sink.incoming, sink.connection) == (b"b", None, False)
    with pytest.raises(AttributeError):
        sink.host = b"c"  # type: ignore[misc]


@pytest.mark.parametrize("number", [0, 1, 9, 10, 15, 16, 255, 4096, 0xDEADBEEF, 2**63, 2**64 - 1])
def test_kept_answer_is_the_percent_format(number: int) -> None:
    prefix = b"HTTP/1.1 200 OK\r\nX-Request-Id: 0a1b2c3d4e5f-"
    for body in (b"", b"x" * 1024):
        assert kept_answer(prefix, number, body) == b"%s%x\r\n\r\n%s" % (prefix, number, body)


def test_kept_answer_refuses_what_it_cannot_format() -> None:
    with pytest.raises(OverflowError):
        kept_answer(b"", -1, b"")
    with pytest.raises(OverflowError):
        kept_answer(b"", 2**64, b"")
    with pytest.raises(TypeError):
        kept_answer("", 1, b"")


class _Head:
    """Records what ``RequestParser.on_headers_complete`` reads of a parsed head."""

    def __init__(self) -> None:
        self.on_header = self.sink = sink_of([])
        self.on_message_begin = self.sink.begin
        self.parser = httptools.HttpRequestParser(self)
        self.seen: tuple[str, bool, bool] | None = None

    def on_headers_complete(self) -> None:
        self.seen = (self.parser.get_http_version(), self.parser.should_keep_alive(),
                     self.sink.connection)


@pytest.mark.parametrize("version", [b"0.9", b"1.0", b"1.1", b"1.2", b"2.0", b"2.1", b"3.0", b"9.9"])
@pytest.mark.parametrize("connection", [b"", b"Connection: keep-alive\r\n", b"CONNECTION: close\r\n",
                                        b"connection: upgrade\r\n", b"Keep-Alive: timeout=5\r\n"])
def test_keep_alive_without_connection_is_http11_alone(version: bytes, connection: bytes) -> None:
    head = _Head()
    try:
        head.parser.feed_data(b"GET / HTTP/%s\r\nHost: a\r\n%s\r\n" % (version, connection))
    except httptools.HttpParserError:
        assert version not in (b"0.9", b"1.0", b"1.1", b"2.0")  # every other version stops here
        return
    assert head.seen is not None
    got, keep_alive, has = head.seen
    assert has == connection.lower().startswith(b"connection:")
    # the callback's rule: HTTP/1.1 without asking httptools when this holds
    assert (keep_alive and not has) == (got == "1.1" and not has)


def test_connection_reads_names_only() -> None:
    assert sink_of([(b"Host", b"a"), (b"cOnNeCtIoN", b"close")]).connection is True
    assert sink_of([(b"Host", b"connection"), (b"Connections", b"x"), (b"Connectio", b"x")]).connection is False
    assert sink_of([]).connection is False
    # a Connection field keeps a request plain unless the set names it
    assert plain(sink_of([(b"Host", b"a"), (b"Connection", b"close")])) == (b"a", None)
    assert plain(sink_of([(b"Host", b"a"), (b"Connection", b"close")], frozenset({b"connection"}))) is None


class _Owner:
    """A head's target and fields as a real httptools parser reports them, collected by a
    ``HeadSink`` or (``reference``) by the Python callbacks it replaced."""

    def __init__(self, reference: bool, limit: int = 64, url_limit: int = 16) -> None:
        self.limit, self.url_limit = limit, url_limit
        self.heads: list[tuple[bytes, Raw, int]] = []
        self.sink = HeadSink(limit, self._fields_too_large, url_limit, self._target_too_long, NOT_PLAIN)
        self.reference = reference
        if reference:
            self.url, self.raw, self.size = b"", [], 0
            self.on_message_begin, self.on_url, self.on_header = self.ref_begin, self.ref_url, self.ref_header
        else:
            self.on_message_begin, self.on_url, self.on_header = self.sink.begin, self.sink.on_url, self.sink
        self.parser = httptools.HttpRequestParser(self)

    def state(self) -> tuple[bytes, Raw, int]:
        if self.reference:
            return self.url, self.raw, self.size
        return self.sink.url, self.sink.raw, self.sink.size

    def ref_begin(self) -> None:
        self.url, self.raw, self.size = b"", [], 0

    def ref_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.url_limit:
            self._target_too_long()

    def ref_header(self, name: bytes, value: bytes) -> None:
        self.size += len(name) + len(value) + 4
        if self.size > self.limit:
            self._fields_too_large()
        else:
            self.raw.append((name, value))

    def _fields_too_large(self) -> None:
        raise Reject(431, "fields")

    def _target_too_long(self) -> None:
        raise Reject(414, "target")

    def on_headers_complete(self) -> None:
        if not self.reference:
            assert self.sink.in_head is True
            self.sink.in_head = False
        self.heads.append(self.state())

    def feed(self, data: bytes, cut: int) -> tuple[list[tuple[bytes, Raw, int]], bytes, int | None]:
        """What the heads held, the target so far, and the status of a rejection."""
        try:
            self.parser.feed_data(data[:cut])
            self.parser.feed_data(data[cut:])
        except httptools.HttpParserError as exc:
            assert isinstance(exc.__context__, Reject)
            return self.heads, self.state()[0], exc.__context__.status
        return self.heads, self.state()[0], None


HEADS = [
    b"GET /a?b=c HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\nGET /second HTTP/1.1\r\nHost: b\r\n\r\n",
    b"GET /exactly-16-byte HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /seventeen-bytes1 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nLong: " + b"v" * 30 + b"\r\nNext: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nLong: " + b"v" * 60 + b"\r\n\r\n",
]


@pytest.mark.parametrize("data", HEADS)
def test_head_sink_keeps_the_state_the_python_callbacks_kept(data: bytes) -> None:
    for cut in range(len(data) + 1):  # the target and the fields split across two reads
        assert _Owner(False).feed(data, cut) == _Owner(True).feed(data, cut)


def test_head_sink_limits() -> None:
    heads, url, status = _Owner(False).feed(HEADS[1], 9)
    assert (url, status) == (b"/exactly-16-byte", None) and len(url) == 16
    assert heads == [(b"/exactly-16-byte", [(b"Host", b"a")], 9)]
    heads, url, status = _Owner(False).feed(HEADS[2], 9)  # 414 with the target as parsed
    assert (heads, url, status) == ([], b"/seventeen-bytes1", 414)
    heads, url, status = _Owner(False).feed(HEADS[4], 20)
    assert (heads, status) == ([], 431)
    heads, url, status = _Owner(False).feed(HEADS[3], 0)
    assert heads == [(b"/", [(b"Host", b"a"), (b"Long", b"v" * 30), (b"Next", b"1")], 9 + 38 + 9)]


def test_head_sink_refuses_what_it_cannot_take() -> None:
    sink = _Owner(False).sink
    with pytest.raises(TypeError):
        sink.on_url("/a")
    with pytest.raises(TypeError):
        sink("Host", b"a")
    with pytest.raises(AttributeError):
        sink.raw = []  # type: ignore[misc]
    with pytest.raises(AttributeError):
        sink.url = b"/"  # type: ignore[misc]
    assert (sink.url, sink.raw, sink.size, sink.in_head) == (b"", [], 0, False)  # nothing taken
    unset = HeadSink.__new__(HeadSink)
    for call in (unset.begin, lambda: unset.on_url(b"/"), lambda: unset(b"a", b"b")):
        with pytest.raises(TypeError):
            call()
    with pytest.raises(AttributeError):
        unset.url


def test_head_sink_begins_a_new_head() -> None:
    sink = _Owner(False).sink
    sink.begin()
    sink.on_url(b"/a")
    sink(b"Host", b"a")
    raw = sink.raw
    sink.in_head = False
    sink.begin()  # the next head: nothing of the last one, whose list is kept as it was
    assert (sink.url, sink.raw, sink.size, sink.in_head) == (b"", [], 0, True)
    assert sink.raw is not raw and raw == [(b"Host", b"a")]


def test_head_sink_completes_a_message_with_a_body_only() -> None:
    sink = sink_of([(b"Host", b"a")])
    ends: list[str] = []
    assert sink.body_done is None
    sink.complete()  # no body: nothing to call
    sink.body_done = lambda: ends.append("body")
    sink.complete()
    sink.complete()  # (the callback clears it itself in the parser)
    assert ends == ["body", "body"]
    sink.body_done = None
    sink.complete()
    assert ends == ["body", "body"]


class _Decider:
    """A real httptools parser whose ``on_headers_complete`` is the sink's
    ``headers_complete``: records which of ``fast(get)`` and ``general()`` it called, and
    what the parser reported for the head (the Python rule's inputs)."""

    def __init__(self) -> None:
        self.on_header = self.sink = HeadSink(1 << 20, _refuse, 1 << 20, _refuse, NOT_PLAIN)
        self.on_message_begin, self.on_url = self.sink.begin, self.sink.on_url
        self.on_headers_complete = self.sink.headers_complete
        self.parser = httptools.HttpRequestParser(self)
        self.sink.bind(self.parser.should_keep_alive, self.parser.get_method, self.fast, self.general)
        self.calls: list[tuple[str, bool | None, bool]] = []
        self.facts: list[tuple[bytes, bool, bool, bytes | None, bytes]] = []

    def _record(self, kind: str, get: bool | None) -> None:
        self.calls.append((kind, get, self.sink.in_head))
        parser, sink = self.parser, self.sink
        self.facts.append((parser.get_method(), parser.should_keep_alive(), sink.connection, sink.host,
                           sink.url))

    def fast(self, get: bool) -> None:
        self._record("fast", get)

    def general(self) -> None:
        self._record("general", None)


def python_rule(method: bytes, keep_alive: bool, connection: bool, host: bytes | None,
                url: bytes) -> tuple[str, bool | None]:
    """``RequestParser``'s rule the sink decides in C: a plain keep-alive GET/HEAD with an
    origin-form target and no Connection field (so HTTP/1.1) goes to ``fast``."""
    if (method in (b"GET", b"HEAD") and keep_alive and not connection and host is not None
            and url.startswith(b"/")):
        return "fast", method == b"GET"
    return "general", None


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"POST", b"OPTIONS", b"GETX", b"DELETE"])
@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
@pytest.mark.parametrize("target", [b"/a?b", b"http://a/x", b"*"])
@pytest.mark.parametrize("fields", [
    b"Host: a\r\n", b"", b"Host: a\r\nHost: b\r\n", b"Host: a\r\nConnection: keep-alive\r\n",
    b"Host: a\r\nConnection: close\r\n", b"Host: a\r\nCache-Control: no-cache\r\n",
    b"Host: a\r\nX-Request-Id: r1\r\n", b"Host: a\r\nContent-Length: 0\r\n",
])
def test_headers_complete_takes_the_fast_path_by_the_python_rule(method: bytes, version: bytes,
                                                                  target: bytes, fields: bytes) -> None:
    d = _Decider()
    try:
        d.parser.feed_data(b"%s %s HTTP/%s\r\n%s\r\n" % (method, target, version, fields))
    except httptools.HttpParserError:
        assert method == b"GETX" or target == b"*" and method != b"OPTIONS"  # llhttp's own refusals
        assert d.calls == []
        return
    assert len(d.calls) == 1
    kind, get, in_head = d.calls[0]
    assert in_head is False  # the head is over before either is called
    assert (kind, get) == python_rule(*d.facts[0])


def test_headers_complete_on_pipelined_heads_and_unbound() -> None:
    d = _Decider()
    d.parser.feed_data(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: a\r\n\r\n"
                       b"GET /3 HTTP/1.1\r\nHost: a\r\nPragma: x\r\n\r\nGET /4 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [c[:2] for c in d.calls] == [("fast", True), ("fast", False), ("general", None), ("fast", True)]
    unbound = HeadSink(1 << 20, _refuse, 1 << 20, _refuse, NOT_PLAIN)
    with pytest.raises(TypeError):
        unbound.headers_complete()
    with pytest.raises(TypeError):
        unbound.bind(print, print, print)  # type: ignore[call-arg]
