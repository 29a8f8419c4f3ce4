"""A filter that traps, loops or exhausts its memory in any callback of the host core's
one-transition paths (response headers + stream end, the end callbacks) is contained
as in the request headers hook: the failure policy decides, the node carries on
(misbehave.wat, x-misbehave-in picks the callback)."""

from __future__ import annotations

import pytest
from wasm_helpers import request

from edgenode.pipeline.stage import build_chain
from edgenode.wasm.metrics import filter_metrics


def bad(what: str, where: str) -> dict[str, str]:
    return {"x_misbehave": what, "x_misbehave_in": where}


@pytest.mark.parametrize("what", ["trap", "loop", "bomb"])
async def test_response_headers_failure_fails_only_that_stream(make_stage, terminal, what) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", f"resp-{what}", isolation="per-request", cpu_deadline_ms=20,
                    memory_limit="2MiB")
    handler = build_chain([st], terminal)
    resp = await handler(request(**bad(what, "response")))
    assert resp.status == 503 and b"failed" in resp.body  # type: ignore[operator]
    ok = await handler(request())
    assert ok.status == 200 and ok.headers["x-ok"] == "1"
    assert filter_metrics[f"resp-{what}"].traps == 1


async def test_response_headers_trap_shared_fail_closed_and_open(make_stage, terminal) -> None:  # type: ignore[no-untyped-def]
    closed = make_stage("misbehave.wat", "resp-closed")
    handler = build_chain([closed], terminal)
    assert (await handler(request(**bad("trap", "response")))).status == 503
    assert closed.vm.failed and "unreachable" in closed.vm.failed
    assert (await handler(request())).status == 503  # a failed shared VM stays failed
    opened = make_stage("misbehave.wat", "resp-open", failure_policy="fail_open")
    handler = build_chain([opened], terminal)
    resp = await handler(request(**bad("trap", "response")))
    assert resp.status == 200 and "x-ok" not in resp.headers  # the response passes untouched


@pytest.mark.parametrize("what", ["trap", "loop"])
async def test_on_log_failure_keeps_the_response(make_stage, terminal, what) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", f"log-{what}", failure_policy="reload", cpu_deadline_ms=20)
    handler = build_chain([st], terminal)
    resp = await handler(request(**bad(what, "log")))
    assert resp.status == 200 and resp.headers["x-ok"] == "1"  # the end came after the headers
    assert st.vm.failed and filter_metrics[f"log-{what}"].traps == 1
    ok = await handler(request())  # reload: the next stream gets a new VM
    assert ok.status == 200 and ok.headers["x-ok"] == "1"
    assert filter_metrics[f"log-{what}"].vm_reloads == 1
