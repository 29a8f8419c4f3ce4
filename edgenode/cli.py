"""The ``edgenode`` command: serve, origin, demo (and subcommands other modules add).

Other modules add subcommands through :func:`command` (or by appearing in
``PLUGIN_MODULES`` with a ``register(command)`` function that calls it), so the CLI does not
have to know about every tool.  Configuration problems exit with status 2 and
``edgenode: config error: <dotted.key>: <reason>``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Callable

from edgenode import __version__
from edgenode.config import Config, ConfigError, load_config, with_overrides
from edgenode.http.listen import ListenError

__all__ = ["main", "command", "Command", "COMMANDS", "PLUGIN_MODULES"]

#: modules that may add subcommands via ``register(command)``; missing ones are skipped
PLUGIN_MODULES = ("edgenode.filterdev.cli", "edgenode.bench.cli", "edgenode.functions.cli",
                  "edgenode.fleet.cli")


@dataclass
class Command:
    name: str
    help: str
    setup: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    hidden: bool = False


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, setup: Callable[[argparse.ArgumentParser], None],
            hidden: bool = False) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register a subcommand: ``@command("bench", "...", setup)`` over ``run(args) -> int``."""
    def deco(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, help, setup, run, hidden)
        return run
    return deco


def _setup_logging(level: str) -> None:
    from edgenode.observe.logs import setup_logging

    setup_logging(level)


def _workers(value: str) -> int:
    if value == "auto":
        return os.cpu_count() or 1
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"--workers: expected a number or \"auto\", got {value!r}") from None
    if n < 1:
        raise ConfigError(f"--workers: must be at least 1, got {n}")
    return n


def _node_config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config, args.set)
    return with_overrides(cfg, listen=args.listen, origin=args.origin,
                          workers=_workers(args.workers) if getattr(args, "workers", None) else None,
                          admin_listen=getattr(args, "admin_listen", None))


def _node_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (default: the embedded default config)")
    p.add_argument("--listen", help="HOST:PORT for client traffic (overrides server.listen)")
    p.add_argument("--origin", help="URL of the default origin (overrides origins.<default>.url)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a config value, e.g. --set cache.max_bytes=1GiB (repeatable)")


# --- serve -----------------------------------------------------------------------------
def _serve_args(p: argparse.ArgumentParser) -> None:
    _node_args(p)
    p.add_argument("--workers", help="worker processes: a number or \"auto\" (one per core)")
    p.add_argument("--admin-listen", help="HOST:PORT for the admin API, or \"off\"")
    p.add_argument("--watch", action="store_true",
                   help="reload wasm filters when their module or the config file changes")


@command("serve", "run the edge node", _serve_args)
def cmd_serve(args: argparse.Namespace) -> int:
    from edgenode.frontend.server import install_event_loop
    from edgenode.watch import watched_paths

    cfg = _node_config(args)
    _setup_logging(cfg.log.level)
    watch = watched_paths(cfg, args.config) if args.watch else None
    install_event_loop()
    if cfg.server.workers > 1:
        from edgenode.workers import Supervisor, WorkerSpec, WorkerStartError

        config_path = os.path.abspath(args.config) if args.config else None
        sup = Supervisor(cfg, WorkerSpec(config_path, args.origin, args.set), cfg.server.workers)
        try:
            asyncio.run(sup.run(watch))
        except WorkerStartError as exc:  # the worker printed its own reason on stderr
            print(f"edgenode: {exc}", file=sys.stderr)
            return exc.status if exc.status == 2 else 1
    else:
        from edgenode.node import Node

        async def single() -> None:
            await Node(cfg).run(watch)  # built inside the loop: pools bind to it

        asyncio.run(single())
    return 0


# --- worker (started by the serve master) ------------------------------------------
def _worker_args(p: argparse.ArgumentParser) -> None:
    _node_args(p)
    p.add_argument("--worker-id", type=int, required=True)
    p.add_argument("--control", required=True, help="unix socket path of the control channel")
    p.add_argument("--listen-fd", type=int, help="inherited listening socket to serve")
    p.add_argument("--of", type=int, default=1, help="how many workers the node runs")


@command("worker", "internal: one worker process of `serve --workers N`", _worker_args, hidden=True)
def cmd_worker(args: argparse.Namespace) -> int:
    from edgenode.workers import run_worker

    cfg = _node_config(args)
    _setup_logging(cfg.log.level)
    run_worker(cfg, args.worker_id, args.control, args.listen_fd, args.of)
    return 0


# --- origin ----------------------------------------------------------------------------
def _origin_args(p: argparse.ArgumentParser) -> None:
    from edgenode.origin.settings import add_origin_arguments

    add_origin_arguments(p)
    p.add_argument("--latency-ms", type=float, help="added latency in milliseconds (same as --latency)")
    p.add_argument("--jitter-ms", type=float, help="latency spread in milliseconds (same as --jitter)")


@command("origin", "run the simulated origin", _origin_args)
def cmd_origin(args: argparse.Namespace) -> int:
    from edgenode.origin.app import run_origin
    from edgenode.origin.settings import settings_from_args

    if args.latency_ms is not None:
        args.latency = f"{args.latency_ms}ms"
    if args.jitter_ms is not None:
        args.jitter = f"{args.jitter_ms}ms"
    run_origin(settings_from_args(args))
    return 0


# --- demo ------------------------------------------------------------------------------
def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--requests", type=int, help="stop after this many requests (default 2000)")
    p.add_argument("--duration", type=float, help="run for this many seconds instead")
    p.add_argument("--log", action="store_true", help="print the access log too")


@command("demo", "start an origin and a node, drive a demo workload, print what happened", _demo_args)
def cmd_demo(args: argparse.Namespace) -> int:
    from edgenode.demo import run_demo
    from edgenode.frontend.server import install_event_loop

    if args.requests is not None and args.requests < 1:
        raise ConfigError(f"--requests: must be at least 1, got {args.requests}")
    if args.duration is not None and args.duration <= 0:
        raise ConfigError(f"--duration: must be positive, got {args.duration}")
    _setup_logging("warning")
    install_event_loop()
    print(asyncio.run(run_demo(requests=args.requests, duration=args.duration, access_log=args.log)))
    return 0


# --- entry point -----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    for module in PLUGIN_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        register = getattr(mod, "register", None)
        if register is not None:
            register(command)
    parser = argparse.ArgumentParser(prog="edgenode", description="An edge CDN node.")
    parser.add_argument("--version", action="version", version=f"edgenode {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for cmd in COMMANDS.values():
        kw = {} if cmd.hidden else {"help": cmd.help}
        p = sub.add_parser(cmd.name, description=cmd.help, **kw)
        cmd.setup(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args._run(args)
    except ConfigError as exc:
        print(f"edgenode: config error: {exc}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"edgenode: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
