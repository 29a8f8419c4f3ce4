"""Native test driver for the WAF engine: the engine's C files built with gcc, via ctypes.

Exposes the flat inspection entry point (filters/waf/native.py) and the individual
decoding passes, so normalisation can be unit-tested byte for byte.
"""
from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("waf_native", ROOT / "filters" / "waf" / "native.py")
assert _spec and _spec.loader
waf_native = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(waf_native)

NativeWaf = waf_native.NativeWaf


class Decoder:
    """One decoding pass of the normaliser (url / html / js)."""

    def __init__(self, lib_path: Path) -> None:
        lib = ctypes.CDLL(str(lib_path))
        self._url = lib.waf_url_decode
        self._html = lib.waf_html_decode
        self._js = lib.waf_js_decode
        for f in (self._url, self._html, self._js):
            f.restype = ctypes.c_size_t
        out = ctypes.POINTER(ctypes.c_char)
        self._url.argtypes = [ctypes.c_char_p, ctypes.c_size_t, out, ctypes.c_bool]
        self._html.argtypes = self._js.argtypes = [ctypes.c_char_p, ctypes.c_size_t, out]

    def url(self, data: bytes, plus: bool = False) -> bytes:
        out = ctypes.create_string_buffer(len(data) + 8)
        n = self._url(data, len(data), out, plus)
        return out.raw[:n]

    def html(self, data: bytes) -> bytes:
        out = ctypes.create_string_buffer(len(data) + 8)
        n = self._html(data, len(data), out)
        return out.raw[:n]

    def js(self, data: bytes) -> bytes:
        out = ctypes.create_string_buffer(len(data) + 8)
        n = self._js(data, len(data), out)
        return out.raw[:n]


def build() -> Path:
    return waf_native.build()
