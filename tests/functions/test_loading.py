"""A component is loaded only when the node can serve it: bad input is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from wasmtime import wat2wasm

from edgenode.config import ConfigError, StageConfig
from edgenode.functions.component import FunctionLoadError, FunctionRuntime
from edgenode.functions.stage import FunctionStage


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> FunctionRuntime:
    return FunctionRuntime(cache_dir=tmp_path_factory.mktemp("fncache"))


def _file(tmp_path: Path, data: bytes | str, name: str = "f.wasm") -> Path:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else wat2wasm(data))
    return p


def test_garbage_is_not_a_wasm_binary(rt: FunctionRuntime, tmp_path: Path) -> None:
    with pytest.raises(FunctionLoadError, match="not a WebAssembly binary"):
        rt.load(_file(tmp_path, b"#!/bin/sh\necho hi\n"), "bad")


def test_core_module_is_refused_as_not_a_component(rt: FunctionRuntime, tmp_path: Path) -> None:
    with pytest.raises(FunctionLoadError, match="a core Wasm module, not a component"):
        rt.load(_file(tmp_path, "(module)"), "core")


def test_component_without_incoming_handler(rt: FunctionRuntime, tmp_path: Path) -> None:
    path = tmp_path / "empty.wasm"
    path.write_bytes(wat2wasm("(component)"))
    with pytest.raises(FunctionLoadError, match="exports no wasi:http/incoming-handler"):
        rt.load(path, "empty")


def test_unknown_interface_fails_with_its_full_name(rt: FunctionRuntime, tmp_path: Path) -> None:
    path = tmp_path / "db.wasm"
    path.write_bytes(wat2wasm('(component (import "acme:db/query@1.2.3" (instance)))'))
    with pytest.raises(FunctionLoadError, match=r"imports acme:db/query@1\.2\.3, which this node does not provide"):
        rt.load(path, "db")


def test_unknown_function_of_a_known_interface_is_named(rt: FunctionRuntime, tmp_path: Path) -> None:
    path = tmp_path / "fn.wasm"
    path.write_bytes(wat2wasm('(component (import "wasi:http/types@0.2.3" (instance '
                             '(export "frobnicate" (func)))))'))
    with pytest.raises(FunctionLoadError, match=r"wasi:http/types@0\.2\.3#frobnicate"):
        rt.load(path, "fn")


def test_incompatible_version_is_refused(rt: FunctionRuntime, tmp_path: Path) -> None:
    path = tmp_path / "v.wasm"
    path.write_bytes(wat2wasm('(component (import "wasi:http/types@0.3.0" (instance)))'))
    with pytest.raises(FunctionLoadError, match=r"imports wasi:http/types@0\.3\.0, but this node provides"):
        rt.load(path, "v")


def test_stage_reports_the_config_key(tmp_path: Path) -> None:
    path = _file(tmp_path, "(module)")
    with pytest.raises(ConfigError, match=r"chain\[3\]\.component: .*not a component"):
        FunctionStage(StageConfig("function", "f", {"component": str(path)}), base_dir=tmp_path, index=3)


def test_denied_capability_config_is_checked(js_component: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"allowed_outbound_hosts: 'api' is neither an upstream"):
        FunctionStage(StageConfig("function", "f", {"component": str(js_component),
                                                    "allowed_outbound_hosts": ["api"]}),
                      base_dir=tmp_path, callout=lambda *a: None, upstreams={})  # type: ignore[arg-type,return-value]


def test_real_components_link_and_list_their_imports(js_component: Path, py_component: Path) -> None:
    rt = FunctionRuntime()
    js = rt.load(js_component, "js")
    py = rt.load(py_component, "py")
    assert js.handler_export.startswith("wasi:http/incoming-handler@0.2.")
    assert any(i.startswith("wasi:http/types@0.2.") for i in js.imports)
    # Spin's SDK imports interfaces the node does not grant: they link (and trap if called)
    assert "fermyon:spin/key-value@2.0.0" in py.imports
    assert any(i.startswith("wasi:sockets/") for i in py.imports)
    assert js.cache_hit and py.cache_hit  # `edgenode function build` precompiled both

