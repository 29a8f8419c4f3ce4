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
        #: route names, as filters see them (``route_name``): ``name`` or ``routes[i]``
        self.names = [route.name or f"routes[{i}]" for i, route in enumerate(routes)]
        for route in routes:
            host = route.host.lower() if route.host else None
            wildcard = bool(host and host.startswith("*."))
            if wildcard:
                host = host[1:]  # ".example.com"
            self._routes.append((host, wildcard, route.path_prefix, route.origin))
        #: the origin of every request when there are no routes (None: match each one)
        self.fixed: str | None = None if self._routes else default_origin

    def pick(self, host: str, path: str) -> str:
        """The origin name for a request's Host value and path."""
        return self.match(host, path)[1]

    def match(self, host: str, path: str) -> tuple[str, str]:
        """(route name, origin name) for a request's Host value and path; the route is
        ``default`` when no entry matches."""
        if not self._routes:
            return "default", self.default_origin
        name = split_host_port(host)[0] if host else ""
        for index, (pattern, wildcard, prefix, origin) in enumerate(self._routes):
            if pattern is not None:
                if wildcard:
                    if not name.endswith(pattern):
                        continue
                elif name != pattern:
                    continue
            if _prefix_matches(prefix, path):
                return self.names[index], origin
        return "default", self.default_origin


def _prefix_matches(prefix: str, path: str) -> bool:
    if not path.startswith(prefix):
        return False
    return prefix.endswith("/") or len(path) == len(prefix) or path[len(prefix)] == "/"
