"""``edgenode filter build``: run the project's toolchain, compiler output shown as it is.

C: ``zig cc`` (PyPI ``ziglang``) with the flags of filters/Makefile, over src/*.c and the
vendored sdk/*.c.  AssemblyScript: ``npm ci`` when node_modules is missing or older
than package-lock.json, then ``npm run build`` (asc).  The output replaces the .wasm
atomically, so ``filter run --watch`` never loads a half-written module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edgenode.filterdev.project import Project

__all__ = ["BuildError", "BuildResult", "build_project", "c_command"]

#: filters/Makefile: WFLAGS and CFLAGS
C_FLAGS = ["--target=wasm32-wasi", "-mexec-model=reactor", "-std=gnu11", "-Wall", "-Wextra", "-O2", "-s"]


class BuildError(Exception):
    """The toolchain is missing or the compiler failed (its output was already shown)."""

    def __init__(self, message: str, returncode: int = 1) -> None:
        super().__init__(message)
        self.returncode = returncode


@dataclass
class BuildResult:
    wasm: Path
    size: int
    seconds: float


def c_command(project: Project, output: Path) -> list[str]:
    sources = sorted((project.root / "src").glob("*.c")) + sorted((project.root / "sdk").glob("*.c"))
    if not sources:
        raise BuildError(f"{project.root}: no C sources in src/")
    return [sys.executable, "-m", "ziglang", "cc", *C_FLAGS, "-Isdk", "-Isrc", "-o", str(output),
            *[str(s.relative_to(project.root)) for s in sources]]


def _run(cmd: list[str], cwd: Path, out: IO[str] | None) -> None:
    """Run ``cmd``; its output goes to ``out`` (None: straight to our stdout/stderr)."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT if out else None,
                              text=True)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]}: not found on PATH") from None
    if proc.returncode != 0:
        raise BuildError(f"`{' '.join(cmd)}` failed with exit status {proc.returncode}",
                         proc.returncode)


def _npm_install_needed(root: Path) -> bool:
    marker = root / "node_modules" / ".package-lock.json"
    lock = root / "package-lock.json"
    return not marker.is_file() or (lock.is_file() and lock.stat().st_mtime > marker.stat().st_mtime)


def build_project(project: Project, out: IO[str] | None = None) -> BuildResult:
    """Build ``project`` into ``project.wasm``."""
    t0 = time.perf_counter()
    root = project.root
    project.wasm.parent.mkdir(parents=True, exist_ok=True)
    if project.lang == "c":
        tmp = project.wasm.with_suffix(".wasm.tmp")
        try:
            _run(c_command(project, tmp), root, out)
            os.replace(tmp, project.wasm)
        finally:
            tmp.unlink(missing_ok=True)
    else:
        npm = shutil.which("npm")
        if npm is None:
            raise BuildError("npm not found on PATH: AssemblyScript filters need Node.js and npm "
                             "(Debian: apt-get install nodejs npm)")
        if _npm_install_needed(root):
            _run([npm, "ci", "--no-audit", "--no-fund"], root, out)
        tmp = project.wasm.with_suffix(".wasm.tmp")
        try:  # asc's --binaryFile overrides asconfig.json's, so the output lands atomically
            _run([npm, "run", "--silent", "build", "--", "--binaryFile", str(tmp)], root, out)
            if not tmp.is_file():
                raise BuildError(f"the build succeeded but wrote no {tmp.name} "
                                 "(does package.json's build script run asc?)")
            os.replace(tmp, project.wasm)
        finally:
            tmp.unlink(missing_ok=True)
    return BuildResult(project.wasm, project.wasm.stat().st_size, time.perf_counter() - t0)
