"""Workers start cleanly whatever directory `serve` runs in."""

from __future__ import annotations

from pathlib import Path

from serve_process import serving


def test_workers_ignore_modules_in_the_current_directory(tmp_path: Path) -> None:
    # a file named like a stdlib module, as a user's scratch directory may hold
    (tmp_path / "inspect.py").write_text("raise SystemExit('shadowed the stdlib')\n")
    with serving("--workers", "2", "--listen", "127.0.0.1:0", "--admin-listen", "off",
                 "--origin", "http://127.0.0.1:9", cwd=tmp_path, python_flags=("-P",)) as served:
        assert "workers=2" in served.banner
        assert served.stop() == 0
