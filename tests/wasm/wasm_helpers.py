"""Helpers shared by the wasm tests (a plain module: tests/ is not a package)."""

from __future__ import annotations

from edgenode.http.messages import CIMultiDict, Request
from edgenode.pipeline.exchange import Exchange


def request(path: str = "/a", body: bytes = b"", method: str = "GET", **headers: str) -> Exchange:
    hdrs = CIMultiDict({"Host": "example.com", "User-Agent": "test/1"})
    for k, v in headers.items():
        hdrs[k.replace("_", "-")] = v
    if body:
        hdrs["Content-Length"] = str(len(body))
    return Exchange(Request(method, path, hdrs, body), client=("10.1.2.3", 5555), local=("127.0.0.1", 8080))
