"""``edgenode function new|build|test|run|bench``, registered into the node's CLI.

Exit status: 0 success; 1 a build or a case failed; 2 bad input (config, case file, a
component that will not load: the message names the key, file or import).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, Callable

from edgenode.config import ConfigError, parse_listen
from edgenode.functions.project import find_function_project

__all__ = ["register"]


def _err(message: str, status: int = 2) -> int:
    print(f"edgenode function: {message}", file=sys.stderr)
    return status


def _no_project(where: Path) -> int:
    return _err(f"no function.toml in {where.resolve()} or its parents "
                "(create one with `edgenode function new NAME --lang js|python`)")


def _cmd_new(args: argparse.Namespace) -> int:
    from edgenode.functions.devtools import new_function

    dest = Path(args.dir) if args.dir else Path.cwd() / args.name
    files = new_function(args.name, args.lang, dest)
    print(f"created {args.lang} function {args.name!r} in {dest} ({len(files)} files)")
    print(f"next: cd {dest} && edgenode function build && edgenode function test")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from edgenode.functions.build import BuildError, build_function

    project = find_function_project(Path(args.path))
    if project is None:
        return _no_project(Path(args.path))
    print(f"building {project.name} ({project.lang}) -> {project.component}", flush=True)
    try:
        result = build_function(project, force=args.force)
    except BuildError as exc:
        return _err(str(exc), 1)
    what = "up to date" if result.skipped else "built"
    print(f"{what}: {result.component} ({result.size} bytes) in {result.seconds:.1f} s")
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    from edgenode.filterdev.cases import load_cases, print_result
    from edgenode.functions.devtools import run_cases

    project = find_function_project(Path.cwd())
    files = [Path(c) for c in args.cases] or (project.cases if project else [])
    if not files:
        return _err("no case files given and no function.toml with `cases` here")
    component = Path(args.component) if args.component else project.component if project else None
    if component is None:
        return _err("which component? give --component FILE.wasm or run inside a project")
    if not component.is_file():
        return _err(f"{component}: no such file (build it with `edgenode function build`)")
    passed = failed = 0
    for path in files:
        cf = load_cases(path)
        print(f"{path} ({component})")
        for result in run_cases(project, component, cf):
            if print_result(result):
                passed += 1
            else:
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from edgenode.devkit.localnode import serve_until_signal
    from edgenode.functions.devtools import LocalFunctionRun

    project = find_function_project(Path(args.component) if args.component else Path.cwd())
    if args.component:
        component, name = Path(args.component), Path(args.component).stem
    elif project is not None:
        component, name = project.component, project.name
    else:
        return _no_project(Path.cwd())
    if not component.is_file():
        return _err(f"{component}: no such file (build it with `edgenode function build`)")
    options = project.options if project is not None and project.component.resolve() == component.resolve() else {}
    runner = LocalFunctionRun(component, name, options=options, origin_url=args.origin,
                              listen=parse_listen(args.listen, "--listen"))

    serve_until_signal(runner)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from edgenode.bench.functioncost import function_cost_markdown, measure_function

    project = find_function_project(Path(args.component) if args.component else Path.cwd())
    component = Path(args.component) if args.component else project.component if project else None
    if component is None or not component.is_file():
        return _err(f"{component or 'component'}: no such file (build it with `edgenode function build`)")
    options = project.options if project is not None and not args.component else {}
    result = asyncio.run(measure_function(component, options, method=args.method, path=args.path,
                                          body=(args.body or "").encode(), iterations=args.iterations,
                                          compile_too=args.compile))
    print(function_cost_markdown(result), end="")
    return 0


def _setup(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="function_command", metavar="SUBCOMMAND")
    sub.required = True
    new = sub.add_parser("new", help="scaffold a function project")
    new.add_argument("name", metavar="NAME")
    new.add_argument("--lang", required=True, choices=("js", "python"))  # devtools.TEMPLATES
    new.add_argument("--dir", help="where to create it (default: ./NAME)")
    new.set_defaults(_fn_run=_cmd_new)

    build = sub.add_parser("build", help="build the component (componentize-js / componentize-py)")
    build.add_argument("path", nargs="?", default=".", help="project directory or function.toml")
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.set_defaults(_fn_run=_cmd_build)

    test = sub.add_parser("test", help="replay case files through the component, without a network")
    test.add_argument("cases", nargs="*", metavar="CASES", help="case files (default: `cases` of function.toml)")
    test.add_argument("--component", metavar="FILE.wasm", help="default: the project's component")
    test.set_defaults(_fn_run=_cmd_test)

    run = sub.add_parser("run", help="a local node serving this function (cache in front)")
    run.add_argument("component", nargs="?", metavar="FILE.wasm", help="default: the project's component")
    run.add_argument("--origin", metavar="URL", help="origin URL (default: the simulated origin)")
    run.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    run.set_defaults(_fn_run=_cmd_run)

    bench = sub.add_parser("bench", help="cold start and per-request cost (host overhead vs guest time)")
    bench.add_argument("component", nargs="?", metavar="FILE.wasm", help="default: the project's component")
    bench.add_argument("--method", default="GET")
    bench.add_argument("--path", default="/")
    bench.add_argument("--body", help="request body (text)")
    bench.add_argument("--iterations", type=int, default=200)
    bench.add_argument("--compile", action="store_true", help="also time a compile from scratch")
    bench.set_defaults(_fn_run=_cmd_bench)


def _run(args: argparse.Namespace) -> int:
    try:
        return args._fn_run(args)
    except ConfigError as exc:
        return _err(str(exc))


def register(command: Callable[..., Any]) -> None:
    """Called by edgenode.cli with its ``command`` registrar."""
    command("function", "write, build, test and run edge functions (wasi:http components)", _setup)(_run)
