"""Per-request instances reset in place (Vm.recycle): a stream never sees an earlier
stream's state, and an instance that cannot be proven identical to a fresh one (memory
grown, trapped, effects outside the instance, a table) is discarded.  The filters run in
front of a real origin on 127.0.0.1 (conftest.terminal)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest
import wasmtime
from wasm_helpers import request

from edgenode.pipeline.stage import build_chain
from edgenode.wasm.snapshot import resettable
from edgenode.wasm.stage import WasmStage

FRESH = "1111"  # reset_probe.wat: every part of the state is the snapshot's


async def _run(st: WasmStage, terminal: Callable, origin: Any, *actions: str) -> list[tuple[int, str]]:
    """(status, the x-state the origin saw, "" if none) per request, one after the other."""
    handler = build_chain([st], terminal)
    out = []
    for action in actions:
        seen = len(origin.seen)
        resp = await handler(request(**({"x_action": action} if action else {})))
        state = origin.seen[-1]["headers"].get("x-state", "") if len(origin.seen) > seen else ""
        out.append((resp.status, state))
        await asyncio.sleep(0)  # the loop's idle time between requests: the reset runs there
    return out


@pytest.mark.parametrize("prewarm", [0, 2])
async def test_reused_instance_sees_the_snapshot_every_time(make_stage, terminal, origin,  # type: ignore[no-untyped-def]
                                                            prewarm: int) -> None:
    st = make_stage("reset_probe.wat", "reset", isolation="per-request", prewarm=prewarm)
    assert st.stats()["snapshot"] is True
    await _run(st, terminal, origin, "")
    starts = st.plugin.metrics.vm_starts
    # each stream wrote a global and memory; the next one sees the snapshot's values
    assert await _run(st, terminal, origin, "", "", "", "", "") == [(200, FRESH)] * 5
    assert st.plugin.metrics.vm_starts == starts  # no new instance: the used ones were reset
    await st.close()


@pytest.mark.parametrize("action, status", [("grow", 200), ("trap", 503)])
async def test_grown_or_trapped_instance_is_discarded(make_stage, terminal, origin,  # type: ignore[no-untyped-def]
                                                      action: str, status: int) -> None:
    st = make_stage("reset_probe.wat", "reset", isolation="per-request", prewarm=0)
    await _run(st, terminal, origin, "")
    starts = st.plugin.metrics.vm_starts
    got = await _run(st, terminal, origin, action, "", "")
    assert got[0][0] == status
    assert got[1:] == [(200, FRESH)] * 2  # memory back to one page, no trace of the stream
    assert st.plugin.metrics.vm_starts == starts + 1  # that instance was closed, a new one started
    await st.close()


async def test_stream_with_effects_outside_the_instance_gets_a_new_one(make_stage, terminal,  # type: ignore[no-untyped-def]
                                                                        origin) -> None:
    st = make_stage("counters.wat", "reset-counters", isolation="per-request", prewarm=0,
                    vm_id="reset-counters")
    handler = build_chain([st], terminal)
    starts = st.plugin.metrics.vm_starts
    for _ in range(3):
        assert (await handler(request())).status == 200
    assert st.plugin.metrics.vm_starts == starts + 3  # metrics/shared data: never reused
    await st.close()


@pytest.mark.parametrize("wat, ok", [
    ('(module (memory (export "memory") 1) (global (mut i32) (i32.const 0)))', True),
    ('(module (import "env" "f" (func)) (memory (export "memory") 1))', True),
    ('(module (memory (export "memory") 1) (table 1 funcref))', False),
    ('(module (memory (export "memory") 1) (data "passive"))', False),
    ('(module (import "env" "m" (memory 1)))', False),
    ("(module)", False),  # no memory
])
def test_resettable_modules(wat: str, ok: bool) -> None:
    assert resettable(bytes(wasmtime.wat2wasm(wat))) is ok
