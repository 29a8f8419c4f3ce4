"""Filter log levels down to trace: per filter (``log_level``) and node-wide
(``[log] level``), as ``proxy_get_log_level`` reports them and as records reach handlers."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest

from edgenode.config import StageConfig, parse_config
from edgenode.observe.loglevel import TRACE

from wasm_helpers import request

WAT = Path(__file__).parent / "wat"
MSG_PTR, LEVEL_PTR = 1024, 40


def run_probe(make_stage, name: str, **options: str) -> int:  # type: ignore[no-untyped-def]
    """Start abi_probe.wat, ask its log level and log one message at each level 0..5."""
    vm = make_stage("abi_probe.wat", name, **options).vm
    ctx = vm.new_stream(request())
    vm.export("t_proxy_get_log_level", 1, 1)
    vm.export("t_proxy_log", 3, 1)
    assert vm.call("t_proxy_get_log_level", ctx, LEVEL_PTR) == 0
    level = struct.unpack("<I", vm.mem.read(LEVEL_PTR, 4))[0]
    for lvl in range(6):
        text = f"level {lvl}".encode()
        vm.mem.write(MSG_PTR, text)
        assert vm.call("t_proxy_log", ctx, lvl, MSG_PTR, len(text)) == 0
    return level


def filter_records(caplog: pytest.LogCaptureFixture, name: str) -> list[int]:
    return [r.levelno for r in caplog.records if r.name == f"edgenode.filter.{name}"]


def test_log_section_accepts_trace() -> None:
    cfg = parse_config({"origins": {"default": {"url": "http://127.0.0.1:8081"}},
                        "log": {"level": "trace"}})
    assert cfg.log.level == "trace"
    assert logging.getLevelName("TRACE") == TRACE and logging.getLevelName(TRACE) == "TRACE"


def test_per_filter_trace_passes_a_quieter_node(make_stage, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING)  # the node logs warnings and up ...
    caplog.handler.setLevel(logging.NOTSET)  # ... through a handler that takes any level
    level = run_probe(make_stage, "lv-trace", log_level="trace")
    assert level == 0  # proxy_get_log_level: trace
    assert filter_records(caplog, "lv-trace") == [TRACE, logging.DEBUG, logging.INFO,
                                                   logging.WARNING, logging.ERROR, logging.CRITICAL]
    assert caplog.records[0].levelname == "TRACE"


@pytest.fixture
def node_chain() -> list[StageConfig]:  # the node of tests/conftest.py runs the probe
    return [StageConfig("wasm", "lv-node", {"module": str(WAT / "abi_probe.wat")})]


@pytest.mark.parametrize("level, expected", [("trace", 0), ("info", 2), ("warning", 3)])
async def test_filters_follow_the_node_level(make_node, level: str, expected: int) -> None:  # type: ignore[no-untyped-def]
    node = await make_node(level=level)  # [log] level
    vm = node.filters["lv-node"].vm
    ctx = vm.new_stream(request())
    vm.export("t_proxy_get_log_level", 1, 1)
    assert vm.call("t_proxy_get_log_level", ctx, LEVEL_PTR) == 0
    assert struct.unpack("<I", vm.mem.read(LEVEL_PTR, 4))[0] == expected
    assert logging.getLogger("edgenode.filter.lv-node").isEnabledFor(TRACE) == (level == "trace")


def test_unset_level_is_info(make_stage) -> None:  # type: ignore[no-untyped-def]
    assert run_probe(make_stage, "lv-unset") == 2
