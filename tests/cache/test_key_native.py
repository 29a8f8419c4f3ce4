"""The cache key built in C (``_key.KeyCore``) equals ``KeyBuilder``'s Python reference
(``py_for_parts``, ``py_for_request``) over generated targets and hosts: ports, case,
whitespace, queries with ignored, whitelisted, empty and repeated parameters, sorting,
percent signs, non-ASCII text, absolute-form targets (handed to Python)."""

from __future__ import annotations

import random

import pytest
from multidict import CIMultiDict

from edgenode.cache.key import KeyBuilder
from edgenode.config import CacheKeyConfig
from edgenode.http.messages import Request

CONFIGS = [
    CacheKeyConfig(ignore_query=[]),
    CacheKeyConfig(),  # (no filtering at all)
    CacheKeyConfig(ignore_query=["utm_source", "utm_medium", "utm_campaign"]),
    CacheKeyConfig(ignore_query=["a", "a.b", "é"], sort_query=True),
    CacheKeyConfig(query_whitelist=["id", "page", "ü"]),
    CacheKeyConfig(query_whitelist=["id", "utm_source"], ignore_query=["utm_source"], sort_query=True),
    CacheKeyConfig(query_whitelist=[], sort_query=True),
    CacheKeyConfig(sort_query=True),
]

NAMES = ["a", "b", "id", "page", "utm_source", "utm_medium", "a.b", "é", "ü", "A", "x%20y", "", "utm_sourcex"]
VALUES = ["", "1", "%2F", "a=b", "ü", "€", "x y", "%", "?", "/"]
HOSTS = ["example.com", "Example.COM", "example.com:80", "example.com:443", "EXAMPLE.com:8080",
         " example.com ", "\texample.com:80\t", "ÀÉ.example", "\xa0example.com\xa0", "[::1]:80", "[::1]",
         "host:", ":80", "", "x:80:80", "\x85h\x85", "İ.example", "ß.example:443"]
SCHEMES = ["http", "https", "ftp", "HTTP", ""]


def _query(rng: random.Random) -> str:
    params = []
    for _ in range(rng.randrange(0, 6)):
        name = rng.choice(NAMES)
        params.append(name if rng.random() < 0.2 else f"{name}={rng.choice(VALUES)}")
    return "&".join(params) + rng.choice(["", "", "&", "&&"])


def _target(rng: random.Random) -> str:
    path = rng.choice(["/", "", "/a", "/a/b%20c", "/ü/€", "/p;x", "/a?", "//double", "/%"])
    shape = rng.random()
    if shape < 0.1:
        return rng.choice(["http://Example.COM:80", "https://x.test:443", "HTTP://X"]) + path + "?" + _query(rng)
    if shape < 0.2:
        return path
    return f"{path}?{_query(rng)}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
def test_c_key_equals_the_python_reference(cfg: CacheKeyConfig) -> None:
    rng = random.Random(1234)
    keys = KeyBuilder(cfg)
    assert keys.for_parts != keys.py_for_parts  # the C one is installed
    for _ in range(3000):
        scheme, host, target = rng.choice(SCHEMES), rng.choice(HOSTS), _target(rng)
        reference = KeyBuilder(cfg).py_for_parts(scheme, host, target, CIMultiDict)  # (no memo)
        assert keys.for_parts(scheme, host, target, CIMultiDict) == reference, (scheme, host, target)


def test_c_key_of_a_request_equals_the_python_reference() -> None:
    rng = random.Random(99)
    for cfg in CONFIGS:
        keys = KeyBuilder(cfg)
        for _ in range(300):
            h = CIMultiDict({"Host": rng.choice(HOSTS)}) if rng.random() < 0.9 else CIMultiDict()
            req = Request("GET", _target(rng), h, scheme=rng.choice(["http", "https"]))
            assert keys.for_request(req) == KeyBuilder(cfg).py_for_request(req)


def test_known_keys() -> None:
    keys = KeyBuilder(CacheKeyConfig(ignore_query=["utm_source"], sort_query=True))
    assert keys.for_parts("http", "Example.COM:80", "/a?b=2&utm_source=x&&a=1", CIMultiDict) == \
        ("http://example.com/a?a=1&b=2",) * 2
    assert keys.for_parts("https", "x.test:443", "", CIMultiDict) == ("https://x.test/",) * 2
    assert keys.for_parts("http", "x.test:443", "/?utm_source", CIMultiDict) == ("http://x.test:443/",) * 2
    plain = KeyBuilder(CacheKeyConfig())
    assert plain.for_parts("http", "h", "/p?&b&a", CIMultiDict) == ("http://h/p?&b&a",) * 2


def test_a_key_with_request_fields_stays_python() -> None:
    keys = KeyBuilder(CacheKeyConfig(headers=["X-Device"]))
    assert keys.for_parts == keys.py_for_parts
    h = CIMultiDict({"Host": "h", "X-Device": "mobile"})
    assert keys.for_request(Request("GET", "/a", h)) == ("http://h/a", "http://h/a\nx-device:mobile")


def test_pieces_that_are_not_str_go_to_python() -> None:
    class Text(str):
        pass

    keys = KeyBuilder(CacheKeyConfig())
    assert keys.for_parts("http", Text("H"), Text("/a"), CIMultiDict) == ("http://h/a",) * 2
    with pytest.raises(TypeError):
        keys.for_parts("http", "h", "/a")  # type: ignore[call-arg]


def test_objects_made_without_init_refuse_their_methods() -> None:
    """A ``KeyCore`` or ``Reader`` made by ``__new__`` alone answers a TypeError, not a crash."""
    from edgenode.cache._key import KeyCore, Reader

    key = KeyCore.__new__(KeyCore)
    reader = Reader.__new__(Reader)
    for call in (lambda: key.for_parts("http", "h", "/", lambda: {}), lambda: key.for_request(object()),
                 lambda: reader.lookup("k", {}), lambda: reader.lookup_lazy("k", lambda: {})):
        with pytest.raises(TypeError, match="not initialised"):
            call()
