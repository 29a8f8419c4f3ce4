"""The cache key: which stored responses a request may be answered from.

GET and HEAD share one key (HEAD is answered from a stored GET).  The key is the
normalised absolute URL (lowercase host, default port dropped, query filtered per
``[cache.key]``) plus the values of any configured request headers.  The URL part is
also what ``purge_url`` takes, so the admin API and the stage agree on one spelling.

A miss builds its key twice (the fast path's lookup and the stage's): without
``[cache.key] headers`` that is one C call each (``_key.KeyCore``: an origin-form
target; an absolute-form one goes to the Python methods ``py_for_parts`` and
``py_for_request``, which stay the reference its tests hold it to).
"""

from __future__ import annotations

import re
from typing import Callable
from urllib.parse import urlsplit

from edgenode.cache._key import KeyCore
from edgenode.cache.policy import Headers
from edgenode.config import CacheKeyConfig
from edgenode.http.messages import Request

__all__ = ["KeyBuilder"]

_DEFAULT_PORTS = {"http": "80", "https": "443"}


class KeyBuilder:
    """Builds ``(url, key)`` for requests and normalises URLs given to purge."""

    __slots__ = ("_ignore", "_whitelist", "_sort", "_headers", "_query_work", "_dropping", "_memo",
                 "for_parts", "for_request")

    #: ``(url, key)`` from the request's pieces (``py_for_parts``), in C without headers
    for_parts: Callable[[str, str, str, Callable[[], Headers]], tuple[str, str]]
    #: ``(url, key)`` of a request (``py_for_request``), in C without headers
    for_request: Callable[[Request], tuple[str, str]]

    #: normalised URLs remembered per (scheme, Host, target) when Host + target fit in
    #: MEMO_TARGET characters (memory stays below ~MEMO_SIZE * MEMO_TARGET); cleared when full
    MEMO_SIZE = 4096
    MEMO_TARGET = 256

    def __init__(self, cfg: CacheKeyConfig) -> None:
        self._ignore = frozenset(cfg.ignore_query)
        self._whitelist = frozenset(cfg.query_whitelist) if cfg.query_whitelist is not None else None
        self._sort = cfg.sort_query
        self._headers = tuple(h.lower() for h in cfg.headers)
        self._query_work = bool(self._ignore or self._whitelist is not None or self._sort)
        #: finds an empty or an ignored parameter in a query, if there is one: without one
        #: (and with neither whitelist nor sorting) the query is its own normal form
        names = "|".join(map(re.escape, sorted(self._ignore, key=len, reverse=True)))
        self._dropping = re.compile(f"(?:^|&)(?:(?:{names})(?:[=&]|$)|&|$)" if names else "(?:^|&)(?:&|$)")
        self._memo: dict[tuple[str, str, str], str] = {}
        if self._headers:  # the key takes the request's fields: Python's
            self.for_parts, self.for_request = self.py_for_parts, self.py_for_request
        else:
            core = KeyCore(self._ignore, self._whitelist, self._sort, self.py_for_parts, self.py_for_request)
            self.for_parts, self.for_request = core.for_parts, core.for_request

    def host(self, raw: str, scheme: str) -> str:
        host = raw.strip().lower()
        if host.endswith(":" + _DEFAULT_PORTS.get(scheme, "")):
            host = host.rpartition(":")[0]
        return host

    def query(self, query: str) -> str:
        if not self._query_work or not query:
            return query
        if self._whitelist is None and not self._sort and self._dropping.search(query) is None:
            return query  # (a new URL per miss: one C call instead of a pass per parameter)
        params = [p for p in query.split("&") if p]
        if self._whitelist is not None:
            params = [p for p in params if p.partition("=")[0] in self._whitelist]
        if self._ignore:
            params = [p for p in params if p.partition("=")[0] not in self._ignore]
        if self._sort:
            params.sort()
        return "&".join(params)

    def url(self, scheme: str, host: str, path: str, query: str) -> str:
        q = self.query(query)
        return f"{scheme}://{self.host(host, scheme)}{path or '/'}{'?' + q if q else ''}"

    def normalise_url(self, url: str) -> str:
        """The key spelling of an absolute URL (for purge_url)."""
        parts = urlsplit(url.strip())
        return self.url(parts.scheme.lower() or "http", parts.netloc, parts.path, parts.query)

    def py_for_request(self, req: Request) -> tuple[str, str]:
        """``(url, key)``; key == url unless ``[cache.key] headers`` adds request header values."""
        h = req.headers
        return self.py_for_parts(req.scheme, h.get("host", ""), req.target, lambda: h)

    def py_for_parts(self, scheme: str, host: str, target: str,
                     fields: Callable[[], Headers]) -> tuple[str, str]:
        """``py_for_request`` from the request's pieces; ``fields()`` is only called when
        ``[cache.key] headers`` needs the request's header fields."""
        memo_key = (scheme, host, target)
        url = self._memo.get(memo_key)
        if url is None:
            # hot objects repeat: normalising (query filtering, host folding) is done once
            if target.startswith(("http://", "https://")):
                url = self.normalise_url(target)
            else:
                path, sep, query = target.partition("?")
                url = self.url(scheme, host, path, query if sep else "")
            if len(target) + len(host) <= self.MEMO_TARGET:
                if len(self._memo) >= self.MEMO_SIZE:
                    self._memo.clear()
                self._memo[memo_key] = url
        if not self._headers:
            return url, url
        h = fields()
        extra = "".join(f"\n{name}:{' '.join(','.join(h.getall(name, ())).split())}"
                        for name in self._headers)
        return url, url + extra
