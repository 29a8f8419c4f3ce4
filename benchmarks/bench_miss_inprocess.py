"""In-process CPU cost of a 1 KB cache miss through the whole node (no client sockets).

A ``Node`` with chain ``[cache]`` (lmdb store unless ``--store``, access log off, no
admin) gets GETs for a new URL each, fed straight into ``--conns`` front-end connections
through fake transports, ``--conns`` at a time (so the loop pass batches them as under
wrk); every one is fetched from an origin in this process over real loopback sockets
(a bare ``asyncio.Protocol`` answering with the simulated origin's fields and a 1 KB
body) and stored.  So the figure is the node's Python per miss (parsing, the general
path's objects, the cache's lookups, the origin client, ``build_entry``, the store's
batched commit, the response) plus the origin sockets' kernel work, and the constant
cost of the stand-in origin.  CPU time (``process_time``) per miss, several rounds, and
its user / system split (``getrusage``: the store's page writes and faults are system time,
which instruction counts do not show).

    python benchmarks/bench_miss_inprocess.py [--n 4000] [--rounds 5] [--conns 8] [--label x] [--idle 0.002]
    python benchmarks/bench_miss_inprocess.py --origin-fields nginx   # nginx's fields, Connection: keep-alive

The stand-in origin gives each object its own Last-Modified, as ``edgenode origin`` does,
so every miss parses one.  ``--idle`` sleeps after each batch: under wrk the node wakes
for bursts of ~5 misses and sleeps between them, and a miss after a sleep costs more CPU
(the caches it left warm are not), which is most of what wrk's figure adds to this one.

Compare two trees by running this script in each, alternated (ABBA).  For instruction
counts: ``valgrind --tool=callgrind --callgrind-out-file=cg.out python
benchmarks/bench_miss_inprocess.py --rounds 1 --n 1000`` and ``--n 3000``, difference / 2000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgenode.config import StageConfig, load_config, with_overrides  # noqa: E402
from edgenode.frontend.connection import Connection  # noqa: E402
from edgenode.frontend.server import install_event_loop  # noqa: E402
from edgenode.node import Node, tune_gc  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_hit_inprocess import FakeTransport as HitTransport  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BODY = b"x" * 1024


def origin_response(modified: float, fields: str = "simulated") -> bytes:
    """What ``edgenode origin`` answers for ``/obj/NAME?size=1k&ttl=3600`` (fields in its order;
    its Last-Modified is the name's own, so ``modified`` differs per object); with ``fields``
    "nginx", what bench_proxy's nginx origin answers (its fields, ``Connection: keep-alive``)."""
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    last = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(modified))
    if fields == "nginx":
        return (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: " + date.encode() + b"\r\n"
                b"Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n"
                b"Last-Modified: " + last.encode() + b"\r\nConnection: keep-alive\r\n"
                b"ETag: \"6b150366-400\"\r\nCache-Control: public, max-age=3600\r\n"
                b"Surrogate-Key: obj-bench\r\n"
                b"Repr-Digest: sha-256=:FpNzA8r9iSPJpfJQ1dVAS79vx0uaF8yeZWMtUZWjZhE=:\r\n"
                b"Accept-Ranges: bytes\r\n\r\n" + BODY)
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Cache-Control: public, max-age=3600\r\nSurrogate-Key: obj-bench\r\n"
            b"Repr-Digest: sha-256=:FpNzA8r9iSPJpfJQ1dVAS79vx0uaF8yeZWMtUZWjZhE=:\r\n"
            b"ETag: \"21cc9ed62e6315059089\"\r\nLast-Modified: " + last.encode() + b"\r\n"
            b"Content-Length: 1024\r\nDate: " + date.encode() + b"\r\n"
            b"Server: Python/3.11 aiohttp/3.14.5\r\n\r\n" + BODY)


#: distinct Last-Modified values the stand-in origin cycles through: more than the date
#: parser's memo holds, so every miss parses one, as with ``edgenode origin``
REPLIES = 4096


class Origin(asyncio.Protocol):
    """Answers every request head it reads with the next of its responses (GETs, no bodies)."""

    replies: list[bytes] = []
    sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rindex(b"\r\n\r\n") + 4:]
            first, replies = Origin.sent, Origin.replies
            Origin.sent += n
            self.transport.write(b"".join(  # type: ignore[attr-defined]
                replies[(first + i) % REPLIES] for i in range(n)))


class FakeTransport(HitTransport):
    """The hit bench's transport, signalling when the awaited number of responses is in."""

    def __init__(self, done: list[int], wake: dict[str, asyncio.Future[None] | None]) -> None:
        self.done = done
        self.wake = wake
        self.last = b""

    def _wrote(self, data: bytes) -> None:
        self.last = data
        self.done[0] += 1
        waiter = self.wake["w"]
        if waiter is not None and self.done[0] >= self.done[1] and not waiter.done():
            waiter.set_result(None)


async def run(n: int, rounds: int, conns: int, store: str, idle: float,
              fields: str = "simulated") -> list[tuple[float, float, float]]:
    loop = asyncio.get_running_loop()
    Origin.replies = [origin_response(1704067200.0 + 86400 * i + i, fields) for i in range(REPLIES)]
    server = await loop.create_server(Origin, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = with_overrides(load_config(), listen="127.0.0.1:0", origin=f"http://127.0.0.1:{port}")
    cfg.chain = [StageConfig("cache", "cache", {})]
    cfg.log.access = "off"
    cfg.cache.store = store
    cfg.server.state_dir = Path(tempfile.mkdtemp(prefix="edgenode-miss-"))
    node = Node(cfg, admin=False)
    node.frontend.loop = loop
    tune_gc()  # as a serving process does
    done = [0, 0]
    wake: dict[str, asyncio.Future[None] | None] = {"w": None}
    clients = []
    for _ in range(conns):
        conn = Connection(node.frontend)
        tr = FakeTransport(done, wake)
        conn.connection_made(tr)  # type: ignore[arg-type]
        clients.append((conn, tr))
    serial = iter(range(10**9))

    async def batch() -> None:
        done[0] = 0
        done[1] = conns
        wake["w"] = loop.create_future()
        for conn, _ in clients:
            i = next(serial)
            conn.data_received(b"GET /obj/miss-%d?size=1k&ttl=3600 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"User-Agent: wrk\r\n\r\n" % i)
        await wake["w"]
        if idle:  # the process sleeps, as a node between wrk's bursts (no CPU counted)
            time.sleep(idle)

    for _ in range(20):  # connections opened, code warm
        await batch()
    assert b"X-Cache: MISS" in clients[0][1].last, clients[0][1].last[:400]
    per_round: list[tuple[float, float, float]] = []
    for _ in range(rounds):
        start = time.process_time()
        before = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(n // conns):
            await batch()
        after = resource.getrusage(resource.RUSAGE_SELF)
        scale = 1e6 / (n // conns * conns)
        per_round.append(((time.process_time() - start) * scale, (after.ru_utime - before.ru_utime) * scale,
                          (after.ru_stime - before.ru_stime) * scale))
    assert b"X-Cache: MISS" in clients[-1][1].last
    stored = node.store.stats()["entries"]
    assert stored >= rounds * (n // conns * conns), stored
    for conn, _ in clients:
        if conn._timer is not None:
            conn._timer.cancel()
        conn.connection_lost(None)
    await node.stop(0.1)
    server.close()
    shutil.rmtree(cfg.server.state_dir, ignore_errors=True)
    return per_round


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=8, help="misses in flight at once")
    ap.add_argument("--label", default="run")
    ap.add_argument("--store", choices=("lmdb", "memory"), default="lmdb", help="[cache] store")
    ap.add_argument("--idle", type=float, default=0.0, metavar="SECONDS",
                    help="sleep after each batch (under wrk the node idles between bursts of ~5 misses)")
    ap.add_argument("--origin-fields", choices=("simulated", "nginx"), default="simulated",
                    help="the stand-in origin answers with edgenode origin's fields or nginx's")
    args = ap.parse_args()
    install_event_loop()
    measured = asyncio.run(run(args.n, args.rounds, args.conns, args.store, args.idle, args.origin_fields))
    per_round = [cpu for cpu, _, _ in measured]
    median = statistics.median(per_round)
    user, system = next((u, s) for cpu, u, s in measured if cpu == median)
    result = {"label": args.label, "store": args.store, "conns": args.conns, "n": args.n, "idle_s": args.idle,
              "origin_fields": args.origin_fields,
              "rounds": per_round, "best_us": min(per_round), "median_us": median,
              "median_user_us": user, "median_system_us": system}
    print(f"{'1 KB miss, in-process (' + args.label + ')':40} {'best':>8} {'median':>8} {'user':>8} {'system':>8}")
    print(f"{'CPU µs / request':40} {result['best_us']:8.2f} {median:8.2f} {user:8.2f} {system:8.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"miss_inprocess-{args.label}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
