"""`edgenode filter inspect` and the load errors every command reports."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edgenode.cli import main

REPO = Path(__file__).resolve().parents[2]
WAT = Path(__file__).parent / "wat"
AS_EXAMPLE = REPO / "filters" / "examples" / "assemblyscript"


@pytest.fixture(scope="module")
def as_example_wasm() -> Path:
    """The AssemblyScript example, built from source by its Makefile (npm ci + asc)."""
    proc = subprocess.run(["make", "-C", str(AS_EXAMPLE)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return REPO / "filters" / "build" / "as_example.wasm"


def test_inspect_the_assemblyscript_example(as_example_wasm: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", "inspect", str(as_example_wasm)]) == 0
    out = capsys.readouterr().out
    assert f"{as_example_wasm}: {as_example_wasm.stat().st_size} bytes" in out
    assert "ABI:        0.2.0" in out
    assert "memory:     1 pages initial (64 KiB), no maximum" in out
    assert "ok      env.proxy_send_local_response (i32, i32, i32, i32, i32, i32, i32, i32) -> (i32)" in out
    assert "ok      wasi_unstable.proc_exit (i32) -> ()" in out
    assert "verdict:    loads in this node" in out
    assert main(["filter", "inspect", "--json", str(as_example_wasm)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ok"] is True and info["abi"] == "0.2.0"
    assert "proxy_on_request_headers" in info["callbacks"]
    assert all(i["provided"] for i in info["imports"])
    assert {"module": "env", "name": "proxy_log", "kind": "func",
            "signature": "(i32, i32, i32) -> (i32)", "provided": True, "problem": ""} in info["imports"]


def test_not_wasm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "filter.wasm"
    path.write_text("<html>not a module</html>")
    assert main(["filter", "inspect", str(path)]) == 2
    assert "not a WebAssembly module (expected the \\0asm header" in capsys.readouterr().err


def test_broken_wasm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "filter.wasm"
    path.write_bytes(b"\0asm\x01\0\0\0\x01\xff")
    assert main(["filter", "inspect", str(path)]) == 2
    assert "not a valid WebAssembly module" in capsys.readouterr().err


def test_unknown_host_function_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", "inspect", str(WAT / "unknown_import.wat")]) == 2
    out = capsys.readouterr().out
    assert "MISSING env.proxy_teleport (i32) -> (i32)  <- not provided by this host" in out
    assert "ok      env.proxy_log" in out
    assert "memory:     1 pages initial (64 KiB), 4 max (256 KiB)" in out
    assert "will NOT load" in out
    assert "host loader: filter 'unknown_import': module imports env.proxy_teleport" in out


def test_unknown_abi_and_missing_exports(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", "inspect", str(WAT / "no_abi.wat")]) == 2
    out = capsys.readouterr().out
    assert "ABI:        unknown" in out
    assert "missing or unknown Proxy-Wasm ABI version export" in out


def test_test_and_run_reuse_the_host_load_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = tmp_path / "c.yaml"
    cases.write_text("cases: [{request: {path: /a}}]\n")
    assert main(["filter", "test", str(cases), "--filter", str(WAT / "unknown_import.wat")]) == 2
    assert "module imports env.proxy_teleport, which this host does not provide" in capsys.readouterr().err
