"""The pure parts of start-up snapshots: the module rewrite and the page diff."""

from __future__ import annotations

import pytest
import wasmtime

from edgenode.wasm.snapshot import GLOBAL_PREFIX, PAGE, diff_pages, export_globals


def _exports(wasm: bytes) -> dict[str, str]:
    module = wasmtime.Module(wasmtime.Engine(), wasm)
    return {e.name: type(e.type).__name__ for e in module.exports}


def test_mutable_globals_are_exported_and_the_rest_kept() -> None:
    wasm = wasmtime.wat2wasm("""(module
      (import "env" "f" (func (param i32)))
      (global (mut i32) (i32.const 7))
      (global i64 (i64.const 1))
      (global (mut f64) (f64.const 2.5))
      (global (mut i64) (i64.add (i64.const 1) (i64.const 2)))
      (memory (export "memory") 1)
      (func (export "run")))""")
    out, exports = export_globals(bytes(wasm))
    assert exports == [(f"{GLOBAL_PREFIX}0", "i32"), (f"{GLOBAL_PREFIX}2", "f64"),
                       (f"{GLOBAL_PREFIX}3", "i64")]
    got = _exports(out)
    assert got["memory"] == "MemoryType" and got["run"] == "FuncType"
    assert all(got[name] == "GlobalType" for name, _ in exports)
    assert f"{GLOBAL_PREFIX}1" not in got  # immutable: nothing to snapshot


def test_module_without_mutable_globals_is_unchanged() -> None:
    wasm = bytes(wasmtime.wat2wasm('(module (memory (export "memory") 1))'))
    assert export_globals(wasm) == (wasm, [])


@pytest.mark.parametrize("wat, reason", [
    ('(module (import "env" "g" (global (mut i32))))', "imports other than functions"),
    ("(module (global (mut externref) (ref.null extern)))", "mutable global"),
])
def test_unsupported_modules_are_refused(wat: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        export_globals(bytes(wasmtime.wat2wasm(wat)))


def test_not_wasm_is_refused() -> None:
    with pytest.raises(ValueError, match="not a core Wasm module"):
        export_globals(b"hello world")


def test_diff_pages_merges_runs_and_skips_zero_growth() -> None:
    fresh = bytes(4 * PAGE)
    started = bytearray(6 * PAGE)
    started[10] = 1            # page 0
    started[PAGE + 5] = 2      # page 1 (same run)
    started[3 * PAGE] = 3      # page 3 (new run)
    # pages 4-5 are growth that stayed zero: nothing to restore
    runs = diff_pages(fresh, bytes(started))
    assert [(off, len(data)) for off, data in runs] == [(0, 2 * PAGE), (3 * PAGE, PAGE)]
    assert runs[1][1][0] == 3
    started[5 * PAGE + 1] = 4  # non-zero growth is restored
    assert diff_pages(fresh, bytes(started))[-1][0] == 5 * PAGE
