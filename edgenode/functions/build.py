"""``edgenode function build``: source -> ``wasi:http`` component -> compiled-component cache.

C projects (``lang = "c"``) are written against the canonical ABI directly: zig cc (the
``ziglang`` wheel) compiles the core module, and ``toolchain/componentize-c.mjs`` adds the
component type for the ``wasi:http/proxy@0.2.0`` world (WIT from Spin's SDK; the
component imports only what the module uses).  Python projects build with componentize-py and Spin's Python SDK (``spin-sdk`` 3.x, world
``spin-http``: ``wasi:http`` plus Spin's key-value and variables), both installed by the
``functions`` extra.  JavaScript projects build with componentize-js (StarlingMonkey)
from the npm toolchain in ``edgenode/functions/toolchain`` (``make functions`` installs
it): the handler uses the ``fetch`` event, so the world is ``wasi:http/proxy``.  Its WIT
comes from jco's bundled WASI 0.2 WIT, written into the project's build directory with
``wasi:http`` at 0.2.10, the version componentize-js's engine exports (the 0.2.x
interfaces a handler uses are the same).

A build is skipped when the sources and toolchain versions are those of the last build
(a hash kept beside the output); builds are also kept by that hash in the user's cache
(``~/.cache/edgenode/function-builds``), so the same sources build once per machine.
Every build precompiles the component into the node's cache, so a node (or a test)
starting afterwards only deserializes it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edgenode.functions.project import FunctionProject

__all__ = ["BuildError", "BuildResult", "build_function", "toolchain_dir"]

TOOLCHAIN = Path(__file__).resolve().parent / "toolchain"
JS_WASI_HTTP = "0.2.10"
_JS_WORLD = """package edgenode:function;

world handler {
  include wasi:http/proxy@%s;
}
""" % JS_WASI_HTTP


class BuildError(Exception):
    """A build failed; the message says which step and shows the tool's output."""


@dataclass
class BuildResult:
    component: Path
    size: int
    seconds: float
    skipped: bool


def toolchain_dir() -> Path:
    return Path(os.environ.get("EDGENODE_JS_TOOLCHAIN", TOOLCHAIN))


def _sources(project: FunctionProject) -> list[Path]:
    skip = {"build", "node_modules", "__pycache__", "tests", ".pytest_cache"}
    out = []
    for p in sorted(project.root.rglob("*")):
        rel = p.relative_to(project.root)
        if p.is_file() and not (set(rel.parts) & skip) and p.suffix in (".py", ".js", ".mjs", ".c", ".h", ".toml", ".wit"):
            out.append(p)
    return out


def _fingerprint(project: FunctionProject) -> str:
    h = hashlib.sha256()
    for p in _sources(project):
        h.update(str(p.relative_to(project.root)).encode() + b"\0" + p.read_bytes() + b"\0")
    for dist in ("componentize-py", "spin-sdk", "wasmtime"):
        try:
            h.update(f"{dist}={importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            pass
    lock = toolchain_dir() / "package-lock.json"
    if project.lang in ("js", "c") and lock.is_file():
        h.update(lock.read_bytes())
    return h.hexdigest()


def build_function(project: FunctionProject, *, force: bool = False, precompile: bool = True) -> BuildResult:
    """Build ``project``'s component (skipped when up to date) and precompile it."""
    t0 = time.perf_counter()
    out = project.component
    stamp = out.with_name(out.name + ".sha256")
    fingerprint = _fingerprint(project)
    if not force and out.is_file() and stamp.is_file() and stamp.read_text().strip() == fingerprint:
        skipped = True
    else:
        skipped = False
        if not project.source.is_file():
            raise BuildError(f"{project.source}: no such source file")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        kept = _build_cache() / f"{fingerprint}.wasm"
        if kept.is_file() and not force:
            shutil.copyfile(kept, tmp)
        else:
            if project.lang == "python":
                _build_python(project, tmp)
            elif project.lang == "c":
                _build_c(project, tmp)
            else:
                _build_js(project, tmp)
            _keep(tmp, kept)
        os.replace(tmp, out)
        stamp.write_text(fingerprint + "\n")
    if precompile:
        from edgenode.functions.component import FunctionLoadError, runtime

        try:
            runtime().load(out, project.name)
        except FunctionLoadError as exc:
            raise BuildError(str(exc)) from None
    return BuildResult(out, out.stat().st_size, time.perf_counter() - t0, skipped)


def _build_cache() -> Path:
    from edgenode.wasmcache import default_cache_dir

    return default_cache_dir() / "function-builds"


def _keep(built: Path, kept: Path) -> None:
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, kept.with_suffix(".tmp"))
        os.replace(kept.with_suffix(".tmp"), kept)
    except OSError:
        pass  # a read-only cache only costs the next build its time


def _run(cmd: list[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise BuildError(f"{what}: {exc.filename} not found") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _build_python(project: FunctionProject, out: Path) -> None:
    tool = Path(sys.executable).parent / "componentize-py"
    try:
        import spin_sdk  # noqa: F401 - only checking the toolchain is there
    except ImportError:
        raise BuildError("Python functions need componentize-py and spin-sdk: "
                         "pip install 'edgenode[functions]' (make install does)") from None
    if not tool.is_file():
        raise BuildError(f"{tool}: not found (pip install 'edgenode[functions]')")
    env = dict(os.environ, VIRTUAL_ENV=sys.prefix,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    module = project.source.stem
    _run([str(tool), "-w", "spin-http", "componentize", "-p", str(project.source.parent), module,
          "-o", str(out)], project.root, "componentize-py", env)


_C_WORLD = """package edgenode:function;

world handler {
  include wasi:http/proxy@0.2.0;
}
"""
_C_DEPS = ("cli", "clocks", "filesystem", "http", "io", "random", "sockets")


def _build_c(project: FunctionProject, out: Path) -> None:
    try:
        import spin_sdk
    except ImportError:
        raise BuildError("C functions take their WIT from spin-sdk: pip install 'edgenode[functions]'") from None
    script = toolchain_dir() / "componentize-c.mjs"
    node = shutil.which("node")
    if node is None or not (toolchain_dir() / "node_modules").is_dir():
        raise BuildError(f"C functions need node and the npm toolchain: run `make functions` "
                         f"(npm ci in {toolchain_dir()})")
    build = project.component.parent
    core = build / f"{project.name}.core.wasm"
    _run([sys.executable, "-m", "ziglang", "cc", "--target=wasm32-freestanding", "-O2", "-nostdlib",
          "-Wl,--no-entry", "-o", str(core), str(project.source)], project.root, "zig cc")
    wit = build / "wit-c"
    if wit.exists():
        shutil.rmtree(wit)
    deps = Path(spin_sdk.__file__).parent / "wit" / "deps"
    for name in _C_DEPS:
        shutil.copytree(deps / name, wit / "deps" / name)
    (wit / "world.wit").write_text(_C_WORLD)
    _run([node, str(script), str(wit), "handler", str(core), str(out)], project.root, "componentize-c")


def _js_wit(project: FunctionProject) -> Path:
    """The handler world and its WASI deps, from jco's bundled WIT, in build/wit."""
    jco_wit = toolchain_dir() / "node_modules" / "@bytecodealliance" / "jco" / "lib" / "wit" / "builtin"
    versions = sorted((d for d in jco_wit.glob("0.2.*") if (d / "wasi-http").is_dir()),
                      key=lambda d: tuple(int(x) for x in d.name.split(".")))
    if not versions:
        raise BuildError(f"no WASI 0.2 WIT under {jco_wit}: run `make functions` (npm ci in "
                         f"{toolchain_dir()})")
    src = versions[-1]
    wit = project.component.parent / "wit"
    if wit.exists():
        shutil.rmtree(wit)
    (wit / "deps").mkdir(parents=True)
    pattern = re.compile(r"@" + re.escape(src.name) + r"\b")
    for pkg in src.iterdir():
        for f in pkg.rglob("*.wit"):
            dest = wit / "deps" / pkg.name / f.relative_to(pkg)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(pattern.sub("@" + JS_WASI_HTTP, f.read_text()).replace(
                f"@{src.name};", f"@{JS_WASI_HTTP};"))
    (wit / "world.wit").write_text(_JS_WORLD)
    return wit


def _build_js(project: FunctionProject, out: Path) -> None:
    cli = toolchain_dir() / "node_modules" / "@bytecodealliance" / "componentize-js" / "src" / "cli.js"
    if not cli.is_file():
        raise BuildError(f"JavaScript functions need componentize-js: run `make functions` "
                         f"(npm ci in {toolchain_dir()})")
    node = shutil.which("node")
    if node is None:
        raise BuildError("node not found: install Node.js (Debian: apt-get install nodejs npm)")
    wit = _js_wit(project)
    _run([node, str(cli), "--wit", str(wit), "--world-name", "handler", "-o", str(out), str(project.source)],
         project.root, "componentize-js")
