"""Edge and shield tiers: which parent a miss goes to, fall-back, and loop protection.

An edge sends a miss to the shield that owns the request's key on a ketama-compatible
consistent-hash ring (``uhashring``) over the live shields, so every edge asks the same
shield for one object and the origin sees it once.  A shield that fails (connect
error, timeout, broken answer) gets a circuit breaker; the request is retried on the
next shield of the ring, then on the origin.  A shield fetches from the origin.

Loops (an edge configured as its own parent's parent, a shield pointed at an edge) are
caught with ``CDN-Loop`` (RFC 8586): every fleet node adds ``<fleet>; node=<id>`` and
answers 508 when it sees its own entry or too many hops of its fleet.

Surrogate keys: a shield's cache strips ``Surrogate-Key``/``-Control`` as it would for
any client, so the shield relays them to its edges as ``Edgenode-Surrogate-*`` (stored
with the object, so hits carry them too) and the edge turns them back into
``Surrogate-*`` for its own cache: a key purge then reaches the object on both tiers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit
from typing import Callable, Iterable, Iterator

from multidict import CIMultiDict
from uhashring import HashRing

from edgenode.config import FleetConfig, OriginConfig
from edgenode.http.client import OriginPool
from edgenode.http.errors import OriginError
from edgenode.http.headers import append_value
from edgenode.http.messages import Request, Response

__all__ = ["CircuitBreaker", "Parent", "ParentRing", "Tier", "parse_cdn_loop", "RELAY", "MAX_FLEET_HOPS"]

log = logging.getLogger("edgenode.tiers")

#: most entries of our own fleet a request may carry in CDN-Loop (edge, shield, and one spare)
MAX_FLEET_HOPS = 3
#: Surrogate-* fields as relayed from a shield to its edges
RELAY = (("surrogate-key", "Edgenode-Surrogate-Key"), ("surrogate-control", "Edgenode-Surrogate-Control"))
_RETRY_ANY = frozenset({"GET", "HEAD", "OPTIONS"})


class CircuitBreaker:
    """Closed -> open after ``failures`` consecutive failures -> half-open after
    ``cooldown`` s (one trial request; success closes, failure re-opens, doubling the
    cool-down up to 8x).  Free of I/O; ``clock`` is injectable for tests."""

    def __init__(self, failures: int = 3, cooldown: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self.open_until = 0.0
        self.trips = 0
        self._trial = False

    @property
    def state(self) -> str:
        if self.failures < self.threshold:
            return "closed"
        return "half-open" if self.clock() >= self.open_until else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial:
            self._trial = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.trips = 0
        self._trial = False

    def failure(self) -> None:
        self.failures += 1
        self._trial = False
        if self.failures >= self.threshold:
            self.trips += 1
            self.open_until = self.clock() + self.cooldown * min(2 ** (self.trips - 1), 8)


@dataclass
class Parent:
    id: str
    url: str
    pool: OriginPool
    breaker: CircuitBreaker
    #: False when membership says it is gone (a static parent stays until then)
    live: bool = True
    requests: int = 0
    failures: int = 0


def _parent_origin(pid: str, url: str, template: OriginConfig) -> OriginConfig:
    parts = urlsplit(url)
    return OriginConfig(name=f"parent:{pid}", url=url, host=parts.hostname or "127.0.0.1",
                        port=parts.port or 80, host_header="pass",
                        connect_timeout=min(template.connect_timeout, 1.0),
                        first_byte_timeout=template.first_byte_timeout,
                        between_bytes_timeout=template.between_bytes_timeout,
                        max_connections=template.max_connections, idle_timeout=template.idle_timeout)


class ParentRing:
    """The parents of an edge on a ketama ring; rebuilt when the live set changes."""

    def __init__(self, cfg: FleetConfig, template: OriginConfig) -> None:
        self.cfg = cfg
        self.template = template
        self.parents: dict[str, Parent] = {}
        self._ring: HashRing | None = None
        self._static = {p.id: p.url for p in cfg.parents}
        self.update([])

    def update(self, shields: Iterable[tuple[str, str]]) -> None:
        """Set the live shields (id, url) from membership; static parents are kept
        unless membership lists them as gone."""
        live = dict(shields) if self.cfg.discover_parents else {}
        known = {**self._static, **live}
        for pid, url in known.items():
            parent = self.parents.get(pid)
            if parent is None or parent.url != url:
                self.parents[pid] = Parent(pid, url, OriginPool(_parent_origin(pid, url, self.template)),
                                           CircuitBreaker(self.cfg.breaker_failures, self.cfg.breaker_cooldown))
        for pid, parent in self.parents.items():
            parent.live = pid in live or (pid in self._static and pid not in self._gone(live))
        usable = sorted(pid for pid, p in self.parents.items() if p.live and pid in known)
        self._ring = HashRing(usable, hash_fn="ketama") if usable else None

    def _gone(self, live: dict[str, str]) -> set[str]:
        # a static parent is taken as gone only while membership is working and lacks it
        return set() if not live else set(self._static) - set(live)

    def owner(self, key: str) -> str | None:
        """The parent id that owns ``key`` (whatever its breaker says)."""
        return self._ring.get_node(key) if self._ring is not None else None

    def candidates(self, key: str) -> Iterator[Parent]:
        """Parents to try for ``key``, in ring order, skipping open circuits (lazily:
        the common case looks at the owner only)."""
        ring = self._ring
        if ring is None:
            return
        for node in ring.range(key):
            parent = self.parents[node["nodename"]]
            if parent.breaker.allow():
                yield parent

    def status(self) -> list[dict[str, object]]:
        return [{"id": p.id, "url": p.url, "live": p.live, "circuit": p.breaker.state,
                 "requests": p.requests, "failures": p.failures} for p in self.parents.values()]

    async def close(self) -> None:
        for p in self.parents.values():
            await p.pool.close()


def parse_cdn_loop(values: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """``CDN-Loop`` field values -> [(cdn-id, {param: value})] (RFC 8586 section 2)."""
    out = []
    for value in values:
        for item in _split_outside_quotes(value, ","):
            parts = _split_outside_quotes(item, ";")
            cdn_id = parts[0].strip()
            if not cdn_id:
                continue
            params = {}
            for p in parts[1:]:
                name, _, val = p.strip().partition("=")
                params[name.strip().lower()] = val.strip().strip('"')
            out.append((cdn_id, params))
    return out


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, cur, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


class Tier:
    """A fleet node's tier logic around the origin fetch (used by ``proxy.upstream``)."""

    def __init__(self, cfg: FleetConfig, template: OriginConfig) -> None:
        self.cfg = cfg
        self.cdn_id = cfg.name
        self.loop_entry = f"{cfg.name}; node={cfg.node_id}"
        self.ring = ParentRing(cfg, template) if cfg.tier == "edge" else None
        self.retries = 0
        self.origin_fallbacks = 0

    def loop_reason(self, headers: CIMultiDict[str]) -> str | None:
        """Why forwarding this request would loop, or None."""
        ours = [p for cdn, p in parse_cdn_loop(headers.getall("cdn-loop", ())) if cdn == self.cdn_id]
        if any(p.get("node") == self.cfg.node_id for p in ours):
            return f"request already passed this node ({self.cfg.node_id})"
        if len(ours) >= MAX_FLEET_HOPS:
            return f"request passed {len(ours)} nodes of fleet {self.cdn_id!r}"
        return None

    def mark(self, forwarded: Request) -> None:
        append_value(forwarded.headers, "CDN-Loop", self.loop_entry)

    async def fetch(self, forwarded: Request, client_host: str, origin: OriginPool,
                    on_interim: Callable[[Response], object] | None = None) -> Response:
        """Send ``forwarded`` to the owning parent, the next ones, then the origin."""
        if self.ring is None:  # a shield
            return _relay_out(await origin.request(forwarded, on_interim))
        key = f"{client_host}{forwarded.target}"
        retry_any = forwarded.method in _RETRY_ANY and isinstance(forwarded.body, (bytes, type(None)))
        for parent in self.ring.candidates(key):
            req = forwarded
            if client_host:
                req = Request(forwarded.method, forwarded.target, forwarded.headers.copy(), forwarded.body,
                              "1.1", forwarded.scheme).adopt_trailers(forwarded)
                req.headers["Host"] = client_host
            parent.requests += 1
            try:
                response = await parent.pool.request(req, on_interim)
            except OriginError as exc:
                parent.failures += 1
                parent.breaker.failure()
                log.warning("tiers: parent %s failed (%s); trying the next", parent.id, exc)
                if not retry_any:
                    raise
                self.retries += 1
                continue
            parent.breaker.success()
            return _relay_in(response)
        if self.ring.parents:
            self.origin_fallbacks += 1  # every parent down or its circuit open
        return await origin.request(forwarded, on_interim)

    def status(self) -> dict[str, object]:
        return {"tier": self.cfg.tier, "retries": self.retries, "origin_fallbacks": self.origin_fallbacks,
                "parents": self.ring.status() if self.ring is not None else []}

    async def close(self) -> None:
        if self.ring is not None:
            await self.ring.close()


def _relay_out(response: Response) -> Response:
    """Shield: keep the origin's Surrogate-* for the edges under relay names."""
    h = response.headers
    for name, relay in RELAY:
        for value in h.getall(name, ()):
            h.add(relay, value)
    return response


def _relay_in(response: Response) -> Response:
    """Edge: relayed Surrogate-* become this cache's own Surrogate-* again."""
    h = response.headers
    for name, relay in RELAY:
        values = h.popall(relay, ())
        if values and name not in h:
            for value in values:
                h.add(name, value)
    return response
