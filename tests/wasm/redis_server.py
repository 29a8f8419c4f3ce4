"""A real redis-server (Debian's package) on 127.0.0.1 for the Redis callout tests: started
on a free port with persistence off, stopped (or killed) by the test (a plain module:
tests/ is not a package)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, workdir: Path, password: str = "") -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server; make system)")
        self.password = password
        for _ in range(5):  # the port may be taken between probing and binding
            self.port = _free_port()
            args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(workdir), "--enable-debug-command", "local"]
            if password:
                args += ["--requirepass", password]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._ready():
                return
            self.stop()
        raise RuntimeError("redis-server did not start")

    def _ready(self) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                self.command("PING")
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def command(self, *args: str, db: int = 0) -> bytes:
        """One command over a fresh connection (after AUTH and SELECT db); returns the
        raw replies of all of them."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            cmds = ([["AUTH", self.password]] if self.password else []) + [["SELECT", str(db)], list(args)]
            data = b""
            for cmd in cmds:
                data += b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in cmd)
            s.sendall(data)
            time.sleep(0.02)
            return s.recv(65536)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
