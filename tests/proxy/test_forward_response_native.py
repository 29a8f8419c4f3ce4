"""``forward_response``'s common case in C (``http._origin.response_forwarder``) against
its reference ``_forward_response``: the same headers and plain fields over generated
origin responses, and the reference reached for every other one."""

from __future__ import annotations

import random
from typing import Any

import pytest
from multidict import CIMultiDict, getversion

from edgenode.http.messages import FROM_BODY, Response, made_response
from edgenode.proxy import forwarding
from edgenode.proxy.forwarding import _forward_response, forward_response

NAMES = ["Content-Type", "ETag", "Cache-Control", "Connection", "KEEP-ALIVE", "te", "Trailer",
         "Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "via", "Via", "X-Vía", "X-\u0101",
         "Vias", "Tee", "Date"]
VIA = "1.1 edgenode"


def generated(rng: random.Random) -> Response:
    """An origin response whose plain fields are current, stale or absent."""
    pairs = [(rng.choice(NAMES), rng.choice(["v", "a, b", "close", ""])) for _ in range(rng.randint(0, 6))]
    headers: CIMultiDict[str] = CIMultiDict(pairs)
    kind = rng.choice(["current"] * 5 + ["stale", "none"])
    fields: Any = (getversion(headers), pairs)
    if kind == "none":
        fields = None
    response = made_response(200, headers, b"x", "", fields, FROM_BODY)
    if kind == "stale":
        headers.add("X-Later", "1")
    return response


def seen(response: Response) -> tuple[Any, ...]:
    fields = response.fields
    if fields is not None:
        fields = (fields[0] == getversion(response.headers), list(fields[1]))
    return list(response.headers.items()), fields


@pytest.mark.parametrize("seed", range(300))
def test_the_c_forwards_as_the_reference_does(seed: int) -> None:
    made = forward_response(generated(random.Random(seed)), VIA)
    expected = _forward_response(generated(random.Random(seed)), VIA)
    assert seen(made) == seen(expected)


def test_the_common_case_runs_no_python_and_the_rest_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def spy(resp: Response, via: str) -> Response:
        calls.append(via)
        return _forward_response(resp, via)
    forwarder = forwarding.response_forwarder(spy, forwarding._HOP_OR_VIA, getversion)
    pairs = [("Content-Type", "text/plain"), ("ETag", '"e"')]
    headers: CIMultiDict[str] = CIMultiDict(pairs)
    plain = made_response(200, headers, b"x", "", (getversion(headers), pairs), FROM_BODY)
    assert forwarder(plain, VIA) is plain and calls == []
    assert plain.fields is not None and plain.fields[0] == getversion(headers)
    assert plain.fields[1][-1] == ("Via", VIA) and headers.getall("Via") == [VIA]
    hop = [("Keep-Alive", "timeout=5")]
    hop_headers: CIMultiDict[str] = CIMultiDict(hop)
    forwarder(made_response(200, hop_headers, b"", "", (getversion(hop_headers), hop), FROM_BODY), VIA)
    assert calls == [VIA] and "Keep-Alive" not in hop_headers
