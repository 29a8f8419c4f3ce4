"""ABI markers and start-up limits: on_configure gets its own CPU deadline, and linear
memory grows at configure time under the stage's memory_limit (wat/startup_limits.wat)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edgenode.config import ConfigError, StageConfig
from edgenode.http.messages import CIMultiDict, Response
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.engine import FilterLoadError, WasmEngine
from edgenode.wasm.stage import WasmStage

from wasm_helpers import request

WAT = Path(__file__).parent / "wat"
#: wasm loop iterations that take well over the 10 ms request deadline on the quickest
#: machine seen (~0.3 ns an iteration: ~160 ms) and well under the 5 s start-up deadline
#: on a slow one (every byte below 0x80: the configuration travels as a UTF-8 string)
SPINS = 0x1F1F1F1F
#: a 40 MiB "dictionary" in 64 KiB pages
PAGES = 0x27F


def _stage(engine: WasmEngine, config: bytes, **options: object) -> WasmStage:
    opts = {"module": str(WAT / "startup_limits.wat"), "config": config.decode("latin-1"), **options}
    return WasmStage(StageConfig("wasm", "big", opts), base_dir=WAT, engine=engine)


def _config(spins: int, pages: int) -> bytes:
    data = struct.pack("<II", spins, pages)
    assert max(data) < 0x80
    return data


def _module(tmp_path: Path, marker: str) -> Path:
    path = tmp_path / "m.wat"
    path.write_text(f'(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) '
                    f'(i32.const 0)) (func (export "{marker}")))')
    return path


def test_unknown_abi_marker_is_refused_by_name(engine: WasmEngine, tmp_path: Path) -> None:
    with pytest.raises(FilterLoadError, match=r"ABI 0\.3\.0 \(proxy_abi_version_0_3_0\), which this host "
                                              r"does not support \(supported markers: .*proxy_abi_version_0_2_100"):
        engine.load(_module(tmp_path, "proxy_abi_version_0_3_0"), "future")
    with pytest.raises(FilterLoadError, match="missing Proxy-Wasm ABI version export"):
        engine.load(_module(tmp_path, "not_a_marker"), "none")
    assert engine.load(_module(tmp_path, "proxy_abi_version_0_2_100"), "higress").version == (0, 2, 1)


def test_configure_gets_the_startup_deadline_not_the_request_one(engine: WasmEngine) -> None:
    # the request deadline (10 ms) would cut this configure short; the start-up one does not
    stage = _stage(engine, _config(SPINS, 0), cpu_deadline_ms=10)
    assert stage.vm is not None and stage.vm.failed is None
    stage.vm.close()


async def test_request_callbacks_keep_the_request_deadline(engine: WasmEngine) -> None:
    stage = _stage(engine, _config(SPINS, 0), cpu_deadline_ms=10)

    async def origin(ex: Exchange) -> Response:
        return Response(200, CIMultiDict(), b"ok")

    response = await stage.wrap(origin)(request())
    assert response.status == 503  # on_request_headers spun past 10 ms: trapped, fail closed
    assert "interrupt" in (stage.vm.failed or "")


def test_startup_deadline_is_configurable_and_named(engine: WasmEngine) -> None:
    with pytest.raises(FilterLoadError, match="proxy_on_configure"):
        _stage(engine, _config(0x7F7F7F7F, 0), startup_cpu_deadline="20ms")
    with pytest.raises(ConfigError, match=r"startup_cpu_deadline: expected a duration"):
        _stage(engine, _config(0, 0), startup_cpu_deadline="soon")


def test_configure_may_grow_memory_up_to_the_limit(engine: WasmEngine) -> None:
    stage = _stage(engine, _config(0, PAGES), memory_limit="48MiB")
    assert stage.vm is not None
    stage.vm.mem.stale = True
    assert len(stage.vm.mem.refresh()) == (PAGES + 1) * 65536
    stage.vm.close()


def test_configure_past_the_memory_limit_fails_with_the_numbers(engine: WasmEngine) -> None:
    with pytest.raises(FilterLoadError) as err:
        _stage(engine, _config(0, PAGES), memory_limit="16MiB")
    message = str(err.value)
    assert "rejected the plugin configuration: memory.grow refused" in message
    assert "(linear memory 0.1 MiB, memory_limit 16.0 MiB: growing past it fails)" in message


def test_pure_foreign_call_at_startup_keeps_the_snapshot(engine: WasmEngine) -> None:
    stage = _stage(engine, _config(0, 16), isolation="per-request")
    assert stage.stats()["snapshot"] is True


def test_large_startup_state_is_baked_and_each_instance_is_fresh(engine: WasmEngine) -> None:
    """A megabyte of configure-time state: instances come from a module with the snapshot
    baked in (copy-on-write image) and each one starts from it, never from a sibling."""
    stage = _stage(engine, _config(7, 0x10), isolation="per-request", prewarm=0)
    assert stage.stats()["snapshot_baked"] is True
    page = 3 * 65536  # inside the memory configure grew and filled (each page holds its address)
    first = stage._start_vm(stage.plugin, stage.loaded, stage._snapshot)
    assert struct.unpack("<I", first.mem.read(page, 4))[0] == page
    assert first.mem.read(0, 1) == b"\x00" and first.root is not None
    first.mem.write(page, b"\xff\xff\xff\xff")  # a stream's change...
    first.close()
    second = stage._start_vm(stage.plugin, stage.loaded, stage._snapshot)
    assert struct.unpack("<I", second.mem.read(page, 4))[0] == page  # ...is not seen by the next one
    assert len(second.mem.refresh()) == 17 * 65536
    heap = {name: value for name, _, value in stage._snapshot[0].globals}["edgenode.snapshot.global.0"]
    assert heap > 1024 and second.alloc(4) == heap  # the allocator's global starts where configure left it
    second.close()
