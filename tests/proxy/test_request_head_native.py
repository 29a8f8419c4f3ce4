"""``http._origin.request_head`` (C) makes the bytes its reference
``proxy.forwarding._request_head`` makes, and refuses what it refuses."""

from __future__ import annotations

import random

import pytest

from edgenode.http._origin import request_head
from edgenode.proxy.forwarding import _request_head

TARGETS = ["/", "/a?b=1", "/obj/miss-1?size=1k&ttl=3600", "*", "/caf\xe9", "/\u20ac", "/a\rb", "/a\nb",
           "", "/%0d%0a", "http://h/x?y"]
BLOCKS = [b"", b"\r\nUser-Agent: wrk", b"\r\nA: 1\r\nB: \xe9"]
TAILS = [b"\r\n\r\n", b"\r\nHost: h\r\nVia: 1.1 e\r\n\r\n"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("method", ["GET", "HEAD", "M\xe9"])
def test_the_c_head_is_the_references(method: str, target: str) -> None:
    for block in BLOCKS:
        for tail in TAILS:
            assert request_head(method, target, block, tail) == _request_head(method, target, block, tail)


def test_generated_targets() -> None:
    rng = random.Random(7)
    alphabet = "abc/?=&%\r\n \xe9\xff\u0100"
    for _ in range(2000):
        target = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        block, tail = rng.choice(BLOCKS), rng.choice(TAILS)
        assert request_head("GET", target, block, tail) == _request_head("GET", target, block, tail)


def test_it_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        request_head("GET", b"/", b"", b"")  # type: ignore[arg-type]
