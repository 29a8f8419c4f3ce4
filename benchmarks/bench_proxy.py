#!/usr/bin/env python3
"""Proxy benchmark: edgenode against nginx and Varnish, same origin, same worker count.

For a 1 KB and a 100 KB object it measures cache-hit and cache-miss requests/s,
p50/p99 latency and server CPU per request (utime+stime of the proxy's whole process
tree from /proc, before/after).  Misses use ``Cache-Control: no-store`` origin
answers so every request reaches the origin while wrk (no Lua) can still be used.
The reference servers are optional: run benchmarks/setup_reference.sh to install
them.  Prints a table and writes benchmarks/results/proxy-<timestamp>.json.

With ``--hit-ratio-workers N`` it also measures what more workers cost in hit ratio: the
same seeded Zipf workload (the demo mix of ``edgenode.bench.workload``) runs against a
cold edgenode with 1 worker and with N workers, and the report gives each run's hit
ratio and origin requests (the origin's own counter) and the difference.

    python benchmarks/bench_proxy.py --workers 1 --duration 5
    python benchmarks/bench_proxy.py --targets "" --hit-ratio-workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgenode.bench.loadgen import LoadResult, run_load, run_wrk, wrk_available  # noqa: E402
from edgenode.bench.workload import run_demo_workload  # noqa: E402

REFERENCE = ROOT / "benchmarks" / "reference"
RESULTS = ROOT / "benchmarks" / "results"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: (object size, cache mode) measured for every target
LOADS = tuple((size, mode) for size in ("1k", "100k") for mode in ("hit", "miss", "nostore"))
TARGET_RATIO = 0.75  # edgenode 1 KB hits must reach this share of nginx's req/s


@dataclass
class Target:
    name: str
    proc: subprocess.Popen
    port: int
    note: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, port: int, logs: list[Path], timeout: float = 20.0) -> None:
    """Wait until ``port`` accepts connections; fail with the server's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    tail = "\n".join(p.read_text(errors="replace")[-1500:] for p in logs if p.exists())
    stop(proc)
    state = f"exited with {proc.returncode}" if proc.returncode is not None else "not listening"
    raise RuntimeError(f"{state} on port {port}:\n{tail.strip()}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it was started in its own session), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and all its live descendants, plus reaped children's times."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()  # after "pid (comm) "
        stats[int(entry)] = fields
        parents[int(entry)] = int(fields[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        cur = frontier.pop()
        for child, parent in parents.items():
            if parent == cur and child not in tree:
                tree.add(child)
                frontier.append(child)
    ticks = 0
    for p in tree:
        f = stats.get(p)
        if f:  # fields 14..17 of stat (utime stime cutime cstime) are 11..14 here
            ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def spawn(cmd: list[str], run_dir: Path, name: str) -> tuple[subprocess.Popen, list[Path]]:
    out, err = run_dir / f"{name}.out", run_dir / f"{name}.err"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    proc = subprocess.Popen(cmd, stdout=out.open("w"), stderr=err.open("w"), env=env,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=run_dir)
    return proc, [out, err]


def start_origin(run_dir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc, logs = spawn([sys.executable, "-m", "edgenode.origin", "--listen", f"{HOST}:{port}",
                        "--max-age", "3600"], run_dir, "origin")
    wait_ready(proc, port, logs)
    return proc, port


def launch_edgenode(origin_port: int, workers: int, run_dir: Path, store: str = "lmdb",
                    name: str = "edgenode", cache: str = "") -> Target:
    """``python -m edgenode serve`` with a generated config: cache only, no admin, no log,
    a cold ``store`` in ``run_dir`` (``cache``: more ``[cache]`` lines)."""
    port = free_port()
    config = run_dir / "edgenode.toml"
    config.write_text(f"""\
[server]
listen = "{HOST}:{port}"
workers = {workers}
state_dir = "{run_dir / 'state'}"

[admin]
listen = "off"

[cache]
max_bytes = "2GiB"
store = "{store}"
{cache}

[origins.default]
url = "http://{HOST}:{origin_port}"

[[chain]]
type = "cache"

[log]
access = "off"
""")
    proc, logs = spawn([sys.executable, "-m", "edgenode", "serve", "--config", str(config),
                        "--workers", str(workers)], run_dir, name)
    wait_ready(proc, port, logs)
    wait_banner(proc, logs[1])
    return Target(name, proc, port, f"{workers} worker(s), {store} store")


def wait_banner(proc: subprocess.Popen, err_log: Path, timeout: float = 60.0) -> None:
    """Wait for serve's ready line: the port accepts as soon as the first worker listens,
    and connections opened before the others are up would all stay on that one worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if "edgenode: serving " in err_log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"edgenode did not print its ready line:\n{err_log.read_text(errors='replace')[-1500:]}")


def launch_nginx(origin_port: int, workers: int, run_dir: Path) -> Target:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        raise FileNotFoundError("nginx is not installed (benchmarks/setup_reference.sh)")
    port = free_port()
    nginx_dir = run_dir / "nginx"
    nginx_dir.mkdir()
    shm = Path("/dev/shm")
    cache_dir = Path(tempfile.mkdtemp(prefix="edgenode-nginx-", dir=shm if shm.is_dir() else None))
    conf = (REFERENCE / "nginx.conf").read_text().format(
        user_directive="user root;" if os.geteuid() == 0 else "", workers=workers,
        run_dir=nginx_dir, cache_dir=cache_dir, origin_host=HOST, origin_port=origin_port,
        host=HOST, port=port)
    conf_path = nginx_dir / "nginx.conf"
    conf_path.write_text(conf)
    proc, logs = spawn([binary, "-p", str(nginx_dir), "-c", str(conf_path)], run_dir, "nginx")
    wait_ready(proc, port, logs + [nginx_dir / "error.log"])
    return Target("nginx", proc, port, f"{workers} worker process(es), cache on {cache_dir.parent}")


def launch_varnish(origin_port: int, workers: int, run_dir: Path) -> Target:
    """Varnish is threaded, so 'same worker count' means pinned to ``workers`` CPUs."""
    binary = shutil.which("varnishd") or "/usr/sbin/varnishd"
    if not os.path.exists(binary):
        raise FileNotFoundError("varnishd is not installed (benchmarks/setup_reference.sh)")
    port = free_port()
    vdir = run_dir / "varnish"
    vdir.mkdir()
    vcl = vdir / "default.vcl"
    vcl.write_text((REFERENCE / "default.vcl").read_text().format(origin_host=HOST, origin_port=origin_port))
    for d in (run_dir, vdir):
        os.chmod(d, 0o755)
    cmd = [binary, "-F", "-n", str(vdir / "work"), "-a", f"{HOST}:{port}", "-f", str(vcl),
           "-s", "malloc,2g", "-T", "none"]
    cpus = os.cpu_count() or 1
    note = "threads, all CPUs"
    if shutil.which("taskset") and workers < cpus:
        cmd = ["taskset", "-c", f"0-{workers - 1}"] + cmd
        note = f"threads pinned to {workers} CPU(s)"
    proc, logs = spawn(cmd, run_dir, "varnish")
    wait_ready(proc, port, logs, timeout=30.0)
    return Target("varnish", proc, port, note)


LAUNCHERS = {"edgenode": launch_edgenode, "nginx": launch_nginx, "varnish": launch_varnish}


def load_paths(target: str, size: str, mode: str) -> Iterator[str] | list[str]:
    """hit: one cached URL; miss: a new URL per request (fetched and stored);
    nostore: one URL the origin marks no-store (tests request collapsing on uncacheable content)."""
    if mode == "hit":
        return [f"/obj/bench-{size}?size={size}&ttl=3600"]
    if mode == "nostore":
        return [f"/obj/bench-nostore-{size}?size={size}&cc=no-store"]
    return (f"/obj/bench-miss-{target}-{size}-{i}?size={size}&ttl=3600" for i in itertools.count())


async def probe(port: int, paths: Iterator[str] | list[str], warm: bool) -> str:
    """Optionally warm the object, then report the proxy's cache header for the next response."""
    if warm:  # several connections, so every worker process (SO_REUSEPORT) gets a copy
        await run_load(HOST, port, paths, connections=8, requests=32)
    r = await run_load(HOST, port, paths, connections=1, requests=1,
                       sample_headers=("x-cache", "cache-status"))
    if r.errors or not r.status:
        return f"probe failed: {dict(r.errors) or 'no response'}"
    values = [v for c in r.headers.values() for v in c]
    return values[0] if values else "-"


def measure(target: Target, size: str, mode: str, args: argparse.Namespace) -> dict:
    paths = load_paths(target.name, size, mode)
    cache_header = asyncio.run(probe(target.port, paths, warm=mode != "miss"))
    # wrk without Lua repeats one URL, so unique-URL misses always use the Python generator.
    use_wrk = args.generator == "wrk" and isinstance(paths, list)
    cpu0 = tree_cpu_seconds(target.proc.pid)
    if use_wrk:
        load: LoadResult = run_wrk(f"http://{HOST}:{target.port}{paths[0]}", connections=args.connections,
                                   duration=args.duration, threads=args.wrk_threads)
    else:
        load = asyncio.run(run_load(HOST, target.port, paths, connections=args.connections,
                                    duration=args.duration))
    cpu1 = tree_cpu_seconds(target.proc.pid)
    out = load.summary()
    out["cache_header"] = cache_header
    out["cpu_s"] = round(cpu1 - cpu0, 3)
    out["cpu_us_per_request"] = round((cpu1 - cpu0) * 1e6 / load.requests, 1) if load.requests else None
    return out


def measure_worker_hit_ratio(origin_port: int, workers: int, run_dir: Path,
                             args: argparse.Namespace) -> dict:
    """The same seeded Zipf workload against a cold node with 1 and with ``workers`` workers,
    once per request count: hit ratio and origin requests of each run, and the cost."""
    out: dict = {"workload": {"mix": "edgenode.bench.workload.demo_paths (Zipf s=1.0, seed 1)",
                              "objects": args.hit_ratio_objects, "connections": args.connections,
                              "cache": "one lmdb store shared by the workers"},
                 "runs": []}
    for count in args.hit_ratio_requests:
        row: dict = {"requests": count, "by_workers": {}}
        for n in (1, workers):
            tdir = run_dir / f"hit-ratio-{count}-w{n}"
            tdir.mkdir()
            target = launch_edgenode(origin_port, n, tdir)
            print(f"edgenode hit ratio: {count} requests, {n} worker(s) ...", file=sys.stderr, flush=True)
            try:
                r = asyncio.run(run_demo_workload(
                    f"http://{HOST}:{target.port}", count, origin_url=f"http://{HOST}:{origin_port}",
                    connections=args.connections, objects=args.hit_ratio_objects, seed=1))
            finally:
                stop(target.proc)
            row["by_workers"][str(n)] = {k: r[k] for k in (
                "requests", "hits", "misses", "unclassified", "hit_ratio", "origin_requests", "rps", "errors")}
        one, many = row["by_workers"]["1"], row["by_workers"][str(workers)]
        if one["hit_ratio"] is not None and many["hit_ratio"] is not None:
            row["hit_ratio_cost_points"] = round(100 * (one["hit_ratio"] - many["hit_ratio"]), 2)
        if one["origin_requests"] and many["origin_requests"] is not None:
            row["extra_origin_requests"] = many["origin_requests"] - one["origin_requests"]
            row["origin_requests_ratio"] = round(many["origin_requests"] / one["origin_requests"], 3)
        out["runs"].append(row)
    return out


def print_hit_ratio(section: dict, workers: int) -> None:
    w = section["workload"]
    print(f"\nworkers: hit-ratio cost (demo Zipf mix, {w['objects']} objects, "
          f"{w['connections']} connections, cold caches)")
    head = (f"{'requests':>9} {'workers':>7} {'hit ratio':>9} {'origin req':>10} {'req/s':>8} {'errors':>6}"
            f"  cost vs 1 worker")
    print(head)
    print("-" * len(head))
    for row in section["runs"]:
        for n in ("1", str(workers)):
            r = row["by_workers"][n]
            cost = "" if n == "1" else (
                f"-{fmt(row.get('hit_ratio_cost_points'), '.2f')} pts, "
                f"+{fmt(row.get('extra_origin_requests'), 'd')} origin req "
                f"(x{fmt(row.get('origin_requests_ratio'), '.2f')})")
            ratio_s = fmt(r["hit_ratio"] * 100 if r["hit_ratio"] is not None else None, ".2f")
            print(f"{row['requests']:>9} {n:>7} {ratio_s + '%':>9} {fmt(r['origin_requests'], 'd'):>10} "
                  f"{r['rps']:>8,.0f} {sum(r['errors'].values()):>6}  {cost}")


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 3)


def fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(report: dict) -> None:
    print(f"\nload generator: {report['generator']}, {report['connections']} connections, "
          f"{report['duration_s']} s per load, workers={report['workers']}, "
          f"{report['machine']['cpus']} CPUs")
    head = f"{'target':<9} {'object':<6} {'mode':<5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} " \
           f"{'CPU us/req':>10} {'errors':>7}  cache header"
    print(head)
    print("-" * len(head))
    for name, t in report["targets"].items():
        if "error" in t:
            print(f"{name:<9} failed to start: {t['error'].splitlines()[0]}")
            continue
        for key, r in t["loads"].items():
            size, mode = key.split("-")
            lat = r["latency_us"]
            p50 = lat.get("p50") / 1000 if lat.get("p50") is not None else None
            p99 = lat.get("p99") / 1000 if lat.get("p99") is not None else None
            errors = sum(r["errors"].values()) + sum(v for k, v in r["status"].items()
                                                     if k not in ("200", "2xx/3xx"))
            print(f"{name:<9} {size:<6} {mode:<5} {r['rps']:>10,.0f} {fmt(p50, '.2f'):>8} "
                  f"{fmt(p99, '.2f'):>8} {fmt(r['cpu_us_per_request'], '.1f'):>10} {errors:>7}  "
                  f"{r['cache_header']}")
    for pair, loads in report["ratios"].items():
        print(f"\n{pair}: " + ", ".join(
            f"{k} req/s x{fmt(v['rps'], '.2f')} CPU/req x{fmt(v['cpu_per_request'], '.2f')}"
            for k, v in loads.items()))
    check = report.get("target_check")
    if check:
        verdict = "n/a" if check["ratio"] is None else ("MET" if check["met"] else "NOT MET")
        print(f"\ntarget: 1 KB cache hits >= {TARGET_RATIO}x nginx req/s: "
              f"{fmt(check['ratio'], '.2f')}x -> {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="worker processes per proxy")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--targets", default="edgenode,nginx,varnish",
                        help="comma-separated subset of edgenode,nginx,varnish")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/proxy-<ts>.json)")
    parser.add_argument("--hit-ratio-workers", type=int, default=0, metavar="N",
                        help="also compare the hit ratio of 1 and N edgenode workers (0: skip)")
    parser.add_argument("--hit-ratio-requests", default="5000,20000,100000",
                        help="comma-separated request counts of the hit-ratio runs")
    parser.add_argument("--hit-ratio-objects", type=int, default=200, help="objects in the Zipf catalogue")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.hit_ratio_workers == 1 or args.hit_ratio_workers < 0:
        parser.error("--hit-ratio-workers must be 0 (skip) or at least 2")
    try:
        args.hit_ratio_requests = [int(v) for v in args.hit_ratio_requests.split(",") if v.strip()]
    except ValueError:
        parser.error("--hit-ratio-requests: expected comma-separated integers")
    if not args.hit_ratio_requests or min(args.hit_ratio_requests) < 1 or args.hit_ratio_objects < 1:
        parser.error("--hit-ratio-requests and --hit-ratio-objects must be positive")
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in names if n not in LAUNCHERS]
    if unknown:
        parser.error(f"--targets: unknown target(s) {', '.join(unknown)}")
    if args.generator == "auto":
        args.generator = "wrk" if wrk_available() else "python"
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass

    stamp = time.strftime("%Y%m%d-%H%M%S")
    report: dict = {
        "timestamp": stamp, "workers": args.workers, "duration_s": args.duration,
        "connections": args.connections, "generator": args.generator,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "modes": {"hit": "one cached URL",
                  "miss": "a new URL per request, stored (always the Python generator)",
                  "nostore": "one URL the origin answers with Cache-Control: no-store"},
        "targets": {}, "ratios": {},
    }
    with tempfile.TemporaryDirectory(prefix="edgenode-bench-") as tmp:
        run_dir = Path(tmp)
        os.chmod(run_dir, 0o755)  # varnishd's unprivileged child must reach its work dir
        origin, origin_port = start_origin(run_dir)
        report["origin"] = f"edgenode.origin on port {origin_port} (1 process)"
        try:
            for name in names:
                tdir = run_dir / name
                tdir.mkdir()
                try:
                    target = LAUNCHERS[name](origin_port, args.workers, tdir)
                except (RuntimeError, OSError) as exc:
                    report["targets"][name] = {"error": str(exc)}
                    print(f"{name}: not measured: {str(exc).splitlines()[0]}", file=sys.stderr)
                    continue
                try:
                    loads = {}
                    for size, mode in LOADS:
                        print(f"{name}: {size} {mode} ...", file=sys.stderr, flush=True)
                        loads[f"{size}-{mode}"] = measure(target, size, mode, args)
                    report["targets"][name] = {"note": target.note, "loads": loads}
                finally:
                    stop(target.proc)
            if args.hit_ratio_workers:
                report["workers_hit_ratio"] = measure_worker_hit_ratio(
                    origin_port, args.hit_ratio_workers, run_dir, args)
        finally:
            stop(origin)

    measured = {n: t["loads"] for n, t in report["targets"].items() if "loads" in t}
    if "nginx" in measured:
        for other in ("edgenode", "varnish"):
            if other in measured:
                report["ratios"][f"{other}/nginx"] = {
                    k: {"rps": ratio(measured[other][k]["rps"], v["rps"]),
                        "cpu_per_request": ratio(measured[other][k]["cpu_us_per_request"],
                                                 v["cpu_us_per_request"])}
                    for k, v in measured["nginx"].items()}
        if "edgenode" in measured:
            r = report["ratios"]["edgenode/nginx"]["1k-hit"]["rps"]
            report["target_check"] = {"what": f"1 KB cache hits >= {TARGET_RATIO}x nginx req/s",
                                      "ratio": r, "met": r is not None and r >= TARGET_RATIO}
    if report["targets"]:
        print_table(report)
    if "workers_hit_ratio" in report:
        print_hit_ratio(report["workers_hit_ratio"], args.hit_ratio_workers)
    write_report(report, args.output or RESULTS / f"proxy-{stamp}.json")
    return 0


def write_report(report: dict, out: Path) -> None:
    """The JSON next to the printed table (benchmarks/results/ by default)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    raise SystemExit(main())
