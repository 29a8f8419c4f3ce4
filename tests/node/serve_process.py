"""``edgenode serve`` as a child process, for the tests that need the real command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]
BOUND = 30.0
BANNER = re.compile(r"edgenode: serving http://127\.0\.0\.1:(\d+) ")


@dataclass
class Served:
    proc: subprocess.Popen[str]
    port: int
    #: the start-up line (``edgenode: serving http://... admin=... workers=N``)
    banner: str

    def stop(self) -> int:
        """SIGTERM, as an operator stops it; the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=BOUND)


@contextmanager
def serving(*args: str, cwd: Path | None = None, python_flags: tuple[str, ...] = ()) -> Iterator[Served]:
    """Run ``edgenode serve ARGS`` until its banner; stopped (SIGTERM, then kill) on exit."""
    proc = subprocess.Popen([sys.executable, *python_flags, "-m", "edgenode", "serve", *args],
                            cwd=cwd, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        lines: list[str] = []
        for _ in range(200):
            line = proc.stderr.readline()  # type: ignore[union-attr]
            lines.append(line)
            if not line or BANNER.match(line):
                break
        m = BANNER.match(lines[-1])
        assert m, "serve did not start:\n" + "".join(lines)
        yield Served(proc, int(m.group(1)), lines[-1])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=BOUND)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
