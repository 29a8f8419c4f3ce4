"""The host side of the image filter: parameter validation and the Pillow transform
(edgenode/images), without the filter."""

from __future__ import annotations

import io
import os
import struct
import zlib

import pytest
from PIL import Image

from edgenode.http.messages import CIMultiDict, Request
from edgenode.images.params import Limits, TransformError, parse_spec
from edgenode.images.service import ImageService
from edgenode.images.transform import transform


def _png(size, mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def _bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (IHDR patched, CRC fixed)."""
    png = bytearray(_png((8, 8), "1"))
    ihdr = png.index(b"IHDR")
    png[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    png[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(png[ihdr:ihdr + 17])))
    return bytes(png)


@pytest.mark.parametrize("size", [(10000, 10000), (60000, 60000)])
def test_decompression_bomb_is_refused_before_decoding(size) -> None:
    spec = parse_spec("w=100", Limits())
    with pytest.raises(TransformError) as info:
        transform(_bomb(*size), spec, Limits())
    assert info.value.status == 413 and "pixels" in info.value.reason


@pytest.mark.parametrize("query,needle", [
    ("w=0x10", "w: expected an integer"),
    ("w=5000", "w: must be between 1 and 4096"),
    ("fit=fill", "fit: must be one of"),
    ("f=gif", "f: must be one of"),
    ("dpr=9", "dpr: must be between"),
    ("w=3000&dpr=2", "exceeds the limit"),
    ("q=101", "q: must be between 1 and 100"),
])
def test_parameter_errors_name_the_parameter(query, needle) -> None:
    with pytest.raises(TransformError) as info:
        parse_spec(query, Limits())
    assert info.value.status == 400 and needle in info.value.reason


def test_filter_limits_can_only_narrow_the_service_caps() -> None:
    limits = Limits(max_width=1000).narrowed({"max_w": "5000", "max_h": "200", "max_px": "10"})
    assert (limits.max_width, limits.max_height, limits.max_source_pixels) == (1000, 200, 10)


def test_png_with_alpha_keeps_transparency_in_auto() -> None:
    src = _png((300, 200), "RGBA")
    body, ctype, w, h = transform(src, parse_spec("w=150&f=auto", Limits()), Limits())
    im = Image.open(io.BytesIO(body))
    assert (ctype, im.size, im.mode) == ("image/png", (150, 100), "RGBA")


def test_exif_orientation_is_applied() -> None:
    im = Image.new("RGB", (300, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes())
    _, _, w, h = transform(buf.getvalue(), parse_spec("f=jpeg", Limits()), Limits())
    assert (w, h) == (100, 300)


async def test_service_answers_errors_with_a_reason_header() -> None:
    svc = ImageService(workers=1)
    try:
        r = await svc.handle(Request("POST", "/transform?w=abc", CIMultiDict(), b"x"))
        assert r.status == 400 and "w: expected" in r.headers["x-image-error"]
        r = await svc.handle(Request("GET", "/other", CIMultiDict()))
        assert r.status == 404
        r = await svc.handle(Request("POST", "/transform?w=10", CIMultiDict(), b"garbage"))
        assert r.status == 422 and "cannot decode" in r.headers["x-image-error"]
    finally:
        await svc.close()


def _die(*args):  # stands in for a worker killed mid-transform
    os._exit(1)


async def test_a_dead_worker_gives_503_and_a_fresh_pool(monkeypatch) -> None:
    svc = ImageService(workers=1)
    src = _png((40, 30))
    try:
        monkeypatch.setattr("edgenode.images.service.transform", _die)
        r = await svc.handle(Request("POST", "/transform?w=10&f=png", CIMultiDict(), src))
        assert r.status == 503
        monkeypatch.undo()
        r = await svc.handle(Request("POST", "/transform?w=10&f=png", CIMultiDict(), src))
        assert r.status == 200 and Image.open(io.BytesIO(r.body)).size == (10, 8)
    finally:
        await svc.close()
