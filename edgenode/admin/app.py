"""Admin API (aiohttp, its own port): purge, stats, metrics, filter reload, health.

The app only speaks HTTP; the work is done by an :class:`AdminBackend`: the node
itself in single-process mode, or the master's fan-out to every worker.  Every
endpoint except ``GET /healthz`` and ``GET /metrics`` (read-only, scraped by
Prometheus without credentials by convention) needs ``Authorization: Bearer <token>``
when a token is configured.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Protocol

from aiohttp import web

__all__ = ["AdminBackend", "build_admin_app", "OPEN_PATHS"]

OPEN_PATHS = frozenset({"/healthz", "/metrics"})
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


def build_admin_app(backend: AdminBackend, token: str | None) -> web.Application:
    """The admin application; ``token=None`` leaves every endpoint open."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if token is not None and request.path not in OPEN_PATHS:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
                return _error(401, "missing or wrong bearer token",
                              **{"WWW-Authenticate": 'Bearer realm="edgenode-admin"'})
        try:
            return await handler(request)
        except BadRequest as exc:
            return _error(400, str(exc))

    async def purge_url(request: web.Request) -> web.Response:
        data = await _body(request)
        if "url" in data:
            if not isinstance(data["url"], str) or not data["url"]:
                raise BadRequest("'url' must be a non-empty string")
            urls = [data["url"]]
        else:
            urls = _strings(data, "urls")
        return _json(await backend.purge("url", urls, _soft(data, request)))

    async def purge_key(request: web.Request) -> web.Response:
        data = await _body(request)
        return _json(await backend.purge("key", _strings(data, "keys"), _soft(data, request)))

    async def purge_all(request: web.Request) -> web.Response:
        data = await _body(request)
        return _json(await backend.purge("all", [], _soft(data, request)))

    async def purge_method(request: web.Request) -> web.Response:
        """Varnish/Fastly style: ``PURGE /path`` with the site's Host, or an absolute URL.

        An absolute-form target names the site itself (RFC 9112 §3.2.2); the Host header
        then only names the admin listener and is ignored.
        """
        target = request.raw_path
        absolute = target[:8].lower().startswith(("http://", "https://"))
        url = target if absolute else f"http://{request.host}{target}"
        soft = request.headers.get("Fastly-Soft-Purge") == "1" or request.query.get("soft") in ("1", "true")
        return _json(await backend.purge("url", [url], soft))

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
        web.post("/purge", purge_url),
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
