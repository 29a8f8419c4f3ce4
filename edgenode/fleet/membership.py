"""Membership: each node heartbeats a signed record into a KV bucket with a TTL, and
every node watches the bucket to know which members (and so which shields) are alive.

A member counts as live while its last heartbeat, as received here, is younger than
``node_ttl`` (the bucket's own TTL removes the record a little later); a node that
stops cleanly deletes its record so the others drop it at once.  A node sees its own
heartbeats come back through its watch: when they stop coming while it is connected,
the watch is lost (its server died) and every watch starts again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from edgenode.fleet.bus import ControlBus
from edgenode.fleet.envelope import BadMessage, open_sealed, seal

__all__ = ["Member", "Membership", "parse_member"]

log = logging.getLogger("edgenode.fleet")


@dataclass
class Member:
    id: str
    tier: str
    url: str
    info: dict[str, Any] = field(default_factory=dict)
    #: local monotonic time the last heartbeat arrived
    seen: float = 0.0


def parse_member(body: dict[str, Any]) -> Member:
    mid, tier, url = body.get("id"), body.get("tier"), body.get("url")
    if not isinstance(mid, str) or not mid:
        raise BadMessage("node.id: expected a string")
    if tier not in ("edge", "shield"):
        raise BadMessage(f"node.tier: expected edge or shield, got {tier!r}")
    if not isinstance(url, str) or not url.startswith("http://"):
        raise BadMessage(f"node.url: expected http://host:port, got {url!r}")
    return Member(mid, tier, url, body)


class Membership:
    """Heartbeats this node and keeps the live view of the fleet."""

    def __init__(self, bus: ControlBus, key: bytes, node_id: str, heartbeat: float, node_ttl: float,
                 describe: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self.bus = bus
        self.key = key
        self.node_id = node_id
        self.heartbeat = heartbeat
        self.node_ttl = node_ttl
        self._describe = describe
        self.members: dict[str, Member] = {}
        #: called with the live members whenever the set of live members changes
        self.on_change: list[Callable[[list[Member]], None]] = []
        self._last_live: frozenset[tuple[str, str, str]] = frozenset()
        self._kick = asyncio.Event()
        self._stopped = False
        #: when the watch last delivered anything (our own heartbeats come back through it)
        self.last_entry = time.monotonic()

    def kick(self) -> None:
        """Heartbeat now (e.g. a new config version applied or refused: status shows it at once)."""
        self._kick.set()

    def live(self, now: float | None = None) -> list[Member]:
        now = time.monotonic() if now is None else now
        return [m for m in self.members.values() if now - m.seen < self.node_ttl]

    def _changed(self) -> None:
        live = self.live()
        sig = frozenset((m.id, m.tier, m.url) for m in live)
        if sig != self._last_live:
            self._last_live = sig
            for cb in self.on_change:
                cb(live)

    def stop(self) -> None:
        """No more heartbeats (checked by the loop: nats-py may swallow a cancellation)."""
        self._stopped = True
        self._kick.set()

    async def beat_forever(self) -> None:
        self.last_entry = time.monotonic()  # our own heartbeats come back from now on
        while not self._stopped and not self.bus.stopping:
            if self.bus.connected and not self._stopped:
                try:
                    record = await self._describe()
                    kv = await self.bus.nodes_kv()
                    await kv.put(self.node_id, seal(self.key, {"type": "node", **record}))
                    self._check_watch()
                except Exception as exc:  # disconnected mid-beat: the next one retries
                    log.debug("fleet: heartbeat failed: %r", exc)
            self._changed()  # also ages members out
            try:
                await asyncio.wait_for(self._kick.wait(), self.heartbeat)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()

    def _check_watch(self) -> None:
        quiet = time.monotonic() - self.last_entry
        if quiet > max(3 * self.heartbeat, 1.0):
            log.warning("fleet: no membership updates for %.1fs though connected; watching again", quiet)
            self.last_entry = time.monotonic()
            self.bus.restart_watches()

    async def watch_forever(self) -> None:
        await self.bus.watch_forever(self.bus.names.nodes_bucket, ">", self._on_entry)

    def _on_entry(self, entry: Any, replay: bool = False) -> None:
        self.last_entry = time.monotonic()
        if entry is None:
            return
        if entry.operation in ("DEL", "PURGE") or not entry.value:
            if self.members.pop(entry.key, None) is not None:
                self._changed()
            return
        try:
            member = parse_member(open_sealed(self.key, entry.value, "node"))
        except BadMessage as exc:
            log.warning("fleet: dropped a malformed heartbeat under key %r: %s", entry.key, exc)
            return
        member.seen = time.monotonic()
        if replay and entry.created is not None:
            # a replayed record is as old as its server timestamp says, not fresh: a dead
            # member must not look alive again because this node re-read the bucket
            member.seen -= min(max(0.0, time.time() - entry.created.timestamp()), 3600.0)
        self.members[member.id] = member
        self._changed()

    async def leave(self) -> None:
        if self.bus.connected:
            try:
                kv = await self.bus.nodes_kv()
                await kv.delete(self.node_id)
            except Exception as exc:
                log.debug("fleet: could not remove the membership record: %r", exc)
