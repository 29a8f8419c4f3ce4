"""The fleet purge log: purges go into a JetStream stream, every node applies each once.

Each node reads the stream through its own durable consumer, so the server
remembers how far it got: a node that was stopped or cut off gets every purge it
missed when it comes back (at-least-once).  A purge carries an id; the node remembers
the ids it applied (and JetStream drops duplicate publishes of one id), so a
redelivered or re-published purge is applied once.  A new consumer starts at the
node's start time, so purges sent while a fresh node was still connecting are not lost.

A purge is never left waiting for an ack timer.  A delivery that did not reach the
handler (lost in the connection that died, or taken by a node that stopped before it
acked) stays "pending" on the server, which would send it again only after ``ack_wait``;
so on every subscription and reconnection the node rewinds its consumer to its ack floor
(``$JS.API.CONSUMER.RESET``) and gets everything unacked at once.  ``ack_wait`` is short
and only a backstop (a delivery lost without a reconnection); an apply that takes
longer says so with in-progress acks, and a failed one is delivered again after a short,
doubling delay.

Nor does a purge wait for the server to mend the consumer.  A consumer whose leader died
with its server is silent until the survivors elect another (nats-server's Raft waits
4–9 s), and a consumer's deliveries wait behind a slow apply.  So once the consumer has
caught up, the node asks the stream every ``READ_EVERY`` seconds, from any replica (direct
get), for its last purge; one stored after the last the consumer delivered and still
undelivered ``GAP_GRACE`` later is read straight from the stream and applied, whether or
not the consumer answers (its copy, later, is a duplicate).  Purges are removals and
commute, so applying one ahead of a slower one loses nothing.

Purges accepted while NATS is unreachable, or whose publish failed, wait in a bounded
outbox and are published, in order, as soon as NATS takes them again (each node applies
them then).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections import OrderedDict, deque
from typing import Any, Awaitable, Callable

import nats.errors
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from edgenode.fleet.bus import ControlBus
from edgenode.fleet.envelope import MAX_PURGE_AGE, BadMessage, PurgeOrder, open_sealed, parse_purge, seal

__all__ = ["PurgeLog"]

log = logging.getLogger("edgenode.fleet")

#: applied purge ids remembered (redeliveries come long before this many new purges)
REMEMBER = 50_000
OUTBOX_MAX = 10_000
#: applied purges listed in status (id -> applied_at), newest last
RECENT = 32
#: seconds the server waits for an ack before it delivers a purge again (the backstop for a
#: delivery lost while the connection stayed up); a longer apply sends in-progress acks
ACK_WAIT = 2.0
#: purges delivered and not yet acked, at most: a long catch-up arrives in windows the node
#: applies well within ACK_WAIT, so a backlog waiting in the client is not redelivered
MAX_ACK_PENDING = 256
#: a purge whose apply failed comes back after NAK_FIRST seconds, doubling up to NAK_CAP
NAK_FIRST = 0.05
NAK_CAP = 2.0
#: seconds a purge stored after the last one the consumer delivered may wait for it before
#: it is read from the stream directly; the stream is asked every READ_EVERY seconds
GAP_GRACE = 0.5
READ_EVERY = 0.25


class PurgeLog:
    """Publishes purges and applies the fleet's purges to this node, once each."""

    def __init__(self, bus: ControlBus, key: bytes, node_id: str,
                 apply: Callable[[PurgeOrder], Awaitable[int]], started_at: float | None = None) -> None:
        self.bus = bus
        self.key = key
        self.node_id = node_id
        self._apply_fn = apply
        self.started_at = started_at or time.time()
        self._applied: OrderedDict[str, float] = OrderedDict()
        self._outbox: deque[PurgeOrder] = deque(maxlen=OUTBOX_MAX)
        self._flushing = asyncio.Lock()
        #: set while this node has applied everything in the stream (cleared on disconnect)
        self.caught_up = asyncio.Event()
        self.counts = {"applied": 0, "duplicates": 0, "dropped": 0, "published": 0, "read_directly": 0}
        #: the newest stream sequence this node's consumer delivered (or it read directly);
        #: None until the consumer first caught up or delivered (where the node starts)
        self._seen_seq: int | None = None
        #: the newest purge found in the stream beyond ``_seen_seq`` (its stream sequence)
        #: and when: read directly if the consumer has not delivered it GAP_GRACE later
        self._behind: tuple[int, float] | None = None
        self.last_error: str | None = None
        self.caught_up_at: float | None = None
        #: set when what the server delivered may not have reached the handler (a new
        #: subscription, a reconnection): ``run()`` rewinds the consumer to its ack floor
        self._rewind = True
        #: wakes ``run()`` on a connection change, so a reconnection's rewind is not late
        self._wake = asyncio.Event()
        self._told = False  # that the server cannot rewind (said once)
        bus.on_state.append(self._on_state)

    def _on_state(self, connected: bool) -> None:
        if connected:
            self._rewind = True
        else:  # purges may be published now that this node will only see later
            self.caught_up.clear()
        self._wake.set()

    async def _nap(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    # --- local side ---------------------------------------------------------------------
    async def apply(self, order: PurgeOrder) -> int | None:
        """Apply ``order`` here unless it was applied already (then None)."""
        if order.id in self._applied:
            self.counts["duplicates"] += 1
            return None
        self._applied[order.id] = time.time()  # taken before the await: a copy arriving meanwhile is a duplicate
        try:
            purged = await self._apply_fn(order)
        except BaseException:
            self._applied.pop(order.id, None)
            raise
        now = self._applied[order.id] = time.time()
        if len(self._applied) > REMEMBER:
            self._applied.popitem(last=False)
        self.counts["applied"] += 1
        self._announce(order, now, purged)
        return purged

    async def publish(self, order: PurgeOrder) -> bool:
        """Send ``order`` to the fleet; False when it had to wait in the outbox."""
        if not self._outbox and await self._send(order):
            return True
        self._outbox.append(order)  # behind older ones: purges leave in the order accepted
        return False

    async def _send(self, order: PurgeOrder) -> bool:
        js = self.bus.js
        if js is None or not self.bus.connected:
            return False
        try:
            await js.publish(self.bus.names.purge_subject, seal(self.key, order.body()),
                             headers={"Nats-Msg-Id": order.id})
        except Exception as exc:  # NATS went away mid-call, or no stream leader yet (cluster)
            self.last_error = f"publish: {exc!r}"
            return False
        self.counts["published"] += 1
        return True

    async def flush_outbox(self) -> None:
        """Publish the outbox, oldest first, until empty or a publish fails; ``run()``
        retries while connected, so a publish that failed without a disconnection (a
        timeout, a stream electing its leader) is not left waiting for the next one."""
        async with self._flushing:  # two flushers would send one order twice and drop the next
            while self._outbox and self.bus.connected:
                if not await self._send(self._outbox[0]):
                    return
                self._outbox.popleft()

    def _announce(self, order: PurgeOrder, applied_at: float, purged: int) -> None:
        nc = self.bus.nc
        if nc is None or not self.bus.connected:
            return
        body = {"type": "purge-applied", "id": order.id, "node": self.node_id,
                "applied_at": applied_at, "purged": purged}
        task = asyncio.ensure_future(nc.publish(self.bus.names.applied_subject, seal(self.key, body)))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # --- the stream ---------------------------------------------------------------------
    async def _subscribe(self) -> Any:
        """This node's durable push consumer; its callback applies purges in order.

        Bound without nats-py's "already bound" check: after a node's host lost its
        network, the server keeps the old connection (and its interest in the consumer)
        until its own pings give up, minutes later; the node that starts again must read
        its purges meanwhile, and the dead connection's copies go nowhere."""
        js, nc = self.bus.js, self.bus.nc
        assert js is not None and nc is not None
        stream, durable = self.bus.names.purge_stream, self.bus.names.consumer(self.node_id)
        try:
            cfg = (await js.consumer_info(stream, durable)).config
        except NotFoundError:
            start = datetime.datetime.fromtimestamp(self.started_at - 1.0, tz=datetime.timezone.utc)
            cfg = ConsumerConfig(durable_name=durable, deliver_subject=nc.new_inbox(),
                                 deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start,
                                 ack_wait=ACK_WAIT, max_ack_pending=MAX_ACK_PENDING, inactive_threshold=MAX_PURGE_AGE)
            cfg = (await js.add_consumer(stream, cfg)).config
        if (cfg.ack_wait, cfg.max_ack_pending) != (ACK_WAIT, MAX_ACK_PENDING):
            # made by an older version, with other timers: keep its position, take ours
            cfg = (await js.add_consumer(stream, cfg.evolve(ack_wait=ACK_WAIT, max_ack_pending=MAX_ACK_PENDING))).config
        return await js.subscribe_bind(stream, cfg, durable, cb=self._handle, manual_ack=True)

    async def _rewind_consumer(self) -> None:
        """Have the server deliver again, now, every purge it delivered that was not acked."""
        self._rewind = False
        names = self.bus.names
        if not await self.bus.reset_consumer(names.purge_stream, names.consumer(self.node_id)) and not self._told:
            self._told = True
            log.warning("fleet: nats-server < 2.14 cannot reset a consumer: a purge lost in a broken "
                        "connection is delivered again after %.0f s", ACK_WAIT)

    async def run(self) -> None:
        """Keep the consumer subscribed and track whether this node has caught up (and,
        beside it, read what the consumer leaves undelivered)."""
        reader = asyncio.create_task(self._read_forever(), name="fleet-purge-reader")
        try:
            await self._consume()
        finally:
            reader.cancel()

    async def _consume(self) -> None:
        sub = None
        while not self.bus.stopping:
            if not self.bus.connected:
                await self._nap(0.1)
                continue
            try:
                if sub is None:
                    sub = await self._subscribe()
                if self._rewind:
                    await self._rewind_consumer()
                if self._outbox:
                    await self.flush_outbox()
                if not self.caught_up.is_set():
                    await self._check_pending()
                    await asyncio.sleep(0.02)
                else:
                    await self._nap(0.5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken connection or consumer: start over
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.debug("fleet: purge consumer error: %s", self.last_error)
                self.caught_up.clear()
                self._rewind = True
                if sub is not None:
                    try:
                        await sub.unsubscribe()
                    except Exception:
                        pass
                sub = None
                await asyncio.sleep(0.5)

    async def _check_pending(self) -> None:
        """Caught up when the server says nothing is left for this node's consumer."""
        js = self.bus.js
        assert js is not None
        info = await js.consumer_info(self.bus.names.purge_stream, self.bus.names.consumer(self.node_id))
        if info.num_pending == 0 and info.num_ack_pending == 0 and self.bus.connected:
            # a new consumer starts after the purges older than the node: so does the reader
            delivered = info.delivered.stream_seq if info.delivered is not None else 0
            self._seen_seq = max(self._seen_seq or 0, delivered or 0)
            self._mark_caught_up()

    async def _read_forever(self) -> None:
        """Every READ_EVERY seconds while connected, once the consumer's position is known
        (``_seen_seq``: from its first catch-up on), whether or not the consumer answers."""
        while not self.bus.stopping:
            await asyncio.sleep(READ_EVERY)
            if self._seen_seq is None or not self.bus.connected:
                continue
            try:
                await self._read_undelivered()
            except (nats.errors.Error, asyncio.TimeoutError) as exc:  # no replica answered: next time
                log.debug("fleet: reading the purge stream directly failed: %r", exc)

    async def _read_undelivered(self) -> None:
        """Apply the purges stored after the last one the consumer delivered, read from
        the stream by any replica, up to one found there ``GAP_GRACE`` ago that the consumer
        has not delivered since (its leader died, or an apply holds its deliveries back).
        A purge the consumer delivers in time is never read: under a steady flow each
        newest purge gets its own grace."""
        js = self.bus.js
        assert js is not None
        stream, subject = self.bus.names.purge_stream, self.bus.names.purge_subject
        try:
            last = await js.get_last_msg(stream, subject, direct=True)
        except NotFoundError:  # nothing stored
            return
        seen = self._seen_seq or 0
        if not last.seq or last.seq <= seen:
            self._behind = None
            return
        now, behind = time.monotonic(), self._behind
        if behind is None or behind[0] <= seen:  # the one found before was delivered in time
            self._behind = (last.seq, now)
            return
        upto, found_at = behind
        if now - found_at < GAP_GRACE:
            return
        self._behind = None
        seq = seen + 1
        while seq <= upto:
            try:  # the first purge at or after ``seq`` (older ones may have expired)
                msg = await js.get_msg(stream, seq=seq, subject=subject, direct=True, next=True)
            except NotFoundError:
                break
            if not msg.seq or msg.data is None:
                break
            try:
                order = parse_purge(open_sealed(self.key, msg.data, "purge"))
            except BadMessage:  # the consumer's handler drops and reports it
                order = None
            try:
                applied = order is not None and await self.apply(order) is not None
            except Exception as exc:  # left to the consumer's delivery, which retries it
                log.warning("fleet: applying purge %s read from the stream failed: %r", order.id, exc)
                return
            if applied:
                self.counts["read_directly"] += 1
                log.info("fleet: purge %s (stream seq %d) read from the stream: its consumer had not "
                         "delivered it after %.1f s", order.id, msg.seq, GAP_GRACE)
            self._seen_seq = max(self._seen_seq or 0, msg.seq)
            seq = msg.seq + 1

    def _mark_caught_up(self) -> None:
        if not self.caught_up.is_set():
            self.caught_up_at = time.time()
            log.info("fleet: purge log caught up (%d applied so far)", self.counts["applied"])
            self.caught_up.set()

    async def _handle(self, msg: Any) -> None:
        self._seen_seq = max(self._seen_seq or 0, msg.metadata.sequence.stream)
        try:
            order = parse_purge(open_sealed(self.key, msg.data, "purge"))
        except BadMessage as exc:
            self.counts["dropped"] += 1
            log.warning("fleet: dropped a malformed purge message (stream seq %s): %s",
                        getattr(msg.metadata.sequence, "stream", "?"), exc)
            await msg.term()  # never redelivered
            return
        working = asyncio.ensure_future(_in_progress(msg))
        try:
            await self.apply(order)
        except Exception:
            attempt = msg.metadata.num_delivered or 1
            log.exception("fleet: applying purge %s failed (attempt %d)", order.id, attempt)
            await msg.nak(delay=min(NAK_FIRST * 2 ** (attempt - 1), NAK_CAP))
            return
        finally:
            working.cancel()
        await msg.ack()

    def status(self) -> dict[str, Any]:
        recent = list(self._applied.items())[-RECENT:]
        return {"caught_up": self.caught_up.is_set(), "caught_up_at": self.caught_up_at,
                "outbox": len(self._outbox), "last_error": self.last_error, **self.counts,
                "recent": dict(recent)}


async def _in_progress(msg: Any) -> None:
    """Tell the server, while an apply runs, that this delivery is being worked on, so a
    slow apply (a busy worker, a purge of everything) is not delivered a second time."""
    try:
        while True:
            await asyncio.sleep(ACK_WAIT / 3)
            await msg.in_progress()
    except Exception:  # the connection went away: the rewind on reconnection redelivers it
        return
