#!/usr/bin/env python3
"""Profile the node's request path: py-spy under wrk, and Python frames per request.

For one of bench_proxy's chains (``--chain``, e.g. ``header-shared``) it starts the
origin (``--origin``, as bench_proxy's) and ``edgenode serve`` (one worker), warms a 1 KB
object, then:

* ``py-spy record`` of the worker while wrk sends cache hits (``--miss``: misses): the functions with the
  most samples, by own time and with their callees (``--top``), and the collapsed
  stacks (``--out``, for flamegraph tools);
* ``--count N``: the same chain in this process (``Node``, a real socket on 127.0.0.1),
  N hits on one keep-alive connection, counting the Python frames the server side runs
  per request (by package), the coroutines among them and the tasks created.

    python benchmarks/profile_proxy.py --chain header-shared --seconds 10 --count 2000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_proxy import CHAINS, HOST, MISS_LUA, ORIGINS, launch_edgenode, probe, start_origin, stop  # noqa: E402

from edgenode.bench.loadgen import run_wrk  # noqa: E402
from edgenode.frontend.server import install_event_loop  # noqa: E402

PATH = "/obj/profile-1k?size=1k&ttl=3600"
CO_COROUTINE = 0x80


def pyspy(pid: int, seconds: float, port: int, out: Path, connections: int,
          miss: bool) -> tuple[collections.Counter, collections.Counter, int]:
    """Record ``pid`` while wrk runs (hits, or ``miss``: a new URL per request);
    (own samples, inclusive samples) by function, total."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).is_file():
        raise SystemExit("profile_proxy: py-spy not found; install it with: .venv/bin/pip install -e '.[profile]'")
    spy = subprocess.Popen([exe,
                            "record", "--pid", str(pid), "--rate", "500", "--format", "raw",
                            "--duration", str(int(seconds)), "--output", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    if miss:
        script = out.with_suffix(".lua")
        script.write_text(MISS_LUA)
        run_wrk(f"http://{HOST}:{port}/", connections=connections, duration=seconds, script=script,
                script_args=["profile-miss", "1k"])
    else:
        run_wrk(f"http://{HOST}:{port}{PATH}", connections=connections, duration=seconds)
    _, err = spy.communicate(timeout=seconds + 30)
    if not out.exists():
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-1000:]}")
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        count = int(n)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    return own, incl, total


async def count_frames(chain: str, origin_port: int, n: int, run_dir: Path) -> dict:
    """Python frames, coroutines and tasks per request on the server side of ``n`` hits."""
    from edgenode.config import load_config
    from edgenode.node import Node

    launch_dir = run_dir / "count"
    launch_dir.mkdir()
    conf = launch_dir / "node.toml"
    conf.write_text(f"""[server]\nlisten = "{HOST}:0"\nstate_dir = "{launch_dir / 'state'}"\n[admin]\nlisten = "off"\n
[cache]\nstore = "memory"\n[origins.default]\nurl = "http://{HOST}:{origin_port}"\n{CHAINS[chain]}\n[[chain]]\ntype = "cache"\n[log]\naccess = "off"\n""")
    node = Node(load_config(conf))
    await node.start(HOST, 0)
    reader, writer = await asyncio.open_connection(HOST, node.port)
    req = f"GET {PATH} HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n".encode()

    async def one() -> None:
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)

    for _ in range(50):
        await one()
    me = Path(__file__).resolve().as_posix()
    frames: collections.Counter = collections.Counter()
    coroutines = 0
    tasks = 0
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()

    def count_task(lp: asyncio.AbstractEventLoop, coro, **kw):  # type: ignore[no-untyped-def]
        nonlocal tasks
        tasks += 1
        return asyncio.Task(coro, loop=lp, **kw)

    def hook(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal coroutines
        if event != "call":
            return
        code = frame.f_code
        fn = code.co_filename
        if fn == me or "/asyncio/streams.py" in fn:
            return  # the client's side
        pkg = "edgenode" if "/edgenode/" in fn else ("asyncio" if "/asyncio/" in fn else "other")
        frames[pkg] += 1
        if code.co_flags & CO_COROUTINE:
            coroutines += 1

    loop.set_task_factory(count_task)
    sys.setprofile(hook)
    try:
        for _ in range(n):
            await one()
    finally:
        sys.setprofile(None)
        loop.set_task_factory(factory)
    writer.close()
    await node.stop(1.0)
    per = {k: round(v / n, 2) for k, v in sorted(frames.items())}
    return {"python_frames_per_request": round(sum(frames.values()) / n, 2), "by_package": per,
            "coroutine_frames_per_request": round(coroutines / n, 2),
            "tasks_per_request": round(tasks / n, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chain", default="edgenode", choices=sorted(CHAINS))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--miss", action="store_true", help="profile 1 KB misses (a new URL per request)")
    parser.add_argument("--count", type=int, default=0, metavar="N", help="count frames over N hits (0: skip)")
    parser.add_argument("--out", type=Path, help="collapsed stacks (default: a temp file)")
    parser.add_argument("--origin", choices=tuple(ORIGINS), default="nginx", help="as bench_proxy.py's --origin")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgenode-profile-") as tmp:
        run_dir = Path(tmp)
        origin = start_origin(run_dir, args.origin)
        origin_port = origin.port
        try:
            if args.count:
                install_event_loop()
                print(asyncio.run(count_frames(args.chain, origin_port, args.count, run_dir)))
            if args.seconds > 0:
                tdir = run_dir / "node"
                tdir.mkdir()
                target = launch_edgenode(origin_port, 1, tdir, chain=CHAINS[args.chain], pin="0")
                try:
                    print(asyncio.run(probe(target.port, [PATH], warm=True)))
                    out = args.out or run_dir / "stacks.txt"
                    own, incl, total = pyspy(target.proc.pid, args.seconds, target.port,
                                             out, args.connections, args.miss)
                finally:
                    stop(target.proc)
                print(f"{total} samples; own time:")
                for f, c in own.most_common(args.top):
                    print(f"{100 * c / total:6.1f}%  {f}")
                print("inclusive:")
                for f, c in incl.most_common(args.top):
                    print(f"{100 * c / total:6.1f}%  {f}")
        finally:
            stop(origin.proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
