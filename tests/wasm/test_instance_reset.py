"""Per-request instances reset in place (Vm.recycle): a stream never sees an earlier
stream's state, and an instance that cannot be proven identical to a fresh one (memory
grown, trapped, effects outside the instance, a table or segment its code changes) is
discarded.  The filters run in front of a real origin on 127.0.0.1 (conftest.terminal)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable

import pytest
import wasmtime
from wasm_helpers import request

from edgenode.config import StageConfig
from edgenode.http.messages import CIMultiDict, Response
from edgenode.pipeline.stage import build_chain
from edgenode.wasm.snapshot import mutations, resettable
from edgenode.wasm.engine import WasmEngine
from edgenode.wasm.stage import WasmStage

FRESH = "11111"  # reset_probe.wat: every part of the state is the snapshot's
WAT = Path(__file__).parent / "wat"


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
    assert st.stats()["snapshot"] is True and st.stats()["reset"] is True
    await _run(st, terminal, origin, "")
    starts = st.plugin.metrics.vm_starts
    # each stream wrote a global and memory; the next one sees the snapshot's values
    assert await _run(st, terminal, origin, "", "", "", "", "") == [(200, FRESH)] * 5
    assert st.plugin.metrics.vm_starts == starts  # no new instance: the used ones were reset
    await st.close()


async def test_page_written_after_earlier_streams_only_read_it_is_reset(make_stage, terminal,  # type: ignore[no-untyped-def]
                                                                        origin) -> None:
    # the first reset unmaps the zero pages no stream changed (the prefaulted 64 KiB);
    # streams then read 40000 through the kernel's zero page, until one writes it
    st = make_stage("reset_probe.wat", "reset", isolation="per-request", prewarm=0)
    await _run(st, terminal, origin, "", "", "")
    starts = st.plugin.metrics.vm_starts
    assert await _run(st, terminal, origin, "write", "", "write", "") == [(200, FRESH)] * 4
    assert st.plugin.metrics.vm_starts == starts  # the same instance, reset each time
    await st.close()


@pytest.mark.parametrize("action, status", [("grow", 200), ("trap", 503)])
async def test_grown_or_trapped_instance_is_discarded(make_stage, terminal, origin,  # type: ignore[no-untyped-def]
                                                      action: str, status: int) -> None:
    st = make_stage("reset_probe.wat", "reset", isolation="per-request", prewarm=0)
    await _run(st, terminal, origin, "")
    starts = st.plugin.metrics.vm_starts
    got = await _run(st, terminal, origin, action, "", "")
    assert got[0][0] == status
    assert got[1:] == [(200, FRESH)] * 2  # memory back to four pages, no trace of the stream
    assert st.plugin.metrics.vm_starts == starts + 1  # that instance was closed, a new one started
    await st.close()


async def test_metrics_and_shared_data_do_not_stop_a_reset(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    # counters.wat counts streams in a global, a metric and shared data: the global is the
    # instance's (reset: "1" every time), the metric and shared data the node's (they go on)
    st = make_stage("counters.wat", "reset-counters", isolation="per-request", prewarm=0,
                    vm_id="reset-counters")
    handler = build_chain([st], terminal)
    await asyncio.sleep(0)
    starts = st.plugin.metrics.vm_starts
    seen = []
    for _ in range(3):
        resp = await handler(request())
        seen.append((resp.status, resp.headers["x-count"], resp.headers["x-hits"]))
        await asyncio.sleep(0)
    assert seen == [(200, "1", "x"), (200, "1", "xx"), (200, "1", "xxx")]
    assert st.plugin.metrics.get(1) == (0, 3)  # "requests": every stream counted
    assert st.plugin.metrics.vm_starts == starts + 1  # one instance, reset after each stream
    await st.close()


async def test_stream_that_registers_a_queue_gets_a_new_instance(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("reset_queue.wat", "reset-queue", isolation="per-request", prewarm=0,
                    vm_id="reset-queue")
    assert st.stats()["reset"] is True
    handler = build_chain([st], terminal)
    starts = st.plugin.metrics.vm_starts
    for _ in range(3):
        assert (await handler(request())).status == 200
        await asyncio.sleep(0)
    assert st.plugin.metrics.vm_starts == starts + 3  # its notifications would reach a later stream
    await st.close()


@pytest.mark.parametrize("module, leaked", [("reset_table.wat", (200, "2")), ("reset_segment.wat", (503, ""))])
async def test_module_changing_a_table_or_segment_gets_a_new_instance(make_stage, terminal, origin,  # type: ignore[no-untyped-def]
                                                                       monkeypatch, module: str,
                                                                       leaked: tuple[int, str]) -> None:
    # every stream repoints table slot 0 / drops the passive segment: a fresh instance
    # each time, so each stream sees the original
    st = make_stage(module, "refused", isolation="per-request", prewarm=0)
    assert st.stats()["snapshot"] is True and st.stats()["reset"] is False
    starts = st.plugin.metrics.vm_starts
    assert await _run(st, terminal, origin, "", "", "") == [(200, "1")] * 3
    assert st.plugin.metrics.vm_starts == starts + 3
    await st.close()
    # the hazard is real: reset such a module anyway and the second stream sees the first's
    monkeypatch.setattr("edgenode.wasm.stage.resettable", lambda wasm: True)
    st = make_stage(module, "forced", isolation="per-request", prewarm=0)
    assert st.stats()["reset"] is True
    assert await _run(st, terminal, origin, "", "") == [(200, "1"), leaked]
    await st.close()


_MEM = '(memory (export "memory") 1)'


@pytest.mark.parametrize("wat, ok", [
    (f'(module {_MEM} (global (mut i32) (i32.const 0)))', True),
    (f'(module (import "env" "f" (func)) {_MEM})', True),
    # a table no instruction changes keeps instantiation's elements: resettable
    (f'(module {_MEM} (table 1 funcref) (elem (i32.const 0) $f) (type $t (func))'
     ' (func $f) (func (call_indirect (type $t) (i32.const 0)) (drop (table.get (i32.const 0)))'
     ' (drop (table.size))))', True),
    # passive data read with memory.init (it writes memory) but never dropped
    (f'(module {_MEM} (data $d "passive") (func (memory.init $d (i32.const 0) (i32.const 0) (i32.const 1))))',
     True),
    (f'(module {_MEM} (table 1 funcref) (func (table.set (i32.const 0) (ref.null func))))', False),
    (f'(module {_MEM} (table 1 funcref) (func (drop (table.grow (ref.null func) (i32.const 1)))))', False),
    (f'(module {_MEM} (table 1 funcref) (func (table.fill (i32.const 0) (ref.null func) (i32.const 1))))',
     False),
    (f'(module {_MEM} (table 2 funcref) (func (table.copy (i32.const 0) (i32.const 1) (i32.const 1))))', False),
    (f'(module {_MEM} (table 1 funcref) (elem $e func $f) (func $f)'
     ' (func (table.init $e (i32.const 0) (i32.const 0) (i32.const 1))))', False),
    (f'(module {_MEM} (elem $e func $f) (func $f) (func (elem.drop $e)))', False),
    (f'(module {_MEM} (data $d "passive") (func (data.drop $d)))', False),
    ('(module (import "env" "m" (memory 1)))', False),
    ('(module (import "env" "t" (table 1 funcref)) (memory 1))', False),
    ("(module)", False),  # no memory
])
def test_resettable_modules(wat: str, ok: bool) -> None:
    assert resettable(bytes(wasmtime.wat2wasm(wat))) is ok


def test_scan_decodes_every_immediate_form() -> None:
    # instructions with every kind of immediate, then a table.set: found only if the
    # decode stayed aligned through all of them
    body = """
      (local v128) (local $r funcref)
      (block $out (result i32)
        (loop $l (br_if $l (i32.const 0)))
        (br_table 0 0 $out (i32.const 7) (i32.const 1)))
      (drop)
      (drop (select (result i32) (i32.const 1) (i32.const 2) (i32.const 0)))
      (drop (i64.const -123456789012) ) (drop (f32.const 1.5)) (drop (f64.const 2.5))
      (i64.store offset=70000 align=4 (i32.const 0) (i64.load8_s offset=3 (i32.const 0)))
      (drop (memory.size)) (drop (memory.grow (i32.const 0)))
      (memory.copy (i32.const 0) (i32.const 8) (i32.const 4))
      (memory.fill (i32.const 0) (i32.const 0) (i32.const 4))
      (drop (i32.trunc_sat_f32_s (f32.const 1)))
      (local.set 0 (v128.const i32x4 1 2 3 4))
      (local.set 0 (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 31 (local.get 0) (local.get 0)))
      (drop (i32x4.extract_lane 3 (local.get 0)))
      (local.set 0 (v128.load32_lane offset=16 1 (i32.const 0) (local.get 0)))
      (local.set 0 (v128.load64_zero (i32.const 0)))
      (v128.store (i32.const 0) (i32x4.add (local.get 0) (local.get 0)))
      (drop (i32.atomic.rmw.add offset=8 (i32.const 0) (i32.const 1)))
      (atomic.fence)
      (drop (memory.atomic.notify (i32.const 0) (i32.const 1)))
      (local.set $r (ref.func $g)) (drop (ref.is_null (local.get $r)))
      (drop (i32.extend8_s (i32.const 255)))
      (table.set (i32.const 0) (local.get $r))"""
    wat = (f'(module (memory (export "memory") 2 2 shared) (table 1 funcref) (elem declare func $g)'
           f' (func $g) (func {body}))')
    assert mutations(bytes(wasmtime.wat2wasm(wat))) == {"table.set"}


def test_scan_refuses_what_it_cannot_decode() -> None:
    wasm = bytearray(wasmtime.wat2wasm('(module (memory 1) (func (drop (i32.const 0))))'))
    wasm[wasm.index(b"\x41\x00\x1a")] = 0xFB  # a GC-prefixed instruction in place of i32.const
    with pytest.raises(ValueError):
        mutations(bytes(wasm))
    assert resettable(bytes(wasm)) is False


async def test_reset_drops_the_wasi_file_table(make_stage, terminal, origin) -> None:  # type: ignore[no-untyped-def]
    """A WASI file table made during a stream is gone after the reset (forget_fds: the
    flag the table sets, so instances without one never touch the weak dictionary)."""
    from edgenode.wasm import wasi

    st = make_stage("reset_probe.wat", "reset", isolation="per-request", prewarm=0)
    await _run(st, terminal, origin, "")
    vm = st._pool[-1]  # the reset instance the next stream gets
    assert not vm.files_opened
    wasi._table(vm)  # what the first WASI fd call of a stream does
    assert vm.files_opened and vm in wasi._TABLES
    starts = st.plugin.metrics.vm_starts
    assert await _run(st, terminal, origin, "") == [(200, FRESH)]
    assert st.plugin.metrics.vm_starts == starts and st._pool[-1] is vm  # reset, not replaced
    assert not vm.files_opened and vm not in wasi._TABLES
    await st.close()


def test_instances_are_still_reset_under_a_later_event_loop(engine: WasmEngine) -> None:
    """The stage keeps the loop it schedules resets in (asking asyncio for it is a system
    call); once that loop has stopped (a second ``asyncio.run``), the running one is found,
    so the later loop's streams still get reset instances rather than new ones."""
    st = WasmStage(StageConfig("wasm", "reset", {"module": str(WAT / "reset_probe.wat"),
                                                 "isolation": "per-request", "prewarm": 0}),
                   base_dir=WAT, engine=engine)

    async def streams(n: int) -> list[str | None]:
        states = []
        for _ in range(n):
            ex = request()
            driver = st.open_stream(ex)
            assert driver is not None and not isinstance(driver, Response)
            assert driver.enter(None) is None
            states.append(ex.request.headers.get("x-state"))
            assert isinstance(driver.around(Response(200, CIMultiDict(), b"ok")), Response)
            await asyncio.sleep(0)  # idle time: the reset
        return states

    assert asyncio.run(streams(2)) == [FRESH] * 2
    starts = st.plugin.metrics.vm_starts
    assert asyncio.run(streams(3)) == [FRESH] * 3
    assert st.plugin.metrics.vm_starts == starts  # reset under the new loop, none started
    asyncio.run(st.close())


async def test_callout_tokens_start_again_after_a_reset(make_stage, terminal, origin,  # type: ignore[no-untyped-def]
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A reset instance hands out callout tokens from 1 again, as a fresh one would."""
    from edgenode.wasm.vm import Vm

    seen: list[tuple[int, int]] = []
    http_call = Vm.http_call

    def spy(vm: Vm, *args: Any) -> tuple[int, int]:
        status, token = http_call(vm, *args)
        seen.append((id(vm), token))
        return status, token

    monkeypatch.setattr(Vm, "http_call", spy)
    st = make_stage("callout.wat", "reset-callout", isolation="per-request", prewarm=0)
    assert st.stats()["reset"] is True
    handler = build_chain([st], terminal)
    for _ in range(3):
        resp = await handler(request())
        assert resp.status == 200 and origin.seen[-1]["headers"].get("x-auth-status") == "202"  # the callout answered
        await asyncio.sleep(0)  # idle time: the reset
    assert [token for _, token in seen] == [1, 1, 1]
    assert len({vm for vm, _ in seen[1:]}) == 1  # the same instance, reset between streams
    await st.close()
