"""A node's fleet agent: control-plane connection, purge log, rollouts, membership.

Start-up order (``Node.start``): ``sync()`` before the listener opens - connect (one
attempt, bounded by ``connect_timeout``), apply every purge missed while down and the
current fleet config, within ``catchup_timeout`` - then ``announce(url)`` after it opens,
which starts the heartbeat.  When NATS cannot be reached the node serves anyway
(purge fan-out and rollouts paused), says so in its log and /healthz, and keeps
reconnecting with back-off; on reconnection it applies what it missed.

What a node serves while it may have missed purges (``[fleet] unsynced``): by default
what it has (``serve``), because a control-plane outage must not become an origin
outage - the window is the outage, and it closes on reconnection.  ``revalidate``
soft-purges everything when sync is lost for longer than ``node_ttl``, so every hit
is revalidated with the origin until the node has caught up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from edgenode.config import FleetConfig
from edgenode.fleet.applier import ConfigApplier
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.envelope import PurgeOrder, new_purge
from edgenode.fleet.host import FleetHost, PurgeIncomplete
from edgenode.fleet.membership import Member, Membership
from edgenode.fleet.names import FleetNames
from edgenode.fleet.purges import PurgeLog

__all__ = ["FleetAgent"]

log = logging.getLogger("edgenode.fleet")


class FleetAgent:
    """The node's membership of the fleet: one per node, in the process that owns the
    node's cache store (the node itself, or the master of its workers)."""

    def __init__(self, host: FleetHost, cfg: FleetConfig) -> None:
        self.host = host
        self.cfg = cfg
        self.member_id = cfg.node_id
        self.names = FleetNames(cfg.name)
        self.bus = ControlBus(cfg.nats, self.names, client_name=f"edgenode {self.member_id}",
                              credentials=cfg.credentials, connect_timeout=cfg.connect_timeout,
                              node_ttl=cfg.node_ttl)
        self.started_at = time.time()
        self.purges = PurgeLog(self.bus, cfg.key, self.member_id, self._apply_purge, self.started_at)
        from edgenode.wasmcache import default_cache_dir

        self.config = ConfigApplier(host, self.bus, cfg.key, default_cache_dir())
        self.membership = Membership(self.bus, cfg.key, self.member_id, cfg.heartbeat, cfg.node_ttl,
                                     self.describe)
        self.config.on_change.append(self.membership.kick)
        if cfg.tier == "edge":
            self.membership.on_change.append(self._shields_changed)
        self.bus.on_state.append(self._connection_changed)
        self.url = cfg.advertise
        self._tasks: list[asyncio.Task[Any]] = []
        self._beat: asyncio.Task[None] | None = None
        self._unsynced_timer: asyncio.TimerHandle | None = None
        self._rate = (time.monotonic(), 0)

    # --- lifecycle --------------------------------------------------------------------
    async def sync(self) -> None:
        """Connect and catch up before the node serves (bounded; never fails start-up)."""
        first = asyncio.Event()
        self._tasks = [asyncio.create_task(self.bus.run(first), name="fleet-connect"),
                       asyncio.create_task(self.purges.run(), name="fleet-purges"),
                       asyncio.create_task(self.membership.watch_forever(), name="fleet-members"),
                       asyncio.create_task(self.config.watch_forever(), name="fleet-config"),
                       asyncio.create_task(self.config.poll_forever(max(2 * self.cfg.heartbeat, 1.0)),
                                           name="fleet-config-poll")]
        await first.wait()
        if not self.bus.connected:
            if self.cfg.unsynced == "revalidate":
                self._revalidate_all("not connected at start-up")
            return
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.gather(self.purges.caught_up.wait(), self.config.ready.wait()),
                                   self.cfg.catchup_timeout)
            log.info("fleet: %s caught up in %.0f ms (%d purges applied, config version %s)",
                     self.member_id, (time.monotonic() - started) * 1000, self.purges.counts["applied"],
                     self.config.version)
        except asyncio.TimeoutError:
            log.warning("fleet: not caught up after %.1fs; serving while catching up", self.cfg.catchup_timeout)

    def announce(self, url: str) -> None:
        """Start heartbeating with the data-plane URL other nodes should use."""
        self.url = self.cfg.advertise or url
        if self._beat is None:
            self._beat = asyncio.create_task(self.membership.beat_forever(), name="fleet-heartbeat")

    async def stop(self) -> None:
        self.membership.stop()
        if self._beat is not None:
            await self.membership.leave()
        self.bus.stopping = True
        tasks = [*self._tasks, *([self._beat] if self._beat else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        if self._unsynced_timer is not None:
            self._unsynced_timer.cancel()
        await self.bus.close()

    # --- purges -----------------------------------------------------------------------
    async def _apply_purge(self, order: PurgeOrder) -> int:
        return await self.host.purge(order.kind, list(order.values), order.soft)

    async def purge(self, kind: str, values: list[str], soft: bool) -> dict[str, Any]:
        """A purge from this node's admin API: applied here now, and sent to the fleet.

        Sent even when applying it here failed: the other nodes purge, and this node's
        own delivery from the stream retries it here (an order that failed is not
        remembered as applied)."""
        order = new_purge(kind, values, soft, self.member_id)
        errors: list[str] = []
        try:
            purged = await self.purges.apply(order) or 0
        except PurgeIncomplete as exc:
            purged, errors = exc.purged, exc.errors
        except Exception as exc:
            log.exception("fleet: applying purge %s here failed", order.id)
            purged, errors = 0, [f"this node: {exc}"]
        sent = await self.purges.publish(order)
        out: dict[str, Any] = {"purged": purged, "soft": soft,
                               "fleet": {"id": order.id, "state": "published" if sent else "queued until NATS is back"}}
        if errors:
            out["errors"] = errors
        return out

    # --- state ------------------------------------------------------------------------
    async def _connection_changed(self, connected: bool) -> None:
        if connected:
            if self._unsynced_timer is not None:
                self._unsynced_timer.cancel()
                self._unsynced_timer = None
            await self.purges.flush_outbox()
        elif self.cfg.unsynced == "revalidate" and self._unsynced_timer is None:
            loop = asyncio.get_running_loop()
            self._unsynced_timer = loop.call_later(self.cfg.node_ttl, self._revalidate_all,
                                                   "disconnected from NATS")

    def _revalidate_all(self, why: str) -> None:
        async def revalidate() -> None:
            n = await self.host.purge("all", [], True)
            log.warning("fleet: %s: marked %d cached objects stale (unsynced = \"revalidate\")", why, n)

        self._tasks.append(asyncio.ensure_future(revalidate()))

    def _shields_changed(self, live: list[Member]) -> None:
        shields = {}
        for m in live:
            if m.tier == "shield" and m.info.get("node", m.id) != self.cfg.node_id:
                shields.setdefault(m.info.get("node", m.id), m.url)
        self.host.set_parents(sorted(shields.items()))
        log.info("fleet: live shields: %s", ", ".join(sorted(shields)) or "none (misses go to the origin)")

    def state(self) -> str:
        if not self.bus.connected:
            return "disconnected"
        return "in-sync" if self.purges.caught_up.is_set() else "catching-up"

    def health(self) -> dict[str, Any]:
        return {"state": self.state(), "node": self.member_id, "tier": self.cfg.tier,
                "control_plane": self.bus.status(), "purges": self.purges.status(),
                "config": self.config.status(), "tiers": self.host.tier_status()}

    async def describe(self) -> dict[str, Any]:
        """This node's heartbeat record (what ``edgenode fleet status`` shows), with
        node-wide figures (all workers together)."""
        stats = await self.host.stats()
        cache = stats.get("cache", {})
        hits, misses = cache.get("hits", 0), cache.get("misses", 0)
        now, requests = time.monotonic(), stats.get("requests", 0)
        then, before = self._rate
        self._rate = (now, requests)
        return {"id": self.member_id, "node": self.cfg.node_id, "tier": self.cfg.tier, "url": self.url or "",
                "state": self.state(), "version": self.config.version, "applied_at": self.config.applied_at,
                "refused": self.config.refused,
                "modules": self.config.module_digests(), "requests": requests,
                "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
                "rps": round((requests - before) / (now - then), 1) if now > then else 0.0,
                "purges_applied": self.purges.counts["applied"], "started_at": self.started_at,
                "ts": time.time()}
