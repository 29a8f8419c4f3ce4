"""In-process CPU cost of a 1 KB cache hit through the whole node (no sockets).

A ``Node`` with chain ``[cache]`` (or ``--chain``: one of bench_proxy's chains or
``no-part``, a filter that opens no stream; filters before the cache; access log off, no
admin) serves keep-alive GETs fed straight into its front end's connection through a
fake transport, so only the Python work per request is counted (parsing, Request/Exchange, the cache hit, the response
head, completion hooks; on the general path also one task and one loop turn).  The
URL is primed once, so every measured request is a fresh hit, answered by the front
end's synchronous fast path unless ``--general`` turns it off.  Several rounds; the best round is the steadiest
figure on a shared machine.  ``--sync`` feeds each request and runs the loop iteration's
batch (``Batch.run``: the request's steps, then the held writes) straight from the
measuring loop instead of awaiting each answer through the event loop: the same
request path without the loop turns in between, several times steadier on a busy
machine (what a filtered hit's own code costs).  A chain with a per-request filter gets
one loop turn after each request even so: its used instances are reset for the next
stream in idle loop time, and without the turn every request would start a new instance
(and a round of 20,000 would hold 20,000 of them).  Every chain also gets a turn every
1,000 requests, so the batch's scheduled callbacks do not pile up, and the node's start-up
objects are frozen out of collection (``tune_gc``) as a serving node's are: without both,
full collections walked ~60k start-up objects every ~20,000 requests (~3 µs per hit).

    python benchmarks/bench_hit_inprocess.py [--n 20000] [--rounds 7] [--label before] [--general]
                                             [--store lmdb|memory] [--chain header-shared] [--sync]
                                             [--calls]

Prints a table and writes benchmarks/results/hit_inprocess-<label>.json.  To compare two
versions of the code, run a copy of this script inside each tree (it imports the
``edgenode`` next to it), interleaved (ABBA): the machine's load moves the figures by ±1 µs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from multidict import CIMultiDict  # noqa: E402

from edgenode.config import StageConfig, load_config, with_overrides  # noqa: E402
from edgenode.http.messages import Response  # noqa: E402
from edgenode.frontend.connection import Connection  # noqa: E402
from edgenode.frontend.server import install_event_loop  # noqa: E402
from edgenode.node import Node, tune_gc  # noqa: E402
from edgenode.pipeline.chain import Chain  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_proxy import CHAINS  # noqa: E402

#: and a filter whose module has no HTTP hooks: the request leaves the fast path for the
#: filtered route (plain mark, batch, flat step, the cache's kept answer, the general
#: writer) but opens no stream, so it and ``header-shared`` split a filtered hit's cost
#: into leaving the fast path and the filter's own stream
CHAINS = {**CHAINS, "no-part": f"""[[chain]]
type = "wasm"
name = "no-part"
module = "{ROOT / 'tests/wasm/wat/bench_calls.wat'}"
"""}

RESULTS = ROOT / "benchmarks" / "results"
BODY = b"x" * 1024
REQUEST = (b"GET /obj HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\n"
           b"Accept: */*\r\nAccept-Encoding: gzip\r\n\r\n")


class FakeTransport:
    """Just enough of ``asyncio.Transport`` for the front end; counts responses."""

    def __init__(self) -> None:
        self.responses = 0
        self.waiter: asyncio.Future[None] | None = None
        self.last = b""

    def _wrote(self, data: bytes) -> None:
        self.last = data
        self.responses += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def write(self, data: bytes) -> None:
        self._wrote(data)

    def writelines(self, parts: list[bytes]) -> None:
        self._wrote(b"".join(parts))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool:
        return False


async def _origin_stub(exchange: Any) -> Response:
    headers = CIMultiDict({"Content-Type": "text/plain", "Cache-Control": "public, max-age=3600",
                           "ETag": '"abc"', "Date": time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                                                  time.gmtime())})
    return Response(200, headers, BODY)


def chain_config(name: str) -> list[StageConfig]:
    """bench_proxy's chain ``name`` (filters, then the cache) as stage configs."""
    import tomllib

    stages = tomllib.loads(CHAINS[name]).get("chain", [])
    return [StageConfig(s.pop("type"), s.pop("name"), s) for s in stages] + [StageConfig("cache", "cache")]


class CallCounter:
    """Python function calls per request (a profile hook sees every Python frame entered,
    generators' resumptions included): a load-independent measure of the request path."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def hook(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            self.counts[f"{Path(code.co_filename).name}:{code.co_name}"] += 1

    def result(self, n: int) -> tuple[float, list[tuple[str, int]]]:
        """Calls per request over ``n`` requests, and the functions called at least once
        per request (with how many times)."""
        counts = Counter({k: v for k, v in self.counts.items()  # not this script's own (the
                          if not k.startswith("bench_hit_inprocess.py:")})  # loop, FakeTransport)
        return sum(counts.values()) / n, [(k, v // n) for k, v in counts.most_common() if v >= n]


async def run(n: int, rounds: int, general: bool = False, store: str = "lmdb",
              chain: str = "edgenode", sync: bool = False,
              calls: list[Any] | None = None) -> list[float]:
    cfg = with_overrides(load_config(), listen="127.0.0.1:0", origin="http://127.0.0.1:9")
    cfg.chain = chain_config(chain)
    cfg.log.access = "off"
    cfg.cache.store = store
    cfg.server.state_dir = Path(tempfile.mkdtemp(prefix="edgenode-hit-"))  # a cold store
    node = Node(cfg, admin=False)
    # the origin is stubbed (no socket): only the first request reaches it
    node.entry.chain = Chain(node.stages, _origin_stub)
    node.frontend.loop = asyncio.get_running_loop()
    if general:
        node.frontend.fast_path = None
    conn = Connection(node.frontend)
    tr = FakeTransport()
    conn.connection_made(tr)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()

    async def one() -> None:
        tr.waiter = loop.create_future()
        conn.data_received(REQUEST)
        await tr.waiter

    await one()  # miss: stores the object
    assert b"X-Cache: MISS" in tr.last, tr.last[:400]
    await one()
    assert b"X-Cache: HIT" in tr.last, tr.last[:400]
    tune_gc()  # as a serving node after start-up: its objects frozen out of collection
    per_round: list[float] = []
    batch = node.frontend.batch
    turns = "per-request" in CHAINS.get(chain, "")  # instances are reset in idle loop turns
    if calls is not None:  # 1,000 requests as the --sync rounds run them, counted
        counter = CallCounter()
        sys.setprofile(counter.hook)
        try:
            for _ in range(1000):
                conn.data_received(REQUEST)
                batch.run()
                if turns:
                    await asyncio.sleep(0)
        finally:
            sys.setprofile(None)
        calls.extend(counter.result(1000))
    for _ in range(rounds):
        answered = tr.responses
        start = time.process_time()
        if sync:
            for i in range(n):
                conn.data_received(REQUEST)
                batch.run()  # the loop's callback: the steps, then the held writes
                if turns or i % 1000 == 999:  # the batch's queued callbacks (no-ops) leave
                    await asyncio.sleep(0)  # as in a serving loop, not as GC work later
        else:
            for _ in range(n):
                await one()
        per_round.append((time.process_time() - start) / n * 1e6)
        assert tr.responses - answered == n, "a request was not answered"
        await asyncio.sleep(0)  # the callbacks the batch scheduled meanwhile (no-ops now)
    assert b"X-Cache: HIT" in tr.last
    if conn._timer is not None:
        conn._timer.cancel()
    conn.connection_lost(None)
    await node.stop(0.1)
    shutil.rmtree(cfg.server.state_dir, ignore_errors=True)
    return per_round


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--label", default="run")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--general", action="store_true",
                    help="turn the front end's fast path off: every hit goes through the chain")
    ap.add_argument("--store", choices=("lmdb", "memory"), default="lmdb", help="[cache] store")
    ap.add_argument("--chain", choices=sorted(CHAINS), default="edgenode",
                    help="filters before the cache (bench_proxy's chains; edgenode: none)")
    ap.add_argument("--sync", action="store_true",
                    help="run each request's batch from the measuring loop (no loop turns)")
    ap.add_argument("--calls", action="store_true",
                    help="also count Python function calls per request (1,000 synchronous requests, "
                         "before the timed rounds) and list the functions called")
    args = ap.parse_args()
    if args.loop == "uvloop":
        install_event_loop()
    calls: list[Any] | None = [] if args.calls else None
    per_round = asyncio.run(run(args.n, args.rounds, args.general, args.store, args.chain, args.sync,
                                calls))
    result = {"label": args.label, "loop": args.loop, "path": "general" if args.general else "fast",
              "driver": "sync" if args.sync else "loop",
              "store": args.store, "chain": args.chain,
              "n": args.n, "rounds": per_round,
              "best_us": min(per_round), "median_us": statistics.median(per_round)}
    if calls:
        result["python_calls"], result["functions"] = calls[0], calls[1]
        print(f"Python function calls per request: {calls[0]:.1f}")
        for name, count in calls[1]:
            print(f"  {count:3d}  {name}")
    print(f"{'1 KB hit, in-process (' + args.label + ')':40} {'best':>8} {'median':>8}")
    print(f"{'CPU µs / request':40} {result['best_us']:8.2f} {result['median_us']:8.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"hit_inprocess-{args.label}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
