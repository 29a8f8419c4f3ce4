"""The chain's steps of a filter's stream (``enter``/``around``: native.StreamCore, one call
into the host core per side of the usual stream) against real modules: the stream is its
own context, the VM forgets it at the end, and a filter that traps, loops or exhausts its
memory on this path is contained as on the Python path (misbehave.wat, x-misbehave-in
picks the callback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import getversion
from wasm_helpers import request

from edgenode.config import StageConfig
from edgenode.http.messages import CIMultiDict, Response
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.metrics import filter_metrics
from edgenode.wasm.native import StreamOpener
from edgenode.wasm.stream import StreamDriver


def hit(ex: Exchange) -> Response:
    return Response(200, CIMultiDict({"Content-Length": "2"}), b"ok")


def not_called(ex: Exchange) -> Response:
    raise AssertionError("the rest of the chain ran")


def test_usual_stream_one_object_and_forgotten(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("header_only.wat", "native-hdr")
    ex = request()
    driver = st.open_stream(ex)
    assert isinstance(driver, StreamDriver)
    assert driver.enter(not_called) is None
    assert driver.ctx is driver and st.vm.contexts[driver.id] is driver and st.vm.active_streams == 1
    out = driver.around(hit(ex))
    assert isinstance(out, Response) and out.headers["x-filtered"] == "yes"
    assert driver.finished and driver.in_log and not driver.response_headers_open
    assert st.vm.active_streams == 0 and list(st.vm.contexts) == [st.vm.root.id]
    assert {phase for _, phase in ex.timings} == {"context_create", "request_headers", "response_headers"}


def test_server_timing_on_the_native_path(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("header_only.wat", "native-timing")
    ex = request(x_edgenode_timing="1")
    driver = st.open_stream(ex)
    assert driver.enter(not_called) is None
    out = driver.around(hit(ex))
    assert out.headers["Server-Timing"].startswith("wasm-native-timing;dur=")
    plain = st.open_stream(request())
    assert plain.enter(not_called) is None
    assert "Server-Timing" not in plain.around(hit(plain.ex)).headers


def test_observer_sees_each_callback_of_the_same_steps(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("header_only.wat", "native-observed")
    seen: list[str] = []
    st.plugin.observer = lambda filt, name, phase, dt, result, ex: seen.append(name)
    ex = request()
    driver = st.open_stream(ex)
    assert driver.enter(not_called) is None
    assert driver.around(hit(ex)).headers["x-filtered"] == "yes"
    assert seen == ["proxy_on_context_create", "proxy_on_request_headers", "proxy_on_response_headers"]
    assert st.vm.active_streams == 0


def test_observer_set_after_streams_ran_is_seen_by_the_next(make_stage) -> None:  # type: ignore[no-untyped-def]
    """The plugin's ``observer`` is read by its slot offset once streams ran: set later (as
    developer tools do), the next stream is observed; cleared, it takes the one-call path."""
    st = make_stage("header_only.wat", "native-observed-late")
    seen: list[str] = []

    def stream() -> None:
        driver = st.open_stream(request())
        assert driver.enter(not_called) is None
        assert driver.around(hit(driver.ex)).headers["x-filtered"] == "yes"

    stream()
    st.plugin.observer = lambda filt, name, phase, dt, result, ex: seen.append(name)
    stream()
    assert seen == ["proxy_on_context_create", "proxy_on_request_headers", "proxy_on_response_headers"]
    st.plugin.observer = None
    stream()
    assert len(seen) == 3


def test_hit_wire_head_extension_written_as_setattr_would(make_stage) -> None:  # type: ignore[no-untyped-def]
    """A kept head extended by a filter's added field is stored by the slot's offset; a
    type whose ``wire_head`` is a property gets the same value through its setter."""

    class Watched(Response):
        __slots__ = ("written",)

        @property  # type: ignore[override]
        def wire_head(self) -> tuple[int, bytes] | None:
            return self.written

        @wire_head.setter
        def wire_head(self, value: tuple[int, bytes] | None) -> None:
            self.written = value

    st = make_stage("header_only.wat", "native-wire")
    outs = []
    for kind in (Response, Response, Watched):
        driver = st.open_stream(request())
        assert driver.enter(not_called) is None
        resp = kind(200, CIMultiDict({"Date": "x"}), b"ok")
        resp.wire_head = (getversion(resp.headers), b"Date: x\r\n")
        outs.append(driver.around(resp))
    for out in outs:
        assert out.wire_head == (getversion(out.headers), b"Date: x\r\nx-filtered: yes\r\n")
    assert outs[2].written is outs[2].wire_head


def test_map_blocks_made_only_when_a_call_needs_them(make_stage) -> None:  # type: ignore[no-untyped-def]
    """Reading request fields and adding a response field (header_only.wat) makes neither
    map's block nor the exchange's list of them.  A block asked for is made then and shared
    by the exchange's other filter, and a field that filter adds without a block of its own
    is in the block's next serialisation."""
    first, second = make_stage("header_only.wat", "lazy-a"), make_stage("header_only.wat", "lazy-b")
    ex = request()
    a, b = first.open_stream(ex), second.open_stream(ex)
    assert a.enter(not_called) is None and b.enter(not_called) is None
    assert ex.wasm_maps is None
    block = a.request_block
    assert ex.wasm_maps[0] is block and b.request_block is block
    assert block.get(b":authority") == b"example.com"
    resp = hit(ex)
    a.set_response(resp)
    assert b"x-filtered" not in a.response_block.wire()
    out = b.around(resp)
    assert ex.wasm_maps[1] is a.response_block
    assert b"x-filtered\x00yes\x00" in a.response_block.wire()
    assert a.around(out).headers.getall("x-filtered") == ["yes", "yes"]
    assert first.vm.active_streams == second.vm.active_streams == 0


@pytest.mark.parametrize("what", ["trap", "loop", "bomb"])
def test_request_headers_failure_on_the_native_path(make_stage, what) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", f"native-req-{what}", cpu_deadline_ms=20, memory_limit="2MiB")
    driver = st.open_stream(request(x_misbehave=what))
    out = driver.enter(not_called)
    assert isinstance(out, Response) and out.status == 503
    assert st.vm.failed and filter_metrics[f"native-req-{what}"].traps == 1
    assert st.vm.active_streams == 0
    again = st.open_stream(request())  # a failed shared VM stays failed (fail_closed)
    assert isinstance(again, Response) and again.status == 503


@pytest.mark.parametrize("what", ["trap", "loop", "bomb"])
def test_request_headers_failure_fail_open_bypasses(make_stage, what) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", f"native-open-{what}", cpu_deadline_ms=20, memory_limit="2MiB",
                    failure_policy="fail_open")
    ex = request(x_misbehave=what)
    out = st.open_stream(ex).enter(hit)
    assert isinstance(out, Response) and out.status == 200 and "x-ok" not in out.headers
    assert st.vm.failed and st.vm.active_streams == 0


@pytest.mark.parametrize("what", ["trap", "loop", "bomb"])
def test_response_headers_failure_on_the_native_path(make_stage, what) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", f"native-resp-{what}", cpu_deadline_ms=20, memory_limit="2MiB")
    ex = request(x_misbehave=what, x_misbehave_in="response")
    driver = st.open_stream(ex)
    assert driver.enter(not_called) is None
    out = driver.around(hit(ex))
    assert out.status == 503 and st.vm.failed and st.vm.active_streams == 0


def test_on_log_trap_keeps_the_response(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("misbehave.wat", "native-log")
    ex = request(x_misbehave="trap", x_misbehave_in="log")
    driver = st.open_stream(ex)
    assert driver.enter(not_called) is None
    out = driver.around(hit(ex))
    assert out.status == 200 and out.headers["x-ok"] == "1"
    assert st.vm.failed and driver.finished and st.vm.active_streams == 0


@pytest.mark.parametrize("how", ["fail", "close"])
def test_a_vm_failed_or_closed_mid_stream_is_seen_by_the_next_step(make_stage, how) -> None:  # type: ignore[no-untyped-def]
    """The native steps read the VM's state (vmcore.c) as the Vm last set it: a stream
    whose VM failed or closed after its request side gets the failure reply, not a call
    into the instance."""
    st = make_stage("header_only.wat", f"native-mid-{how}")
    ex = request()
    driver = st.open_stream(ex)
    assert driver.enter(not_called) is None and st.vm.active_streams == 1
    if how == "fail":
        st.vm.fail("failed from outside")
    else:
        st.vm.close()
    out = driver.around(hit(ex))
    assert out.status == 503 and "x-filtered" not in out.headers
    assert not any(phase == "response_headers" for _, phase in ex.timings)


def test_a_reloaded_vm_takes_new_streams_while_the_failed_one_ends_its_own(make_stage) -> None:  # type: ignore[no-untyped-def]
    st = make_stage("header_only.wat", "native-reload", failure_policy="reload")
    old = st.vm
    first = st.open_stream(request())
    assert first.enter(not_called) is None and old.active_streams == 1
    old.fail("failed from outside")
    second = st.open_stream(request())
    assert isinstance(second, StreamDriver) and second.vm is st.vm is not old
    assert second.enter(not_called) is None and st.vm.active_streams == 1
    assert second.around(hit(second.ex)).headers["x-filtered"] == "yes"
    assert st.vm.active_streams == 0 and st.vm.failed is None
    assert first.around(hit(first.ex)).status == 503


def test_slot_reads_by_remembered_offset_follow_the_type() -> None:
    """The core reads the exchange's ``request`` by the slot offset it found for the type;
    another object of the type, a type changed since, and an unset slot answer as
    ``getattr`` does."""

    class Ex:
        __slots__ = ("request",)

    first, second = Ex(), Ex()
    first.request, second.request = "first", "second"
    assert StreamDriver(None, first).request == "first"
    assert StreamDriver(None, second).request == "second"
    Ex.request = property(lambda self: "property")  # type: ignore[assignment]
    assert StreamDriver(None, first).request == "property"

    class Unset:
        __slots__ = ("request",)

    with pytest.raises(AttributeError):
        StreamDriver(None, Unset())


async def test_the_stages_opener_makes_the_usual_stream_and_hands_on_the_rest(make_stage) -> None:  # type: ignore[no-untyped-def]
    """``open_stream`` makes the usual stream on the shared VM in C, as the driver's class
    call would; a tick not armed yet, a failed VM (and its reload), per-request instances
    and a module without stream hooks are decided by the stage's Python opener."""
    st = make_stage("counters.wat", "opener", failure_policy="reload", reload_backoff="0s")
    assert isinstance(st.open_stream, StreamOpener) and st.open_stream.vm is st.vm and st.vm.root.tick_ms
    st.vm.root.tick_handle.cancel()
    st.vm.root.tick_handle = None  # as before the loop ran
    ex = request()
    first = st.open_stream(ex)  # the Python opener arms the tick
    assert st.vm.root.tick_handle is not None
    usual = st.open_stream(ex)
    for driver in (first, usual):
        assert type(driver) is StreamDriver and driver.vm is st.vm and driver.ex is ex
        assert driver.cfg is st._settings and driver.request is ex.request and driver.id == 0
    old = st.vm
    old.fail("test")
    again = st.open_stream(request())  # reloaded: the opener follows the new VM
    assert isinstance(again, StreamDriver) and again.vm is st.vm is st.open_stream.vm and st.vm is not old
    per_request = make_stage("header_only.wat", "opener-pr", isolation="per-request")
    assert not isinstance(per_request.open_stream, StreamOpener)
    assert isinstance(per_request.open_stream(request()), StreamDriver)
    no_hooks = make_stage("bench_calls.wat", "opener-no-hooks")  # no HTTP hooks: takes no part
    assert not isinstance(no_hooks.open_stream, StreamOpener) and no_hooks.open_stream(request()) is None
    await st.reload(StageConfig("wasm", "opener", {"module": str(Path(__file__).parent / "wat/bench_calls.wat")}))
    assert not isinstance(st.open_stream, StreamOpener) and st.open_stream(request()) is None
