"""``raw_request`` makes the same object ``Request.__init__`` would for the parsed pairs
(every slot but ``headers``, which a ``RawRequest`` makes on first read), without a
Python ``__init__``."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, getversion

from edgenode.http.messages import FROM_BODY, RawRequest, Request, raw_request

PAIRS = [(b"Host", b"example.com"), (b"Accept", b"*/*"), (b"X-Request-Id", b"t-1")]


def _slots() -> list[str]:
    """Every slot a ``Request`` has, from its class and its bases."""
    return [name for cls in Request.__mro__ for name in getattr(cls, "__slots__", ())]


@pytest.mark.parametrize(("target", "version", "scheme"), [
    ("/p?q=1&r", "1.1", "http"), ("/p", "1.0", "https"), ("/p?", "1.1", "http")])
def test_the_makers_request_is_the_classs_slot_by_slot(target: str, version: str, scheme: str) -> None:
    made = raw_request("GET", target, list(PAIRS), version, scheme)
    fields = CIMultiDict([(n.decode("latin-1"), v.decode("latin-1")) for n, v in PAIRS])
    expected = Request("GET", target, fields, b"", version, scheme)
    assert type(made) is RawRequest and made.raw == (-1, PAIRS)
    for name in _slots():  # a slot ``Request`` gains must be stored by ``raw_request`` too
        if name not in ("headers", "raw"):
            assert getattr(made, name) == getattr(expected, name), name
    assert made._trailers is FROM_BODY
    assert list(made.headers.items()) == list(fields.items())  # made on first read
    assert type(made) is Request and made.raw == (getversion(made.headers), PAIRS)


def test_the_defaults_and_the_class_call_without_arguments() -> None:
    made = raw_request("HEAD", "/x", [])
    assert (made.version, made.scheme, made.body, made.path, made.query) == ("1.1", "http", b"", "/x", "")
    with pytest.raises(TypeError):
        RawRequest("GET", "/x", [])  # type: ignore[call-arg]  # only the maker fills one
