"""ABI conformance: every host function called from a real Wasm module (abi_probe.wat
re-exports each import), including bad pointers, out-of-range sizes and bad maps."""

from __future__ import annotations

import logging
import struct
import time

import pytest
from multidict import CIMultiDict, getversion

from edgenode.http.messages import RawRequest, Request, Response, raw_request
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.abi import Status, decode_map, encode_map
from edgenode.wasm.foreign import register_foreign_function, unregister_foreign_function
from edgenode.wasm.metrics import wasm_collector
from edgenode.wasm.vm import Vm

from wasm_helpers import request

OK, NOT_FOUND, BAD_ARG = Status.OK, Status.NOT_FOUND, Status.BAD_ARGUMENT
INVALID_MEM, EMPTY, CAS_MISMATCH = Status.INVALID_MEMORY_ACCESS, Status.EMPTY, Status.CAS_MISMATCH
RET_PTR, RET_SIZE = 16, 20
FAR = 0xFFFF0000  # far outside the probe's single 64 KiB page


class Probe:
    def __init__(self, vm: Vm) -> None:
        self.vm = vm
        self.ex = request("/p?q=1", X_Test="one")
        self.ctx = vm.new_stream(self.ex)
        self._next = 1024

    def put(self, data: bytes) -> tuple[int, int]:
        ptr = self._next
        self.vm.mem.write(ptr, data)
        self._next += len(data) + 8
        return ptr, len(data)

    def call(self, fn: str, *args: int, root: bool = False) -> int:
        name = "t_" + fn if fn.startswith("proxy_") else fn
        if name not in self.vm.funcs:
            self.vm.export(name, len(args), 1)
        return self.vm.call(name, self.vm.root if root else self.ctx, *args)

    def returned(self) -> bytes:
        ptr, size = struct.unpack("<II", self.vm.mem.read(RET_PTR, 8))
        return self.vm.mem.read(ptr, size) if size else b""

    def u32(self, ptr: int) -> int:
        return struct.unpack("<I", self.vm.mem.read(ptr, 4))[0]

    def u64(self, ptr: int) -> int:
        return struct.unpack("<Q", self.vm.mem.read(ptr, 8))[0]


@pytest.fixture(params=["core", "python"])
def probe(request: pytest.FixtureRequest, make_stage, python_engine) -> Probe:  # type: ignore[no-untyped-def]
    """The probe with the host core answering the hot host functions, and with every host
    function in its Python implementation (the core's fallback): the same answers."""
    python = request.param == "python"
    engine = {"engine": python_engine} if python else {}
    suffix = "-py" if python else ""  # metrics and shared data are per process
    st = make_stage("abi_probe.wat", f"probe{suffix}", config="plugin-cfg", vm_config={"v": 1},
                    root_id="root1", vm_id=f"vm-probe{suffix}", **engine)
    return Probe(st.vm)


def get_header(p: Probe, map_type: int, key: bytes) -> tuple[int, bytes]:
    k = p.put(key)
    status = p.call("proxy_get_header_map_value", map_type, *k, RET_PTR, RET_SIZE)
    return status, p.returned() if status == OK else b""


# --- header maps -------------------------------------------------------------------

def test_header_get_pseudo_and_missing(probe: Probe) -> None:
    assert get_header(probe, 0, b":method") == (OK, b"GET")
    assert get_header(probe, 0, b":path") == (OK, b"/p?q=1")
    assert get_header(probe, 0, b":authority") == (OK, b"example.com")
    assert get_header(probe, 0, b"X-TEST") == (OK, b"one")
    assert get_header(probe, 0, b"x-absent")[0] == NOT_FOUND


@pytest.mark.parametrize("host", [True, False])
def test_header_get_before_serialised_matches_the_map(probe: Probe, host: bool) -> None:
    """A value read before anything serialised the request map (the core then reads the
    message itself) is the one the serialised map gives: first of duplicates, Host as
    :authority ("" without one), pseudo-headers from the request line, any case."""
    headers = probe.ex.request.headers
    if not host:
        headers.popall("Host")
    headers.add("X-Dup", "first")
    headers.add("x-dup", "second")
    headers["X-Wide"] = "snow \u2603"  # beyond Latin-1: UTF-8 on the wire
    headers["X-Latin"] = "caf\u00e9"
    keys = [b":method", b":path", b":scheme", b":authority", b"host", b"HOST", b"x-dup", b"X-Wide",
            b"x-latin", b"x-absent", b":status", b":other", b"caf\xe9", b""]
    before = {k: get_header(probe, 0, k) for k in keys}
    assert probe.call("proxy_get_header_map_pairs", 0, RET_PTR, RET_SIZE) == OK
    pairs = decode_map(probe.returned())
    for key, got in before.items():
        name = key.decode("latin-1").lower()
        name = ":authority" if name == "host" else name
        first = next((v for k, v in pairs if k == name), None)
        assert got == ((NOT_FOUND, b"") if first is None else (OK, first.encode("latin-1"))), key
        assert get_header(probe, 0, key) == got, key  # the same from the serialised map
    assert before[b":authority"] == (OK, b"example.com" if host else b"")
    assert before[b"x-dup"] == (OK, b"first") and before[b"X-Wide"] == (OK, "snow \u2603".encode())


def test_header_pairs_roundtrip_and_size(probe: Probe) -> None:
    assert probe.call("proxy_get_header_map_pairs", 0, RET_PTR, RET_SIZE) == OK
    raw = probe.returned()
    pairs = decode_map(raw)
    assert pairs[:4] == [(":method", "GET"), (":path", "/p?q=1"), (":authority", "example.com"),
                         (":scheme", "http")]
    assert ("x-test", "one") in pairs and ("host", "example.com") not in pairs
    assert probe.call("proxy_get_header_map_size", 0, 32) == OK
    assert probe.u32(32) == len(raw)
    new = probe.put(encode_map([(":path", "/new"), ("a", "1"), ("a", "2")]))
    assert probe.call("proxy_set_header_map_pairs", 0, *new) == OK
    req = probe.ex.request
    assert req.target == "/new" and req.headers.getall("a") == ["1", "2"]
    assert "x-test" not in req.headers and req.headers["host"] == "example.com"


def test_header_add_replace_remove(probe: Probe) -> None:
    k, v1, v2 = probe.put(b"X-New"), probe.put(b"1"), probe.put(b"2")
    assert probe.call("proxy_add_header_map_value", 0, *k, *v1) == OK
    assert probe.call("proxy_add_header_map_value", 0, *k, *v2) == OK
    assert probe.ex.request.headers.getall("x-new") == ["1", "2"]
    assert probe.call("proxy_replace_header_map_value", 0, *k, *v2) == OK
    assert probe.ex.request.headers.getall("x-new") == ["2"]
    assert probe.call("proxy_remove_header_map_value", 0, *k) == OK
    assert probe.call("proxy_remove_header_map_value", 0, *k) == OK  # absent is fine
    assert "x-new" not in probe.ex.request.headers
    path, val = probe.put(b":path"), probe.put(b"/moved?x=2")
    assert probe.call("proxy_replace_header_map_value", 0, *path, *val) == OK
    assert probe.ex.request.path == "/moved" and probe.ex.request.query == "x=2"
    bad = probe.put(b"a\r\nb")
    assert probe.call("proxy_add_header_map_value", 0, *k, *bad) == BAD_ARG


def _hit_response() -> Response:
    """A response as a cache hit hands it on: its head pre-serialised (``wire_head``)."""
    headers = CIMultiDict({"Content-Type": "text/plain", "Age": "3"})
    response = Response(200, headers, b"hello")
    response.wire_head = (getversion(headers), b"Content-Type: text/plain\r\nAge: 3\r\n")
    return response


def test_written_fields_are_each_the_bytes_written(probe: Probe) -> None:
    """Fields written one after another, names and values of one length each, are each the
    text of their own bytes (the core reuses the text it decoded last only for the same
    bytes)."""
    fields = [(b"x-one", b"aaa"), (b"x-two", b"bbb"), (b"x-two", b"bbb"), (b"X-One", b"ccc")]
    for key, value in fields:
        assert probe.call("proxy_add_header_map_value", 0, *probe.put(key), *probe.put(value)) == OK
    added = list(probe.ex.request.headers.items())[-4:]
    assert added == [("x-one", "aaa"), ("x-two", "bbb"), ("x-two", "bbb"), ("x-one", "ccc")]


def test_added_response_field_keeps_the_pre_serialised_head(probe: Probe,
                                                            request: pytest.FixtureRequest) -> None:
    """Whatever answers the map writes (the core or Python), the head the front end
    writes from ``wire_head`` is the one it would serialise field by field; the core
    keeps it current (appends the field), Python lets it go stale."""
    response = _hit_response()
    probe.ctx.set_response(response)
    probe.ctx.response_headers_open = True
    k, v = probe.put(b"X-Filtered"), probe.put(b"yes")
    assert probe.call("proxy_add_header_map_value", 2, *k, *v) == OK
    full = "".join(f"{name}: {value}\r\n" for name, value in response.headers.items()).encode()
    current = response.wire_head is not None and response.wire_head[0] == getversion(response.headers)
    assert current == (request.node.callspec.params["probe"] == "core")
    if current:
        assert response.wire_head[1] == full  # type: ignore[index]
    assert response.headers["x-filtered"] == "yes"


@pytest.mark.parametrize("name", [b"Content-Length", b"Connection", b"Transfer-Encoding", b"X-Request-Id"])
def test_added_framing_field_makes_the_head_stale(probe: Probe, name: bytes) -> None:
    """Fields the front end writes itself are never appended to a pre-serialised head."""
    response = _hit_response()
    probe.ctx.set_response(response)
    probe.ctx.response_headers_open = True
    k, v = probe.put(name), probe.put(b"1")
    assert probe.call("proxy_add_header_map_value", 2, *k, *v) == OK
    assert response.wire_head is not None and response.wire_head[0] != getversion(response.headers)


def test_the_core_reaches_multidicts_c_api() -> None:
    """The build found ``multidict_capi.h`` (setup.py) and the installed multidict exports
    its C API: field maps are versioned and added to without a Python call."""
    from edgenode.wasm import _hostcore

    assert _hostcore.multidict_capi() is True


def test_added_field_through_a_subclass_calls_its_own_add(probe: Probe) -> None:
    """The C API takes a field map of multidict's own types only: a subclass's ``add`` is
    called as before, and the kept head follows the version its add left."""

    class Counted(CIMultiDict):  # type: ignore[type-arg]
        adds: list[tuple[str, str]] = []

        def add(self, key: str, value: str) -> None:  # type: ignore[override]
            self.adds.append((key, value))
            super().add(key, value)

    for kind in (CIMultiDict, Counted):
        response = _hit_response()
        response.headers = kind(response.headers)
        response.wire_head = (getversion(response.headers), response.wire_head[1])  # type: ignore[index]
        probe.ctx.set_response(response)
        probe.ctx.response_headers_open = True
        assert probe.call("proxy_add_header_map_value", 2, *probe.put(b"X-Added"), *probe.put(b"1")) == OK
        assert response.headers.getall("X-ADDED") == ["1"]
        if probe.vm.plugin.name == "probe":  # the core keeps the head current
            assert response.wire_head == (getversion(response.headers),
                                          b"Content-Type: text/plain\r\nAge: 3\r\nx-added: 1\r\n")
    assert Counted.adds == [("x-added", "1")]


def test_response_status_pseudo_header(probe: Probe) -> None:
    probe.ctx.set_response(Response(200))
    probe.ctx.response_headers_open = True
    st, good, bad = probe.put(b":status"), probe.put(b"404"), probe.put(b"abc")
    assert get_header(probe, 2, b":status") == (OK, b"200")
    assert probe.call("proxy_replace_header_map_value", 2, *st, *good) == OK
    assert probe.ctx.response.status == 404
    assert probe.call("proxy_replace_header_map_value", 2, *st, *bad) == BAD_ARG


def test_phase_access_rules(probe: Probe) -> None:
    k, v = probe.put(b"x-late"), probe.put(b"1")
    assert get_header(probe, 2, b":status")[0] == BAD_ARG  # no response yet
    probe.ctx.request_headers_open = False  # request headers went upstream
    assert get_header(probe, 0, b":path")[0] == BAD_ARG
    assert probe.call("proxy_add_header_map_value", 0, *k, *v) == BAD_ARG
    probe.ctx.in_log = True  # on_log: readable, not writable
    assert get_header(probe, 0, b":path") == (OK, b"/p?q=1")
    assert probe.call("proxy_add_header_map_value", 0, *k, *v) == BAD_ARG
    assert get_header(probe, 0, b":path")[0] == OK
    assert get_header(probe, 6, b":status")[0] == BAD_ARG  # no call response
    assert get_header(probe, 9, b"x")[0] == BAD_ARG  # unknown map type
    assert get_header(probe, 1, b"x")[0] == NOT_FOUND  # trailers: readable, empty
    assert probe.call("proxy_get_header_map_pairs", 0, RET_PTR, RET_SIZE, root=True) == BAD_ARG


# --- bad guest input -----------------------------------------------------------------

def test_bad_pointers_and_sizes_return_invalid_memory_access(probe: Probe) -> None:
    k = probe.put(b":path")
    assert probe.call("proxy_get_header_map_value", 0, FAR, 5, RET_PTR, RET_SIZE) == INVALID_MEM
    assert probe.call("proxy_get_header_map_value", 0, k[0], 0x7FFFFFFF, RET_PTR, RET_SIZE) == INVALID_MEM
    assert probe.call("proxy_get_header_map_value", 0, *k, FAR, RET_SIZE) == INVALID_MEM
    assert probe.call("proxy_get_header_map_value", 0, 0xFFFFFFF0, 0x20, RET_PTR, RET_SIZE) == INVALID_MEM
    assert probe.call("proxy_log", 2, 65530, 100) == INVALID_MEM
    assert probe.call("proxy_get_current_time_nanoseconds", 65535) == INVALID_MEM
    assert probe.call("proxy_set_shared_data", FAR, 4, 0, 1, 0) == INVALID_MEM
    # the VM is still healthy afterwards
    assert get_header(probe, 0, b":method") == (OK, b"GET")
    assert probe.vm.failed is None


def test_bad_map_encodings_return_bad_argument(probe: Probe) -> None:
    for raw in (b"\x05\x00\x00\x00", b"\x01\x00\x00\x00\xff\x00\x00\x00\x01\x00\x00\x00ab",
                b"\x02\x00", b"\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00a\x00"):
        m = probe.put(raw)
        assert probe.call("proxy_set_header_map_pairs", 0, *m) == BAD_ARG, raw
        assert probe.call("proxy_send_local_response", 403, 0, 0, 0, 0, *m, 0) == BAD_ARG
    empty = probe.put(b"\x00\x00\x00\x00")
    assert probe.call("proxy_send_local_response", 403, 0, 0, 0, 0, *empty, 0) == OK
    assert probe.ctx.local_response is not None and probe.ctx.local_response.status == 403


def test_allocator_failure_is_reported_not_crashing(probe: Probe) -> None:
    probe.call("reset_heap", 0xFFFFFF00)  # next malloc returns a pointer outside memory
    assert get_header(probe, 0, b":method")[0] == INVALID_MEM
    probe.call("reset_heap", 32768)
    assert get_header(probe, 0, b":method") == (OK, b"GET")


# --- buffers -------------------------------------------------------------------------

def test_configuration_buffers_and_windows(probe: Probe) -> None:
    assert probe.call("proxy_get_buffer_bytes", 7, 0, 100, RET_PTR, RET_SIZE) == OK
    assert probe.returned() == b"plugin-cfg"
    assert probe.call("proxy_get_buffer_bytes", 7, 3, 3, RET_PTR, RET_SIZE) == OK
    assert probe.returned() == b"gin"
    assert probe.call("proxy_get_buffer_bytes", 6, 0, 100, RET_PTR, RET_SIZE) == OK
    assert probe.returned() == b'{"v":1}'
    assert probe.call("proxy_get_buffer_bytes", 7, 0, 0, RET_PTR, RET_SIZE) == OK
    assert probe.u32(RET_SIZE) == 0 and probe.u32(RET_PTR) == 0
    assert probe.call("proxy_get_buffer_bytes", 7, 99, 1, RET_PTR, RET_SIZE) == BAD_ARG
    assert probe.call("proxy_get_buffer_bytes", 42, 0, 1, RET_PTR, RET_SIZE) == BAD_ARG
    assert probe.call("proxy_get_buffer_bytes", 0, 0, 10, RET_PTR, RET_SIZE) == NOT_FOUND
    assert probe.call("proxy_get_buffer_bytes", 4, 0, 10, RET_PTR, RET_SIZE) == NOT_FOUND
    assert probe.call("proxy_get_buffer_status", 7, 32, 36) == OK and probe.u32(32) == 10
    data = probe.put(b"x")
    assert probe.call("proxy_set_buffer_bytes", 7, 0, 0, *data) == BAD_ARG  # read-only


def test_set_buffer_bytes_semantics(probe: Probe) -> None:
    probe.ctx.request_body = bytearray(b"hello")
    pre, post, mid = probe.put(b">>"), probe.put(b"!"), probe.put(b"EL")
    assert probe.call("proxy_set_buffer_bytes", 0, 0, 0, *pre) == OK  # prepend
    assert probe.call("proxy_set_buffer_bytes", 0, 100, 0, *post) == OK  # append
    assert probe.call("proxy_set_buffer_bytes", 0, 3, 2, *mid) == OK  # replace 2 bytes at 3
    assert bytes(probe.ctx.request_body) == b">>hELlo!"
    assert probe.call("proxy_get_buffer_bytes", 0, 2, 3, RET_PTR, RET_SIZE) == OK
    assert probe.returned() == b"hEL"


# --- properties ----------------------------------------------------------------------

def prop(p: Probe, path: bytes, root: bool = False) -> tuple[int, bytes]:
    k = p.put(path)
    status = p.call("proxy_get_property", *k, RET_PTR, RET_SIZE, root=root)
    return status, p.returned() if status == OK else b""


def test_properties(probe: Probe) -> None:
    assert prop(probe, b"plugin_name") == (OK, probe.vm.plugin.name.encode())
    assert prop(probe, b"plugin_root_id", root=True) == (OK, b"root1")
    assert prop(probe, b"plugin_vm_id") == (OK, probe.vm.plugin.vm_id.encode())
    assert prop(probe, b"source\0address") == (OK, b"10.1.2.3:5555")
    assert prop(probe, b"source\0port") == (OK, struct.pack("<q", 5555))
    assert prop(probe, b"destination\0port") == (OK, struct.pack("<q", 8080))
    assert prop(probe, b"request\0path") == (OK, b"/p?q=1")
    assert prop(probe, b"request\0url_path") == (OK, b"/p")
    assert prop(probe, b"request.method") == (OK, b"GET")  # dotted convenience form
    assert prop(probe, b"request\0id") == (OK, str(probe.ex.id).encode())
    assert prop(probe, b"edgenode\0worker") == (OK, struct.pack("<q", 3))
    assert prop(probe, b"edgenode\0no_such")[0] == NOT_FOUND
    assert prop(probe, b"request\0path", root=True)[0] == NOT_FOUND  # no stream on root
    probe.ex.cache_status = "edgenode; hit"
    assert prop(probe, b"edgenode\0cache_status") == (OK, b"edgenode; hit")


def test_set_property_origin_and_filter_state(probe: Probe) -> None:
    path, value = probe.put(b"edgenode\0origin"), probe.put(b"images")
    assert probe.call("proxy_set_property", *path, *value) == OK
    assert probe.ex.origin == "images"
    assert prop(probe, b"edgenode\0origin") == (OK, b"images")
    custom, v = probe.put(b"my\0flag"), probe.put(b"on")
    assert probe.call("proxy_set_property", *custom, *v) == OK
    assert prop(probe, b"my\0flag") == (OK, b"on")


# --- shared data, queues -------------------------------------------------------------

def test_shared_data_cas(probe: Probe, make_stage) -> None:  # type: ignore[no-untyped-def]
    key, v1, v2 = probe.put(b"probe-key"), probe.put(b"one"), probe.put(b"two")  # per vm_id
    assert probe.call("proxy_get_shared_data", *key, RET_PTR, RET_SIZE, 40) == NOT_FOUND
    assert probe.call("proxy_set_shared_data", *key, *v1, 0) == OK
    assert probe.call("proxy_get_shared_data", *key, RET_PTR, RET_SIZE, 40) == OK
    assert probe.returned() == b"one"
    cas = probe.u32(40)
    assert probe.call("proxy_set_shared_data", *key, *v2, cas + 1000) == CAS_MISMATCH
    assert probe.call("proxy_set_shared_data", *key, *v2, cas) == OK
    assert probe.call("proxy_set_shared_data", *key, *v1, cas) == CAS_MISMATCH  # cas moved on
    other = Probe(make_stage("abi_probe.wat", "other", vm_id="another-vm").vm)
    okey = other.put(b"probe-key")
    assert other.call("proxy_get_shared_data", *okey, RET_PTR, RET_SIZE, 40) == NOT_FOUND


async def test_shared_queue_and_on_queue_ready(probe: Probe) -> None:
    name, data = probe.put(b"jobs"), probe.put(b"job-1")
    assert probe.call("proxy_register_shared_queue", *name, 40, root=True) == OK
    qid = probe.u32(40)
    vmid = probe.put(probe.vm.plugin.vm_id.encode())
    assert probe.call("proxy_resolve_shared_queue", *vmid, *name, 44) == OK and probe.u32(44) == qid
    nope = probe.put(b"nope")
    assert probe.call("proxy_resolve_shared_queue", *vmid, *nope, 44) == NOT_FOUND
    assert probe.call("proxy_dequeue_shared_queue", qid, RET_PTR, RET_SIZE) == EMPTY
    assert probe.call("proxy_enqueue_shared_queue", qid, *data) == OK
    assert probe.call("proxy_enqueue_shared_queue", 99999, *data) == NOT_FOUND
    assert probe.call("proxy_dequeue_shared_queue", qid, RET_PTR, RET_SIZE) == OK
    assert probe.returned() == b"job-1"


# --- metrics, logging, time, misc ----------------------------------------------------

def test_metrics_and_collector(probe: Probe) -> None:
    name, gname = probe.put(b"hits total"), probe.put(b"depth")
    assert probe.call("proxy_define_metric", 0, *name, 40) == OK
    assert probe.call("proxy_define_metric", 1, *gname, 44) == OK
    assert probe.call("proxy_define_metric", 7, *gname, 44) == BAD_ARG
    cid, gid = probe.u32(40), probe.u32(44)
    assert probe.call("proxy_increment_metric", cid, 5) == OK
    assert probe.call("proxy_increment_metric", cid, -1) == BAD_ARG
    assert probe.call("proxy_record_metric", gid, 42) == OK
    assert probe.call("proxy_increment_metric", gid, -2) == OK
    assert probe.call("proxy_get_metric", cid, 48) == OK and probe.u64(48) == 5
    assert probe.call("proxy_get_metric", gid, 48) == OK and probe.u64(48) == 40
    assert probe.call("proxy_get_metric", 9999, 48) == NOT_FOUND
    families = {f.name: f for f in wasm_collector.collect()}
    samples = [(s.labels, s.value) for s in families["edgenode_filter_counter"].samples]
    assert ({"filter": probe.vm.plugin.name, "metric": "hits_total"}, 5) in samples


def test_log_and_level(make_stage, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    probe = Probe(make_stage("abi_probe.wat", "probe", log_level="info").vm)
    msg = probe.put(b"hello from wasm")
    with caplog.at_level(logging.DEBUG, logger="edgenode.filter.probe"):
        assert probe.call("proxy_log", 2, *msg) == OK
        assert probe.call("proxy_log", 1, *msg) == OK  # below the filter's level (info)
        assert probe.call("proxy_log", 9, *msg) == BAD_ARG
    recs = [r for r in caplog.records if r.name == "edgenode.filter.probe"]
    assert [(r.levelno, r.getMessage()) for r in recs] == [(logging.INFO, "hello from wasm")]
    assert probe.call("proxy_get_log_level", 40) == OK and probe.u32(40) == 2


def test_time_and_stubs(probe: Probe) -> None:
    before = time.time_ns()
    assert probe.call("proxy_get_current_time_nanoseconds", 40) == OK
    assert before <= probe.u64(40) <= time.time_ns()
    assert probe.call("proxy_grpc_call", *([0] * 12)) == Status.UNIMPLEMENTED
    assert probe.call("proxy_grpc_cancel", 1) == Status.UNIMPLEMENTED
    assert probe.call("proxy_continue_stream", 3) == Status.UNIMPLEMENTED
    assert probe.call("proxy_continue_stream", 9) == BAD_ARG
    assert probe.call("proxy_continue_stream", 0, root=True) == BAD_ARG
    assert probe.call("proxy_set_effective_context", 9999) == BAD_ARG
    assert probe.call("proxy_set_effective_context", probe.ctx.id, root=True) == OK
    assert probe.call("proxy_done") == NOT_FOUND
    assert probe.call("proxy_get_status", 40, RET_PTR, RET_SIZE) == NOT_FOUND
    assert probe.call("proxy_send_local_response", 99, 0, 0, 0, 0, 0, 0, 0) == BAD_ARG


def test_foreign_functions(probe: Probe) -> None:
    register_foreign_function("reverse", lambda b: b[::-1])
    register_foreign_function("broken", lambda b: 1 / 0)  # type: ignore[arg-type,return-value]
    try:
        name, args = probe.put(b"reverse"), probe.put(b"abc")
        assert probe.call("proxy_call_foreign_function", *name, *args, RET_PTR, RET_SIZE) == OK
        assert probe.returned() == b"cba"
        unknown = probe.put(b"nope")
        assert probe.call("proxy_call_foreign_function", *unknown, *args, RET_PTR, RET_SIZE) == NOT_FOUND
        broken = probe.put(b"broken")
        assert probe.call("proxy_call_foreign_function", *broken, *args, RET_PTR, RET_SIZE) == Status.INTERNAL_FAILURE
    finally:
        unregister_foreign_function("reverse")
        unregister_foreign_function("broken")


def test_http_call_argument_checks(probe: Probe) -> None:
    good = probe.put(encode_map([(":method", "GET"), (":path", "/x"), (":authority", "a")]))
    no_path = probe.put(encode_map([(":method", "GET"), (":authority", "a")]))
    auth, unknown = probe.put(b"auth"), probe.put(b"unknown-upstream")
    assert probe.call("proxy_http_call", *unknown, *good, 0, 0, 0, 0, 1000, 40) == BAD_ARG
    assert probe.call("proxy_http_call", *auth, *no_path, 0, 0, 0, 0, 1000, 40) == BAD_ARG
    bad_map = probe.put(b"\x09\x00\x00\x00")
    assert probe.call("proxy_http_call", *auth, *bad_map, 0, 0, 0, 0, 1000, 40) == BAD_ARG


def test_a_raw_requests_map_is_its_parsed_bytes_until_a_write_makes_its_fields(
        probe: Probe, request: pytest.FixtureRequest) -> None:
    """A ``RawRequest`` (a filtered plain hit's, fields not made): every value read, the
    whole map, its size and the request properties are what the same request with its
    fields made gives, read from the parsed bytes without making them; a write makes
    them (from the same bytes) and the map then shows the write."""
    pairs = [(b"Host", b"example.com"), (b"X-Dup", b"first"), (b"x-dup", b"second"),
             (b"X-Latin", b"caf\xe9"), (b"X-Utf8", "snow \u2603".encode()), (b"caf\xe9", b"v"),
             (b"X-Request-Id", b"abc-1")]
    keys = [b":method", b":path", b":scheme", b":authority", b"host", b"HOST", b"x-dup", b"X-Utf8",
            b"x-latin", b"x-absent", b"caf\xe9", b""]
    props = [b"request.host", b"request.path", b"request.id"]

    def read(ex: Exchange) -> tuple[dict[bytes, tuple[int, bytes]], bytes, int, list[bytes]]:
        probe.ex, probe.ctx = ex, probe.vm.new_stream(ex)
        values = {k: get_header(probe, 0, k) for k in keys}
        got = []
        for path in props:
            assert probe.call("proxy_get_property", *probe.put(path), RET_PTR, RET_SIZE) == OK
            got.append(probe.returned())
        assert probe.call("proxy_get_header_map_pairs", 0, RET_PTR, RET_SIZE) == OK
        whole = probe.returned()
        assert probe.call("proxy_get_header_map_size", 0, 32) == OK
        return values, whole, probe.u32(32), got

    raw = Exchange(raw_request("GET", "/p?q=1", list(pairs)))
    made = Exchange(Request("GET", "/p?q=1", CIMultiDict((k.decode("latin-1"), v.decode("latin-1"))
                                                         for k, v in pairs)))
    assert read(raw) == read(made)
    if request.node.callspec.params["probe"] == "core":  # (the Python host functions make them)
        assert type(raw.request) is RawRequest  # read, never made
    k, v = probe.put(b"x-new"), probe.put(b"1")
    probe.ex, probe.ctx = raw, probe.vm.new_stream(raw)
    assert get_header(probe, 0, b"x-latin") == (OK, b"caf\xe9")
    assert probe.call("proxy_add_header_map_value", 0, *k, *v) == OK
    assert type(raw.request) is Request and raw.request.headers.getall("x-dup") == ["first", "second"]
    assert raw.request.raw is not None and raw.request.raw[0] != getversion(raw.request.headers)
    assert probe.call("proxy_get_header_map_pairs", 0, RET_PTR, RET_SIZE) == OK
    assert decode_map(probe.returned())[-1] == ("x-new", "1")
