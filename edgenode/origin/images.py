"""Deterministic test images for the simulated origin, drawn with Pillow.

Gradients plus a few shapes whose colours and positions derive from the name, so
resizes and format conversions downstream have real detail to chew on and two runs
produce identical bytes.  Encoded results are kept in a small in-memory LRU because
a 2000x1500 JPEG takes tens of milliseconds to draw and encode.
"""

from __future__ import annotations

import hashlib
import io
import random
from functools import lru_cache

from PIL import Image, ImageDraw

__all__ = ["FORMATS", "MAX_SIDE", "render_image"]

#: extension -> (Pillow format, Content-Type)
FORMATS = {
    "jpg": ("JPEG", "image/jpeg"),
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
}
MAX_SIDE = 8000


@lru_cache(maxsize=64)
def render_image(name: str, ext: str, width: int, height: int) -> tuple[bytes, str]:
    """Encoded image bytes and Content-Type; ValueError for a bad format or size."""
    if ext not in FORMATS:
        raise ValueError(f"image format {ext!r} is not one of {', '.join(sorted(FORMATS))}")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"image size must be 1..{MAX_SIDE} on each side, got {width}x{height}")
    fmt, content_type = FORMATS[ext]
    rng = random.Random(hashlib.sha256(name.encode()).digest())
    c0 = tuple(rng.randrange(256) for _ in range(3))
    c1 = tuple(rng.randrange(256) for _ in range(3))
    # Horizontal gradient built from a 256x1 strip stretched to size: fast at any size.
    strip = Image.new("RGB", (256, 1))
    strip.putdata([tuple(c0[k] + (c1[k] - c0[k]) * x // 255 for k in range(3)) for x in range(256)])
    img = strip.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1 = min(width - 1, x0 + rng.randrange(1, max(2, width // 3)))
        y1 = min(height - 1, y0 + rng.randrange(1, max(2, height // 3)))
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour, outline=(0, 0, 0))
    out = io.BytesIO()
    options = {"quality": 85} if fmt in ("JPEG", "WEBP") else {}
    img.save(out, fmt, **options)
    return out.getvalue(), content_type
