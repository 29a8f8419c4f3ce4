"""Purge propagation under faults: how late a purge can be, before/after.

Run: flock /tmp/bench.lock python benchmarks/bench_fleet_faults.py [--baseline DIR] [--purges 40] [--rate 20]

Three fleet members (each the real purge consumer: ``ControlBus`` + ``PurgeLog``, in one
process, each over its own TCP path to a real nats-server on 127.0.0.1) and an operator
who publishes ``--purges`` URL purges at ``--rate`` per second.  Latency is the time from
the stream's ack of the publish (the purge is stored) to the first time a member applies
it, for every (purge, member) pair.  Each scenario starts from a fresh server and
members, with one fault a third of the way in:

  * ``steady``: none;
  * ``path-drop``: member 0's path goes silent for 1 s and then dies (reset), as a
    firewall or NAT dropping the connection: deliveries in flight are lost;
  * ``server-restart``: nats-server is stopped (SIGTERM) and started again on its store;
  * ``node-restart``: member 1 (20 ms per apply) stops with purges delivered but not
    acked, and starts again at once under the same id;
  * ``apply-failure``: member 2's first apply of every 5th purge fails;
  * ``cluster-kill``: a three-server NATS cluster, each member on its own server, and the
    server of member 0 is killed (SIGKILL) for good (the stream and consumers have 3
    replicas: consumers whose leader was there are elected again on another server).

A scenario ends when every member applied every purge, or after ``--cap`` seconds (the
pairs still missing count as ``> cap``).  ``--baseline DIR`` runs the same scenarios with
the edgenode source tree in DIR first (each tree in its own process).  Prints a table
and writes benchmarks/results/bench_fleet_faults.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bench_fleet_faults.json"
KEY = b"bench-fleet-key-0123456789"
SITE = "www.example.com"
SCENARIOS = ["steady", "path-drop", "server-restart", "node-restart", "apply-failure", "cluster-kill"]


class Member:
    """One fleet member's purge consumer; records when it applies each purge."""

    def __init__(self, url: str, node_id: str, seen: dict[tuple[str, str], float],
                 apply_delay: float = 0.0, fail: Callable[[str], bool] | None = None) -> None:
        from edgenode.fleet.bus import ControlBus
        from edgenode.fleet.names import FleetNames
        from edgenode.fleet.purges import PurgeLog

        self.node_id, self.seen, self.apply_delay, self.fail = node_id, seen, apply_delay, fail
        self.bus = ControlBus([url], FleetNames("bench"), client_name=node_id, node_ttl=3.0)
        self.log = PurgeLog(self.bus, KEY, node_id, self._apply, time.time())
        self.tasks = [asyncio.create_task(self.bus.run()), asyncio.create_task(self.log.run())]

    async def _apply(self, order: Any) -> int:
        if self.apply_delay:
            await asyncio.sleep(self.apply_delay)
        if self.fail is not None and self.fail(order.id):
            raise ConnectionError("apply failed")
        self.seen.setdefault((self.node_id, order.id), time.monotonic())
        return 0

    async def synced(self) -> None:
        while not (self.bus.connected and self.log.caught_up.is_set()):
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.bus.stopping = True
        for task in self.tasks:
            task.cancel()
        await asyncio.wait(self.tasks, timeout=2.0)
        await self.bus.close()


async def scenario(name: str, purges: int, rate: float, cap: float) -> dict[str, Any]:
    from fleet_support import LinkProxy

    from edgenode.fleet.bus import ControlBus
    from edgenode.fleet.envelope import new_purge, seal
    from edgenode.fleet.names import FleetNames
    from edgenode.fleet.natsserver import NatsCluster, NatsServer

    store = tempfile.mkdtemp(prefix="bench-fleet-faults-")
    cluster = NatsCluster(3, name="bench") if name == "cluster-kill" else None
    if cluster is not None:
        await cluster.start()
        server = cluster.servers[0]
    else:
        server = NatsServer(store_dir=store)
        await server.start()
    try:  # the servers are stopped whatever happens: a failed scenario leaves none running
        ports = [s.port for s in cluster.servers] if cluster is not None else [server.port] * 3
        links = [LinkProxy(port) for port in ports]
        for link in links:
            await link.restore()
        seen: dict[tuple[str, str], float] = {}
        failed: set[str] = set()

        def fail_once(order_id: str) -> bool:
            if order_id in every_fifth and order_id not in failed:
                failed.add(order_id)
                return True
            return False

        every_fifth: set[str] = set()
        members = [Member(links[0].url, "m0", seen), Member(links[1].url, "m1", seen, apply_delay=0.02),
                   Member(links[2].url, "m2", seen, fail=fail_once if name == "apply-failure" else None)]
        urls = cluster.urls if cluster is not None else [server.url]
        operator = ControlBus(urls[1:] if cluster is not None else urls, FleetNames("bench"), client_name="operator")
        await operator.open()
        await asyncio.wait_for(asyncio.gather(*(m.synced() for m in members)), 30)
        sent: dict[str, float] = {}
        fault_at = purges // 3

        fault_ms = 0.0

        async def fault() -> None:
            nonlocal server, fault_ms
            started = time.monotonic()
            if name == "path-drop":
                links[0].stall()
                await asyncio.sleep(1.0)
                await links[0].cut()
                links[0].heal()
                await links[0].restore()
            elif name == "server-restart":
                await server.stop()
                server = NatsServer(port=server.port, store_dir=store)
                await server.start()
            elif name == "cluster-kill":  # SIGKILL: no leadership handed over
                if hasattr(server, "kill"):
                    await server.kill()
                else:  # a --baseline tree older than NatsServer.kill
                    server._proc.kill()
                    await server._proc.wait()
            elif name == "node-restart":
                await members[1].stop()
                members[1] = Member(links[1].url, "m1", seen, apply_delay=0.02)
            fault_ms = (time.monotonic() - started) * 1000

        faulting = None
        for i in range(purges):
            if i == fault_at:
                faulting = asyncio.create_task(fault())
            order = new_purge("url", [f"http://{SITE}/obj/{name}-{i}"], False, "operator")
            if i % 5 == 0:
                every_fifth.add(order.id)
            while True:  # the operator retries until NATS takes it (a server restarting)
                try:
                    assert operator.js is not None
                    await operator.js.publish(operator.names.purge_subject, seal(KEY, order.body()),
                                              headers={"Nats-Msg-Id": order.id}, timeout=1.0)
                    break
                except Exception:
                    await asyncio.sleep(0.05)
            sent[order.id] = time.monotonic()  # stored in the stream: from here on it is the members' job
            await asyncio.sleep(1 / rate)
        if faulting is not None:
            await faulting
        deadline = time.monotonic() + cap
        want = {(m, p) for m in ("m0", "m1", "m2") for p in sent}
        while not want <= seen.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        lat = sorted((seen[(m, p)] - sent[p]) * 1000 for m, p in want if (m, p) in seen)
        missing = len(want - seen.keys())
        for m in members:
            await m.stop()
        await operator.close()
        for link in links:
            await link.cut()
        return {"pairs": len(want), "p50_ms": round(statistics.median(lat), 1) if lat else None,
                "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else None,
                "max_ms": round(lat[-1], 1) if lat else None, "late_over_1s": sum(x > 1000 for x in lat) + missing,
                "missing_after_cap": missing, "fault_ms": round(fault_ms, 1)}
    finally:
        await (cluster.stop() if cluster is not None else server.stop())
        shutil.rmtree(store, ignore_errors=True)


async def child(args: argparse.Namespace) -> None:
    logging.getLogger("edgenode.fleet").setLevel(logging.CRITICAL)  # the faults are on purpose
    out = {}
    for name in args.scenarios:
        out[name] = await scenario(name, args.purges, args.rate, args.cap)
        print(f"  {name}: {out[name]}", file=sys.stderr, flush=True)
    Path(args.out).write_text(json.dumps(out))


def run_tree(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--child", "--tree", str(tree), "--out", out.name,
               "--purges", str(args.purges), "--rate", str(args.rate), "--cap", str(args.cap),
               "--scenarios", ",".join(args.scenarios)]
        subprocess.run(cmd, check=True)
        return json.loads(Path(out.name).read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path, help="also run the scenarios with this source tree (before)")
    ap.add_argument("--purges", type=int, default=40)
    ap.add_argument("--rate", type=float, default=20.0, help="purges per second")
    ap.add_argument("--cap", type=float, default=45.0, help="seconds a scenario waits for its last purge")
    ap.add_argument("--scenarios", type=lambda s: s.split(","), default=SCENARIOS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", type=Path, default=ROOT, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.path[:0] = [str(args.tree), str(ROOT / "tests" / "fleet")]  # the proxy: this tree's, not under test
        asyncio.run(child(args))
        return
    trees = {"before": args.baseline} if args.baseline else {}
    trees["after" if args.baseline else "this tree"] = ROOT
    results = {label: run_tree(tree, args) for label, tree in trees.items()}
    print(f"\npurge propagation under faults: 3 members, {args.purges} purges at {args.rate:.0f}/s, "
          f"stored -> applied per member (ms)")
    print(f"{'scenario':<16}" + "".join(f"{label + ' p50/p99/max':>32}{'late':>6}{'fault':>8}" for label in results))
    for name in args.scenarios:
        row = f"{name:<16}"
        for r in results.values():
            s = r[name]
            row += (f"{s['p50_ms']}/{s['p99_ms']}/{s['max_ms']}".rjust(32) + f"{s['late_over_1s']:>6}"
                    + f"{s['fault_ms']:>8.0f}")
        print(row)
    print("late: (purge, member) pairs applied more than 1 s after the purge was stored, or not within the cap;\n"
          "fault: ms the fault itself lasted (path silent, server down, member restarting)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                   "trees": {k: str(v) for k, v in trees.items()}, "results": results}, indent=2))


if __name__ == "__main__":
    main()
