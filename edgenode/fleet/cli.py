"""``edgenode fleet up|rollout|status|rollback``, ``edgenode purge`` and ``edgenode filter push``.

The control commands talk to the fleet's NATS directly, with the fleet key from
``$EDGENODE_FLEET_KEY`` (or a node config's ``[fleet]`` via ``--config``): they are
authenticated publishers like the nodes.  Exit status: 0 done; 1 some node refused or did
not confirm in time; 2 bad input or NATS unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from edgenode.config import ConfigError, load_config, parse_duration

__all__ = ["register", "add_filter_push"]

KEY_ENV = "EDGENODE_FLEET_KEY"


def _control_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="a node config whose [fleet] names the NATS servers, fleet and key")
    p.add_argument("--nats", action="append", help="NATS server URL (repeatable; default nats://127.0.0.1:4222)")
    p.add_argument("--fleet", help="fleet name (default: edgenode)")
    p.add_argument("--credentials", help="NATS credentials file")


class _Target:
    def __init__(self, args: argparse.Namespace) -> None:
        fleet = load_config(args.config).fleet if args.config else None
        if args.config and fleet is None:
            raise ConfigError(f"{args.config}: has no [fleet] section")
        self.servers = args.nats or (fleet.nats if fleet else ["nats://127.0.0.1:4222"])
        self.name = args.fleet or (fleet.name if fleet else "edgenode")
        self.credentials = args.credentials or (fleet.credentials if fleet else None)
        key = os.environ.get(KEY_ENV) or (fleet.key.decode() if fleet else "")
        if len(key) < 16:
            raise ConfigError(f"fleet key: set {KEY_ENV} (at least 16 characters) or give --config")
        self.key = key.encode()
        self.node_ttl = fleet.node_ttl if fleet else 3.0

    async def run(self, job: Callable[[Any], Awaitable[int]]) -> int:
        from edgenode.fleet.bus import ControlBus
        from edgenode.fleet.names import FleetNames

        bus = ControlBus(self.servers, FleetNames(self.name), client_name="edgenode-cli",
                         credentials=self.credentials, node_ttl=self.node_ttl)
        try:
            await bus.open()
        except Exception as exc:
            print(f"edgenode: cannot reach NATS at {', '.join(self.servers)}: {exc}", file=sys.stderr)
            return 2
        try:
            return await job(bus)
        finally:
            await bus.close()


# --- fleet rollout / rollback / status ----------------------------------------------------
def _rollout(args: argparse.Namespace, t: _Target) -> Callable[[Any], Awaitable[int]]:
    from edgenode.fleet.rollout import live_nodes, load_doc, publish

    doc, base = load_doc(Path(args.document))

    async def job(bus: Any) -> int:
        expect = await live_nodes(bus, t.key, t.node_ttl)
        version = await publish(bus, t.key, doc, base, by=args.by, note=args.note or "")
        print(f"published fleet config version {version}")
        return await _wait(bus, t, version, args.wait, expect)
    return job


def _rollback(args: argparse.Namespace, t: _Target) -> Callable[[Any], Awaitable[int]]:
    from edgenode.fleet.rollout import live_nodes, rollback

    async def job(bus: Any) -> int:
        expect = await live_nodes(bus, t.key, t.node_ttl)
        new, old = await rollback(bus, t.key, args.to)
        print(f"published version {new}: a copy of version {old}")
        return await _wait(bus, t, new, args.wait, expect)
    return job


async def _wait(bus: Any, t: _Target, version: int, wait: str, expect: set[str]) -> int:
    from edgenode.fleet.rollout import format_status, wait_for_version

    seconds = parse_duration(wait, "--wait")
    if seconds <= 0:
        return 0
    rows, took = await wait_for_version(bus, t.key, version, seconds, t.node_ttl, expect)
    print(format_status(rows, version), end="")
    on = sum(1 for r in rows if r.get("version") == version)
    print(f"{on}/{len(expect)} live nodes on version {version} after {took:.2f} s")
    return 0 if expect and on == len(expect) else 1


def _status(args: argparse.Namespace, t: _Target) -> Callable[[Any], Awaitable[int]]:
    from edgenode.fleet.rollout import current_version, format_status, read_status

    async def job(bus: Any) -> int:
        rows = await read_status(bus, t.key, t.node_ttl)
        version = await current_version(bus)
        if args.json:
            print(json.dumps({"version": version, "nodes": rows}, indent=2, sort_keys=True))
        else:
            print(format_status(rows, version), end="")
        return 0
    return job


def _fleet_setup(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND")
    sub.required = True
    up = sub.add_parser("up", help="run a whole fleet on this machine (NATS, origin, shields, edges) "
                        "with a workload, and report")
    up.add_argument("fleet_file", metavar="FLEET.toml")
    up.add_argument("--duration", help="workload time, split between the runs with and without shields "
                    "(default: the file's, else 20s)")
    up.add_argument("--json", metavar="OUT", help="write the report's figures as JSON")
    up.add_argument("--out", metavar="DIR", help="directory for the table (.md) and plot (.png)")
    up.set_defaults(_fleet_run=_cmd_up)

    ro = sub.add_parser("rollout", help="publish a fleet config version (chain, modules, cache settings)")
    ro.add_argument("document", metavar="FLEETCONFIG.toml")
    ro.add_argument("--note", help="a note shown with the version")
    ro.add_argument("--by", default=os.environ.get("USER", "cli"), help="who publishes (shown in status)")
    ro.add_argument("--wait", default="10s", help="wait until every live node runs or refused it (0: no wait)")
    _control_args(ro)
    ro.set_defaults(_fleet_run=_control(_rollout))

    rb = sub.add_parser("rollback", help="re-publish an earlier version (default: the previous one)")
    rb.add_argument("--to", type=int, help="the version to go back to")
    rb.add_argument("--wait", default="10s", help="wait until every live node runs it (0: no wait)")
    _control_args(rb)
    rb.set_defaults(_fleet_run=_control(_rollback))

    st = sub.add_parser("status", help="nodes, tier, state, version, refusals, hit ratio, req/s")
    st.add_argument("--json", action="store_true")
    _control_args(st)
    st.set_defaults(_fleet_run=_control(_status))


def _control(make: Callable[[argparse.Namespace, _Target], Callable[[Any], Awaitable[int]]]
             ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        target = _Target(args)
        job = make(args, target)
        return asyncio.run(target.run(job))
    return run


def _cmd_up(args: argparse.Namespace) -> int:
    from edgenode.fleet.runner import load_fleet_file, run_fleet

    spec = load_fleet_file(Path(args.fleet_file))
    if args.duration is not None:
        spec.duration = parse_duration(args.duration, "--duration")
    report = asyncio.run(run_fleet(spec, out_dir=Path(args.out) if args.out else None))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, sort_keys=True))
    return 0


# --- purge ---------------------------------------------------------------------------------
def _purge_setup(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--url", action="append", help="purge this URL (repeatable)")
    what.add_argument("--key", action="append", help="purge this surrogate key (repeatable)")
    what.add_argument("--all", action="store_true", help="purge everything")
    p.add_argument("--soft", action="store_true", help="mark stale instead of removing")
    p.add_argument("--wait", default="0", help="wait this long for every live node to confirm (e.g. 2s)")
    _control_args(p)


def _cmd_purge(args: argparse.Namespace) -> int:
    t = _Target(args)
    kind, values = ("url", args.url) if args.url else ("key", args.key) if args.key else ("all", [])

    async def job(bus: Any) -> int:
        from edgenode.fleet.envelope import new_purge, seal
        from edgenode.fleet.rollout import read_status

        order = new_purge(kind, values, args.soft, "cli")
        confirmed: dict[str, float] = {}
        waiting = parse_duration(args.wait, "--wait")
        if waiting > 0:
            sub = await bus.nc.subscribe(bus.names.applied_subject, cb=_collect(t.key, order.id, confirmed))
        sent = time.time()
        await bus.js.publish(bus.names.purge_subject, seal(t.key, order.body()), headers={"Nats-Msg-Id": order.id})
        print(f"purge {order.id} published ({kind}{': ' + ' '.join(values) if values else ''})")
        if waiting <= 0:
            return 0
        live = {r["id"] for r in await read_status(bus, t.key, t.node_ttl) if r["live"]}
        deadline = time.monotonic() + waiting
        while not live <= set(confirmed) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await sub.unsubscribe()
        for node, at in sorted(confirmed.items(), key=lambda kv: kv[1]):
            print(f"  {node}: applied after {(at - sent) * 1000:.1f} ms")
        missing = sorted(live - set(confirmed))
        if missing:
            print(f"not confirmed in {waiting:g} s: {', '.join(missing)}")
        return 1 if missing else 0

    return asyncio.run(t.run(job))


def _collect(key: bytes, pid: str, into: dict[str, float]) -> Callable[[Any], Awaitable[None]]:
    from edgenode.fleet.envelope import BadMessage, open_sealed

    async def cb(msg: Any) -> None:
        try:
            body = open_sealed(key, msg.data, "purge-applied")
        except BadMessage:
            return
        if body.get("id") == pid:
            into[str(body.get("node"))] = float(body.get("applied_at", 0.0))
    return cb


# --- filter push -----------------------------------------------------------------------------
def add_filter_push(sub: Any) -> None:
    """``edgenode filter push``: added to the filter command's subcommands."""
    push = sub.add_parser("push", help="publish a built filter to an OCI registry (Wasm artifact)")
    push.add_argument("filter", metavar="FILTER.wasm")
    push.add_argument("target", metavar="oci://REGISTRY/REPO:TAG")
    push.add_argument("--root-id", action="append", default=[], help="root ids the module serves (image config)")
    push.set_defaults(_filter_run=_cmd_push)


def _cmd_push(args: argparse.Namespace) -> int:
    from edgenode.fleet.oci import OciError, push_module

    try:
        ref = push_module(Path(args.filter), args.target, root_ids=args.root_id)
    except (OciError, OSError) as exc:
        print(f"edgenode filter: {exc}", file=sys.stderr)
        return 2
    print(ref)
    return 0


def register(command: Callable[..., Any]) -> None:
    command("fleet", "run and operate a fleet of nodes: up, rollout, status, rollback", _fleet_setup)(
        lambda args: args._fleet_run(args))
    command("purge", "purge a URL, surrogate key or everything on every node of a fleet", _purge_setup)(_cmd_purge)
