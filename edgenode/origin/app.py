"""The simulated origin: an aiohttp app whose answers are predictable per path.

Tests and the demo point the node at it and rely on exact bodies, validators and
cache headers (see docs/origin.md for every route).  ``/__stats`` counts the requests
that actually reached the origin, which is how tests and the demo measure what the
cache saved.  Latency, jitter and 500/503 injection come from ``OriginSettings`` (or
per request from ``latency_ms=`` / ``error=``) and use seeded RNGs so runs repeat.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import signal
from collections import Counter
from typing import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from edgenode.origin import content
from edgenode.origin.images import render_image
from edgenode.origin.settings import OriginSettings

__all__ = ["build_origin_app", "start_origin", "run_origin", "STATS_KEY"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: /obj bodies are built whole; anything bigger belongs to /stream
OBJ_LIMIT = 256 * 1024 * 1024
STREAM_LIMIT = 64 * 1024**3
STATS_KEY = web.AppKey("edgenode_origin_stats", Counter)
_SETTINGS = web.AppKey("edgenode_origin_settings", OriginSettings)
_RNG = web.AppKey("edgenode_origin_rngs", dict)


def _bad(reason: str) -> web.Response:
    return web.Response(status=400, text=reason + "\n")


def _query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: expected an integer, got {raw!r}\n") from None
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(text=f"{name}: must be between {lo} and {hi}, got {value}\n")
    return value


def _query_size(request: web.Request, default: int, limit: int, name: str = "size") -> int:
    """A byte count such as ``4096``, ``100k`` or ``1m``; 400 names the parameter."""
    try:
        return content.parse_size(request.query.get(name), default, limit)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{name}: {str(exc).removeprefix('size: ')}\n") from None


def _cache_control(request: web.Request, max_age: int) -> str:
    """``cc=`` replaces the header; otherwise ``ttl=``, ``swr=``, ``sie=`` build it."""
    if "cc" in request.query:
        return request.query["cc"]
    ttl = _query_int(request, "ttl", max_age, 0, 10**9)
    parts = ["public", f"max-age={ttl}"]
    if "swr" in request.query:
        parts.append(f"stale-while-revalidate={_query_int(request, 'swr', 0, 0, 10**9)}")
    if "sie" in request.query:
        parts.append(f"stale-if-error={_query_int(request, 'sie', 0, 0, 10**9)}")
    return ", ".join(parts)


def _is_fresh_for(request: web.Request, etag: str, modified: int) -> bool:
    """Conditional GET/HEAD: If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)."""
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        return content.etag_matches(inm, etag)
    ims = request.headers.get("If-Modified-Since")
    return ims is not None and content.not_modified_since(ims, modified)


def _validated(request: web.Request, headers: dict[str, str], etag: str, modified: int,
               body: bytes) -> web.Response:
    headers["ETag"] = etag
    headers["Last-Modified"] = content.http_date(modified)
    if _is_fresh_for(request, etag, modified):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers)


async def obj(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    settings = request.app[_SETTINGS]
    size = _query_size(request, 1024, OBJ_LIMIT)
    version = request.query.get("v", "1")
    keys = [k for k in request.query.get("keys", "").split(",") if k]
    headers = {
        "Content-Type": "application/octet-stream",
        "Cache-Control": _cache_control(request, settings.max_age),
        "Surrogate-Key": " ".join(keys + [f"obj-{name}"]),
    }
    if request.query.get("vary"):
        headers["Vary"] = request.query["vary"]
    headers["Repr-Digest"] = content.object_digest(name, size, version)
    etag = content.object_etag(name, size, version)
    body = content.object_body(name, size, version)
    return _validated(request, headers, etag, content.last_modified(name), body)


async def stream(request: web.Request) -> web.StreamResponse:
    size = _query_size(request, 1024**2, STREAM_LIMIT)
    chunk = max(1, _query_size(request, 65536, 16 * 1024**2, "chunk"))
    delay = _query_int(request, "delay_ms", 0, 0, 60_000) / 1000.0
    name = request.match_info.get("name", "stream")
    resp = web.StreamResponse(headers={
        "Content-Type": "application/octet-stream",
        "Cache-Control": _cache_control(request, request.app[_SETTINGS].max_age),
    })
    if request.query.get("chunked") == "1":
        resp.enable_chunked_encoding()
    else:
        resp.content_length = size
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    for piece in content.body_chunks(name, size, chunk):
        await resp.write(piece)
        if delay:
            await asyncio.sleep(delay)
    await resp.write_eof()
    return resp


async def image(request: web.Request) -> web.Response:
    name, ext = request.match_info["name"], request.match_info["ext"].lower()
    width = _query_int(request, "w", 2000, 1, 8000)
    height = _query_int(request, "h", 1500, 1, 8000)
    try:
        # Drawing a large image takes tens of ms: keep the event loop free meanwhile.
        data, content_type = await asyncio.get_running_loop().run_in_executor(
            None, render_image, name, ext, width, height)
    except ValueError as exc:
        return _bad(str(exc))
    headers = {"Content-Type": content_type,
               "Cache-Control": _cache_control(request, request.app[_SETTINGS].max_age)}
    etag = f'"{hashlib.sha1(data).hexdigest()[:20]}"'
    return _validated(request, headers, etag, content.last_modified(f"image/{name}"), data)


async def status(request: web.Request) -> web.Response:
    try:
        code = int(request.match_info["code"])
    except ValueError:
        return _bad("status: expected a number")
    if not 200 <= code <= 599:
        return _bad("status: must be between 200 and 599")
    if code in (204, 304):
        return web.Response(status=code)
    return web.Response(status=code, text=f"status {code}\n",
                        headers={"Cache-Control": request.query.get("cc", "no-store")})


async def slow(request: web.Request) -> web.Response:
    delay = _query_int(request, "delay_ms", 1000, 0, 600_000)
    await asyncio.sleep(delay / 1000.0)
    return web.Response(text=f"slept {delay} ms\n", headers={"Cache-Control": "no-store"})


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    merged: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    doc = {
        "method": request.method,
        "path": request.path,
        "query": request.query_string,
        "version": f"{request.version.major}.{request.version.minor}",
        "headers": merged,
        "header_list": [[k, v] for k, v in request.headers.items()],
        "body": body.decode("utf-8", "replace"),
        "body_length": len(body),
        "peer": request.remote,
    }
    return web.json_response(doc, headers={"Cache-Control": "no-store"})


async def nocache(request: web.Request) -> web.Response:
    return web.Response(text="no-store\n", headers={"Cache-Control": "no-store"})


async def private(request: web.Request) -> web.Response:
    return web.Response(text="private\n", headers={"Cache-Control": "private, max-age=60"})


async def vary(request: web.Request) -> web.Response:
    header = request.match_info["header"]
    value = request.headers.get(header, "")
    return web.Response(text=f"{header}: {value}\n", headers={
        "Vary": header, "Cache-Control": _cache_control(request, request.app[_SETTINGS].max_age)})


async def set_cookie(request: web.Request) -> web.Response:
    name = request.query.get("name", "session")
    return web.Response(text="cookie set\n", headers={
        "Set-Cookie": f"{name}=abc123; Path=/; HttpOnly",
        "Cache-Control": _cache_control(request, request.app[_SETTINGS].max_age)})


async def counter(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    n = request.app[STATS_KEY][f"counter:{key}"]
    return web.Response(text=str(n), headers={
        "Cache-Control": _cache_control(request, request.app[_SETTINGS].max_age)})


async def reset_mid_body(request: web.Request) -> web.StreamResponse:
    """Promise ``size`` bytes, send about half, then abort the TCP connection."""
    size = _query_size(request, 65536, STREAM_LIMIT)
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                       "Cache-Control": "public, max-age=60"})
    resp.content_length = size
    await resp.prepare(request)
    await resp.write(content.object_body("reset", max(1, size // 2)))
    transport = request.transport
    if transport is not None:
        transport.abort()
    return resp


async def stats(request: web.Request) -> web.Response:
    counts = request.app[STATS_KEY]
    if request.method == "DELETE":
        counts.clear()
        return web.json_response({"reset": True})
    paths = {k: v for k, v in counts.items() if k.startswith("/")}
    counters = {k.removeprefix("counter:"): v for k, v in counts.items() if k.startswith("counter:")}
    return web.json_response({"total": counts["__total__"], "errors_injected": counts["__errors__"],
                              "paths": paths, "counters": counters},
                             headers={"Cache-Control": "no-store"})


@web.middleware
async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request, then apply latency/jitter and error injection."""
    if request.path.startswith("/__stats"):
        return await handler(request)
    counts = request.app[STATS_KEY]
    counts["__total__"] += 1
    counts[request.path] += 1
    if request.path.startswith("/counter/"):
        counts[f"counter:{request.path[len('/counter/'):]}"] += 1
    settings, rngs = request.app[_SETTINGS], request.app[_RNG]
    latency = settings.latency_ms
    if "latency_ms" in request.query:
        try:
            latency = max(0.0, float(request.query["latency_ms"]))
        except ValueError:
            return _bad("latency_ms: expected a number")
    if settings.jitter_ms:
        latency = max(0.0, latency + rngs["jitter"].uniform(-settings.jitter_ms, settings.jitter_ms))
    if latency:
        await asyncio.sleep(latency / 1000.0)
    forced = request.query.get("error")
    if forced is not None:
        if forced not in ("500", "502", "503", "504"):
            return _bad("error: must be 500, 502, 503 or 504")
        code = int(forced)
    elif settings.error_rate and rngs["error"].random() < settings.error_rate:
        code = rngs["error"].choice((500, 503))
    else:
        return await handler(request)
    counts["__errors__"] += 1
    return web.Response(status=code, text=f"injected error {code}\n",
                        headers={"Cache-Control": "no-store"})


@web.middleware
async def latin1_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Header bytes as Latin-1 text, as every HTTP stack reads them (RFC 9110 §5.5).

    aiohttp decodes them as UTF-8 with surrogate escapes, so a value with obs-text
    (``caf\\xe9``) held lone surrogates that no handler could encode back: a 500.  Any
    non-ASCII value is re-read from its bytes, so each byte is one character.
    """
    if not all(v.isascii() for v in request.headers.values()):
        fixed = CIMultiDict((k, v.encode("utf-8", "surrogateescape").decode("latin-1"))
                            for k, v in request.headers.items())
        request = request.clone(headers=fixed)
    return await handler(request)


def build_origin_app(settings: OriginSettings | None = None) -> web.Application:
    settings = settings or OriginSettings()
    app = web.Application(middlewares=[latin1_headers, inject])
    app[_SETTINGS] = settings
    app[STATS_KEY] = Counter()
    # Separate streams: the error sequence must not depend on whether jitter is on.
    app[_RNG] = {"error": random.Random(settings.seed), "jitter": random.Random(settings.seed + 1)}
    r = app.router
    r.add_get("/obj/{name}", obj)
    r.add_get("/stream", stream)
    r.add_get("/stream/{name}", stream)
    r.add_get(r"/image/{name}.{ext:(jpg|jpeg|png|webp)}", image)
    r.add_get(r"/status/{code}", status)
    r.add_get("/slow", slow)
    r.add_route("*", "/echo", echo)
    r.add_route("*", "/echo/{tail:.*}", echo)
    r.add_get("/nocache", nocache)
    r.add_get("/private", private)
    r.add_get("/vary/{header}", vary)
    r.add_get("/set-cookie", set_cookie)
    r.add_get("/counter/{key}", counter)
    r.add_get("/reset-mid-body", reset_mid_body)
    r.add_get("/__stats", stats)
    r.add_delete("/__stats", stats)
    return app


async def start_origin(settings: OriginSettings | None = None) -> tuple[web.AppRunner, int]:
    """Start listening (port 0 picks a free port); the caller owns ``runner.cleanup()``."""
    settings = settings or OriginSettings()
    runner = web.AppRunner(build_origin_app(settings), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.listen[0], settings.listen[1], backlog=1024)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []  # aiohttp exposes no public accessor
    port = sockets[0].getsockname()[1] if sockets else settings.listen[1]
    return runner, port


async def _serve_forever(settings: OriginSettings) -> None:
    runner, port = await start_origin(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"edgenode origin listening on http://{settings.listen[0]}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run_origin(settings: OriginSettings | None = None) -> None:
    """Run until SIGINT/SIGTERM; prints the listen address (with the real port)."""
    settings = settings or OriginSettings()
    try:
        import uvloop
    except ImportError:  # uvloop is optional off Linux/macOS
        asyncio.run(_serve_forever(settings))
    else:
        uvloop.run(_serve_forever(settings))
