"""The pixel work: decode, resize/crop/pad, encode (Pillow; runs in a worker process).

Everything here is synchronous and CPU-bound; ``edgenode.images.service`` calls
``transform`` in a process pool so the event loop never waits on it.  The source's
pixel count is checked from its header *before* decoding (decompression bombs), JPEG
sources are decoded at a reduced scale when the target is small (``Image.draft``),
and decoded sources are kept in a small per-process LRU keyed by the source identity
the filter sends (origin URL + ETag), so several variants of one image decode it once.
"""

from __future__ import annotations

import io
import math
import warnings
from collections import OrderedDict

from PIL import Image, ImageOps, features

from edgenode.images.params import MIME, Limits, TransformError, TransformSpec

__all__ = ["transform", "supported_formats", "choose_format", "TransformResult"]

#: decoded sources kept per worker process, bounded by their total pixel count
_LRU_MAX_PIXELS = 24_000_000
_lru: OrderedDict[tuple[str, int, int], Image.Image] = OrderedDict()
_lru_pixels = 0

TransformResult = tuple[bytes, str, int, int]  # body, content type, width, height


def supported_formats() -> tuple[str, ...]:
    """Output formats this Pillow build can encode."""
    out = ["jpeg", "png"]
    if features.check("webp"):
        out.insert(0, "webp")
    if features.check("avif"):
        out.insert(0, "avif")
    return tuple(out)


def choose_format(spec: TransformSpec, source_format: str, has_alpha: bool) -> str:
    """Resolve ``auto``: the best format the client accepts, else one every client reads."""
    if spec.format != "auto":
        return spec.format
    supported = supported_formats()
    for fmt in ("avif", "webp"):
        if fmt in spec.accept and fmt in supported:
            return fmt
    if source_format in ("jpeg", "png"):
        return source_format
    return "png" if has_alpha else "jpeg"


def _box(src: tuple[int, int], spec: TransformSpec) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """(resize size, final canvas size or None) for the requested fit."""
    sw, sh = src
    tw, th = spec.target
    if not tw and not th:
        return (sw, sh), None
    if not tw or not th:  # one side given: keep the aspect ratio
        scale = (tw / sw) if tw else (th / sh)  # type: ignore[operator]
        if spec.fit in ("scale-down", "crop"):
            scale = min(scale, 1.0)
        return (max(1, round(sw * scale)), max(1, round(sh * scale))), None
    contain = min(tw / sw, th / sh)
    cover = max(tw / sw, th / sh)
    if spec.fit == "scale-down":
        scale = min(contain, 1.0)
        return (max(1, round(sw * scale)), max(1, round(sh * scale))), None
    if spec.fit == "contain":
        return (max(1, round(sw * contain)), max(1, round(sh * contain))), None
    if spec.fit == "pad":
        return (max(1, round(sw * contain)), max(1, round(sh * contain))), (tw, th)
    if spec.fit == "crop" and cover > 1.0:  # never enlarge: crop what fits
        return (sw, sh), (min(tw, sw), min(th, sh))
    return (max(1, math.ceil(sw * cover)), max(1, math.ceil(sh * cover))), (tw, th)  # cover


def _open(source: bytes, key: str, limits: Limits, spec: TransformSpec) -> tuple[Image.Image, str]:
    global _lru_pixels
    try:
        with warnings.catch_warnings():  # the pixel count is checked right below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(source))
    except Image.DecompressionBombError as exc:  # Pillow's own cap, above ours by default
        raise TransformError(413, f"source image has too many pixels: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise TransformError(422, f"cannot decode the source image: {exc}") from None
    fmt = (im.format or "").lower()
    w, h = im.size
    if w * h > limits.max_source_pixels:
        raise TransformError(413, f"source image has {w}x{h} pixels, over the limit of "
                                  f"{limits.max_source_pixels}")
    resize, _ = _box((w, h), spec)
    if fmt == "jpeg" and im.mode in ("RGB", "L", "CMYK") and resize != (w, h):
        im.draft(im.mode, resize)  # decode at 1/2, 1/4 or 1/8 scale, never below `resize`
    cache_key = (key, *im.size) if key else None
    if cache_key is not None and cache_key in _lru:
        _lru.move_to_end(cache_key)
        return _lru[cache_key], fmt
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im.load()
            im = ImageOps.exif_transpose(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        raise TransformError(422, f"cannot decode the source image: {exc}") from None
    if im.mode not in ("RGB", "RGBA", "L", "LA"):
        im = im.convert("RGBA" if "transparency" in im.info or im.mode in ("P", "PA") else "RGB")
    if cache_key is not None:
        _lru[cache_key] = im
        _lru_pixels += im.width * im.height
        while _lru_pixels > _LRU_MAX_PIXELS and len(_lru) > 1:
            _, old = _lru.popitem(last=False)
            _lru_pixels -= old.width * old.height
    return im, fmt


def transform(source: bytes, spec: TransformSpec, limits: Limits, key: str = "") -> TransformResult:
    """Transform ``source`` per ``spec``; raise ``TransformError`` with an HTTP status."""
    if len(source) > limits.max_source_bytes:
        raise TransformError(413, f"source image is {len(source)} bytes, over the limit of "
                                  f"{limits.max_source_bytes}")
    im, src_fmt = _open(source, key, limits, spec)
    has_alpha = im.mode in ("RGBA", "LA")
    out_fmt = choose_format(spec, src_fmt, has_alpha)
    if out_fmt not in supported_formats():
        raise TransformError(400, f"f: {out_fmt} is not supported by this node")
    resize, canvas = _box(im.size, spec)
    if resize != im.size:
        im = im.resize(resize, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if canvas is not None and canvas != im.size:
        cw, ch = canvas
        if canvas[0] <= im.width and canvas[1] <= im.height:  # cover / crop: centre crop
            left, top = (im.width - cw) // 2, (im.height - ch) // 2
            im = im.crop((left, top, left + cw, top + ch))
        else:  # pad: centre on a background (transparent where the format allows)
            transparent = out_fmt != "jpeg"
            mode = "RGBA" if transparent else "RGB"
            bg = Image.new(mode, canvas, (255, 255, 255, 0) if transparent else (255, 255, 255))
            bg.paste(im.convert(mode), ((cw - im.width) // 2, (ch - im.height) // 2))
            im = bg
    if out_fmt == "jpeg" and im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    buf = io.BytesIO()
    opts: dict[str, object] = {}
    if out_fmt in ("jpeg", "webp", "avif"):
        opts["quality"] = spec.quality
    if out_fmt == "jpeg":
        opts["optimize"] = False
        opts["progressive"] = True
    if out_fmt == "webp":
        opts["method"] = 4
    if out_fmt == "avif":
        opts["speed"] = 8
    if out_fmt == "png":
        opts["compress_level"] = 6
    im.save(buf, format=out_fmt.upper(), **opts)
    return buf.getvalue(), MIME[out_fmt], im.width, im.height
