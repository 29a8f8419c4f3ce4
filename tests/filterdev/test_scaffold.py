"""`edgenode filter new` + `build` + `test` + pytest: a generated project works as generated,
outside this checkout, for both languages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgenode.cli import main

from filterdev_support import run_cli, run_pytest


@pytest.mark.parametrize("lang", ["c", pytest.param("assemblyscript", marks=pytest.mark.slow)])
def test_round_trip(lang: str, tmp_path: Path) -> None:
    proc = run_cli("filter", "new", "my-filter", "--lang", lang, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    project = tmp_path / "my-filter"
    assert (project / "filter.toml").is_file() and (project / "tests" / "cases.yaml").is_file()
    if lang == "c":  # the SDK is vendored: the project does not need this checkout to build
        assert (project / "sdk" / "proxy_wasm.h").is_file()
        assert "static const pw_filter my_filter" in (project / "src" / "filter.c").read_text()
    else:
        assert json.loads((project / "package.json").read_text())["name"] == "my-filter"
        assert 'registerRootContext((context_id: u32) => { return new MyFilterRoot(context_id); }, "my-filter")' \
            in (project / "assembly" / "index.ts").read_text()
    build = run_cli("filter", "build", cwd=project)
    assert build.returncode == 0, build.stdout + build.stderr
    wasm = project / "build" / "my-filter.wasm"
    assert wasm.read_bytes()[:4] == b"\0asm"
    assert f"built {wasm}" in build.stdout
    test = run_cli("filter", "test", cwd=project)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "2 passed, 0 failed" in test.stdout
    tests = run_pytest(project)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
    # as generated, the project's tests print no warning (pytest-asyncio's loop scope is set)
    assert "warning" not in (tests.stdout + tests.stderr).lower(), tests.stdout + tests.stderr
    inspect = run_cli("filter", "inspect", str(wasm), cwd=project)
    assert inspect.returncode == 0 and "loads in this node" in inspect.stdout


def test_compiler_errors_are_shown_as_they_are(fresh_c_project, tmp_path: Path) -> None:
    project = fresh_c_project("broken")
    src = project.root / "src" / "filter.c"
    src.write_text(src.read_text().replace("return PW_CONTINUE;", "return PW_CONTINUE", 1))
    before = project.wasm.read_bytes()
    proc = run_cli("filter", "build", cwd=project.root)
    assert proc.returncode == 1
    assert "src/filter.c:" in proc.stdout + proc.stderr and "error:" in proc.stdout + proc.stderr
    assert "failed with exit status" in proc.stderr
    assert project.wasm.read_bytes() == before  # the last good module is kept
    assert not project.wasm.with_suffix(".wasm.tmp").exists()


def test_new_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", "new", "Bad Name", "--lang", "c", "--dir", str(tmp_path / "x")]) == 2
    assert "NAME: use lower-case letters" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("keep me")
    assert main(["filter", "new", "ok", "--lang", "c", "--dir", str(tmp_path / "taken")]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "taken" / "file").read_text() == "keep me"


def test_build_outside_a_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", "build", str(tmp_path)]) == 2
    assert "no filter.toml in" in capsys.readouterr().err
