"""``edgenode serve`` as a real process: start-up errors, listening sockets, and memory
over a burst of malformed requests."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from serve_process import BOUND, REPO, serving

ENV = dict(os.environ, PYTHONPATH=str(REPO))

CACHE_ONLY = """
[server]
listen = "127.0.0.1:{port}"
workers = {workers}
[admin]
listen = "off"
[origins.default]
url = "http://127.0.0.1:9"
[[chain]]
type = "cache"
[log]
access = "off"
"""


def _rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) * 1024  # type: ignore[union-attr]


async def _malformed_burst(port: int, connections: int) -> list[bytes]:
    """``connections`` clients, 50 at a time: a malformed head, 64 KiB more, then read."""
    async def one(i: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /x%d HTTP/1.1\r\nHost: a\r\nBad Header: %d\r\n\r\n" % (i, i))
            writer.write(b"z" * 65536)
            await writer.drain()
            return await asyncio.wait_for(reader.read(), BOUND)
        except ConnectionError:
            return b""
        finally:
            writer.close()

    answers: list[bytes] = []
    for start in range(0, connections, 50):
        answers += await asyncio.gather(*(one(i) for i in range(start, min(connections, start + 50))))
    return answers


def test_memory_returns_after_a_burst_of_malformed_requests(tmp_path: Path) -> None:
    """Every malformed request gets its 400 (lingering close), and the node's RSS after a
    burst is within 10% of its level before it (a first burst warms the allocator)."""
    conf = tmp_path / "node.toml"
    conf.write_text(CACHE_ONLY.format(port=0, workers=1))
    with serving("--config", str(conf)) as served:
        asyncio.run(_malformed_burst(served.port, 400))
        asyncio.run(asyncio.sleep(0.5))
        before = _rss(served.proc.pid)
        answers = asyncio.run(_malformed_burst(served.port, 400))
        asyncio.run(asyncio.sleep(0.5))
        after = _rss(served.proc.pid)
    assert all(a.startswith(b"HTTP/1.1 400 ") for a in answers)
    assert after <= before * 1.10, (before, after)


def _serve_refused(conf: Path, *args: str) -> str:
    """``edgenode serve`` that must refuse to start: exit 2, one line, no traceback.  Its
    cache store is its own (not the user's default one, which a node of another format
    would wipe with a log line of its own)."""
    env = dict(ENV, EDGENODE_STATE_DIR=str(conf.parent / "state"))
    try:
        out = subprocess.run([sys.executable, "-m", "edgenode", "serve", "--config", str(conf), *args],
                             capture_output=True, text=True, env=env, timeout=BOUND)
    except subprocess.TimeoutExpired:
        raise AssertionError("serve started instead of refusing") from None
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path, workers: int) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    conf = tmp_path / "node.toml"
    conf.write_text(CACHE_ONLY.format(port=port, workers=workers))
    try:
        err = _serve_refused(conf)
    finally:
        taken.close()
    assert err == (f"edgenode: server.listen: cannot listen on 127.0.0.1:{port}: the address is "
                   "already in use (another edgenode, or another server?)\n")


def test_admin_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    conf = tmp_path / "node.toml"
    conf.write_text(CACHE_ONLY.format(port=0, workers=1).replace(
        'listen = "off"', f'listen = "127.0.0.1:{port}"\ntoken = "admin-test-token"'))
    try:
        err = _serve_refused(conf)
    finally:
        taken.close()
    assert err.startswith(f"edgenode: admin.listen: cannot listen on 127.0.0.1:{port}: ")


def test_second_node_never_shares_a_workers_port(tmp_path: Path) -> None:
    """Workers share their port through SO_REUSEPORT; a second node asking for that
    port (with workers too, admin off) is refused instead of silently taking half the
    traffic."""
    first = tmp_path / "first.toml"
    first.write_text(CACHE_ONLY.format(port=0, workers=2))
    with serving("--config", str(first)) as served:
        port = served.port
        second = tmp_path / "second.toml"
        second.write_text(CACHE_ONLY.format(port=port, workers=2))
        err = _serve_refused(second)
        assert f"server.listen: cannot listen on 127.0.0.1:{port}: the address is already in use" in err


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "edgenode", "--version"], capture_output=True,
                         text=True, env=ENV, timeout=BOUND)
    assert out.returncode == 0 and re.fullmatch(r"edgenode \d+\.\d+\.\d+\n", out.stdout)
