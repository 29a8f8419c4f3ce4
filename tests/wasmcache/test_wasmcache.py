"""The compiled-Wasm disk cache that filters (modules) and functions (components) share."""

from __future__ import annotations

from pathlib import Path

import pytest
from wasmtime import Engine, Module, wat2wasm
from wasmtime.component import Component

from edgenode.wasmcache import cache_key, load_or_compile

MODULE = wat2wasm('(module (func (export "f") (result i32) i32.const 7))')
COMPONENT = wat2wasm("(component)")


@pytest.mark.parametrize(("kind", "source"), [(Module, MODULE), (Component, COMPONENT)])
def test_second_load_comes_from_the_artifact(kind: type, source: bytes, tmp_path: Path) -> None:
    engine = Engine()
    artifact = tmp_path / f"{cache_key(source, 'cfg', 'v1')}.cwasm"
    calls: list[int] = []

    def compile_() -> object:
        calls.append(1)
        return kind(engine, source)

    first, hit1 = load_or_compile(engine, kind, artifact, compile_)
    second, hit2 = load_or_compile(engine, kind, artifact, compile_)
    assert (hit1, hit2, len(calls)) == (False, True, 1)
    assert isinstance(second, kind) and artifact.is_file()
    assert list(tmp_path.glob("*.tmp")) == []


def test_unusable_artifact_is_recompiled_and_replaced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine()
    artifact = tmp_path / "x.cwasm"
    artifact.write_bytes(b"not a compiled module")
    module, hit = load_or_compile(engine, Module, artifact, lambda: Module(engine, MODULE))
    assert not hit and [e.name for e in module.exports] == ["f"]
    assert "discarding unusable compile cache entry" in caplog.text
    assert load_or_compile(engine, Module, artifact, lambda: pytest.fail("compiled again"))[1]


def test_unwritable_cache_still_loads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # the cache directory cannot be created, even by root
    _, hit = load_or_compile(engine, Module, blocker / "m.cwasm", lambda: Module(engine, MODULE))
    assert not hit and "cannot write compile cache" in caplog.text


def test_cache_key_changes_with_engine_settings_and_version() -> None:
    keys = {cache_key(MODULE, "a", "1"), cache_key(MODULE, "b", "1"), cache_key(MODULE, "a", "2"),
            cache_key(COMPONENT, "a", "1")}
    assert len(keys) == 4


def test_changed_codegen_setting_compiles_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An artifact compiled under other engine settings is never loaded: the settings are
    in its name (wasmtime rejects some mismatched artifacts, not all)."""
    from edgenode.wasm import engine as eng_mod

    wat = Path(__file__).parents[1] / "wasm" / "wat" / "rewrite.wat"
    cache = tmp_path / "cache"
    assert not eng_mod.WasmEngine(cache_dir=cache, pool_instances=0).load(wat, "f").cache_hit
    assert eng_mod.WasmEngine(cache_dir=cache, pool_instances=0).load(wat, "f").cache_hit
    settings = {**eng_mod.CODEGEN_SETTINGS, "cranelift_opt_level": "speed_and_size"}
    monkeypatch.setattr(eng_mod, "CODEGEN_SETTINGS", settings)
    monkeypatch.setattr(eng_mod, "CONFIG_ID", ";".join(f"{k}={v}" for k, v in settings.items()))
    assert not eng_mod.WasmEngine(cache_dir=cache, pool_instances=0).load(wat, "f").cache_hit
    assert len(list(cache.glob("*.cwasm"))) == 2
