"""``edgenode filter new|build|test|run|inspect``, registered into the node's CLI.

Exit status: 0 success; 1 a build failed or a case failed; 2 bad input (config, case
file, a module that will not load: the message names the key, file or import).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from edgenode.config import parse_listen
from edgenode.filterdev.project import find_project

__all__ = ["register"]


def _err(message: str, status: int = 2) -> int:
    print(f"edgenode filter: {message}", file=sys.stderr)
    return status


# --- new -----------------------------------------------------------------------------
def _cmd_new(args: argparse.Namespace) -> int:
    from edgenode.filterdev.scaffold import new_project

    dest = Path(args.dir) if args.dir else Path.cwd() / args.name
    files = new_project(args.name, args.lang, dest)
    print(f"created {args.lang} filter project {args.name!r} in {dest} ({len(files)} files)")
    print(f"next: cd {dest} && edgenode filter build && edgenode filter test && python -m pytest -q")
    return 0


# --- build ---------------------------------------------------------------------------
def _cmd_build(args: argparse.Namespace) -> int:
    from edgenode.filterdev.build import BuildError, build_project

    project = find_project(Path(args.path))
    if project is None:
        return _err(f"no filter.toml in {Path(args.path).resolve()} or its parents "
                    "(create a project with `edgenode filter new NAME --lang c`)")
    print(f"building {project.name} ({project.lang}) -> {project.wasm}", flush=True)
    try:
        result = build_project(project)
    except BuildError as exc:
        return _err(str(exc), 1)
    print(f"built {result.wasm} ({result.size} bytes) in {result.seconds:.1f} s")
    return 0


# --- test ----------------------------------------------------------------------------
def _cmd_test(args: argparse.Namespace) -> int:
    from edgenode.filterdev.cases import load_cases, print_result, run_case
    from edgenode.wasm.engine import FilterLoadError

    files = [Path(c) for c in args.cases]
    if not files:
        project = find_project(Path.cwd())
        if project is None or not project.cases:
            return _err("no case files given and no filter.toml with `cases` here")
        files = project.cases
    passed = failed = 0
    for path in files:
        cf = load_cases(path)
        project = find_project(path.resolve().parent)
        wasm = Path(args.filter) if args.filter else cf.filter or (project.wasm if project else None)
        if wasm is None:
            return _err(f"{path}: which filter? give --filter FILTER.wasm, `filter:` in the file, "
                        "or a filter.toml")
        if not wasm.is_file():
            return _err(f"{wasm}: no such file (build it with `edgenode filter build`)")
        config = next(c for c in (args.config, cf.config, project.config if project else "", "")
                      if c is not None)
        root_id = next(r for r in (args.root_id, cf.root_id, project.root_id if project else "", "")
                       if r is not None)
        options = {**(project.options if project else {}), **cf.options}
        print(f"{path} ({wasm})")
        for case in cf.cases:
            try:
                result = run_case(case, cf, wasm, config, root_id, options)
            except FilterLoadError as exc:
                return _err(str(exc))
            if print_result(result):
                passed += 1
            else:
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


# --- run -----------------------------------------------------------------------------
def _cmd_run(args: argparse.Namespace) -> int:
    from edgenode.devkit.localnode import serve_until_signal
    from edgenode.filterdev.runlocal import LocalRun
    from edgenode.wasm.engine import FilterLoadError

    project = find_project(Path(args.filter) if args.filter else Path.cwd())
    if args.filter:
        wasm = Path(args.filter)
    elif project is not None:
        wasm = project.wasm
    else:
        return _err("give FILTER.wasm (or run inside a project with a filter.toml)")
    if not wasm.is_file():
        return _err(f"{wasm}: no such file (build it with `edgenode filter build`)")
    in_project = project is not None and wasm.resolve() == project.wasm.resolve()
    config = args.config if args.config is not None else (project.config if in_project else "")
    root_id = args.root_id if args.root_id is not None else (project.root_id if in_project else "")
    runner = LocalRun(wasm, config, root_id=root_id,
                      name=project.name if in_project else "filter", origin_url=args.origin,
                      listen=parse_listen(args.listen, "--listen"),
                      options=project.options if in_project else {}, watch=args.watch)

    try:
        serve_until_signal(runner)
    except FilterLoadError as exc:
        return _err(str(exc))
    return 0


# --- inspect -------------------------------------------------------------------------
def _cmd_inspect(args: argparse.Namespace) -> int:
    from edgenode.filterdev.inspection import InspectError, format_inspection, inspect_module

    try:
        info = inspect_module(Path(args.filter))
    except InspectError as exc:
        return _err(str(exc))
    print(json.dumps(info.to_json(), indent=2) if args.json else format_inspection(info))
    return 0 if info.ok else 2


# --- wiring --------------------------------------------------------------------------
def _setup(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="filter_command", metavar="SUBCOMMAND")
    sub.required = True

    new = sub.add_parser("new", help="scaffold a filter project", description="Scaffold a filter project.")
    new.add_argument("name", metavar="NAME")
    new.add_argument("--lang", required=True, choices=("c", "assemblyscript"))
    new.add_argument("--dir", help="where to create it (default: ./NAME)")
    new.set_defaults(_filter_run=_cmd_new)

    build = sub.add_parser("build", help="build a filter project (zig cc / npm + asc)")
    build.add_argument("path", nargs="?", default=".", metavar="PATH",
                       help="project directory or filter.toml (default: here)")
    build.set_defaults(_filter_run=_cmd_build)

    test = sub.add_parser("test", help="replay case files through a filter, without a network")
    test.add_argument("cases", nargs="*", metavar="CASES", help=".yaml/.json case files "
                      "(default: `cases` of filter.toml)")
    test.add_argument("--filter", metavar="FILTER.wasm", help="the module (default: from the case "
                      "file or filter.toml)")
    test.add_argument("--config", metavar="JSON", help="plugin configuration (overrides the files)")
    test.add_argument("--root-id", help="root id (overrides the files)")
    test.set_defaults(_filter_run=_cmd_test)

    run = sub.add_parser("run", help="a local node with this filter in front of an origin")
    run.add_argument("filter", nargs="?", metavar="FILTER.wasm", help="default: wasm of filter.toml")
    run.add_argument("--config", metavar="JSON", help="plugin configuration")
    run.add_argument("--root-id", help="root id")
    run.add_argument("--origin", metavar="URL", help="origin URL (default: the simulated origin, "
                     "started in-process)")
    run.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    run.add_argument("--watch", action="store_true", help="reload the filter when the .wasm changes")
    run.set_defaults(_filter_run=_cmd_run)

    insp = sub.add_parser("inspect", help="ABI, imports/exports, host support, memory, size")
    insp.add_argument("filter", metavar="FILTER.wasm")
    insp.add_argument("--json", action="store_true", help="machine-readable output")
    insp.set_defaults(_filter_run=_cmd_inspect)

    from edgenode.fleet.cli import add_filter_push

    add_filter_push(sub)


def _run(args: argparse.Namespace) -> int:
    return args._filter_run(args)


def register(command: Callable[..., Any]) -> None:
    """Called by edgenode.cli with its ``command`` registrar."""
    command("filter", "write, build, test, run and inspect Proxy-Wasm filters", _setup)(_run)
