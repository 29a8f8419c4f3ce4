"""Admin API (aiohttp, its own port): purge, stats, metrics, filter reload, health.

The app only speaks HTTP; the work is done by an :class:`AdminBackend`: the node
itself in single-process mode, or the master's fan-out to every worker.  Every request
needs ``Authorization: Bearer <token>`` except ``GET``/``HEAD`` of ``/healthz`` and
``/metrics`` (read-only, scraped by Prometheus without credentials by convention); any
other method on those paths, every purge and every change needs the token.  The token
is compared in constant time (as digests, so not even its length shows).

A purge names its target explicitly: ``POST /purge`` with absolute URLs, ``POST
/purge/key`` with surrogate keys, or ``PURGE http://site/path`` in absolute form; a
URL must be ``http(s)://host/path`` and is never pieced together from the Host header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web

__all__ = ["AdminBackend", "build_admin_app", "OPEN"]

#: (method, path) pairs served without the token
OPEN = frozenset({("GET", "/healthz"), ("HEAD", "/healthz"), ("GET", "/metrics"), ("HEAD", "/metrics")})
#: what a purge URL's host may be: a name, an IPv4 address or a [bracketed IPv6], and a port
_HOST = re.compile(r"^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AdminBackend(Protocol):
    async def purge(self, kind: str, values: list[str], soft: bool) -> dict[str, Any]:
        """kind: "url", "key" or "all"; returns at least {"purged": n}."""
        ...

    async def stats(self) -> dict[str, Any]: ...

    async def metrics(self) -> bytes: ...

    async def reload_filters(self, name: str | None) -> dict[str, Any]:
        """Raises KeyError for an unknown filter name."""
        ...

    async def health(self) -> dict[str, Any]: ...

    async def restart(self) -> dict[str, Any]:
        """Replace the worker processes gracefully; NotImplementedError without workers."""
        ...


class BadRequest(Exception):
    pass


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, indent=None, sort_keys=True),
                        content_type="application/json")


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"error": message}),
                        content_type="application/json", headers=headers)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def purge_url(value: Any) -> str:
    """A purge target: an absolute ``http(s)://host/path?query`` URL, else BadRequest."""
    if not isinstance(value, str) or not value:
        raise BadRequest("a purge URL must be a non-empty string")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise BadRequest(f"purge URL {value[:200]!r} contains whitespace or control characters")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"purge URL {value[:200]!r} must be absolute: http://host/path")
    if "@" in parts.netloc or not _HOST.match(parts.netloc):
        raise BadRequest(f"purge URL {value[:200]!r} has an invalid host")
    if parts.path and not parts.path.startswith("/"):
        raise BadRequest(f"purge URL {value[:200]!r} has an invalid path")
    return value


def _strings(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BadRequest(f"{name!r} must be a non-empty list of strings")
    return value


def _soft(data: dict[str, Any], request: web.Request) -> bool:
    soft = data.get("soft", request.query.get("soft", "") in ("1", "true", "yes"))
    if not isinstance(soft, bool):
        raise BadRequest("'soft' must be a boolean")
    return soft


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def build_admin_app(backend: AdminBackend, token: str) -> web.Application:
    """The admin application, guarded by the bearer ``token``."""
    if not token:
        raise ValueError("the admin API needs a token")
    expected = _digest(token)

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if (request.method, request.path) not in OPEN:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            matches = hmac.compare_digest(_digest(given.strip()), expected)
            if scheme.lower() != "bearer" or not matches:
                return _error(401, "missing or wrong bearer token",
                              **{"WWW-Authenticate": 'Bearer realm="edgenode-admin"'})
        try:
            return await handler(request)
        except BadRequest as exc:
            return _error(400, str(exc))

    async def purge_urls(request: web.Request) -> web.Response:
        data = await _body(request)
        urls = [data["url"]] if "url" in data else _strings(data, "urls")
        return _json(await backend.purge("url", [purge_url(u) for u in urls], _soft(data, request)))

    async def purge_key(request: web.Request) -> web.Response:
        data = await _body(request)
        return _json(await backend.purge("key", _strings(data, "keys"), _soft(data, request)))

    async def purge_all(request: web.Request) -> web.Response:
        data = await _body(request)
        return _json(await backend.purge("all", [], _soft(data, request)))

    async def purge_method(request: web.Request) -> web.Response:
        """Varnish/Fastly style ``PURGE http://site/path``: the absolute-form target names
        the site (RFC 9112 §3.2.2).  ``PURGE /path`` is refused: its site would come from
        the Host header alone, which on the admin port names the admin listener."""
        target = request.raw_path
        if not target[:8].lower().startswith(("http://", "https://")):
            raise BadRequest("PURGE needs an absolute URL as its target: PURGE http://site/path "
                             "(or POST /purge {\"url\": \"http://site/path\"})")
        soft = request.headers.get("Fastly-Soft-Purge") == "1" or request.query.get("soft") in ("1", "true")
        return _json(await backend.purge("url", [purge_url(target)], soft))

    async def stats(request: web.Request) -> web.Response:
        return _json(await backend.stats())

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=await backend.metrics(),
                            headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def reload(request: web.Request) -> web.Response:
        name = request.match_info.get("name")
        try:
            result = await backend.reload_filters(name)
        except KeyError:
            return _error(404, f"no wasm filter named {name!r}")
        except Exception as exc:  # a module that fails to load keeps the old one running
            return _error(422, f"reload failed: {exc}")
        return _json(result)

    async def restart(request: web.Request) -> web.Response:
        try:
            return _json(await backend.restart())
        except NotImplementedError as exc:
            return _error(409, str(exc))
        except Exception as exc:  # a bad config file: the running workers stay
            return _error(422, f"restart failed: {exc}")

    async def healthz(request: web.Request) -> web.Response:
        return _json(await backend.health())

    app = web.Application(middlewares=[guard])
    app.add_routes([
        web.post("/purge", purge_urls),
        web.post("/purge/key", purge_key),
        web.post("/purge/all", purge_all),
        web.get("/stats", stats),
        web.get("/metrics", metrics),
        web.post("/filters/reload", reload),
        web.post("/filters/{name}/reload", reload),
        web.get("/healthz", healthz),
        web.post("/restart", restart),
        web.route("PURGE", "/{tail:.*}", purge_method),
    ])
    return app
