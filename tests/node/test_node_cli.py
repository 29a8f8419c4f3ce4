"""The ``edgenode`` command line: demo end to end, serve as a process, config errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from edgenode.cli import main
from serve_process import REPO, serving

ENV = dict(os.environ, PYTHONPATH=str(REPO))


def test_demo_runs_end_to_end() -> None:
    out = subprocess.run([sys.executable, "-m", "edgenode", "demo", "--requests", "600"],
                         capture_output=True, text=True, env=ENV, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    m = re.search(r"hit ratio\s+(\d+\.\d)%", out.stdout)
    assert m and 0 < float(m.group(1)) < 100
    assert re.search(r"requests\s+600\b", out.stdout)
    assert "errors                   none" in out.stdout or re.search(r"errors\s+none", out.stdout)


@pytest.mark.parametrize("toml,key", [
    ('[server]\nlisten = "x"\n[origins.default]\nurl = "http://127.0.0.1:1"\n', "server.listen"),
    ('[origins.default]\nurl = "http://127.0.0.1:1"\n[cache]\nmax_bytes = "big"\n', "cache.max_bytes"),
    ('[origins.default]\nurl = "http://127.0.0.1:1"\n[log]\naccess = "/no/such/dir/a.log"\n', "log.access"),
])
def test_config_error_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             toml: str, key: str) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(toml)
    assert main(["serve", "--config", str(conf), "--listen", "127.0.0.1:0", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edgenode: config error: {key}: ")


def test_bad_flags_are_config_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "none"]) == 2
    assert "config error: --workers:" in capsys.readouterr().err
    assert main(["serve", "--origin", "ftp://x"]) == 2
    assert "config error: --origin: " in capsys.readouterr().err


def test_serve_process_stops_cleanly_on_sigterm() -> None:
    with serving("--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                 "--origin", "http://127.0.0.1:9") as served:
        assert re.match(r"edgenode: serving http://127\.0\.0\.1:\d+ admin=http://127\.0\.0\.1:\d+ workers=\d+",
                        served.banner)
        assert served.stop() == 0


def test_serve_watch_reloads_a_changed_filter(tmp_path: Path) -> None:
    module = tmp_path / "counters.wat"
    module.write_text((REPO / "tests" / "wasm" / "wat" / "counters.wat").read_text())
    conf = tmp_path / "watch.toml"
    conf.write_text(f'''
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "watch-test-token"
[origins.default]
url = "http://127.0.0.1:9"
[[chain]]
type = "wasm"
name = "watched"
module = "{module}"
[log]
access = "off"
''')
    with serving("--config", str(conf), "--watch") as served:
        admin = re.search(r"admin=(http://127\.0\.0\.1:\d+)", served.banner).group(1)  # type: ignore[union-attr]

        def vm_starts() -> int:
            req = urllib.request.Request(f"{admin}/stats",
                                         headers={"Authorization": "Bearer watch-test-token"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)["filters"]["watched"]["vm_starts"]

        before = vm_starts()
        st = module.stat()
        os.utime(module, (st.st_atime, st.st_mtime + 10))
        for _ in range(100):  # the watcher polls once a second
            if vm_starts() > before:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the changed module was not reloaded")
        assert served.stop() == 0
