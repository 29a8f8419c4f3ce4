"""``edgenode bench``: run a workload, compare two results, or cost one filter or function.

    edgenode bench [WORKLOAD.toml] [--url URL | --config NODE.toml] [--duration S] ...
    edgenode bench --compare BEFORE.json AFTER.json
    edgenode bench filter FILTER.wasm [--config JSON] [--iterations N] [--isolation ...]
    edgenode bench function COMPONENT.wasm [--config JSON] [--path P] [--method M] [--body B]

One parser for all four (``filter`` and ``function`` are recognised as the first
positional word), so ``--config`` means the node's TOML for a run, the filter's JSON
configuration for ``bench filter`` and the stage options (JSON) for ``bench function``,
as the usages say.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from edgenode.config import ConfigError

__all__ = ["register"]

DEFAULT_OUT = "benchmarks/results"


def _setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="*", metavar="WORKLOAD.toml | filter FILTER.wasm | function COMPONENT.wasm",
                   help="workload file (default: built-in defaults), `filter FILTER.wasm` or "
                        "`function COMPONENT.wasm`")
    p.add_argument("--url", help="benchmark an already running node at this URL")
    p.add_argument("--config", help="node TOML for a run; filter JSON config for `bench filter`; "
                                    "stage options (JSON) for `bench function`")
    p.add_argument("--metrics-url", help="with --url: the node's admin /metrics URL")
    p.add_argument("--origin-url", help="with --url: the simulated origin's base URL (/__stats)")
    p.add_argument("--duration", type=float, help="seconds (overrides the workload)")
    p.add_argument("--concurrency", type=int, help="connections (overrides the workload)")
    p.add_argument("--rate", type=float, help="requests/s, paced (built-in generator only)")
    p.add_argument("--requests", type=int,
                   help="stop after this many requests instead of a duration (built-in generator)")
    p.add_argument("--origin-latency-ms", type=float, help="simulated origin latency")
    p.add_argument("--origin-jitter-ms", type=float, help="simulated origin jitter (+/-)")
    p.add_argument("--origin-error-rate", type=float, help="simulated origin 5xx share, 0..1")
    p.add_argument("--generator", default="auto", choices=("auto", "wrk", "builtin"),
                   help="load generator: auto (wrk if installed and no --rate), wrk or builtin")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    p.add_argument("--log-level", default="error", choices=("debug", "info", "warning", "error"),
                   help="node and filter log level during the run (default error: a log line "
                        "per request, e.g. each WAF block, would cost the node time)")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE.json", "AFTER.json"),
                   help="compare two results (rates, latencies, shares, each against its "
                        "noise band) and exit")
    p.add_argument("--iterations", type=int, default=1000, help="bench filter: requests (default 1000)")
    p.add_argument("--isolation", choices=("shared", "per-request"), default="shared",
                   help="bench filter: VM isolation (default shared)")
    p.add_argument("--root-id", default="", help="bench filter: root_id of the filter")
    p.add_argument("--path", default="/index.html?q=1", help="bench filter/function: synthetic request path")
    p.add_argument("--method", default="GET", help="bench function: request method (default GET)")
    p.add_argument("--body", default="", help="bench function: request body (text)")
    p.add_argument("--compile", action="store_true",
                   help="bench function: also time a compile from scratch (seconds for big guests)")


def _load_json(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"--compare: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"--compare: {path} is not JSON: {exc}") from None


def _free_stem(out: Path, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``... so a run never overwrites an earlier one."""
    stem, n = base, 1
    while (out / f"{stem}.json").exists():
        n += 1
        stem = f"{base}-{n}"
    return stem


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.compare:
        from edgenode.bench.compare import compare_markdown

        print(compare_markdown(_load_json(args.compare[0]), _load_json(args.compare[1])), end="")
        return 0
    if args.target[:1] == ["filter"]:
        return _filter(args)
    if args.target[:1] == ["function"]:
        return _function(args)
    if len(args.target) > 1:
        raise ConfigError("bench: give at most one workload file")
    return _bench(args)


def _cost_target(args: argparse.Namespace, what: str, metavar: str) -> Path:
    """The one file of ``bench filter|function FILE``."""
    if len(args.target) != 2:
        raise ConfigError(f"bench {what}: give exactly one {metavar}")
    target = Path(args.target[1])
    if not target.is_file():
        raise ConfigError(f"bench {what}: no such file {target}")
    return target


def _write_cost(args: argparse.Namespace, stem: str, result: dict, markdown: str) -> None:
    """Save a cost result as JSON under ``--out`` (never over an earlier one) and print it."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (_free_stem(out, f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}") + ".json")
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown, end="")
    print(f"\nwrote {path}")


def _filter(args: argparse.Namespace) -> int:
    from edgenode.bench.filtercost import filter_cost_markdown, measure_filter

    module = _cost_target(args, "filter", "FILTER.wasm (or .wat)")
    result = asyncio.run(measure_filter(module, args.config or "", iterations=args.iterations,
                                        isolation=args.isolation, root_id=args.root_id,
                                        path=args.path))
    _write_cost(args, f"filter-{module.stem}", result, filter_cost_markdown(result))
    return 0


def _function(args: argparse.Namespace) -> int:
    from edgenode.bench.functioncost import function_cost_markdown, measure_function

    component = _cost_target(args, "function", "COMPONENT.wasm")
    try:
        options = json.loads(args.config) if args.config else {}
    except ValueError as exc:
        raise ConfigError(f"--config: not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise ConfigError("--config: expected a JSON object of stage options")
    result = asyncio.run(measure_function(component, options, method=args.method, path=args.path,
                                          body=args.body.encode(), iterations=args.iterations,
                                          compile_too=args.compile))
    _write_cost(args, f"function-{component.stem}", result, function_cost_markdown(result))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from edgenode.bench.report import to_markdown, write_plots
    from edgenode.bench.runner import BenchOptions, run_bench
    from edgenode.bench.spec import Workload, load_workload
    from edgenode.http.server import install_event_loop

    w = load_workload(args.target[0]) if args.target else Workload(name="default")
    overrides = {"duration": args.duration, "concurrency": args.concurrency, "rate": args.rate,
                 "origin_latency_ms": args.origin_latency_ms, "origin_jitter_ms": args.origin_jitter_ms,
                 "origin_error_rate": args.origin_error_rate, "requests": args.requests}
    for key, value in overrides.items():
        if value is not None:
            if key in ("concurrency", "requests") and value < 1:
                raise ConfigError(f"--{key}: must be at least 1, got {value}")
            if value < 0 or (key in ("duration", "rate") and value == 0):
                raise ConfigError(f"--{key.replace('_', '-')}: must be positive, got {value}")
            w = replace(w, **{key: value})
    if args.url and args.config:
        raise ConfigError("--config: not with --url (the node at --url has its own config)")
    opts = BenchOptions(workload=w, url=args.url, config=args.config, metrics_url=args.metrics_url,
                        origin_url=args.origin_url, generator=args.generator,
                        progress=not args.quiet)
    install_event_loop()  # uvloop, as `edgenode serve` runs the node
    try:
        result = asyncio.run(run_bench(opts, sys.stderr))
    except (RuntimeError, OSError) as exc:  # a generator or child process failed
        print(f"edgenode: bench failed: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = _free_stem(out, f"bench-{w.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    markdown = to_markdown(result)
    (out / f"{stem}.md").write_text(markdown)
    written = [] if args.no_plots else write_plots(result, out, stem)
    print(markdown, end="")
    print("\nwrote " + ", ".join(str(p) for p in [out / f"{stem}.json", out / f"{stem}.md", *written]))
    return 0


def register(command: Callable) -> None:
    command("bench", "benchmark a node with a workload, compare results, or cost a filter or function",
            _setup)(_run)
