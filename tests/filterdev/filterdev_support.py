"""Helpers shared by the filterdev tests (a uniquely named module: every test directory has
a conftest, so `from conftest import ...` would be ambiguous)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m edgenode ARGS` in ``cwd`` (edgenode importable as if installed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "edgenode", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_pytest(cwd: Path) -> subprocess.CompletedProcess[str]:
    """pytest in ``cwd`` as a filter author runs it (their own rootdir and conftest)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)
