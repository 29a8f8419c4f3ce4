"""The control-plane connection: NATS with JetStream, and the fleet's streams and buckets.

A node must serve whether NATS is there or not, so ``ControlBus.run()`` keeps trying
to connect with capped exponential back-off (with jitter) and reports its state for
/healthz; once connected, nats-py reconnects by itself after a drop and the bus
follows its callbacks.  It pings the server every ``node_ttl / 3`` (at least 1 s), so a
path that dies silently (no reset, just no packets) counts as a disconnection within about
``node_ttl``, as a silent member does, instead of nats-py's two-minute default during which
the node would call itself in sync while purges go nowhere.  ``ensure()`` creates the purge stream and the buckets when
missing (any node or the CLI may be first), so a fleet needs no set-up step; on a NATS
cluster of three or more servers (the servers a client knows: its own list and those the
cluster announced) they get three replicas, so the control plane outlives a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType, StreamConfig
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from edgenode.fleet.envelope import MAX_PURGE_AGE
from edgenode.fleet.names import FleetNames

__all__ = ["ControlBus", "connect"]

log = logging.getLogger("edgenode.fleet")

#: back-off between connection attempts: first, cap (seconds)
BACKOFF_FIRST = 0.25
BACKOFF_CAP = 5.0
#: versions of the fleet config kept (rollback reaches back this far)
CONFIG_HISTORY = 64
#: replicas of the fleet's stream and buckets on a NATS cluster of at least this many servers
CLUSTER_REPLICAS = 3
#: pings unanswered before the connection counts as dead (nats-py then reconnects)
MAX_OUTSTANDING_PINGS = 2


async def connect(servers: list[str], *, name: str, credentials: str | None = None,
                  timeout: float = 2.0, ping_interval: float = 120.0, **callbacks: Any) -> Client:
    """One connection attempt that fails fast; once connected, nats-py reconnects by itself.

    nats-py keeps retrying a first connection to an unreachable server forever; a node
    must instead learn at once that NATS is not there (it serves meanwhile and retries
    with back-off itself), so the servers are probed first and the attempt is bounded.
    """
    await _probe(servers, timeout)
    opts: dict[str, Any] = dict(servers=servers, name=name, connect_timeout=timeout,
                                allow_reconnect=True, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.5, ping_interval=ping_interval,
                                max_outstanding_pings=MAX_OUTSTANDING_PINGS, **callbacks)
    if credentials:
        opts["user_credentials"] = credentials
    return await asyncio.wait_for(nats.connect(**opts), timeout * 2)


async def _probe(servers: list[str], timeout: float) -> None:
    """Raise ConnectionError unless one server accepts a TCP connection."""
    errors = []
    for url in servers:
        parts = urlsplit(url)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 4222), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            errors.append(f"{url}: {exc or type(exc).__name__}")
            continue
        writer.close()
        return
    raise ConnectionError("; ".join(errors))


class ControlBus:
    """A NATS connection that a node keeps trying to open, and the fleet's resources."""

    def __init__(self, servers: list[str], names: FleetNames, *, client_name: str,
                 credentials: str | None = None, connect_timeout: float = 2.0,
                 node_ttl: float = 3.0) -> None:
        self.servers = servers
        self.names = names
        self.client_name = client_name
        self.credentials = credentials
        self.connect_timeout = connect_timeout
        self.node_ttl = node_ttl
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.connected = False
        #: set by close(): every loop over this bus ends (nats-py can swallow a task's
        #: cancellation inside its calls, so loops also check this flag)
        self.stopping = False
        self.last_error: str | None = None
        self.since = time.time()
        #: called after every (re)connection, and with False after every disconnection
        self.on_state: list[Callable[[bool], Awaitable[None] | None]] = []
        self._watchers: set[Any] = set()

    def status(self) -> dict[str, Any]:
        return {"connected": self.connected, "servers": self.servers, "since": self.since,
                "last_error": self.last_error}

    async def _set(self, connected: bool, error: str | None = None) -> None:
        if connected != self.connected:
            self.since = time.time()
        self.connected = connected
        if error is not None:
            self.last_error = error
        for cb in self.on_state:
            result = cb(connected)
            if asyncio.iscoroutine(result):
                await result

    async def open(self) -> None:
        """Connect once and make sure the fleet's stream and buckets exist (raises on failure)."""
        async def disconnected() -> None:
            if self.stopping:
                return
            log.warning("fleet: disconnected from NATS; purge fan-out and rollout paused, reconnecting")
            await self._set(False, "disconnected")

        async def reconnected() -> None:
            log.info("fleet: reconnected to NATS")
            await self._set(True)

        async def error(exc: Exception) -> None:
            self.last_error = f"{type(exc).__name__}: {exc}"

        self.nc = await connect(self.servers, name=self.client_name, credentials=self.credentials,
                                timeout=self.connect_timeout, ping_interval=max(self.node_ttl / 3, 1.0),
                                disconnected_cb=disconnected,
                                reconnected_cb=reconnected, error_cb=error)
        self.js = self.nc.jetstream(timeout=5.0)
        try:
            await self.ensure()
        except BaseException:
            await self.nc.close()
            self.nc = self.js = None
            raise
        await self._set(True)

    async def run(self, first_attempt_done: asyncio.Event | None = None) -> None:
        """Try ``open()`` until it succeeds, backing off between attempts."""
        delay = BACKOFF_FIRST
        while not self.stopping:
            try:
                await self.open()
                return
            except Exception as exc:  # every failure to reach NATS is retried
                self.last_error = f"{type(exc).__name__}: {exc}"
                if first_attempt_done is not None and not first_attempt_done.is_set():
                    log.warning("fleet: NATS unreachable at %s (%s); serving without the control "
                                "plane, retrying with back-off", ", ".join(self.servers), self.last_error)
                    first_attempt_done.set()
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, BACKOFF_CAP)
            finally:
                if first_attempt_done is not None:
                    first_attempt_done.set()

    async def close(self) -> None:
        self.stopping = True
        nc, self.nc, self.js = self.nc, None, None
        self.connected = False
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()  # flushes what is buffered (acks, the membership delete)
            except (OSError, asyncio.TimeoutError) as exc:  # the link was already gone
                log.debug("fleet: closing the NATS connection: %r", exc)

    async def reset_consumer(self, stream: str, consumer: str) -> bool:
        """Rewind ``consumer`` to its ack floor: every message it delivered that was not
        acked is delivered again now, not when its ack timer runs out.  False when the
        server has no such API (``$JS.API.CONSUMER.RESET``, nats-server 2.14 and later)."""
        nc = self.nc
        if nc is None:
            raise ConnectionError("not connected to NATS")
        version = nc.connected_server_version
        if (version.major, version.minor) < (2, 14):  # it would not answer at all
            return False
        reply = await nc.request(f"$JS.API.CONSUMER.RESET.{stream}.{consumer}", b"", timeout=5.0)
        error = json.loads(reply.data).get("error")
        if error is None:
            return True
        if error.get("code") == 404 and "consumer" in str(error.get("description", "")):
            raise NotFoundError(description=error.get("description"))
        raise nats.js.errors.APIError(code=error.get("code"), description=error.get("description"))

    # --- resources -------------------------------------------------------------------
    def replicas(self) -> int:
        """Replicas for what this bus creates: 3 on a cluster, else 1."""
        known = len(self.nc.servers) if self.nc is not None else 1
        return CLUSTER_REPLICAS if known >= CLUSTER_REPLICAS else 1

    async def ensure(self) -> None:
        js = self._js()
        n = self.names
        try:
            info = await js.stream_info(n.purge_stream)
            if not info.config.allow_direct:  # made by an older version: nodes read it directly too
                with contextlib.suppress(nats.errors.Error):
                    await js.update_stream(info.config.evolve(allow_direct=True))
        except NotFoundError:
            await _tolerate_race(js.add_stream(StreamConfig(
                name=n.purge_stream, subjects=[n.purge_subject], storage=StorageType.FILE,
                max_age=MAX_PURGE_AGE, duplicate_window=120.0, num_replicas=self.replicas(),
                allow_direct=True)))
        await self._bucket(n.config_bucket, history=CONFIG_HISTORY)
        await self._bucket(n.nodes_bucket, ttl=max(self.node_ttl * 4, 10.0))

    async def _bucket(self, name: str, **kw: Any) -> KeyValue:
        js = self._js()
        try:
            return await js.key_value(name)
        except BucketNotFoundError:
            await _tolerate_race(js.create_key_value(KeyValueConfig(bucket=name, replicas=self.replicas(), **kw)))
            return await js.key_value(name)

    async def config_kv(self) -> KeyValue:
        return await self._js().key_value(self.names.config_bucket)

    async def nodes_kv(self) -> KeyValue:
        return await self._js().key_value(self.names.nodes_bucket)

    async def kv_keys(self, bucket: str) -> list[str]:
        """The keys a KV bucket holds messages for, from one stream-info request.

        nats-py's ``KeyValue.keys()`` replays the bucket through a watcher that can stop
        before the messages already on their way (nats-io/nats.py#842) and answer too few
        keys, or none; the stream's own per-subject state has no such race.  A deleted
        key is listed while its delete marker is kept: reading it finds it gone.
        """
        prefix = f"$KV.{bucket}."
        info = await self._js().stream_info(f"KV_{bucket}", subjects_filter=prefix + ">")
        return sorted(subject[len(prefix):] for subject in (info.state.subjects or {}))

    async def modules(self) -> ObjectStore:
        js = self._js()
        try:
            return await js.object_store(self.names.modules_bucket)
        except (BucketNotFoundError, NotFoundError):
            await _tolerate_race(js.create_object_store(self.names.modules_bucket,
                                                        config=ObjectStoreConfig(replicas=self.replicas())))
            return await js.object_store(self.names.modules_bucket)

    async def watch_forever(self, bucket: str, keys: str,
                            handle: Callable[[Any, bool], Awaitable[None] | None]) -> None:
        """Follow ``keys`` of KV ``bucket`` for as long as the node runs, across NATS outages.

        ``handle(entry, replay)`` gets each entry; ``replay`` is true for the records that
        existed when the watch (re)started, and ``handle(None, False)`` marks their end.
        """
        while not self.stopping:
            if not self.connected:
                await asyncio.sleep(0.2)
                continue
            watcher = None
            try:
                kv = await self._js().key_value(bucket)
                watcher = await kv.watch(keys)
                self._watchers.add(watcher)
                replay = True
                async for entry in watcher:
                    if entry is None:
                        replay = False
                    result = handle(entry, replay)
                    if asyncio.iscoroutine(result):
                        await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS went away: start over once it is back
                log.debug("fleet: watch of %s restarts: %r", bucket, exc)
                await asyncio.sleep(0.5)
            finally:
                if watcher is not None:
                    self._watchers.discard(watcher)
                    with contextlib.suppress(Exception):
                        await watcher.stop()

    def restart_watches(self) -> None:
        """Start every watch again (each replays its bucket).  A watch is served by one
        server of a cluster: when that server dies, the watch goes quiet without an
        error, until its consumer misses two of its 5 s heartbeats."""
        for watcher in list(self._watchers):
            self._watchers.discard(watcher)
            stopping = asyncio.ensure_future(watcher.stop())
            stopping.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _js(self) -> JetStreamContext:
        if self.js is None:
            raise ConnectionError("not connected to NATS")
        return self.js


async def _tolerate_race(create: Awaitable[Any]) -> None:
    """Another node may create the same resource at the same moment: that is fine."""
    try:
        await create
    except nats.js.errors.BadRequestError as exc:
        if "already in use" not in str(exc) and "exists" not in str(exc):
            raise
