"""Native (gcc + ctypes) build of the WAF engine, for unit tests and fast corpus runs.

The Wasm filter is the shipped artefact; this loads the very same engine C files
as a shared library so rule work can be iterated and tested in milliseconds.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

WAF_DIR = Path(__file__).resolve().parent
SOURCES = ["normalize.c", "rules.c", "bodyparse.c", "engine.c"]


def build(out_dir: Path | None = None) -> Path:
    """Compile the engine to a shared library (cached by source hash)."""
    digest = hashlib.sha256()
    for name in SOURCES + ["normalize.h", "rules.h", "bodyparse.h", "engine.h"]:
        digest.update((WAF_DIR / name).read_bytes())
    out_dir = out_dir or Path(tempfile.gettempdir()) / "edgenode-waf"
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / f"libwaf-{digest.hexdigest()[:16]}.so"
    if not lib.exists():
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                        "-o", str(tmp), *[str(WAF_DIR / s) for s in SOURCES]], check=True)
        tmp.replace(lib)
    return lib


class NativeWaf:
    """ctypes wrapper around waf_inspect_flat."""

    def __init__(self, lib_path: Path | None = None) -> None:
        self._lib = ctypes.CDLL(str(lib_path or build()))
        f = self._lib.waf_inspect_flat
        f.restype = ctypes.c_int
        f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                      ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                      ctypes.POINTER(ctypes.c_uint32), ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        fam = self._lib.waf_rule_family
        fam.restype = ctypes.c_int
        fam.argtypes = [ctypes.c_uint32]
        name = self._lib.waf_family_name
        name.restype = ctypes.c_char_p
        name.argtypes = [ctypes.c_int]

    def inspect(self, method: str, uri: str, headers: list[tuple[str, str]] | list[list[str]],
                body: bytes | str | None = None, paranoia: int = 1,
                threshold: int = 5) -> tuple[int, list[int]]:
        """Return (anomaly score, matched rule ids)."""
        hdr = "".join(f"{k}: {v}\n" for k, v in headers).encode("utf-8", "surrogateescape")
        raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else (body or b"")
        rules = (ctypes.c_uint32 * 48)()
        n = ctypes.c_int(0)
        score = self._lib.waf_inspect_flat(paranoia, threshold, method.encode(), uri.encode("utf-8", "surrogateescape"),
                                           hdr, len(hdr), raw, len(raw), rules, 48, ctypes.byref(n))
        return score, [rules[i] for i in range(n.value)]

    def family(self, rule_id: int) -> str:
        f = self._lib.waf_rule_family(rule_id)
        return self._lib.waf_family_name(f).decode() if f >= 0 else "unknown"
