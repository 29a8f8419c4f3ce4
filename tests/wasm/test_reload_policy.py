"""The ``reload`` failure policy the default chain's filters run under: a trap fails only
its own request, the next gets a new VM (counted), repeated traps back off, and a
flood of traps is logged once."""

from __future__ import annotations

import logging

import pytest
from wasm_helpers import request

from edgenode.config import load_config
from edgenode.pipeline.stage import build_chain
from edgenode.wasm.metrics import filter_metrics, wasm_collector
from edgenode.wasm.recovery import ReloadBackoff, TrapBurst


def test_default_chain_filters_use_reload() -> None:
    wasm = [s for s in load_config().chain if s.type == "wasm"]
    assert [s.name for s in wasm] == ["routing", "waf", "image-accept", "image"]
    assert {s.options.get("failure_policy") for s in wasm} == {"reload"}


async def test_bad_requests_do_not_fail_the_good_ones(make_stage, terminal,  # type: ignore[no-untyped-def]
                                                      caplog: pytest.LogCaptureFixture) -> None:
    st = make_stage("misbehave.wat", "reload-burst", failure_policy="reload", reload_backoff=60)
    handler = build_chain([st], terminal)
    with caplog.at_level(logging.DEBUG, logger="edgenode.filter.reload-burst"):
        statuses = [(await handler(request(**({"x_misbehave": "trap"} if bad else {})))).status
                    for bad in (True, False, True, False, True, False)]
    assert statuses == [503, 200, 503, 200, 503, 200]
    m = filter_metrics["reload-burst"]
    assert (m.traps, m.vm_reloads) == (3, 3)
    errors = [r for r in caplog.records if r.name == "edgenode.filter.reload-burst"
              and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unreachable" in errors[0].getMessage()  # one line per burst
    families = {f.name: f for f in wasm_collector.collect()}
    samples = {s.labels["filter"]: s.value for s in families["edgenode_wasm_vm_reloads"].samples}
    assert samples["reload-burst"] == 3
    assert st.stats()["vm_reloads"] == 3


async def test_a_vm_that_keeps_trapping_backs_off(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", "reload-loop", failure_policy="reload", reload_backoff=60)
    handler = build_chain([st], terminal)
    trap = {"x_misbehave": "trap"}
    assert [(await handler(request(**trap))).status for _ in range(2)] == [503, 503]
    assert (await handler(request())).status == 503  # no third VM within the back-off
    assert filter_metrics["reload-loop"].vm_reloads == 1


def test_backoff_schedule() -> None:
    b = ReloadBackoff(base=1.0)
    assert b.may_reload(100.0)  # first failure: at once
    assert not b.may_reload(100.5) and b.failures == 2  # the new VM failed too: wait base
    assert b.may_reload(101.6)
    assert not b.may_reload(102.0) and not b.may_reload(103.9)  # then 2 * base from there
    assert b.may_reload(104.1)
    b.succeeded()
    assert b.may_reload(104.0) and b.failures == 1


def test_trap_bursts() -> None:
    burst = TrapBurst(gap=10.0)
    assert [burst.starts_burst(t) for t in (0.0, 1.0, 9.5, 19.0, 29.5)] == [True, False, False,
                                                                           False, True]
    assert burst.count == 1
