"""Foreign functions the node offers to filters (``proxy_call_foreign_function``).

Filters call them by name with bytes in and bytes out; docs/filters-abi.md lists them.
``compress`` / ``uncompress`` keep Envoy's names and zlib format, so filters written for
Envoy that use them run unchanged.  The ``edgenode.*`` ones expose node capabilities.
"""

from __future__ import annotations

import io
import json
import zlib
from typing import Callable

from PIL import Image, UnidentifiedImageError

__all__ = ["node_functions", "MAX_UNCOMPRESSED"]

#: ``uncompress`` refuses to inflate past this (a zip bomb must not exhaust the node)
MAX_UNCOMPRESSED = 64 * 1024 * 1024

Purge = Callable[[str, list[str], bool], int]


def compress(args: bytes) -> bytes:
    return zlib.compress(args)


def uncompress(args: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(args, MAX_UNCOMPRESSED)
    if inflater.unconsumed_tail:
        raise ValueError(f"uncompressed data exceeds {MAX_UNCOMPRESSED} bytes")
    if not inflater.eof:
        raise ValueError("truncated zlib stream")
    return out


def image_info(args: bytes) -> bytes:
    """Format and size from the image header alone (no pixel decoding)."""
    try:
        with Image.open(io.BytesIO(args)) as im:
            info = {"format": im.format, "width": im.width, "height": im.height, "mode": im.mode}
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not an image Pillow can read: {exc}") from None
    return json.dumps(info, separators=(",", ":")).encode()


def make_purge(purge: Purge) -> Callable[[bytes], bytes]:
    """``{"urls": [...], "keys": [...], "all": bool, "soft": bool}`` -> ``{"purged": n}``.

    Acts on the cache of the worker that runs the filter; node-wide purges go through
    the admin API, which fans out to every worker.
    """

    def purge_fn(args: bytes) -> bytes:
        req = json.loads(args or b"{}")
        if not isinstance(req, dict):
            raise ValueError("expected a JSON object")
        soft = bool(req.get("soft", False))
        urls, keys = req.get("urls", []), req.get("keys", [])
        if not all(isinstance(v, str) for v in [*urls, *keys]):
            raise ValueError("urls and keys must be lists of strings")
        n = purge("url", urls, soft) if urls else 0
        n += purge("key", keys, soft) if keys else 0
        if req.get("all"):
            n += purge("all", [], soft)
        return json.dumps({"purged": n}).encode()

    return purge_fn


def node_functions(purge: Purge) -> dict[str, Callable[[bytes], bytes]]:
    """The registry entries a node installs when its chain has wasm filters."""
    return {
        "compress": compress,
        "uncompress": uncompress,
        "edgenode.image_info": image_info,
        "edgenode.purge": make_purge(purge),
    }
