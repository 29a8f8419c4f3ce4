"""Load generation for ``edgenode bench``, always outside the node's process.

``wrk`` (when installed) walks the workload's path list through a Lua script and
reports status codes, X-Cache hits and a dense set of latency percentiles.  Otherwise
(or when a fixed request rate is asked for, which wrk cannot do) the built-in
generator (``edgenode.bench.loadgen.run_load``) runs in a child process, so it never
shares the node's event loop or GIL.  Both are awaited without blocking, because the
node under test may be serving on the caller's event loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edgenode.bench.origin_proc import child_env

__all__ = ["ClientResult", "run_wrk_paths", "run_builtin", "wrk_path"]

#: how many latency values a result keeps for the distribution plot
SAMPLE_SIZE = 5000

_LUA = r"""
-- edgenode bench: walk a path list (one per line, file given after "--"), count statuses
-- and X-Cache hits per thread, and print everything bench needs from done().
local threads, nthreads = {}, 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

local reqs, idx = {}, 0
statuses, hits, cached = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do reqs[#reqs + 1] = wrk.format("GET", line) end
  local stride = tonumber(args[2]) or 1
  idx = math.floor((tid - 1) * #reqs / stride)
end

function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local xc = headers["X-Cache"] or headers["x-cache"]
  if xc then
    cached = cached + 1
    local up = string.upper(xc)
    if string.sub(up, 1, 3) == "HIT" or string.sub(up, 1, 5) == "STALE" then hits = hits + 1 end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("EDGENODE summary %d %d %d %d %d %d %d %d\n", summary.duration,
    summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
  io.write(string.format("EDGENODE max %d\n", latency.max))
  for i = 1, 999 do
    io.write(string.format("EDGENODE pct %.1f %d\n", i / 10, latency:percentile(i / 10)))
  end
  io.write(string.format("EDGENODE pct 99.99 %d\n", latency:percentile(99.99)))
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do io.write(string.format("EDGENODE status %d %d\n", code, n)) end
    io.write(string.format("EDGENODE hits %d %d\n", t:get("hits"), t:get("cached")))
  end
end
"""


@dataclass
class ClientResult:
    """What the client side saw.  Latencies in microseconds."""

    generator: str
    duration_s: float
    status: dict[int, int]
    errors: dict[str, int]
    bytes_received: int
    latency_us: dict[str, float]
    #: for the distribution plot: evenly spaced quantiles (wrk) or a random sample (builtin)
    latency_sample_us: list[float]
    #: responses with an X-Cache header, and how many of them were hits
    cache_classified: int = 0
    cache_hits: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.status.values())


def wrk_path() -> str | None:
    return shutil.which("wrk")


def parse_wrk_lua_output(text: str) -> ClientResult:
    """Read the ``EDGENODE ...`` lines our Lua ``done()`` prints."""
    status: dict[int, int] = {}
    pct: dict[float, float] = {}
    hits = classified = 0
    summary: list[int] | None = None
    lat_max = math.nan
    for m in re.finditer(r"^EDGENODE (\w+) (.*)$", text, re.M):
        kind, rest = m.group(1), m.group(2).split()
        if kind == "summary":
            summary = [int(v) for v in rest]
        elif kind == "max":
            lat_max = float(rest[0])
        elif kind == "pct":
            pct[float(rest[0])] = float(rest[1])
        elif kind == "status":
            status[int(rest[0])] = status.get(int(rest[0]), 0) + int(rest[1])
        elif kind == "hits":
            hits += int(rest[0])
            classified += int(rest[1])
    if summary is None:
        raise RuntimeError("wrk: the Lua script printed no summary:\n" + text)
    duration_us, _requests, nbytes, connect, read, write, _status, timeout = summary
    errors = {k: v for k, v in (("connect", connect), ("read", read), ("write", write),
                                ("timeout", timeout)) if v}
    latency = {"p50": pct.get(50.0, math.nan), "p90": pct.get(90.0, math.nan),
               "p99": pct.get(99.0, math.nan), "max": lat_max}
    return ClientResult("wrk", duration_us / 1e6, dict(sorted(status.items())), errors, nbytes,
                        latency, [pct[k] for k in sorted(pct)], classified, hits)


async def run_wrk_paths(url: str, paths: Sequence[str], *, connections: int, duration: float,
                        threads: int = 1) -> ClientResult:
    """Run wrk over ``paths`` (each thread starts at its own offset) for ``duration`` s."""
    binary = wrk_path()
    if binary is None:
        raise FileNotFoundError("wrk is not installed")
    threads = max(1, min(threads, connections))
    with tempfile.TemporaryDirectory(prefix="edgenode-bench-") as tmp:
        script, plist = Path(tmp) / "bench.lua", Path(tmp) / "paths.txt"
        script.write_text(_LUA)
        plist.write_text("\n".join(paths) + "\n")
        cmd = [binary, f"-t{threads}", f"-c{connections}", f"-d{max(1, math.ceil(duration))}s",
               "--timeout", "10s", "-s", str(script), url, "--", str(plist), str(threads)]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode(errors='replace').strip()}")
    result = parse_wrk_lua_output(out.decode(errors="replace"))
    result.notes["wrk_threads"] = threads
    return result


async def run_builtin(host: str, port: int, paths: Sequence[str], *, connections: int,
                      duration: float, rate: float | None = None,
                      requests: int | None = None) -> ClientResult:
    """Run ``loadgen.run_load`` in a child process (own interpreter, own event loop), for
    ``duration`` s or, given ``requests``, for exactly that many requests."""
    job = {"host": host, "port": port, "paths": list(paths), "connections": connections,
           "duration": duration, "rate": rate, "requests": requests}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgenode.bench.generators", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env())
    out, err = await proc.communicate(json.dumps(job).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"built-in load generator failed: {err.decode(errors='replace').strip()}")
    d = json.loads(out)
    return ClientResult("builtin", d["duration_s"], {int(k): v for k, v in d["status"].items()},
                        d["errors"], d["bytes_received"], d["latency_us"], d["sample"],
                        d["cache_classified"], d["cache_hits"])


async def _child(job: dict[str, Any]) -> dict[str, Any]:
    from edgenode.bench.loadgen import percentiles, run_load
    from edgenode.bench.workload import classify_cache

    paths: Sequence[str] = job["paths"]
    kw: dict[str, Any] = {}
    if job.get("rate"):
        kw["rate"] = job["rate"]
    if job.get("requests"):
        kw["requests"] = job["requests"]
    else:
        kw["duration"] = job["duration"]
    r = await run_load(job["host"], job["port"], paths, connections=job["connections"],
                       sample_headers=("x-cache",), **kw)
    lat = list(r.latencies_us)
    stats = percentiles(lat, (50, 90, 99)) if lat else {"p50": math.nan, "p90": math.nan, "p99": math.nan}
    stats["max"] = float(max(lat)) if lat else math.nan
    sample = random.Random(1).sample(lat, SAMPLE_SIZE) if len(lat) > SAMPLE_SIZE else lat
    hits = classified = 0
    for value, n in r.headers.get("x-cache", {}).items():
        classified += n
        hits += n if classify_cache(value, None) == "hit" else 0
    return {"duration_s": r.duration_s, "status": {str(k): v for k, v in r.status.items()},
            "errors": dict(r.errors), "bytes_received": r.bytes_received, "latency_us": stats,
            "sample": sample, "cache_classified": classified, "cache_hits": hits}


def _main() -> None:
    job = json.loads(sys.stdin.read())
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(_child(job))
    else:
        result = uvloop.run(_child(job))
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    _main()
