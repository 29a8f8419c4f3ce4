"""The chain's terminal handler: send the request to its origin and map failures.

Origin failures before the response head become short ``text/plain`` 502/504 replies
(and ``exchange.props["upstream_error"]`` names the kind for logs and metrics); a
failure after the head surfaces from the body iterator, where the front end aborts.
Interim (1xx) responses go straight back to the client through ``exchange.interim``.
"""

from __future__ import annotations

import asyncio
import time

from edgenode.config import Config
from edgenode.http.client import OriginBody, OriginPool, send_idle, take_whole
from edgenode.http.errors import OriginConnectError, OriginError, OriginProtocolError, OriginTimeout
from edgenode.http.messages import Request, Response, read_body
from edgenode.http.error_reply import error_response
from edgenode.observe.origins import OriginHealth
from edgenode.pipeline.exchange import Exchange
from edgenode.proxy.forwarding import forward_head, forward_request, forward_response, origin_host
from edgenode.proxy.routes import RouteTable
from edgenode.proxy.tiers import Tier

__all__ = ["Upstream"]


class Upstream:
    """``await upstream(exchange) -> Response``; also runs Proxy-Wasm HTTP callouts."""

    def __init__(self, config: Config, pools: dict[str, OriginPool] | None = None) -> None:
        self.config = config
        self.routes = RouteTable(config.routes, config.default_origin)
        self.pools: dict[str, OriginPool] = pools if pools is not None else {}
        self._callout_pools: dict[str, OriginPool] = {}
        self.via = f"1.1 {config.server.via}"
        #: failures by origin and kind (metrics), reported by a rate-limited WARN
        self.health = OriginHealth()
        #: fleet nodes: parent selection (edges), loop protection, surrogate-key relay
        self.tier: Tier | None = None
        if config.fleet is not None:
            self.tier = Tier(config.fleet, config.origins[config.default_origin])
            self.via = f"1.1 {config.fleet.node_id}"

    def pool(self, origin: str) -> OriginPool:
        """The pool for a configured origin (created on first use); KeyError if unknown."""
        pool = self.pools.get(origin)
        if pool is None:
            pool = self.pools[origin] = OriginPool(self.config.origins[origin])
        return pool

    async def __call__(self, exchange: Exchange) -> Response:
        req = exchange.request
        name = exchange.origin
        if not name:
            name = exchange.origin = (self.routes.fixed
                                      or self.routes.pick(req.headers.get("host", ""), req.path))
        pool = self.pools.get(name)
        if pool is None:
            try:
                pool = self.pool(name)
            except KeyError:
                return self._fail(exchange, name, 502, "unknown_origin", f"no origin named {name!r}")
        tier = self.tier
        head = None
        if tier is None:
            head = forward_head(req, exchange.client[0], pool.cfg, self.via)
            forwarded = req if head is not None else forward_request(
                req, exchange.client[0], pool.cfg, self.via)
        else:
            forwarded = forward_request(req, exchange.client[0], pool.cfg, self.via)
            loop = tier.loop_reason(req.headers)
            if loop is not None:
                return self._fail(exchange, name, 508, "loop", f"loop detected: {loop}")
            tier.mark(forwarded)
        started = time.perf_counter()
        interim = exchange.interim
        on_interim = None if interim is None else (lambda r: interim(forward_response(r, self.via)))
        try:
            if tier is not None:
                response = await tier.fetch(forwarded, req.headers.get("host", ""), pool, on_interim)
            else:
                # the usual request sent on an idle connection and its head awaited here,
                # without the pool's coroutine; any other through ``request``
                sent = None if head is None else send_idle(pool, forwarded, head, on_interim)
                if sent is None:
                    response = await pool.request(forwarded, on_interim, head)
                else:
                    try:
                        response = await sent[1]
                    except BaseException as exc:
                        response = await pool.failed_idle(sent, exc, forwarded, on_interim, head)
        except OriginTimeout as exc:
            return self._fail(exchange, name, 504, f"{exc.kind}_timeout",
                              f"origin {exc.kind.replace('_', ' ')} timeout")
        except OriginProtocolError as exc:
            return self._fail(exchange, name, 502, exc.kind, str(exc))
        except OriginConnectError as exc:
            return self._fail(exchange, name, 502, "connect_error", exc.reason)
        except OriginError as exc:
            return self._fail(exchange, name, 502, "origin_error", str(exc))
        exchange.origin_time = time.perf_counter() - started
        if type(response.body) is OriginBody and not take_whole(response):
            exchange.hold(response.body)  # closed when the request ends, whatever happens to it
        return forward_response(response, self.via)

    async def callout(self, upstream_name: str, req: Request, timeout: float) -> Response:
        """An HTTP call from a filter to a named upstream; the body is read in full.

        The returned Response carries the origin's trailers (``Response.trailers``), if any.

        Raises KeyError for an unknown upstream, ``OriginTimeout("callout")`` past
        ``timeout`` seconds, and the other ``OriginError`` kinds as they happen.
        """
        cfg = self.config.upstreams[upstream_name]
        pool = self._callout_pools.get(upstream_name)
        if pool is None:
            pool = self._callout_pools[upstream_name] = OriginPool(cfg)
        if "host" not in req.headers:
            req.headers["Host"] = origin_host(cfg)
        try:
            return await asyncio.wait_for(self._call(pool, req), timeout)
        except asyncio.TimeoutError:
            raise OriginTimeout("callout") from None

    @staticmethod
    async def _call(pool: OriginPool, req: Request) -> Response:
        response = await pool.request(req)
        body = await read_body(response.body)
        result = Response(response.status, response.headers, body, response.reason)
        result.trailers = response.trailers  # known now that the body is read
        return result

    def _fail(self, exchange: Exchange, origin: str, status: int, kind: str,
              message: str) -> Response:
        """The short reply for a failure before the response head, counted and reported."""
        exchange.props["upstream_error"] = kind
        self.health.failed(origin, kind, message)
        return error_response(status, f"{message} (origin {origin!r})")

    async def close(self) -> None:
        for pool in [*self.pools.values(), *self._callout_pools.values()]:
            await pool.close()
        if self.tier is not None:
            await self.tier.close()

