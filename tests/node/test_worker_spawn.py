"""Workers start cleanly whatever directory `serve` runs in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_workers_ignore_modules_in_the_current_directory(tmp_path: Path) -> None:
    # a file named like a stdlib module, as a user's scratch directory may hold
    (tmp_path / "inspect.py").write_text("raise SystemExit('shadowed the stdlib')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "edgenode", "serve", "--workers", "2", "--listen", "127.0.0.1:0",
         "--admin-listen", "off", "--origin", "http://127.0.0.1:9"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        lines = []
        for _ in range(200):
            line = proc.stderr.readline()  # type: ignore[union-attr]
            lines.append(line)
            if not line or line.startswith("edgenode: serving"):
                break
        assert lines[-1].startswith("edgenode: serving") and "workers=2" in lines[-1], "".join(lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
