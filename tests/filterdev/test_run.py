"""`edgenode filter run`: a real node on 127.0.0.1 with the filter in front of the simulated
origin, the per-callback log view, and reload when the .wasm is rebuilt."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import sys
from typing import AsyncIterator

import aiohttp
import pytest

from edgenode.filterdev.build import build_project
from edgenode.filterdev.runlocal import LocalRun

from filterdev_support import REPO


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_serves_logs_and_reloads_on_rebuild(fresh_c_project, session: aiohttp.ClientSession) -> None:
    project = fresh_c_project("live")
    out = io.StringIO()
    run = LocalRun(project.wasm, project.config, name=project.name, listen=("127.0.0.1", 0),
                   watch=True, watch_interval=0.05, out=out)
    await run.start()
    try:
        base = f"http://127.0.0.1:{run.port}"
        async with session.get(f"{base}/obj/a?size=100") as r:
            assert r.status == 200
            assert r.headers["x-greeting"] == "hello from live"
            assert len(await r.read()) == 100
        async with session.get(f"{base}/private/x") as r:
            assert r.status == 403 and await r.text() == "denied\n"
        log = out.getvalue()
        assert "(simulated origin)" in log
        assert re.search(r"^#(\d+) GET /obj/a\?size=100$", log, re.M)
        rid = re.search(r"^#(\d+) GET /obj/a", log, re.M).group(1)
        assert re.search(rf"^ *#{rid} request_headers +Continue +\d+\.\d{{3}} ms$", log, re.M)
        assert "log info  live: allowed /obj/a?size=100" in log
        assert "request_headers      StopIteration" in log
        assert "-> 200 GET /obj/a?size=100 cache=MISS" in log
        assert "-> 403 GET /private/x" in log

        src = project.root / "src" / "filter.c"
        src.write_text(src.read_text().replace('"x-greeting"', '"x-greeting-v2"'))
        await asyncio.to_thread(build_project, project)
        for _ in range(200):  # bounded: the watcher polls every 50 ms
            if run.reloads:
                break
            await asyncio.sleep(0.05)
        assert run.reloads == 1, out.getvalue()
        async with session.get(f"{base}/obj/b") as r:
            assert r.headers["x-greeting-v2"] == "hello from live"
            assert "x-greeting" not in r.headers
        assert "reloaded live.wasm" in out.getvalue()
    finally:
        await run.stop()


async def test_a_broken_rebuild_keeps_the_running_filter(fresh_c_project,
                                                         session: aiohttp.ClientSession) -> None:
    project = fresh_c_project("keep")
    out = io.StringIO()
    run = LocalRun(project.wasm, "", name=project.name, listen=("127.0.0.1", 0), watch=True,
                   watch_interval=0.05, out=out)
    await run.start()
    try:
        project.wasm.write_bytes(b"not wasm")
        for _ in range(200):
            if "reload failed" in out.getvalue():
                break
            await asyncio.sleep(0.05)
        assert "reload failed, keeping the previous filter" in out.getvalue()
        async with session.get(f"http://127.0.0.1:{run.port}/obj/a") as r:
            assert r.status == 200 and r.headers["x-greeting"] == "hello from keep"
    finally:
        await run.stop()


async def test_cli_run_serves_until_interrupted(c_project, session: aiohttp.ClientSession) -> None:
    """`edgenode filter run FILTER.wasm --config JSON` as a process: serve, log, stop on SIGINT."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgenode", "filter", "run", str(c_project.wasm), "--config",
        '{"greeting": "from cli"}', "--listen", "127.0.0.1:0", cwd=c_project.root, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        port = None
        for _ in range(50):  # bounded: a handful of start-up lines
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            m = re.match(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "no `listening on` line"
        async with session.get(f"http://127.0.0.1:{port}/obj/cli") as r:
            assert r.status == 200 and r.headers["x-greeting"] == "from cli"
    finally:
        proc.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(proc.stdout.read(), 30)).decode()
        assert await proc.wait() == 0, rest
    assert "-> 200 GET /obj/cli cache=MISS" in rest
