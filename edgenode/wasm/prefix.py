"""The chain's leading Proxy-Wasm filters as one flat step (the filters in front of the cache).

``FilterPrefix`` answers exactly what the linked chain (pipeline/chain.py) answers, in
the same order of hooks: each filter's request side (``StreamDriver.begin``) in chain
order, then the chain after the filters, then the response sides in reverse order.
What it saves is the nesting: no stage ``handle``/``through`` frames per filter, and a
fresh plain hit of a cache stage right after the filters is taken from the entry's
pre-serialised answer (``CacheStage.hit_response``) without the cache's general step.

Nothing is decided twice and no hook runs twice: when a filter's request side does
not simply continue (a hold, a body to read, a local reply, a failure), that stream is
handed to ``StreamDriver.continue_from`` with the chain after it, exactly as
``through`` would go on; when the cache declines (a miss, stale, Vary, a request a
filter made non-plain) the chain after the filters runs as usual, and the filters that
already ran get their response sides over its answer (``StreamDriver.around``), the
awaitable ones included.
"""

from __future__ import annotations

from typing import Awaitable, Protocol, Sequence

from edgenode.http.messages import Response
from edgenode.pipeline.chain import Chain, Next, Outcome, settle
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.stage import WasmStage
from edgenode.wasm.stream import Step, StreamDriver

__all__ = ["FilterPrefix", "HitSource", "leading_filters"]


class HitSource(Protocol):
    """A cache stage answering a fresh plain hit without its general step."""

    def hit_response(self, exchange: Exchange) -> Response | None:
        """The hit's response, or None: run the stage's ``handle`` (nothing left behind)."""
        ...


def leading_filters(stages: Sequence[object]) -> int:
    """How many of ``stages`` are Proxy-Wasm filters before any other stage."""
    n = 0
    while n < len(stages) and isinstance(stages[n], WasmStage):
        n += 1
    return n


class FilterPrefix:
    """``chain`` with its first ``len(filters)`` stages (Proxy-Wasm filters) run flat."""

    __slots__ = ("filters", "rests", "after", "hits", "chain")

    def __init__(self, chain: Chain, filters: Sequence[WasmStage], hits: HitSource | None) -> None:
        self.chain = chain
        self.filters = tuple(filters)
        rests: list[Next] = []
        step = chain.first
        for _ in self.filters:
            step = step.rest  # type: ignore[attr-defined]  # a filter is always a linked step
            rests.append(step)
        #: the chain after each filter (what ``through`` would call), and after the last
        self.rests = tuple(rests)
        self.after = rests[-1]
        #: the stage right after the filters, when it can answer a hit by itself
        self.hits = hits

    def __call__(self, exchange: Exchange) -> Outcome:
        drivers: list[StreamDriver] = []
        try:
            outcome = self._request(exchange, drivers)
        except BaseException:
            for driver in drivers:  # as each filter's ``through`` ends its stream
                driver.vm.finish_stream(driver.ctx)
            raise
        k = len(drivers)
        while k:
            k -= 1
            try:
                outcome = drivers[k].around(outcome)
            except BaseException:
                for driver in drivers[:k]:
                    driver.vm.finish_stream(driver.ctx)
                raise
        return outcome

    def _request(self, exchange: Exchange, drivers: list[StreamDriver]) -> Outcome:
        """The filters' request sides, then the chain after them; ``drivers``: the
        streams that continued (their response sides are still to run)."""
        rests = self.rests
        for i, stage in enumerate(self.filters):
            stream = stage.open_stream(exchange)
            if stream is None:  # no part in this stream: on to the next filter
                continue
            if isinstance(stream, Response):  # the filter is unavailable: its reply
                return stream
            step = stream.begin()
            if step is not Step.NEXT:
                return stream.continue_from(step, rests[i])
            drivers.append(stream)
        hits = self.hits
        if hits is not None:
            response = hits.hit_response(exchange)
            if response is not None:
                return response
        return self.after(exchange)

    def settled(self, exchange: Exchange) -> Awaitable[Response]:
        """As ``Chain.settled``: the same steps as an awaitable."""
        return settle(self(exchange))
