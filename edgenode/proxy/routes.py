"""Which origin serves a request: first matching route by host and path prefix.

Host patterns: an exact name, ``*.example.com`` (any subdomain at any depth, not the
bare ``example.com``), or None for any host; the comparison ignores case and the port.
Path prefixes are segment-aware: ``/api`` matches ``/api``, ``/api/`` and ``/api/x`` but
not ``/apix``; a prefix ending in ``/`` matches every path under it (``/`` matches all).
"""

from __future__ import annotations

from edgenode.config import RouteConfig
from edgenode.http.headers import split_host_port

__all__ = ["RouteTable"]


class RouteTable:
    def __init__(self, routes: list[RouteConfig], default_origin: str) -> None:
        self.default_origin = default_origin
        self._routes: list[tuple[str | None, bool, str, str]] = []
        for route in routes:
            host = route.host.lower() if route.host else None
            wildcard = bool(host and host.startswith("*."))
            if wildcard:
                host = host[1:]  # ".example.com"
            self._routes.append((host, wildcard, route.path_prefix, route.origin))

    def pick(self, host: str, path: str) -> str:
        """The origin name for a request's Host value and path."""
        if not self._routes:
            return self.default_origin
        name = split_host_port(host)[0] if host else ""
        for pattern, wildcard, prefix, origin in self._routes:
            if pattern is not None:
                if wildcard:
                    if not name.endswith(pattern):
                        continue
                elif name != pattern:
                    continue
            if _prefix_matches(prefix, path):
                return origin
        return self.default_origin


def _prefix_matches(prefix: str, path: str) -> bool:
    if not path.startswith(prefix):
        return False
    return prefix.endswith("/") or len(path) == len(prefix) or path[len(prefix)] == "/"
