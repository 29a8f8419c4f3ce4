"""The image filter (filters/image) through the real Proxy-Wasm host and the real
image service (Pillow in a process pool); the origin is a terminal handler serving a
JPEG made with Pillow."""

from __future__ import annotations

import hashlib
import hmac
import io

import pytest
import wasmtime
from PIL import Image

from edgenode.http.messages import CIMultiDict, Response
from edgenode.images.service import IMAGE_UPSTREAM, ImageService
from edgenode.pipeline.exchange import Exchange
from tests.filters.conftest import make_stage, origin_ok, request, run_stage

SRC_ETAG = '"src-v1"'


def _jpeg(size=(2000, 1500)) -> bytes:
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


SOURCE = _jpeg()


@pytest.fixture(scope="module")
def image_wasm(build_filter):
    return build_filter("image")


@pytest.fixture(scope="module")
def accept_wasm(build_filter):
    """The request-side filter alone (the same source built with IMAGE_ACCEPT_ONLY)."""
    return build_filter("image-accept")


@pytest.fixture(scope="module", params=["image", "image-accept"])
def accept_module(request, image_wasm, accept_wasm):
    """Each module the "image-accept" root id runs from."""
    return image_wasm if request.param == "image" else accept_wasm


@pytest.fixture(scope="module")
def service():
    svc = ImageService(workers=1)
    yield svc
    svc.shutdown()


def image_origin(body: bytes = SOURCE, ctype: str = "image/jpeg"):
    seen: list[Exchange] = []

    async def terminal(ex: Exchange) -> Response:
        seen.append(ex)
        h = CIMultiDict({"Content-Type": ctype, "Content-Length": str(len(body)), "ETag": SRC_ETAG,
                         "Cache-Control": "max-age=60"})
        return Response(200, h, body)

    return terminal, seen


def stages(image_wasm, service, config=None, accept_wasm=None):
    async def callout(name, req, timeout):
        assert name == IMAGE_UPSTREAM
        return await service.handle(req)

    cfg = config or {}
    return [make_stage(accept_wasm or image_wasm, cfg, name="image-accept", root_id="image-accept"),
            make_stage(image_wasm, cfg, name="image", root_id="image", callout=callout,
                       allow_on_headers_stop_iteration=True)]


def decode(body: bytes) -> Image.Image:
    return Image.open(io.BytesIO(body))


async def test_query_params_resize_to_webp(image_wasm, service) -> None:
    terminal, seen = image_origin()
    resp, _ = await run_stage(stages(image_wasm, service), request("/img/photo.jpg?w=400&f=webp&v=3"), terminal)
    assert resp.status == 200
    assert resp.headers["content-type"] == "image/webp"
    assert int(resp.headers["content-length"]) == len(resp.body)
    im = decode(resp.body)
    assert (im.format, im.size) == ("WEBP", (400, 300))
    # the transform parameters never reach the origin; other query parameters do
    assert seen[0].request.target == "/photo.jpg?v=3"
    assert seen[0].request.headers["accept-encoding"] == "identity"
    assert resp.headers["etag"] not in ("", SRC_ETAG)
    assert "vary" not in resp.headers  # an explicit format does not depend on Accept
    assert resp.headers["cache-control"] == "max-age=60"


async def test_variant_etag_is_stable_and_distinct_per_parameters(image_wasm, service) -> None:
    terminal, _ = image_origin()
    chain = stages(image_wasm, service)
    a1, _ = await run_stage(chain, request("/img/photo.jpg?w=400&f=webp"), terminal)
    a2, _ = await run_stage(chain, request("/img/photo.jpg?w=400&f=webp"), terminal)
    b, _ = await run_stage(chain, request("/img/photo.jpg?w=401&f=webp"), terminal)
    assert a1.headers["etag"] == a2.headers["etag"] != b.headers["etag"]
    assert a1.headers["etag"].startswith('"img-')


async def test_path_scheme_cover_to_png(image_wasm, service) -> None:
    terminal, seen = image_origin()
    resp, _ = await run_stage(stages(image_wasm, service),
                              request("/img/w=200,h=200,fit=cover,f=png/photos/a.jpg"), terminal)
    assert resp.status == 200
    assert seen[0].request.target == "/photos/a.jpg"
    im = decode(resp.body)
    assert (im.format, im.size) == ("PNG", (200, 200))
    assert resp.headers["content-type"] == "image/png"


@pytest.mark.parametrize("fit,box,size", [
    ("scale-down", (4000, 300), (400, 300)),
    ("contain", (300, 300), (300, 225)),
    ("pad", (300, 300), (300, 300)),
    ("crop", (100, 400), (100, 400)),
])
async def test_fit_modes(image_wasm, service, fit, box, size) -> None:
    terminal, _ = image_origin()
    resp, _ = await run_stage(stages(image_wasm, service, {"max_width": 4096}),
                              request(f"/img/p.jpg?width={box[0]}&height={box[1]}&fit={fit}&format=jpeg"), terminal)
    assert resp.status == 200, resp.body
    assert decode(resp.body).size == size


async def test_dpr_multiplies_the_size(image_wasm, service) -> None:
    terminal, _ = image_origin()
    resp, _ = await run_stage(stages(image_wasm, service), request("/img/p.jpg?w=200&dpr=2&f=jpeg&q=60"), terminal)
    assert decode(resp.body).size == (400, 300)


@pytest.mark.parametrize("accept,fmt,normalised", [
    ("image/avif,image/webp,image/apng,*/*;q=0.8", "AVIF", "image/avif,image/webp,*/*"),
    ("text/html,image/webp,*/*;q=0.8", "WEBP", "image/webp,*/*"),
    ("*/*", "JPEG", "*/*"),
])
async def test_format_auto_follows_normalised_accept(image_wasm, accept_module, service, accept, fmt,
                                                     normalised) -> None:
    terminal, seen = image_origin()
    resp, _ = await run_stage(stages(image_wasm, service, accept_wasm=accept_module),
                              request("/img/p.jpg?w=320", {"Accept": accept}), terminal)
    assert resp.status == 200
    assert seen[0].request.headers["accept"] == normalised  # what the cache keys the variant on
    assert decode(resp.body).format == fmt
    assert resp.headers["vary"] == "Accept"


async def test_auto_formats_config_restricts_the_choice(image_wasm, accept_module, service) -> None:
    terminal, _ = image_origin()
    resp, _ = await run_stage(stages(image_wasm, service, {"auto_formats": ["webp"]}, accept_module),
                              request("/img/p.jpg?w=320", {"Accept": "image/avif,image/webp"}), terminal)
    assert decode(resp.body).format == "WEBP"


def test_image_accept_module_exports_only_the_request_headers_hook(image_wasm, accept_wasm) -> None:
    def hooks(path):
        module = wasmtime.Module.from_file(wasmtime.Engine(), str(path))
        return {e.name for e in module.exports if e.name.startswith("proxy_on_")
                and (e.name.endswith("_headers") or e.name.endswith("_body"))}

    assert hooks(accept_wasm) == {"proxy_on_request_headers"}
    assert {"proxy_on_response_headers", "proxy_on_response_body"} <= hooks(image_wasm)


async def test_requests_without_parameters_pass_untouched(image_wasm, service) -> None:
    terminal, seen = image_origin()
    resp, _ = await run_stage(stages(image_wasm, service), request("/img/p.jpg?v=1", {"Accept": "image/webp"}), terminal)
    assert resp.body == SOURCE and resp.headers["etag"] == SRC_ETAG
    assert seen[0].request.headers["accept"] == "image/webp"


async def test_non_image_responses_pass_untouched(image_wasm, service) -> None:
    terminal, _ = origin_ok(b"<html>", {"Content-Type": "text/html"})
    resp, _ = await run_stage(stages(image_wasm, service), request("/img/page?w=100"), terminal)
    assert resp.body == b"<html>"


@pytest.mark.parametrize("target,config,status,reason", [
    ("/img/p.jpg?w=5000", {}, 400, "exceeds the limit"),
    ("/img/p.jpg?w=2000&dpr=3", {}, 400, "exceeds the limit"),
    ("/img/p.jpg?w=300", {"allowed_widths": [100, 400]}, 400, "allowed widths"),
    ("/img/p.jpg?w=abc", {}, 400, "w: expected"),
    ("/img/p.jpg?w=100&dpr=nan", {}, 400, "dpr: expected a number"),
    ("/img/p.jpg?w=100&dpr=inf", {}, 400, "dpr: expected a number"),
    ("/img/p.jpg?fit=stretch&w=10", {}, 400, "fit: expected"),
    ("/img/w=10,zoom=2/p.jpg", {}, 400, "unknown image option zoom"),
    ("/img/p.jpg?w=100", {"max_source_pixels": 1_000_000}, 413, "over the limit"),
    ("/img/p.jpg?w=100", {"max_source_bytes": 1000}, 413, "size limit"),
])
async def test_limits_answer_4xx(image_wasm, service, target, config, status, reason) -> None:
    terminal, _ = image_origin()
    resp, _ = await run_stage(stages(image_wasm, service, config), request(target), terminal)
    assert resp.status == status
    assert reason in resp.body.decode()


async def test_violation_can_serve_the_original(image_wasm, service) -> None:
    terminal, seen = image_origin()
    cfg = {"allowed_widths": [100], "on_violation": "original"}
    resp, _ = await run_stage(stages(image_wasm, service, cfg), request("/img/p.jpg?w=300"), terminal)
    assert resp.status == 200 and resp.body == SOURCE
    assert seen[0].request.target == "/p.jpg"


async def test_broken_source_serves_original_or_502(image_wasm, service) -> None:
    terminal, _ = image_origin(b"not really a jpeg")
    resp, _ = await run_stage(stages(image_wasm, service), request("/img/p.jpg?w=100"), terminal)
    assert (resp.status, resp.body) == (200, b"not really a jpeg")
    resp, _ = await run_stage(stages(image_wasm, service, {"on_error": "error"}), request("/img/p.jpg?w=100"), terminal)
    assert resp.status == 502
    assert "cannot decode" in resp.body.decode()


def _sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


async def test_signed_urls(image_wasm, service) -> None:
    terminal, _ = image_origin()
    chain = stages(image_wasm, service, {"signing_secret": "s3cret"})
    good = _sign("s3cret", "/img/p.jpg?w=100&f=webp")
    resp, _ = await run_stage(chain, request(f"/img/p.jpg?w=100&f=webp&sig={good}"), terminal)
    assert resp.status == 200 and decode(resp.body).size == (100, 75)
    path_sig = _sign("s3cret", "/img/w=50/p.jpg")
    resp, _ = await run_stage(chain, request(f"/img/w=50/p.jpg?sig={path_sig}"), terminal)
    assert resp.status == 200 and decode(resp.body).size == (50, 38)
    resp, _ = await run_stage(chain, request(f"/img/p.jpg?w=101&f=webp&sig={good}"), terminal)
    assert resp.status == 403
    resp, _ = await run_stage(chain, request("/img/p.jpg?w=100&f=webp"), terminal)
    assert resp.status == 403


@pytest.mark.parametrize("config,key", [
    ({"fit": "cover"}, "fit: unknown key"),
    ({"max_width": 0}, "max_width: expected an integer"),
    ({"on_violation": "ignore"}, "on_violation: expected"),
    ({"path_prefix": "img"}, "path_prefix"),
])
async def test_bad_config_names_the_key(image_wasm, config, key) -> None:
    from edgenode.wasm.engine import FilterLoadError

    with pytest.raises(FilterLoadError) as info:
        make_stage(image_wasm, config)
    assert key in str(info.value)


@pytest.mark.parametrize("target,origin_target", [
    ("/img/w=10,zoom=2/a/p.jpg?v=1", "/a/p.jpg?v=1"),
    ("/img/p.jpg?v=1&w=abc&fit=cover", "/p.jpg?v=1"),
])
async def test_bad_parameters_with_original_policy_fetch_the_clean_url(image_wasm, service, target,
                                                                       origin_target) -> None:
    terminal, seen = image_origin()
    resp, _ = await run_stage(stages(image_wasm, service, {"on_violation": "original"}), request(target), terminal)
    assert resp.status == 200 and resp.body == SOURCE
    assert seen[0].request.target == origin_target


@pytest.mark.parametrize("target", ["/1k.txt?q=hello", "/p.jpg?w=400&f=webp", "/p.jpg?w=abc&dpr=nan",
                                    "/imgx/w=10/p.jpg?sig=00", "/photos/img/w=10/p.jpg"])
async def test_requests_outside_the_prefix_pass_untouched(image_wasm, service, target) -> None:
    """Image parameters apply under path_prefix only: elsewhere even a bad ``q`` or ``w``
    is the site's own query parameter."""
    terminal, seen = image_origin()
    resp, _ = await run_stage(stages(image_wasm, service), request(target, {"Accept": "image/webp"}), terminal)
    assert resp.status == 200 and resp.body == SOURCE and resp.headers["etag"] == SRC_ETAG
    assert seen[0].request.target == target
    assert seen[0].request.headers["accept"] == "image/webp"


async def test_prefix_without_parameters_serves_the_original(image_wasm, service) -> None:
    terminal, seen = image_origin()
    resp, _ = await run_stage(stages(image_wasm, service), request("/img/photos/p.jpg?v=2"), terminal)
    assert resp.status == 200 and resp.body == SOURCE
    assert seen[0].request.target == "/photos/p.jpg?v=2"


async def test_empty_prefix_applies_the_query_scheme_everywhere(image_wasm, service) -> None:
    terminal, seen = image_origin()
    chain = stages(image_wasm, service, {"path_prefix": ""})
    resp, _ = await run_stage(chain, request("/photos/p.jpg?w=100&f=png"), terminal)
    assert decode(resp.body).size == (100, 75) and seen[0].request.target == "/photos/p.jpg"
