#!/usr/bin/env python3
"""Proxy benchmark: edgenode's chains against nginx and Varnish, same origin, same run.

Every target runs at once, each server pinned to one CPU (``--pin``, default CPU 0) and
wrk to the other, and the loads are interleaved: round after round, every target gets
each load in turn, so a ratio compares figures measured minutes apart at most.  The
edgenode targets are the cache alone and the cache behind filters (``CHAINS``: each
built-in filter alone, the header-only filter with a shared VM and with an instance per
request, the default chain without and with the WAF).  Loads: a 1 KB cache hit and a
1 KB miss (a new URL per request, stored; wrk with a Lua script), optionally 100 KB and
no-store ones.  Per load it reports requests/s, latency and server CPU per request
(utime+stime of the server's process tree from /proc, before/after: the steadier
figure), the median over rounds, ratios to nginx, and checks the targets (``TARGETS``).
Every target fetches from the same origin, a process of its own on the load generator's
CPU whose CPU is in no target's figure: by default nginx answering the loads' paths from
files with the simulated origin's caching headers (``--origin nginx``), cheap enough that
on a miss load every proxy runs flat out, so its CPU per request is its own work.  With
``--origin simulated`` (``edgenode.origin``, ~190 µs a request in Python) the origin sets
a miss load's pace and every proxy idles between its answers: a miss then also pays the
refill of the caches after each sleep, more for a larger footprint.  "origin/req" is the
origin's fetches per request during the load (1.00 on a miss load: every request missed,
for nginx as for edgenode), and every proxy keeps its cache on tmpfs (/dev/shm).
``--baseline DIR`` also runs the edgenode targets from another checkout (e.g. the main
branch), with that tree's filter modules, in the same rounds, for before/after tables.  Prints tables and writes
benchmarks/results/proxy-<timestamp>.json.

With ``--hit-ratio-workers N`` it also measures what more workers cost in hit ratio: the
same seeded Zipf workload (the demo mix of ``edgenode.bench.workload``) runs against a
cold edgenode with 1 worker and with N workers, and the report gives each run's hit
ratio and origin requests (the origin's own counter) and the difference.

    python benchmarks/bench_proxy.py --rounds 3 --duration 5
    python benchmarks/bench_proxy.py --chains edgenode,routing --loads 1k-hit --baseline /work/main
    python benchmarks/bench_proxy.py --chains edgenode --loads 1k-miss --origin simulated
    python benchmarks/bench_proxy.py --targets "" --hit-ratio-workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import hashlib
import itertools
import json
import math
import os
import platform
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgenode.bench.loadgen import LoadResult, run_load, run_wrk, wrk_available  # noqa: E402
from edgenode.bench.workload import run_demo_workload  # noqa: E402
from edgenode.origin import content  # noqa: E402

REFERENCE = ROOT / "benchmarks" / "reference"
#: the origins a run can fetch from (``--origin``)
ORIGINS = {"simulated": "edgenode.origin", "nginx": "nginx serving the loads' paths from files"}
RESULTS = ROOT / "benchmarks" / "results"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: (object size, cache mode) measured for every target
LOADS = tuple(f"{size}-{mode}" for size in ("1k", "100k") for mode in ("hit", "miss", "nostore"))
#: (target, load, kind, bound): CPU per request as a multiple of nginx's, or CPU added over
#: the cache alone (µs), medians of the same run
TARGETS = (
    ("edgenode", "1k-hit", "x nginx", 1.0),
    ("edgenode", "1k-miss", "x nginx", 1.2),
    ("routing", "1k-hit", "x nginx", 2.0),
    ("default-no-waf", "1k-hit", "x nginx", 2.5),
    ("header-shared", "1k-hit", "added", 5.0),
    ("header-per-request", "1k-hit", "added", 25.0),
)


@dataclass
class Target:
    name: str
    proc: subprocess.Popen
    port: int
    note: str = ""


@dataclass
class Origin:
    """The one origin every target fetches from: the simulated origin, or nginx serving
    the loads' paths from files (``--origin nginx``)."""
    proc: subprocess.Popen
    port: int
    kind: str = "simulated"
    _seen: int = 0

    def fetches(self) -> int:
        """Requests that reached the origin since the last call."""
        if self.kind == "nginx":  # stub_status counts requests since start, this one included
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/__nginx_status", timeout=30) as r:
                total = int(r.read().decode().splitlines()[2].split()[2])
            got, self._seen = total - self._seen - 1, total
            return got
        req = urllib.request.Request(f"http://{HOST}:{self.port}/__stats")
        with urllib.request.urlopen(req, timeout=30) as r:
            total = json.loads(r.read())["total"]
        reset = urllib.request.Request(f"http://{HOST}:{self.port}/__stats", method="DELETE")
        urllib.request.urlopen(reset, timeout=30).close()
        return total


def tmpfs_dir(prefix: str) -> Path:
    """A fresh directory on tmpfs (/dev/shm) when there is one, removed at exit: every
    proxy keeps its cache there, so the benchmark compares proxies, not disks."""
    shm = Path("/dev/shm")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=shm if shm.is_dir() else None))
    atexit.register(shutil.rmtree, path, True)
    return path


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


def _proc_stats() -> dict[int, list[str]]:
    """Every live process's /proc stat fields after "pid (comm) "."""
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        stats[int(entry)] = raw[raw.rfind(")") + 2:].split()
    return stats


def tree_pids(pid: int, stats: dict[int, list[str]] | None = None) -> list[int]:
    """``pid`` and its live descendants."""
    parents = {p: int(f[1]) for p, f in (stats or _proc_stats()).items()}
    tree, frontier = [pid], [pid]
    while frontier:
        cur = frontier.pop()
        for child, parent in parents.items():
            if parent == cur and child not in tree:
                tree.append(child)
                frontier.append(child)
    return tree


def tree_user_sys(pid: int) -> tuple[float, float]:
    """utime and stime (seconds) of ``pid``'s tree, reaped children's times included."""
    stats = _proc_stats()
    user = system = 0
    for p in tree_pids(pid, stats):
        f = stats.get(p)
        if f:  # fields 14..17 of stat (utime stime cutime cstime) are 11..14 here
            user += int(f[11]) + int(f[13])
            system += int(f[12]) + int(f[14])
    return user / CLK_TCK, system / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and all its live descendants, plus reaped children's times."""
    return sum(tree_user_sys(pid))


def spawn(cmd: list[str], run_dir: Path, name: str, root: Path = ROOT) -> tuple[subprocess.Popen, list[Path]]:
    out, err = run_dir / f"{name}.out", run_dir / f"{name}.err"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    if root != ROOT:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave the other checkout as it is
    proc = subprocess.Popen(cmd, stdout=out.open("w"), stderr=err.open("w"), env=env,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=run_dir)
    return proc, [out, err]


def start_origin(run_dir: Path, kind: str = "simulated") -> Origin:
    port = free_port()
    if kind == "nginx":
        return start_nginx_origin(run_dir, port)
    proc, logs = spawn([sys.executable, "-m", "edgenode.origin", "--listen", f"{HOST}:{port}",
                        "--max-age", "3600"], run_dir, "origin")
    wait_ready(proc, port, logs)
    return Origin(proc, port)


def start_nginx_origin(run_dir: Path, port: int) -> Origin:
    """nginx answering /obj/NAME?size=1k|100k from one file per size, with the simulated
    origin's Cache-Control, Surrogate-Key and Repr-Digest: an origin cheap enough that the
    proxies run flat out instead of idling between its answers."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        raise FileNotFoundError("nginx is not installed (benchmarks/setup_reference.sh)")
    odir = run_dir / "origin-nginx"
    data = odir / "data"
    data.mkdir(parents=True)
    digests = {}
    for size, nbytes in (("1k", 1024), ("100k", 100 * 1024)):
        body = content.object_body("bench", nbytes)
        (data / size).write_bytes(body)
        digests[size] = f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"
    os.chmod(run_dir, 0o755)
    for d in (odir, data):
        os.chmod(d, 0o755)
    conf = (REFERENCE / "origin-nginx.conf").read_text().format(
        user_directive="user root;" if os.geteuid() == 0 else "", run_dir=odir, data_dir=data,
        host=HOST, port=port, digest_1k=digests["1k"], digest_100k=digests["100k"])
    conf_path = odir / "nginx.conf"
    conf_path.write_text(conf)
    proc, logs = spawn([binary, "-p", str(odir), "-c", str(conf_path)], run_dir, "origin")
    wait_ready(proc, port, logs + [odir / "error.log"])
    origin = Origin(proc, port, "nginx")
    origin.fetches()
    return origin


#: edgenode chains measured beside nginx: name -> the ``[[chain]]`` stages before the cache
#: (TOML, module paths absolute); every chain ends with the cache stage
_ROUTING = f"""[[chain]]
type = "wasm"
name = "routing"
module = "{ROOT / 'filters/build/routing.wasm'}"
config = {{ default_origin = "default", routes = [ {{ name = "health", match = {{ path_prefix = "/edge-health" }}, respond = {{ status = 200, body = "ok" }} }} ] }}
"""
_WAF = f"""[[chain]]
type = "wasm"
name = "waf"
module = "{ROOT / 'filters/build/waf.wasm'}"
config = {{ mode = "block" }}
"""
_IMAGE_ACCEPT = f"""[[chain]]
type = "wasm"
name = "image-accept"
module = "{ROOT / 'filters/build/image-accept.wasm'}"
root_id = "image-accept"
config = {{ path_prefix = "/img/" }}
"""


def header_only_stage(isolation: str) -> str:
    """The header-only test filter as a chain stage in ``isolation`` (also bench_memory's)."""
    return f"""[[chain]]
type = "wasm"
name = "header-only"
module = "{ROOT / 'tests/wasm/wat/header_only.wat'}"
isolation = "{isolation}"
"""


CHAINS: dict[str, str] = {
    "edgenode": "",
    "routing": _ROUTING,
    "waf": _WAF,
    "image-accept": _IMAGE_ACCEPT,
    "header-shared": header_only_stage("shared"),
    "header-per-request": header_only_stage("per-request"),
    "routing-per-request": _ROUTING + 'isolation = "per-request"\n',
    "default-no-waf": _ROUTING + _IMAGE_ACCEPT,
    "default": _ROUTING + _WAF + _IMAGE_ACCEPT,
}


def launch_edgenode(origin_port: int, workers: int, run_dir: Path, store: str = "lmdb",
                    name: str = "edgenode", cache: str = "", chain: str = "", pin: str = "",
                    root: Path = ROOT) -> Target:
    """``python -m edgenode serve`` with a generated config: ``chain`` (filters, TOML) then
    the cache, no admin, no log, a cold ``store`` in ``run_dir`` (``cache``: more ``[cache]``
    lines); ``pin``: the CPUs it runs on (taskset); ``root``: the source tree it runs from."""
    port = free_port()
    config = run_dir / "edgenode.toml"
    config.write_text(f"""\
[server]
listen = "{HOST}:{port}"
workers = {workers}
state_dir = "{tmpfs_dir('edgenode-state-')}"

[admin]
listen = "off"

[cache]
max_bytes = "2GiB"
store = "{store}"
{cache}

[origins.default]
url = "http://{HOST}:{origin_port}"

{chain}
[[chain]]
type = "cache"

[log]
access = "off"
""")
    cmd = pinned([sys.executable, "-m", "edgenode", "serve", "--config", str(config),
                  "--workers", str(workers)], pin)
    proc, logs = spawn(cmd, run_dir, name, root)
    wait_ready(proc, port, logs)
    wait_banner(proc, logs[1])
    note = f"{workers} worker(s), {store} store" + (f", from {root}" if root != ROOT else "")
    return Target(name, proc, port, note)


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


def pinned(cmd: list[str], pin: str) -> list[str]:
    """``cmd`` run on the CPUs ``pin`` (taskset), when given and available."""
    return ["taskset", "-c", pin] + cmd if pin and shutil.which("taskset") else cmd


def launch_nginx(origin_port: int, workers: int, run_dir: Path, pin: str = "") -> Target:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        raise FileNotFoundError("nginx is not installed (benchmarks/setup_reference.sh)")
    port = free_port()
    nginx_dir = run_dir / "nginx"
    nginx_dir.mkdir()
    cache_dir = tmpfs_dir("edgenode-nginx-")
    conf = (REFERENCE / "nginx.conf").read_text().format(
        user_directive="user root;" if os.geteuid() == 0 else "", workers=workers,
        run_dir=nginx_dir, cache_dir=cache_dir, origin_host=HOST, origin_port=origin_port,
        host=HOST, port=port)
    conf_path = nginx_dir / "nginx.conf"
    conf_path.write_text(conf)
    proc, logs = spawn(pinned([binary, "-p", str(nginx_dir), "-c", str(conf_path)], pin), run_dir, "nginx")
    wait_ready(proc, port, logs + [nginx_dir / "error.log"])
    return Target("nginx", proc, port, f"{workers} worker process(es), cache on {cache_dir.parent}")


def launch_varnish(origin_port: int, workers: int, run_dir: Path, pin: str = "") -> Target:
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
    if pin:
        cmd, note = pinned(cmd, pin), f"threads pinned to CPU(s) {pin}"
    elif shutil.which("taskset") and workers < cpus:
        cmd = ["taskset", "-c", f"0-{workers - 1}"] + cmd
        note = f"threads pinned to {workers} CPU(s)"
    proc, logs = spawn(cmd, run_dir, "varnish")
    wait_ready(proc, port, logs, timeout=30.0)
    return Target("varnish", proc, port, note)


LAUNCHERS = {"nginx": launch_nginx, "varnish": launch_varnish}

#: a new URL per request for wrk (each thread its own prefix): 1 KB misses that are stored
MISS_LUA = """\
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = args[1] .. "-t" .. tid
  size = args[2]
  n = 0
end
function request()
  n = n + 1
  return wrk.format("GET", "/obj/" .. prefix .. "-" .. n .. "?size=" .. size .. "&ttl=3600")
end
"""


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


def rss_kib(pid: int) -> int | None:
    """Resident memory of ``pid`` (VmRSS), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def measure(target: Target, load: str, args: argparse.Namespace, run_dir: Path, rnd: int,
            origin: Origin | None = None) -> dict:
    """One load against one target: wrk (or the Python generator) for ``args.duration``.

    The CPU is the target's own process tree (the origin is another process, excluded
    for every target); with ``origin`` the origin's fetches and CPU during the load are
    recorded beside it, so a miss load shows it really missed (one fetch per request)."""
    size, mode = load.split("-")
    paths = load_paths(f"{target.name}-r{rnd}", size, mode)
    cache_header = asyncio.run(probe(target.port, paths, warm=mode != "miss"))
    url = f"http://{HOST}:{target.port}"
    if origin is not None:
        origin.fetches()
        origin_cpu0 = tree_cpu_seconds(origin.proc.pid)
    cpu0 = tree_cpu_seconds(target.proc.pid)
    if args.generator == "wrk" and mode == "miss":
        script = run_dir / "miss.lua"
        script.write_text(MISS_LUA)
        load_r: LoadResult = run_wrk(url + "/", connections=args.connections, duration=args.duration,
                                     threads=args.wrk_threads, script=script,
                                     script_args=[f"miss-{target.name}-r{rnd}", size])
    elif args.generator == "wrk":
        load_r = run_wrk(url + paths[0], connections=args.connections,  # type: ignore[index]
                         duration=args.duration, threads=args.wrk_threads)
    else:
        load_r = asyncio.run(run_load(HOST, target.port, paths, connections=args.connections,
                                      duration=args.duration))
    cpu1 = tree_cpu_seconds(target.proc.pid)
    out = load_r.summary()
    out["cache_header"] = cache_header
    out["cpu_s"] = round(cpu1 - cpu0, 3)
    out["cpu_us_per_request"] = round((cpu1 - cpu0) * 1e6 / load_r.requests, 1) if load_r.requests else None
    if origin is not None and load_r.requests:
        origin_cpu = tree_cpu_seconds(origin.proc.pid) - origin_cpu0
        out["origin_fetches_per_request"] = round(origin.fetches() / load_r.requests, 3)
        out["origin_cpu_us_per_request"] = round(origin_cpu * 1e6 / load_r.requests, 1)
    return out


def summarize(rounds: list[dict]) -> dict:
    """The median over rounds of each figure, the errors summed, the rounds kept."""
    def med(values: list[float | None]) -> float | None:
        got = [v for v in values if v is not None]
        return round(statistics.median(got), 2) if got else None

    errors = sum(sum(r["errors"].values()) + sum(v for k, v in r["status"].items()
                                                   if k not in ("200", "2xx/3xx")) for r in rounds)
    p50 = [r["latency_us"].get("p50") for r in rounds]
    p99 = [r["latency_us"].get("p99") for r in rounds]
    return {"cpu_us_per_request": med([r["cpu_us_per_request"] for r in rounds]),
            "cpu_us_per_request_rounds": [r["cpu_us_per_request"] for r in rounds],
            "origin_fetches_per_request": med([r.get("origin_fetches_per_request") for r in rounds]),
            "origin_cpu_us_per_request": med([r.get("origin_cpu_us_per_request") for r in rounds]),
            "rps": med([r["rps"] for r in rounds]), "p50_us": med(p50), "p99_us": med(p99),
            "errors": errors, "cache_header": rounds[-1]["cache_header"], "rounds": rounds}

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
          f"{report['duration_s']} s per load, {report['rounds']} interleaved round(s), "
          f"workers={report['workers']}, servers on CPU {report['pin'] or 'any'}, "
          f"{report['machine']['cpus']} CPUs; median over rounds")
    head = (f"{'target':<24} {'load':<9} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>10} "
            f"{'x nginx':>7} {'+us vs cache':>12} {'origin/req':>10} {'errors':>6}  cache header")
    print(head)
    print("-" * len(head))
    for name, t in report["targets"].items():
        if "error" in t:
            print(f"{name:<24} failed to start: {t['error'].splitlines()[0]}")
            continue
        for load, r in t["loads"].items():
            rel = report["ratios"].get(name, {}).get(load, {})
            p50 = r["p50_us"] / 1000 if r["p50_us"] is not None else None
            p99 = r["p99_us"] / 1000 if r["p99_us"] is not None else None
            print(f"{name:<24} {load:<9} {r['rps']:>9,.0f} {fmt(p50, '.2f'):>7} {fmt(p99, '.2f'):>7} "
                  f"{fmt(r['cpu_us_per_request'], '.1f'):>10} {fmt(rel.get('cpu_per_request'), '.2f'):>7} "
                  f"{fmt(rel.get('added_us'), '+.1f'):>12} {fmt(r.get('origin_fetches_per_request'), '.2f'):>10} "
                  f"{r['errors']:>6}  {r['cache_header']}")
    checks = report.get("target_checks") or []
    if checks:
        print("\ntargets (same run):")
    for c in checks:
        verdict = "n/a" if c["value"] is None else ("MET" if c["met"] else "NOT MET")
        print(f"  {c['what']:<58} {fmt(c['value'], '.2f'):>7}  {verdict}")


def relate(report: dict) -> None:
    """Ratios of CPU/request and req/s to nginx, CPU added over the cache alone, target checks."""
    measured = {n: t["loads"] for n, t in report["targets"].items() if "loads" in t}
    nginx = measured.get("nginx", {})
    for name, loads in measured.items():
        prefix = name.split(":")[0] + ":" if ":" in name else ""
        cache_only = measured.get(prefix + "edgenode", {})
        rel = report["ratios"][name] = {}
        for load, r in loads.items():
            ref = nginx.get(load)
            row = rel[load] = {}
            if ref is not None and name != "nginx":
                row["cpu_per_request"] = ratio(r["cpu_us_per_request"], ref["cpu_us_per_request"])
                row["rps"] = ratio(r["rps"], ref["rps"])
            base = cache_only.get(load)
            chain = name.rpartition(":")[2]
            if (base is not None and chain in CHAINS and chain != "edgenode"
                    and r["cpu_us_per_request"] is not None and base["cpu_us_per_request"] is not None):
                row["added_us"] = round(r["cpu_us_per_request"] - base["cpu_us_per_request"], 1)
    checks = report["target_checks"] = []
    for name, load, kind, bound in TARGETS:
        row = report["ratios"].get(name, {}).get(load)
        if row is None:
            continue
        value = row.get("cpu_per_request" if kind == "x nginx" else "added_us")
        what = (f"{name} {load}: CPU/request <= {bound}x nginx" if kind == "x nginx"
                else f"{name} {load}: adds <= {bound} us CPU over the cache alone")
        checks.append({"what": what, "value": value, "bound": bound,
                       "met": value is not None and value <= bound})


def chain_from(text: str, root: Path) -> tuple[str, list[str]]:
    """``text`` (a ``CHAINS`` entry, module paths in this tree) with each module taken from
    ``root``'s tree instead, so a ``--baseline`` target runs that tree's filters; a module
    that tree lacks stays this tree's (returned, for the target's note)."""
    kept = []
    for line in text.splitlines():
        if line.startswith("module = ") and root.resolve() != ROOT:
            here = Path(line.split('"')[1])
            there = root / here.relative_to(ROOT)
            if there.exists():
                text = text.replace(f'"{here}"', f'"{there}"')
            else:
                kept.append(str(here.relative_to(ROOT)))
    return text, kept


def start_targets(names: list[str], origin_port: int, args: argparse.Namespace, run_dir: Path,
                  report: dict) -> list[Target]:
    """Start every target (servers pinned to ``args.pin``); a failure is reported, not fatal."""
    started = []
    for name in names:
        tdir = run_dir / name.replace(":", "-")
        tdir.mkdir()
        try:
            if name in LAUNCHERS:
                target = LAUNCHERS[name](origin_port, args.workers, tdir, pin=args.pin)
            else:
                base, _, chain = name.rpartition(":")
                root = args.baseline if base else ROOT
                text, kept = chain_from(CHAINS[chain], root)
                target = launch_edgenode(origin_port, args.workers, tdir, name=name, chain=text,
                                         pin=args.pin, root=root)
                target.name = name
                if kept:
                    target.note += f"; this tree's {', '.join(kept)} (not in {root})"
        except (RuntimeError, OSError) as exc:
            report["targets"][name] = {"error": str(exc)}
            print(f"{name}: not measured: {str(exc).splitlines()[0]}", file=sys.stderr)
            continue
        report["targets"][name] = {"note": target.note, "loads": {}, "rss_kib": {"start": rss_kib(target.proc.pid)}}
        started.append(target)
    return started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="worker processes per proxy")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per load")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median reported)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--targets", default="nginx,varnish", help="reference servers: nginx, varnish")
    parser.add_argument("--chains", default=",".join(CHAINS),
                        help=f"edgenode chains, comma-separated subset of {','.join(CHAINS)}")
    parser.add_argument("--loads", default="1k-hit,1k-miss", help=f"comma-separated subset of {','.join(LOADS)}")
    parser.add_argument("--baseline", type=Path, help="also run the chains from this source tree (before/after)")
    parser.add_argument("--pin", default="0", help="CPUs the servers run on ('' to not pin); the load "
                        "generator and the origin run on the others")
    parser.add_argument("--origin", choices=tuple(ORIGINS), default="nginx",
                        help="simulated: edgenode.origin (Python, ~190 us a request: it sets a miss "
                        "load's pace); nginx: the same paths from files, so the proxies run flat out")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/proxy-<ts>.json)")
    parser.add_argument("--hit-ratio-workers", type=int, default=0, metavar="N",
                        help="also compare the hit ratio of 1 and N edgenode workers (0: skip)")
    parser.add_argument("--hit-ratio-requests", default="5000,20000,100000",
                        help="comma-separated request counts of the hit-ratio runs")
    parser.add_argument("--hit-ratio-objects", type=int, default=200, help="objects in the Zipf catalogue")
    args = parser.parse_args()
    if args.workers < 1 or args.rounds < 1:
        parser.error("--workers and --rounds must be at least 1")
    if args.hit_ratio_workers == 1 or args.hit_ratio_workers < 0:
        parser.error("--hit-ratio-workers must be 0 (skip) or at least 2")
    try:
        args.hit_ratio_requests = [int(v) for v in args.hit_ratio_requests.split(",") if v.strip()]
    except ValueError:
        parser.error("--hit-ratio-requests: expected comma-separated integers")
    if not args.hit_ratio_requests or min(args.hit_ratio_requests) < 1 or args.hit_ratio_objects < 1:
        parser.error("--hit-ratio-requests and --hit-ratio-objects must be positive")
    refs = [n.strip() for n in args.targets.split(",") if n.strip()]
    chains = [n.strip() for n in args.chains.split(",") if n.strip()]
    loads = [n.strip() for n in args.loads.split(",") if n.strip()]
    for what, got, known in (("--targets", refs, LAUNCHERS), ("--chains", chains, CHAINS), ("--loads", loads, LOADS)):
        unknown = [n for n in got if n not in known]
        if unknown:
            parser.error(f"{what}: unknown {', '.join(unknown)}")
    if args.baseline is not None and not (args.baseline / "edgenode" / "__init__.py").is_file():
        parser.error(f"--baseline: {args.baseline} holds no edgenode source tree")
    names = refs + chains + ([f"base:{c}" for c in chains] if args.baseline else [])
    if args.generator == "auto":
        args.generator = "wrk" if wrk_available() else "python"
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    if args.pin and hasattr(os, "sched_setaffinity"):
        others = set(range(os.cpu_count() or 1)) - {int(c) for c in args.pin.split(",") if c.isdigit()}
        if others:  # the load generator, and the origin started below, off the servers' CPU
            os.sched_setaffinity(0, others)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    report: dict = {
        "timestamp": stamp, "workers": args.workers, "duration_s": args.duration, "rounds": args.rounds,
        "connections": args.connections, "generator": args.generator, "pin": args.pin,
        "baseline": str(args.baseline) if args.baseline else None,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg": os.getloadavg()},
        "loads": {"hit": "one cached URL",
                  "miss": "a new URL per request, stored (wrk with a Lua script)",
                  "nostore": "one URL the origin answers with Cache-Control: no-store"},
        "chains": {name: [line.split('"')[1] for line in CHAINS[name].splitlines() if line.startswith("name =")]
                   + ["cache"] for name in chains},
        "targets": {}, "ratios": {},
    }
    with tempfile.TemporaryDirectory(prefix="edgenode-bench-") as tmp:
        run_dir = Path(tmp)
        os.chmod(run_dir, 0o755)  # varnishd's unprivileged child must reach its work dir
        origin = start_origin(run_dir, args.origin)
        origin_port = origin.port
        report["origin"] = (f"{ORIGINS[args.origin]} on port {origin_port} (1 process, shared by every target; "
                            "its CPU is not in any target's figure)")
        targets: list[Target] = []
        try:
            targets = start_targets(names, origin_port, args, run_dir, report)
            samples: dict[tuple[str, str], list[dict]] = {}
            for rnd in range(args.rounds):
                for load in loads:
                    for target in targets:
                        print(f"round {rnd + 1}/{args.rounds}: {target.name} {load} ...", file=sys.stderr, flush=True)
                        samples.setdefault((target.name, load), []).append(
                            measure(target, load, args, run_dir, rnd, origin))
            for (name, load), rounds in samples.items():
                report["targets"][name]["loads"][load] = summarize(rounds)
            for target in targets:
                report["targets"][target.name]["rss_kib"]["end"] = rss_kib(target.proc.pid)
        finally:
            for target in targets:
                stop(target.proc)
        try:
            if args.hit_ratio_workers:  # the demo workload needs the simulated origin's paths
                if origin.kind != "simulated":
                    stop(origin.proc)
                    origin = start_origin(run_dir)
                report["workers_hit_ratio"] = measure_worker_hit_ratio(
                    origin.port, args.hit_ratio_workers, run_dir, args)
        finally:
            stop(origin.proc)
    relate(report)
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
