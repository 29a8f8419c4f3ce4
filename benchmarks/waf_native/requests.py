"""Write bench_waf.py's request classes and the WAF corpus as files the native driver reads.

Each request is a run of length-prefixed fields ("<length> <bytes>\n"): id, method, URI,
header count, then name and value per header, then the body.  Lengths, not separators,
because corpus header values and bodies hold any byte.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_waf import CORPUS, request_classes  # noqa: E402

CLASSES = ("get", "form", "json", "attack")     # request_classes() in order


def field(data: bytes) -> bytes:
    return str(len(data)).encode() + b" " + data + b"\n"


def record(rid: str, method: str, uri: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """Headers as the host hands them to the filter: lower-case names, a Content-Length with a body."""
    hs = [(k.lower(), v) for k, v in headers]
    if body and not any(k == "content-length" for k, _ in hs):
        hs.append(("content-length", str(len(body))))
    out = field(rid.encode()) + field(method.encode()) + field(uri.encode("utf-8", "surrogateescape"))
    out += field(str(len(hs)).encode())
    for k, v in hs:
        out += field(k.encode("utf-8", "surrogateescape")) + field(v.encode("utf-8", "surrogateescape"))
    return out + field(body)


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, (method, uri, headers, body) in zip(CLASSES, request_classes().values()):
        (out / name).write_bytes(record(name, method, uri, list(headers.items()), body))
    if CORPUS.exists():
        with open(out / "corpus", "wb") as f:
            for line in CORPUS.read_text().splitlines():
                rec = json.loads(line)
                body = rec["body"].encode("utf-8", "surrogateescape") if rec.get("body") else b""
                f.write(record(rec["id"], rec["method"], rec["uri"], [tuple(h) for h in rec["headers"]], body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
