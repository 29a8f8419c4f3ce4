"""``edgenode demo``: origin + node + workload in one process, on free ports.

Uses the embedded default config with its default origin pointed at a simulated
origin started here, so it needs nothing but the installed package.
"""

from __future__ import annotations

from edgenode.bench.workload import format_demo_report, run_demo_workload
from edgenode.config import load_config, with_overrides
from edgenode.node import Node
from edgenode.origin.app import start_origin
from edgenode.origin.settings import OriginSettings

__all__ = ["run_demo", "DEFAULT_REQUESTS"]

DEFAULT_REQUESTS = 2000


async def run_demo(requests: int | None = None, duration: float | None = None,
                   access_log: bool = False) -> str:
    """Run the demo workload and return the printable report."""
    runner, origin_port = await start_origin(OriginSettings(listen=("127.0.0.1", 0), seed=1))
    origin_url = f"http://127.0.0.1:{origin_port}"
    try:
        cfg = with_overrides(load_config(), listen="127.0.0.1:0", origin=origin_url,
                             admin_listen="127.0.0.1:0")
        cfg.log.access = "stderr" if access_log else "off"
        node = Node(cfg)
        await node.start()
        try:
            bound: float | int = duration if duration is not None else (requests or DEFAULT_REQUESTS)
            result = await run_demo_workload(f"http://127.0.0.1:{node.port}", bound,
                                             origin_url=origin_url)
            stats = node.stats()
        finally:
            await node.stop(2.0)
    finally:
        await runner.cleanup()
    cache = stats["cache"]
    lines = [format_demo_report(result),
             f"node: {stats['requests']} requests, by cache status "
             + ", ".join(f"{k}: {v}" for k, v in sorted(stats["requests_by_cache_status"].items())),
             f"cache: {cache.get('entries', 0)} objects, {cache.get('bytes', 0):,} bytes, "
             f"{cache.get('collapsed', 0)} collapsed, {cache.get('evictions', 0)} evictions"]
    return "\n".join(lines)
