"""Front-end micro-benchmark: CPU per request for a 1 KB in-memory (cache-hit-like) reply.

Runs the FrontEnd in a child process with a trivial handler that returns a prebuilt
1 KB ``bytes`` response, drives it with wrk (keep-alive) from 127.0.0.1, and reads the
child's CPU time from /proc.  When nginx is installed, the same is measured for nginx
(one worker, a 1 KB static file) so the ratio to the 0.75x goal is visible.

    python benchmarks/bench_frontend.py [--duration 5] [--connections 32]

Prints a table and writes benchmarks/results/bench_frontend.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BODY = b"x" * 1024


def serve(port_file: str, loop_kind: str) -> None:
    """Child process: run the front end until SIGTERM."""
    sys.path.insert(0, str(ROOT))
    from multidict import CIMultiDict

    from edgenode.config import ServerConfig
    from edgenode.http.messages import Response
    from edgenode.frontend.server import FrontEnd, install_event_loop

    if loop_kind == "uvloop":
        install_event_loop()
    headers = CIMultiDict({"Content-Type": "text/plain", "Cache-Control": "max-age=60",
                           "ETag": '"abc123"', "X-Cache": "HIT", "Age": "1"})
    response = Response(200, headers, BODY)

    async def handler(exchange):  # noqa: ANN001 - the chain's Handler signature
        return response

    async def main() -> None:
        fe = FrontEnd(handler, ServerConfig())
        await fe.start("127.0.0.1", 0)
        Path(port_file).write_text(str(fe.port))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await fe.shutdown(1.0)

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def run_wrk(url: str, duration: int, connections: int) -> float:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    return float(m.group(1))


def measure(pids: list[int], url: str, duration: int, connections: int) -> dict[str, float]:
    run_wrk(url, 1, connections)  # warm-up
    cpu0 = sum(cpu_seconds(p) for p in pids)
    t0 = time.monotonic()
    requests = run_wrk(url, duration, connections)
    wall = time.monotonic() - t0
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    return {"requests": requests, "req_per_s": requests / wall,
            "cpu_us_per_req": cpu / requests * 1e6, "cpu_util": cpu / wall}


def bench_edgenode(loop_kind: str, duration: int, connections: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        child = subprocess.Popen([sys.executable, __file__, "--serve", port_file, "--loop", loop_kind])
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(port_file) or not Path(port_file).read_text():
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError("front end did not start")
                time.sleep(0.05)
            port = int(Path(port_file).read_text())
            wait_port(port)
            return measure([child.pid], f"http://127.0.0.1:{port}/hit", duration, connections)
        finally:
            child.terminate()
            child.wait(10)


def bench_nginx(duration: int, connections: int) -> dict[str, float] | None:
    nginx = shutil.which("nginx")
    if nginx is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        Path(tmp, "www").mkdir()
        Path(tmp, "www", "hit").write_bytes(BODY)
        conf = Path(tmp, "nginx.conf")
        conf.write_text(f"""
worker_processes 1; daemon off; master_process off; pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; root {tmp}/www; }} }}
""")
        child = subprocess.Popen([nginx, "-c", str(conf), "-p", tmp],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            return measure([child.pid], f"http://127.0.0.1:{port}/hit", duration, connections)
        finally:
            child.terminate()
            child.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.loop)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    rows: dict[str, dict[str, float] | None] = {
        "edgenode FrontEnd (uvloop)": bench_edgenode("uvloop", args.duration, args.connections),
        "edgenode FrontEnd (asyncio)": bench_edgenode("asyncio", args.duration, args.connections),
        "nginx static, 1 worker": bench_nginx(args.duration, args.connections),
    }
    print(f"1 KB in-memory response, wrk -t1 -c{args.connections} -d{args.duration}s, 127.0.0.1")
    print(f"{'server':<30} {'req/s':>10} {'CPU us/req':>11} {'CPU util':>9}")
    for name, row in rows.items():
        if row is None:
            print(f"{name:<30} {'n/a':>10}")
            continue
        print(f"{name:<30} {row['req_per_s']:>10.0f} {row['cpu_us_per_req']:>11.1f} "
              f"{row['cpu_util']:>9.2f}")
    nginx = rows["nginx static, 1 worker"]
    ours = rows["edgenode FrontEnd (uvloop)"]
    if nginx and ours:
        print(f"req/s ratio edgenode(uvloop)/nginx: {ours['req_per_s'] / nginx['req_per_s']:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_frontend.json"
    out.write_text(json.dumps({"duration_s": args.duration, "connections": args.connections,
                               "body_bytes": len(BODY), "results": rows}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
