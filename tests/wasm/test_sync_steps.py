"""The stream driver's synchronous steps, which a caller without a coroutine per stage
uses (a fast path through non-pausing filters).  The non-pausing paths run with no
event loop at all; a hold needs the running loop (a server's protocol callbacks have
one) and says so with Step.ASYNC."""

from __future__ import annotations

from wasm_helpers import request

from edgenode.http.messages import CIMultiDict, Response
from edgenode.wasm.stream import Step, StreamDriver


def ok() -> Response:
    return Response(200, CIMultiDict({"Content-Length": "2"}), b"ok")


def test_header_filter_runs_without_a_coroutine(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("header_only.wat", "sync-hdr")
    ex = request()
    driver = st.open_stream(ex)
    assert isinstance(driver, StreamDriver)
    assert driver.begin() is Step.NEXT
    out = driver.respond(ok())
    assert out is not None and out.headers["x-filtered"] == "yes"
    assert driver.ctx.finished and st.vm.active_streams == 0
    assert {phase for _, phase in ex.timings} == {"context_create", "request_headers", "response_headers"}


async def test_local_reply_and_pause_say_so(make_stage) -> None:  # type: ignore[no-untyped-def]
    deny = make_stage("local_reply.wat", "sync-deny").open_stream(request())
    assert deny.begin() is Step.REPLY
    reply = deny.respond(deny.ctx.local_response)
    assert reply.status == 403 and reply.headers["x-saw-response"] == "1"
    held = make_stage("pause.wat", "sync-held").open_stream(request(x_pause="0000"))
    assert held.begin() is Step.NEXT
    paused = make_stage("pause.wat", "sync-paused").open_stream(request(method="POST", body=b"abc",
                                                                        x_pause="1000"))
    assert paused.begin() is Step.ASYNC  # a hold needs the event loop: await finish_request()


def test_unavailable_filter_answers_or_steps_aside(make_stage) -> None:  # type: ignore[no-untyped-def]
    closed = make_stage("misbehave.wat", "sync-closed")
    trapped = closed.open_stream(request(x_misbehave="trap"))
    assert isinstance(trapped.begin(), Response)  # 503: the filter failed
    failed = closed.open_stream(request())
    assert isinstance(failed, Response) and failed.status == 503
    opened = make_stage("misbehave.wat", "sync-open", failure_policy="fail_open")
    assert opened.open_stream(request(x_misbehave="trap")).begin() is Step.BYPASS
    assert opened.open_stream(request()) is None  # later streams skip the failed filter
