"""`edgenode function new|build|test|run` and hot reload, as an author uses them."""

from __future__ import annotations

import asyncio
import os
import py_compile
import shutil
from pathlib import Path

import aiohttp
import pytest

from edgenode.cli import main
from edgenode.config import StageConfig
from edgenode.functions.devtools import LocalFunctionRun
from edgenode.functions.project import load_function_project
from edgenode.functions.stage import FunctionStage
from edgenode.http.messages import CIMultiDict, Request, read_body
from edgenode.pipeline.exchange import Exchange


@pytest.fixture(scope="session")
def js_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JS template, scaffolded and built through the CLI (the build cache makes a
    rebuild of the same sources a copy)."""
    root = tmp_path_factory.mktemp("fnproj") / "hello"
    assert main(["function", "new", "hello", "--lang", "js", "--dir", str(root)]) == 0
    assert main(["function", "build", str(root)]) == 0
    return root


def test_new_scaffolds_both_languages(tmp_path: Path) -> None:
    for lang, source in (("js", "app.js"), ("python", "app.py")):
        root = tmp_path / lang
        assert main(["function", "new", "greeter", "--lang", lang, "--dir", str(root)]) == 0
        project = load_function_project(root / "function.toml")
        assert (project.name, project.lang, project.source.name) == ("greeter", lang, source)
        assert project.cases == [root / "tests" / "cases.yaml"]
        assert "greeter" in project.source.read_text() and "{{name}}" not in project.source.read_text()
        assert (root / ".gitignore").is_file() and (root / "README.md").is_file()
    py_compile.compile(str(tmp_path / "python" / "app.py"), doraise=True)
    assert main(["function", "new", "greeter", "--lang", "js", "--dir", str(tmp_path / "js")]) == 2


def test_build_test_and_run_the_js_template(js_project: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(js_project)
    assert main(["function", "build"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["function", "test"]) == 0
    assert "2 passed, 0 failed" in capsys.readouterr().out

    async def run() -> None:
        runner = LocalFunctionRun(js_project / "build" / "hello.wasm", "hello", listen=("127.0.0.1", 0))
        await runner.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{runner.port}/hello") as r:
                    assert (r.status, await r.text()) == (200, "hello from hello (js) at /hello\n")
        finally:
            await runner.stop()

    asyncio.run(run())


def test_failing_case_exits_1(js_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = tmp_path / "bad.yaml"
    cases.write_text("cases:\n  - request: {path: /x}\n    expect: {status: 201, body_contains: nope}\n")
    assert main(["function", "test", str(cases), "--component", str(js_project / "build" / "hello.wasm")]) == 1
    out = capsys.readouterr().out
    assert "status: expected 201, got 200" in out and "0 passed, 1 failed" in out


def test_test_without_a_component_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = tmp_path / "c.yaml"
    cases.write_text("cases:\n  - request: {path: /x}\n")
    assert main(["function", "test", str(cases), "--component", str(tmp_path / "missing.wasm")]) == 2
    assert "no such file (build it with `edgenode function build`)" in capsys.readouterr().err


async def test_hot_reload_swaps_the_component(js_component: Path, py_component: Path, tmp_path: Path) -> None:
    live = tmp_path / "live.wasm"
    shutil.copyfile(js_component, live)
    stage = FunctionStage(StageConfig("function", "live", {"component": str(live), "watch": True,
                                                          "variables": {"greeting": "hey"}}),
                          base_dir=tmp_path, prewarm=0)

    async def get() -> str:
        handler = stage.wrap(_unreachable)
        resp = await handler(Exchange(Request("GET", "/x/hello", CIMultiDict(host="h"))))
        return (await read_body(resp.body)).decode()

    try:
        assert await get() == "hello from js at /x/hello\n"
        shutil.copyfile(py_component, live)
        os.utime(live, (1, 1))  # a different mtime even on coarse clocks
        for _ in range(40):
            await asyncio.sleep(0.1)
            if stage.metrics.reloads:
                break
        assert await get() == "hey from python at /x/hello\n"
        live.write_bytes(b"broken")  # a bad build keeps the running version
        os.utime(live, (2, 2))
        await asyncio.sleep(1.2)
        assert await get() == "hey from python at /x/hello\n"
    finally:
        await stage.close()


async def _unreachable(exchange: Exchange) -> None:  # type: ignore[return]
    raise AssertionError("the function should have answered")
