"""The admin API's guard against a real node: only GET/HEAD of /healthz and /metrics go
without the token, purges name their target explicitly, and unsafe settings never start."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from edgenode.config import ConfigError, parse_config
from edgenode.node import Node

TOKEN = "test-token"  # what conftest.node_config sets
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO = Path(__file__).resolve().parents[2]
#: a bound on a node process that neither refuses nor starts, so it cannot hang the suite
HANG = 300.0


def _env() -> dict[str, str]:
    """A child node's environment, read when it starts: the test's own EDGENODE_STATE_DIR
    (conftest), so its cache store is not the default one that another node started by a
    concurrent suite may hold (that node's lock makes this one exit 2); no admin token."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("EDGENODE_ADMIN_TOKEN", None)
    return env


async def _raw(node: Node, request: bytes) -> tuple[int, bytes]:
    """One request to the admin port exactly as written (a crafted Host included)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.admin_port)
    writer.write(request)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return int(raw.split(b" ", 2)[1]), raw


async def _x_cache(node: Node, path: str) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}{path}") as r:
            await r.read()
            return r.headers["X-Cache"]


@pytest.mark.parametrize("method,path", [
    ("PURGE", "/metrics"), ("PURGE", "/healthz"), ("POST", "/metrics"), ("DELETE", "/healthz"),
    ("PUT", "/metrics"), ("PURGE", "/obj/victim?size=1k"),
])
async def test_open_paths_are_open_for_reading_only(node: Node, method: str, path: str) -> None:
    """``PURGE /metrics`` with the site's Host used to purge without a token."""
    assert await _x_cache(node, "/obj/victim?size=1k") == "MISS"
    host = f"127.0.0.1:{node.port}".encode()
    status, raw = await _raw(node, f"{method} {path} HTTP/1.1\r\n".encode() + b"Host: " + host
                             + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert status == 401 and b"WWW-Authenticate: Bearer" in raw
    assert node.stats()["cache"]["purged"] == 0  # nothing was purged
    assert await _x_cache(node, "/obj/victim?size=1k") == "HIT"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_health_and_metrics_need_no_token_to_read(node: Node, method: str) -> None:
    for path in ("/healthz", "/metrics"):
        status, _ = await _raw(node, f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert status == 200


@pytest.mark.parametrize("url", ["/obj/a", "obj/a", "ftp://site/a", "http://", "http://user@site/a",
                                 "http://si te/a", "http://site/a\r\nX: y", "http://site:80x/a", ""])
async def test_purge_urls_are_validated(node: Node, url: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{node.admin_port}/purge", json={"url": url},
                          headers=AUTH) as r:
            assert r.status == 400
            assert "purge URL" in (await r.json())["error"]


async def test_token_of_the_right_length_but_wrong_is_401(node: Node) -> None:
    async with aiohttp.ClientSession() as s:
        for wrong in ("test-tokeX", "test-toke", "TEST-TOKEN", "test-token" * 2):
            async with s.post(f"http://127.0.0.1:{node.admin_port}/purge/all",
                              headers={"Authorization": f"Bearer {wrong}"}) as r:
                assert r.status == 401, wrong


# --- unsafe settings never start ---------------------------------------------------------
def _serve_fails(args: list[str], env: dict[str, str]) -> str:
    """Run ``edgenode serve`` expecting a refusal.  A node that starts anyway says so in its
    ready banner, which fails the test at once: time is no signal, since on a loaded
    machine even a refusal can take many seconds (the interpreter and wasmtime load first)."""
    proc = subprocess.Popen([sys.executable, "-m", "edgenode", "serve", "--listen", "127.0.0.1:0",
                             "--workers", "1", "--origin", "http://127.0.0.1:9", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    hang = threading.Timer(HANG, proc.kill)  # only a node stuck without a banner gets here
    hang.start()
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("edgenode: serving "):
                raise AssertionError(f"serve {args} started instead of refusing")
            lines.append(line)
        code = proc.wait()
    finally:
        hang.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    err = "".join(lines)
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("args,message", [
    (["--admin-listen", "0.0.0.0:0"], r"admin\.token: required when --admin-listen is not a loopback"),
    (["--admin-listen", "[::]:0"], r"admin\.token: required when --admin-listen is not a loopback"),
    (["--config", "{placeholder}"], r"admin\.token: 'change-me' is a placeholder"),
])
def test_unsafe_admin_settings_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    conf = tmp_path / "node.toml"
    conf.write_text('[admin]\nlisten = "127.0.0.1:0"\ntoken = "change-me"\n'
                    '[origins.default]\nurl = "http://127.0.0.1:9"\n')
    err = _serve_fails([a.format(placeholder=conf) for a in args], _env())
    assert re.match(rf"edgenode: config error: {message}", err), err


@pytest.mark.parametrize("admin,message", [
    ({"listen": "0.0.0.0:9090", "token": "change-me"}, r"^admin\.token: 'change-me' is a placeholder"),
    ({"listen": "10.1.2.3:9090", "token": "short"}, r"^admin\.token: at least 16 characters"),
    ({"listen": "0.0.0.0:9090"}, r"^admin\.token: required when admin\.listen is not a loopback"),
])
def test_unsafe_admin_config_is_an_error(monkeypatch: pytest.MonkeyPatch, admin: dict, message: str) -> None:
    monkeypatch.delenv("EDGENODE_ADMIN_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=message):
        parse_config({"admin": admin, "origins": {"default": {"url": "http://127.0.0.1:9"}}})


def test_loopback_and_long_remote_tokens_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGENODE_ADMIN_TOKEN", raising=False)
    origins = {"default": {"url": "http://127.0.0.1:9"}}
    assert parse_config({"admin": {"listen": "127.0.0.2:9090"}, "origins": origins}).admin.token is None
    remote = parse_config({"admin": {"listen": "0.0.0.0:9090", "token": "x" * 16}, "origins": origins})
    assert remote.admin.token == "x" * 16


def test_loopback_admin_without_token_gets_a_generated_one(tmp_path: Path) -> None:
    """No token on loopback: one is generated, kept in a private file whose path is
    printed at start, required by the API, and removed at exit."""
    env = dict(_env(), XDG_RUNTIME_DIR=str(tmp_path))
    os.chmod(tmp_path, 0o700)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgenode", "serve", "--listen", "127.0.0.1:0", "--workers", "1",
         "--admin-listen", "127.0.0.1:0", "--origin", "http://127.0.0.1:9"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + HANG  # one bound for the whole test, only a stuck node meets it
    hang = threading.Timer(HANG, proc.kill)
    hang.start()
    token_file = admin = None
    printed: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # until the ready banner, or EOF if the node exited
            printed.append(line)
            m = re.match(r"edgenode: admin API token generated for this run .*: (\S+)$", line)
            if m:
                token_file = Path(m.group(1))
            m = re.search(r"admin=(http://127\.0\.0\.1:\d+)", line)
            if m:
                admin = m.group(1)
                break
        assert token_file is not None and admin is not None, "".join(printed)
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its log flowing
        assert token_file.parent == tmp_path / "edgenode"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{admin}/stats", timeout=deadline - time.monotonic())
        assert denied.value.code == 401
        req = urllib.request.Request(f"{admin}/stats", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=deadline - time.monotonic()) as r:
            assert r.status == 200
    finally:
        hang.cancel()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=max(deadline - time.monotonic(), 1.0)) == 0
    assert not token_file.exists()
