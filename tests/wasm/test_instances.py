"""Instance plumbing: the pooling allocator, its on-demand overflow, slot reuse and
closed instances (engine.py, native.Instance, vm.Vm)."""

from __future__ import annotations

from pathlib import Path

import pytest
from wasm_helpers import request

from edgenode.config import StageConfig
from edgenode.http.messages import CIMultiDict, Response
from edgenode.pipeline.exchange import Exchange
from edgenode.pipeline.stage import build_chain
from edgenode.wasm.engine import WasmEngine
from edgenode.wasm.stage import WasmStage
from edgenode.wasm.vm import FilterFailure, Vm

WAT = Path(__file__).parent / "wat"


@pytest.fixture
def small_pool(tmp_path: Path) -> WasmEngine:
    eng = WasmEngine(cache_dir=tmp_path, pool_instances=2)
    yield eng
    eng.close()


def _stage(engine: WasmEngine, module: str, **options: object) -> WasmStage:
    return WasmStage(StageConfig("wasm", "inst", {"module": str(WAT / module), **options}),
                     base_dir=WAT, engine=engine)


def test_full_pool_overflows_to_on_demand_instances(small_pool: WasmEngine) -> None:
    st = _stage(small_pool, "header_only.wat", isolation="per-request")
    vms = [Vm(st.plugin, st.loaded, small_pool) for _ in range(4)]  # 2 slots, 4 live instances
    for vm in vms:
        vm.start()
        ctx = vm.new_stream(request())
        assert vm.call("proxy_on_request_headers", ctx, ctx.id, 4, 1) == 0
    assert small_pool.overflow_starts == 2
    for vm in vms:
        vm.close()
    again = Vm(st.plugin, st.loaded, small_pool)  # slots were returned by close()
    assert small_pool.overflow_starts == 2
    again.close()


async def test_per_request_stage_keeps_serving_past_the_pool(small_pool: WasmEngine) -> None:
    async def terminal(ex: Exchange) -> Response:
        return Response(200, CIMultiDict(), b"ok")
    handler = build_chain([_stage(small_pool, "counters.wat", isolation="per-request", prewarm=2,
                                  vm_id="inst-pool")], terminal)
    # the two prewarmed instances and the stream's own instance exceed two slots
    responses = [await handler(request()) for _ in range(5)]
    assert [r.headers["x-count"] for r in responses] == ["1"] * 5
    assert small_pool.overflow_starts > 0


def test_reused_pool_slot_starts_from_the_module_image(tmp_path: Path) -> None:
    eng = WasmEngine(cache_dir=tmp_path, pool_instances=1)
    try:
        st = _stage(eng, "header_only.wat", isolation="per-request")
        first = Vm(st.plugin, st.loaded, eng)
        first.mem.write(70000, b"secret of an earlier stream")  # second page: no data segment
        first.mem.write(16, b"XXXX")  # over the module's "user-agent" data segment
        first.close()
        second = Vm(st.plugin, st.loaded, eng)  # the same (only) slot
        assert eng.overflow_starts == 0
        assert second.mem.read(70000, 27) == bytes(27)
        assert second.mem.read(16, 10) == b"user-agent"
        second.close()
    finally:
        eng.close()


def test_closed_instance_refuses_calls(engine: WasmEngine) -> None:
    st = _stage(engine, "header_only.wat", isolation="per-request")
    vm = Vm(st.plugin, st.loaded, engine)
    vm.start()
    vm.close()
    with pytest.raises(FilterFailure, match="closed"):
        vm.call("proxy_on_context_create", None, 9, 1)


# --- post-configure snapshots ------------------------------------------------------------

async def _states(st: WasmStage, n: int) -> list[str]:
    async def terminal(ex: Exchange) -> Response:
        return Response(200, CIMultiDict({"x-state": ex.request.headers.get("x-state", "")}), b"")
    handler = build_chain([st], terminal)
    return [(await handler(request())).headers["x-state"] for _ in range(n)]


@pytest.mark.parametrize("prewarm", [0, 2])
async def test_snapshot_restores_start_up_and_isolates_streams(engine: WasmEngine, prewarm: int) -> None:
    st = _stage(engine, "snapshot_probe.wat", isolation="per-request", prewarm=prewarm)
    assert st.stats()["snapshot"] is True
    # configure's memory (incl. the grown page) and globals are there; no earlier
    # stream's marker or stream count ever is
    assert await _states(st, 4) == ["01111"] * 4
    await st.close()


async def test_shared_vm_probe_sees_its_own_history(engine: WasmEngine) -> None:
    st = _stage(engine, "snapshot_probe.wat")  # the probe can tell streams apart
    assert await _states(st, 2) == ["01111", "11112"]
    await st.close()


@pytest.mark.parametrize("options", [{"config": "random"}, {"snapshot": False}])
async def test_start_up_runs_per_instance_without_snapshot(engine: WasmEngine,
                                                           options: dict[str, object]) -> None:
    st = _stage(engine, "snapshot_probe.wat", isolation="per-request", prewarm=0, **options)
    assert st.stats()["snapshot"] is False  # randomness in start-up / turned off
    assert await _states(st, 3) == ["01111"] * 3
    await st.close()
