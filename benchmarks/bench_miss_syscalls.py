#!/usr/bin/env python3
"""A 1 KB miss's kernel side: user vs system CPU and system calls per request.

Starts the bench origin, nginx and edgenode (cache only, one worker, each pinned like
``bench_proxy.py``) and runs wrk's miss load (a new URL per request) against each.  Per
target it reports the server tree's user and system CPU per request (/proc utime and
stime over the load, in all and by process and thread of the tree), then, in a second
and shorter load with ``strace -c -f`` attached to every process of the tree, the system calls per request by name (strace slows the
server, so only its counts are read, never its times), and in a third the context
switches and page faults per request (``perf stat``).  Prints a table and writes JSON.

    flock /tmp/bench.lock python benchmarks/bench_miss_syscalls.py --duration 4
    flock /tmp/bench.lock python benchmarks/bench_miss_syscalls.py --root /path/to/other/checkout
    flock /tmp/bench.lock python benchmarks/bench_miss_syscalls.py --origin nginx
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import bench_proxy as bp  # noqa: E402
from edgenode.bench.loadgen import run_wrk  # noqa: E402

#: software events (the benchmark machine is a VM without hardware counters)
PERF_EVENTS = "context-switches,page-faults"
_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$")


def miss_load(target: bp.Target, tag: str, duration: float, connections: int,
              script: Path) -> int:
    result = run_wrk(f"http://{bp.HOST}:{target.port}/", connections=connections,
                     duration=duration, threads=2, script=script, script_args=[tag, "1k"])
    return result.requests


def thread_times(root: int) -> dict[str, tuple[int, int]]:
    """utime and stime (clock ticks) of every thread of ``root``'s tree, by "pid/tid comm"."""
    out = {}
    for pid in bp.tree_pids(root):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            fields = raw[raw.rfind(")") + 2:].split()
            out[f"{pid}/{tid} {raw[raw.find('(') + 1:raw.rfind(')')]}"] = (int(fields[11]), int(fields[12]))
    return out


def parse_strace(text: str) -> dict[str, int]:
    """``strace -c`` summary rows -> calls per system call."""
    calls = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m and m.group(3) != "total":
            calls[m.group(3)] = int(m.group(1))
    return calls


def measure(target: bp.Target, origin: bp.Origin, args: argparse.Namespace, script: Path) -> dict:
    out: dict = {"note": target.note}
    origin.fetches()
    t0 = thread_times(target.proc.pid)
    u0, s0 = bp.tree_user_sys(target.proc.pid)
    n = miss_load(target, f"cpu-{target.name}", args.duration, args.connections, script)
    u1, s1 = bp.tree_user_sys(target.proc.pid)
    t1 = thread_times(target.proc.pid)
    out["requests"] = n
    out["origin_fetches_per_request"] = round(origin.fetches() / n, 3)
    out["user_us"] = round((u1 - u0) * 1e6 / n, 1)
    out["sys_us"] = round((s1 - s0) * 1e6 / n, 1)
    # which process and thread of the tree the CPU went to (a supervisor, a writer thread)
    out["threads_user_sys_us"] = {
        name: [round((u - t0.get(name, (0, 0))[0]) * 1e6 / bp.CLK_TCK / n, 1),
               round((y - t0.get(name, (0, 0))[1]) * 1e6 / bp.CLK_TCK / n, 1)]
        for name, (u, y) in t1.items() if (u, y) != t0.get(name, (0, 0))}
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as log:
        cmd = ["strace", "-c", "-f", "-o", log.name]
        for pid in bp.tree_pids(target.proc.pid):
            cmd += ["-p", str(pid)]
        tracer = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached before the load starts
        n = miss_load(target, f"strace-{target.name}", args.strace_duration, args.connections, script)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        calls = parse_strace(Path(log.name).read_text())
    out["traced_requests"] = n
    out["syscalls_per_request"] = {k: round(v / n, 2) for k, v in
                                   sorted(calls.items(), key=lambda kv: -kv[1]) if v / n >= 0.01}
    out["syscalls_total_per_request"] = round(sum(calls.values()) / n, 2)
    pids = ",".join(map(str, bp.tree_pids(target.proc.pid)))
    with tempfile.NamedTemporaryFile("r", suffix=".perf") as log:
        counter = subprocess.Popen(["perf", "stat", "-x", ",", "-o", log.name, "-e", PERF_EVENTS,
                                    "-p", pids], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        n = miss_load(target, f"perf-{target.name}", args.duration, args.connections, script)
        counter.send_signal(signal.SIGINT)
        counter.wait(timeout=30)
        for line in Path(log.name).read_text().splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[2] in PERF_EVENTS.split(",") and parts[0].isdigit():
                out[f"{parts[2]}_per_request"] = round(int(parts[0]) / n, 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of the CPU load")
    parser.add_argument("--strace-duration", type=float, default=3.0, help="seconds of the traced load")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree edgenode runs from")
    parser.add_argument("--pin", default="0")
    parser.add_argument("--origin", choices=tuple(bp.ORIGINS), default="nginx",
                        help="as bench_proxy.py's --origin")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="miss-syscalls-"))
    script = run_dir / "miss.lua"
    script.write_text(bp.MISS_LUA)
    origin = bp.start_origin(run_dir, args.origin)
    origin_port = origin.port
    targets = []
    try:
        targets.append(bp.launch_nginx(origin_port, 1, run_dir, pin=args.pin))
        edge_dir = run_dir / "edgenode"
        edge_dir.mkdir()
        targets.append(bp.launch_edgenode(origin_port, 1, edge_dir, pin=args.pin, root=args.root))
        report = {"root": str(args.root), "origin": bp.ORIGINS[args.origin], "targets": {}}
        for target in targets:
            report["targets"][target.name] = measure(target, origin, args, script)
    finally:
        for target in targets:
            bp.stop(target.proc)
        bp.stop(origin.proc)
    names = sorted({k for t in report["targets"].values() for k in t["syscalls_per_request"]},
                   key=lambda k: -max(t["syscalls_per_request"].get(k, 0)
                                      for t in report["targets"].values()))
    print(f"{'1 KB miss, per request':<28}" + "".join(f"{n:>12}" for n in report["targets"]))
    keys = ["user_us", "sys_us", "origin_fetches_per_request", "syscalls_total_per_request"]
    keys += [f"{e}_per_request" for e in PERF_EVENTS.split(",")]
    for key in keys:
        print(f"{key:<28}" + "".join(f"{t.get(key, '-'):>12}" for t in report["targets"].values()))
    for name in names:
        print(f"  {name:<26}" + "".join(f"{t['syscalls_per_request'].get(name, 0):>12}"
                                        for t in report["targets"].values()))
    for name, target in report["targets"].items():
        for thread, (user, system) in target["threads_user_sys_us"].items():
            print(f"  {name} {thread}: {user} user + {system} system µs per request")
    out = args.output or bp.RESULTS / f"miss-syscalls-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
