"""Start-up, load errors, module cache, WASI subset, option validation, map codec."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgenode.config import ConfigError, StageConfig
from edgenode.wasm.abi import MapDecodeError, decode_map, encode_map
from edgenode.wasm.engine import FilterLoadError, WasmEngine
from edgenode.wasm.stage import WasmStage
from edgenode.wasm.vm import FilterFailure

WAT = Path(__file__).parent / "wat"


def stage(engine: WasmEngine, module: str, name: str = "f", **opts: object) -> WasmStage:
    return WasmStage(StageConfig("wasm", name, {"module": module, **opts}), base_dir=WAT,
                     engine=engine, index=2)


def test_missing_import_is_named(engine: WasmEngine) -> None:
    with pytest.raises(FilterLoadError, match=r"filter 'waf': module imports env\.proxy_foo, "
                                              r"which this host does not provide"):
        stage(engine, "missing_import.wat", "waf")


def test_version_specific_imports(engine: WasmEngine, tmp_path: Path) -> None:
    src = (WAT / "v010.wat").read_text().replace("proxy_continue_request", "proxy_continue_stream")
    src = src.replace("(func $continue_request (result i32))", "(func $continue_request (param i32) (result i32))")
    src = src.replace("(call $continue_request)", "(call $continue_request (i32.const 0))")
    (tmp_path / "bad.wat").write_text(src)
    with pytest.raises(FilterLoadError, match=r"env\.proxy_continue_stream, which this host does "
                                              r"not provide for ABI 0\.1\.0"):
        stage(engine, str(tmp_path / "bad.wat"), "legacy")


def test_configure_false_stops_start_with_filter_message(engine: WasmEngine) -> None:
    with pytest.raises(FilterLoadError, match=r"filter 'strict': proxy_on_configure rejected .*"
                                              r"config must set \"mode\""):
        stage(engine, "reject_config.wat", "strict")


def test_no_abi_version_or_not_wasm(engine: WasmEngine, tmp_path: Path) -> None:
    (tmp_path / "nover.wat").write_text('(module (memory (export "memory") 1) '
                                        '(func (export "malloc") (param i32) (result i32) (i32.const 0)))')
    with pytest.raises(FilterLoadError, match="ABI version"):
        stage(engine, str(tmp_path / "nover.wat"))
    (tmp_path / "junk.wasm").write_bytes(b"\0asm junk")
    with pytest.raises(FilterLoadError, match="not a valid Wasm module"):
        stage(engine, str(tmp_path / "junk.wasm"))


def test_module_cache_hit_on_disk(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = WasmEngine(cache_dir=cache)
    assert not stage(first, "rewrite.wat").loaded.cache_hit
    assert first.compiles == 1 and len(list(cache.glob("*.cwasm"))) == 1
    second = WasmEngine(cache_dir=cache)  # a new process would look like this
    st = stage(second, "rewrite.wat")
    assert st.loaded.cache_hit and second.compiles == 0
    first.close()
    second.close()


def test_wasi_subset(engine: WasmEngine, caplog: pytest.LogCaptureFixture,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_GRANTED", "yes")
    monkeypatch.setenv("EDGE_SECRET", "no")
    with caplog.at_level(logging.INFO, logger="edgenode.filter.wasi"):
        st = stage(engine, "wasi.wat", "wasi", env=["EDGE_GRANTED"])
    msgs = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "edgenode.filter.wasi"]
    assert (logging.INFO, "hello from _initialize") in msgs
    errors = [m for lvl, m in msgs if lvl == logging.ERROR]
    assert errors and "EDGE_GRANTED=yes" in errors[0] and "EDGE_SECRET" not in errors[0]
    st.vm.export("exit_now", 1, 1)
    with pytest.raises(FilterFailure, match="proc_exit"):
        st.vm.call("exit_now", None, 3)
    assert st.vm.failed


@pytest.mark.parametrize("opts, message", [
    ({}, "chain[2].module: required"),
    ({"module": "nope.wasm"}, "chain[2].module: no such file"),
    ({"module": "rewrite.wat", "isolation": "pooled"}, "chain[2].isolation: must be one of"),
    ({"module": "rewrite.wat", "failure_policy": "ignore"}, "chain[2].failure_policy: must be one of"),
    ({"module": "rewrite.wat", "memory_limit": "1KiB"}, "chain[2].memory_limit: must be at least"),
    ({"module": "rewrite.wat", "cpu_deadline_ms": 0}, "chain[2].cpu_deadline_ms: expected a positive"),
    ({"module": "rewrite.wat", "env": "HOME"}, "chain[2].env: expected a list"),
    ({"module": "rewrite.wat", "config": 5}, "chain[2].config: expected a string or a table"),
    ({"module": "rewrite.wat", "colour": "red"}, "chain[2].colour: unknown key"),
    ({"module": "rewrite.wat", "log_level": "loud"}, "chain[2].log_level: must be one of"),
    ({"module": "rewrite.wat", "snapshot": "yes"}, "chain[2].snapshot: expected true or false"),
])
def test_option_validation(engine: WasmEngine, opts: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        WasmStage(StageConfig("wasm", "f", opts), base_dir=WAT, engine=engine, index=2)
    assert str(err.value).startswith(message)


def test_map_codec() -> None:
    pairs = [("a", "1"), ("b", "22")]
    raw = encode_map(pairs)
    assert raw.hex() == "02000000010000000100000001000000020000006100310062003232" + "00"
    assert decode_map(raw) == pairs
    assert encode_map([]) == b""
    assert decode_map(b"") == decode_map(b"\0") == decode_map(b"\0\0\0\0") == []
    for bad in (b"\x01\x00\x00\x00", raw[:-1], b"\x01\x00"):
        with pytest.raises(MapDecodeError):
            decode_map(bad)
