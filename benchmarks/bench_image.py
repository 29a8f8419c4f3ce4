"""Benchmark the image filter end to end: 2000x1500 JPEG -> 400 px WebP through a node
(image-accept -> cache -> image) in its own process, a real origin in another.

Run: python benchmarks/bench_image.py [--quick]
Measures, client side over real sockets on 127.0.0.1:
  * transform: distinct variants (each a cache miss -> origin fetch + transform), sequential
    and with `--concurrency` in flight: images/s, p50/p99
  * cached: the same variant again and again (cache hits): req/s, p50/p99
  * small cached requests alone, then while transforms run in the background: p50/p99
    (the pixel work runs in a niced process pool off the event loop; target: the p50 and
    p99 of the small requests rise by at most 20%)
Prints a table and writes benchmarks/results/bench_image.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "bench_image.json"
SMALL_BODY = b"x" * 1024
#: idle/busy measurement rounds of the small-request latency
ROUNDS = 5


def source_jpeg() -> bytes:
    from PIL import Image

    im = Image.effect_noise((2000, 1500), 40).convert("RGB")  # photo-like entropy
    im = Image.blend(im, Image.linear_gradient("L").resize((2000, 1500)).convert("RGB"), 0.6)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def run_origin(conn) -> None:  # child process
    from aiohttp import web

    os.nice(5)  # the origin stands in for a remote machine: it should not steal the node's CPU

    photo = source_jpeg()

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=photo, content_type="image/jpeg",
                            headers={"ETag": '"bench-1"', "Cache-Control": "max-age=3600"})

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=SMALL_BODY, content_type="text/plain",
                            headers={"Cache-Control": "max-age=3600"})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/photo.jpg", image)
        app.router.add_get("/small", small)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        conn.send((runner.addresses[0][1], len(photo)))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await runner.cleanup()

    asyncio.run(main())


def run_node(conn, origin_url: str, wasm: str, workers: int) -> None:  # child process
    from edgenode.config import parse_config
    from edgenode.images.service import IMAGE_UPSTREAM, ImageService
    from edgenode.node import Node

    async def main() -> None:
        cfg = {"path_prefix": "/img/"}
        config = parse_config({
            "server": {"listen": "127.0.0.1:0"},
            "admin": {"listen": "off"},
            "cache": {"max_bytes": "512MiB"},
            "origins": {"default": {"url": origin_url}},
            "chain": [
                {"type": "wasm", "name": "image-accept", "module": str(Path(wasm).with_name("image-accept.wasm")),
                 "root_id": "image-accept", "config": cfg},
                {"type": "cache"},
                {"type": "wasm", "name": "image", "module": wasm, "root_id": "image", "config": cfg,
                 "cpu_deadline_ms": 1000, "allow_on_headers_stop_iteration": True},
            ],
            "log": {"access": "off"},
        }, ROOT)
        node = Node(config, admin=False)
        service = ImageService(workers=workers)
        await service.warm_up()
        node.register_internal_upstream(IMAGE_UPSTREAM, service.handle)
        await node.start("127.0.0.1", 0)
        conn.send(node.port)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await node.stop(1.0)
        await service.close()

    # plain asyncio: under uvloop the origin pool currently times out every other
    # request after a large body (reported to the lead; reproduces without any filter)
    asyncio.run(main())


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def summary(lat_s: list[float], wall: float) -> dict:
    ms = [x * 1000 for x in lat_s]
    return {"n": len(ms), "rate_per_s": len(ms) / wall, "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99),
            "mean_ms": statistics.fmean(ms)}


async def timed_get(session, url: str, headers: dict | None = None) -> tuple[float, int, bytes]:
    t0 = time.perf_counter()
    async with session.get(url, headers=headers or {}) as resp:
        body = await resp.read()
    return time.perf_counter() - t0, resp.status, body


async def client(base: str, n_transform: int, n_cached: int, n_small: int, concurrency: int) -> dict:
    import aiohttp
    from PIL import Image

    out: dict = {}
    conn = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=conn) as s:
        # warm: first transform (worker imports), small object into the cache
        _, status, body = await timed_get(s, base + "/photo.jpg?w=400&f=webp&warm=1")
        assert status == 200 and Image.open(io.BytesIO(body)).size == (400, 300), status
        await timed_get(s, base + "/small")

        lat = []
        t0 = time.perf_counter()
        for i in range(n_transform):
            dt, status, body = await timed_get(s, base + f"/photo.jpg?w=400&f=webp&seq={i}")
            assert status == 200, (status, body[:200])
            lat.append(dt)
        out["transform_sequential"] = summary(lat, time.perf_counter() - t0)

        lat = []
        counter = iter(range(n_transform))

        async def worker() -> None:
            for i in counter:
                dt, status, _ = await timed_get(s, base + f"/photo.jpg?w=400&f=webp&par={i}")
                assert status == 200
                lat.append(dt)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        out[f"transform_concurrent_{concurrency}"] = summary(lat, time.perf_counter() - t0)

        lat = []
        t0 = time.perf_counter()
        for _ in range(n_cached):
            dt, status, _ = await timed_get(s, base + "/photo.jpg?w=400&f=webp&seq=0")
            assert status == 200
            lat.append(dt)
        out["variant_cached"] = summary(lat, time.perf_counter() - t0)

        async def small_run(n: int) -> tuple[list[float], float]:
            lat = []
            t0 = time.perf_counter()
            for _ in range(n):
                dt, status, _ = await timed_get(s, base + "/small")
                assert status == 200
                lat.append(dt)
            return lat, time.perf_counter() - t0

        # idle and busy measurements interleaved in rounds, so drift in the machine's
        # background load affects both alike
        stop = asyncio.Event()
        done = 0

        async def background(k: int, r: int) -> None:
            nonlocal done
            i = 0
            while not stop.is_set():
                _, status, _ = await timed_get(s, base + f"/photo.jpg?w=400&f=webp&bg={r}-{k}-{i}")
                assert status == 200
                done += 1
                i += 1

        idle_lat: list[float] = []
        busy_lat: list[float] = []
        idle_wall = busy_wall = 0.0
        for r in range(ROUNDS):
            lat, wall = await small_run(n_small // ROUNDS)
            idle_lat += lat
            idle_wall += wall
            stop.clear()
            bg = [asyncio.create_task(background(k, r)) for k in range(concurrency)]
            await asyncio.sleep(0.2)
            lat, wall = await small_run(n_small // ROUNDS)
            busy_lat += lat
            busy_wall += wall
            stop.set()
            await asyncio.gather(*bg)
        out["small_cached_idle"] = summary(idle_lat, idle_wall)
        out["small_cached_during_transforms"] = summary(busy_lat, busy_wall)
        out["small_cached_during_transforms"]["background_transforms"] = done
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests")
    ap.add_argument("--workers", type=int, default=1, help="image service processes")
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    n_transform, n_cached, n_small = (20, 200, 300) if args.quick else (60, 1000, 1500)

    subprocess.run(["make", "-s", "-C", str(ROOT / "filters"), "build/image.wasm", "build/image-accept.wasm"],
                   check=True)
    wasm = str(ROOT / "filters" / "build" / "image.wasm")
    ctx = multiprocessing.get_context("spawn")
    o_parent, o_child = ctx.Pipe()
    origin = ctx.Process(target=run_origin, args=(o_child,), daemon=True)
    origin.start()
    origin_port, source_bytes = o_parent.recv()
    n_parent, n_child = ctx.Pipe()
    node = ctx.Process(target=run_node, args=(n_child, f"http://127.0.0.1:{origin_port}", wasm, args.workers),
                       daemon=False)
    node.start()
    port = n_parent.recv()
    try:
        results = asyncio.run(client(f"http://127.0.0.1:{port}", n_transform, n_cached, n_small,
                                     args.concurrency))
    finally:
        n_parent.send("stop")
        node.join(15)
        o_parent.send("stop")
        origin.join(5)

    idle, busy = results["small_cached_idle"], results["small_cached_during_transforms"]
    rise = {k: busy[k] / idle[k] - 1 for k in ("p50_ms", "p99_ms")}
    print(f"\nimage bench: 2000x1500 JPEG ({source_bytes} B) -> 400x300 WebP, "
          f"{args.workers} worker(s), {os.cpu_count()} CPUs")
    print(f"{'scenario':34} {'n':>6} {'rate/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, r in results.items():
        print(f"{name:34} {r['n']:>6} {r['rate_per_s']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
    ok = all(v <= 0.20 for v in rise.values())
    print(f"small cached requests during transforms: p50 {rise['p50_ms']:+.0%}, p99 {rise['p99_ms']:+.0%} "
          f"(target <= +20%: {'met' if ok else 'NOT met'}; background transforms: {busy['background_transforms']})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "meta": {"benchmark": "image", "source": "2000x1500 JPEG", "target": "400px WebP",
                 "source_bytes": source_bytes, "workers": args.workers, "concurrency": args.concurrency,
                 "cpus": os.cpu_count(), "python": platform.python_version(), "quick": args.quick},
        "results": results, "small_latency_rise": rise, "target_met": ok}, indent=2))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
