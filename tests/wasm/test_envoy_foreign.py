"""The foreign functions Envoy and Higress SDK wrappers call, from a real filter
(wat/envoy_probe.wat); an unknown name is NOT_FOUND, never a trap."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edgenode.config import StageConfig
from edgenode.wasm.abi import Status
from edgenode.wasm.engine import WasmEngine
from edgenode.wasm.foreign_envoy import parse_declare_property
from edgenode.wasm.stage import WasmStage

from envoy_probe import EnvoyProbe
from wasm_helpers import request

WAT = Path(__file__).parent / "wat"


@pytest.fixture
def probe(engine: WasmEngine):  # type: ignore[no-untyped-def]
    st = WasmStage(StageConfig("wasm", "ff", {"module": str(WAT / "envoy_probe.wat"), "log_level": "warn"}),
                   base_dir=WAT, engine=engine)
    yield EnvoyProbe(st.vm, request())
    st.vm.close()


def _declare(name: str, readonly: bool) -> bytes:
    # DeclarePropertyArguments{name = 1, readonly = 2, type = 3 (BYTES = 0), span = 4 (1 = request)}
    return bytes([0x0A, len(name)]) + name.encode() + bytes([0x10, int(readonly), 0x18, 0, 0x20, 1])


def test_get_log_level_is_the_filter_level(probe: EnvoyProbe) -> None:
    assert probe.foreign("get_log_level") == (Status.OK, struct.pack("<I", 3))  # warn


def test_clear_route_cache_and_io_cycle_limit_are_accepted(probe: EnvoyProbe) -> None:
    assert probe.foreign("clear_route_cache") == (Status.OK, b"")
    assert probe.foreign("set_global_max_requests_per_io_cycle", struct.pack("<Q", 20)) == (Status.OK, b"")


def test_declare_property_readonly(probe: EnvoyProbe) -> None:
    assert parse_declare_property(_declare("tenant", True)) == ("tenant", True)
    assert probe.foreign("declare_property", _declare("tenant", True))[0] == Status.OK
    assert probe.set_prop("tenant", b"a") == Status.OK
    assert probe.set_prop("tenant", b"b") == Status.NOT_FOUND  # read-only once set
    assert probe.prop("tenant") == (Status.OK, b"a")
    assert probe.foreign("declare_property", _declare("note", False))[0] == Status.OK
    assert probe.set_prop("note", b"1") == Status.OK and probe.set_prop("note", b"2") == Status.OK
    assert probe.foreign("declare_property", b"\xff\xff")[0] == Status.OK  # malformed: ignored


def test_unknown_foreign_function_is_not_found_not_a_trap(probe: EnvoyProbe) -> None:
    assert probe.foreign("inject_encoded_data_to_filter_chain_on_header", b"x") == (Status.NOT_FOUND, b"")
    assert probe.vm.failed is None
