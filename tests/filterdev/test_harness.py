"""The Python API (FilterHarness) and the pytest `filter` fixture."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from edgenode.filterdev import FilterHarness, OriginReply
from edgenode.filterdev.harness import FIXED_EPOCH_NS
from edgenode.filterdev.project import Project

from filterdev_support import run_pytest


def _rand_u32(seed: int) -> int:
    """What getentropy(4 bytes) -> WASI random_get gives with the harness's seeded RNG."""
    return int.from_bytes(random.Random(seed).randbytes(4), "little")


def test_request_exposes_response_origin_request_logs_and_timings(c_project: Project) -> None:
    with FilterHarness(c_project.wasm, {"greeting": "hi"}) as f:
        resp = f.request("GET", "/a?x=1", headers={"accept": "text/html"},
                         origin=OriginReply(201, {"etag": '"v1"'}, "made"))
        assert resp.status == 201
        assert resp.headers["x-greeting"] == "hi"
        assert resp.headers["etag"] == '"v1"'
        assert resp.body == b"made"
        assert resp.origin_request is not None
        assert resp.origin_request.target == "/a?x=1"
        assert resp.origin_request.path == "/a"
        assert resp.origin_request.headers["x-filter"] == "hello"
        assert resp.origin_request.headers["accept"] == "text/html"
        assert [e.message for e in resp.logs] == ["hello: allowed /a?x=1"]
        assert {"request_headers", "response_headers"} <= set(resp.timings)
        assert [c.action for c in resp.callbacks if c.phase == "request_headers"] == ["Continue"]
        assert any("configured greeting='hi'" in e.message for e in f.startup_logs)


def test_local_reply_never_reaches_the_origin(c_project: Project) -> None:
    with FilterHarness(c_project.wasm, {"deny_prefix": "/admin"}) as f:
        resp = f.request("POST", "/admin/x", body="secret")
        assert (resp.status, resp.body, resp.origin_request) == (403, b"denied\n", None)
        assert [c.action for c in resp.callbacks if c.phase == "request_headers"] == ["StopIteration"]
        assert f.request("GET", "/a").origin_called


def test_clock_is_frozen_and_randomness_seeded(clock_wasm: Path) -> None:
    with FilterHarness(clock_wasm, seed=7) as f:
        first = f.request("GET", "/a")
        assert first.headers["x-now"] == str(FIXED_EPOCH_NS)
        assert first.origin_request.headers["x-now"] == str(FIXED_EPOCH_NS)
        assert first.headers["x-rand"] == str(_rand_u32(7))
        f.advance(1.5)
        assert f.request("GET", "/a").headers["x-now"] == str(FIXED_EPOCH_NS + 1_500_000_000)
    with FilterHarness(clock_wasm, seed=7, clock_ns=123) as again:
        second = again.request("GET", "/a")
        assert second.headers["x-rand"] == first.headers["x-rand"]
        assert second.headers["x-now"] == "123"
    with FilterHarness(clock_wasm, seed=8) as other:
        assert other.request("GET", "/a").headers["x-rand"] == str(_rand_u32(8))


def test_a_trap_is_reported_not_raised(clock_wasm: Path) -> None:
    with FilterHarness(clock_wasm) as f:
        resp = f.request("GET", "/trap")
        assert resp.status == 503
        assert resp.error is not None and "failed" in resp.error
        assert [c.action for c in resp.callbacks if c.phase == "request_headers"] == ["trap"]


async def test_async_form_in_async_tests(c_project: Project) -> None:
    with FilterHarness(c_project.wasm) as f:
        resp = await f.arequest("GET", "/z")
        assert resp.headers["x-greeting"] == "hello from hello"
        with pytest.raises(RuntimeError, match="arequest"):
            f.request("GET", "/z")


def test_fixture_reads_ini_options(tmp_path: Path, clock_wasm: Path) -> None:
    (tmp_path / "pytest.ini").write_text(textwrap.dedent(f"""\
        [pytest]
        edgenode_filter = {clock_wasm}
        """))
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["edgenode.filterdev.pytest_plugin"]\n')
    (tmp_path / "test_it.py").write_text(textwrap.dedent(f"""\
        def test_x(filter):
            resp = filter.request("GET", "/a", headers={{"x-y": "1"}})
            assert resp.status == 200
            assert resp.headers["x-now"] == "{FIXED_EPOCH_NS}"
            assert resp.origin_request.headers["x-y"] == "1"

        def test_fails_visibly(filter):
            assert filter.request("GET", "/a").status == 404
        """))
    proc = run_pytest(tmp_path)
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert "assert 200 == 404" in proc.stdout


def test_fixture_without_a_filter_says_how_to_configure_it(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["edgenode.filterdev.pytest_plugin"]\n')
    (tmp_path / "test_it.py").write_text("def test_x(filter):\n    pass\n")
    proc = run_pytest(tmp_path)
    assert proc.returncode != 0
    assert "no filter to test: set `edgenode_filter`" in proc.stdout
