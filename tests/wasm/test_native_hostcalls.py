"""The properties and metric calls the host core answers itself (wasm/native/hostfns.c)
give what the Python host functions give: the same probe module (wat/host_probe.wat)
runs once on an engine with native host calls and once on one without, over the same
exchanges and calls, and every answer must be byte-identical."""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest
from envoy_probe import OUT, RET_PTR, RET_SIZE, EnvoyProbe

from edgenode.config import StageConfig
from edgenode.http.messages import CIMultiDict, Request
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm import native
from edgenode.wasm.abi import Status
from edgenode.wasm.engine import WasmEngine
from edgenode.wasm.metrics import wasm_collector
from edgenode.wasm.stage import WasmStage
from edgenode.wasm.vm import FilterFailure

WAT = Path(__file__).parent / "wat"
I64 = struct.Struct("<q")


class HostProbe(EnvoyProbe):
    """Calls the probe's re-exported host functions with chosen arguments."""

    def prop(self, raw: bytes) -> tuple[int, bytes]:
        self.vm.mem.write(RET_PTR, b"\xff" * 8)
        status = self.call("proxy_get_property", *self.put(raw), RET_PTR, RET_SIZE)
        return status, self.returned() if status == Status.OK else b""

    def replace(self, key: str, value: str) -> int:
        return self.call("proxy_replace_header_map_value", 0, *self.put(key.encode()), *self.put(value.encode()))


@pytest.fixture
def stages(engine: WasmEngine, python_engine: WasmEngine, request: pytest.FixtureRequest) -> Iterator[dict[str, WasmStage]]:
    """The probe on both engines; each its own filter name (metrics are per filter name)."""
    out = {}
    for label, eng in (("core", engine), ("python", python_engine)):
        cfg = StageConfig("wasm", f"hp-{label}-{request.node.name}"[:60], {"module": str(WAT / "host_probe.wat")})
        out[label] = WasmStage(cfg, base_dir=WAT, engine=eng)
    yield out
    for st in out.values():
        st.vm.close()


def _exchange(target: str = "/img/cat.png?w=10", client: object = ("10.1.2.3", 5555),
              local: object = ("127.0.0.1", 8080), version: str = "1.1", **headers: str) -> Exchange:
    hdrs = CIMultiDict({"Host": "example.com"})
    for k, v in headers.items():
        if v is None:
            hdrs.pop(k.replace("_", "-"), None)
        else:
            hdrs[k.replace("_", "-")] = v
    ex = Exchange(Request("GET", target, hdrs, b"", version=version), client=client, local=local)  # type: ignore[arg-type]
    ex.id = 41  # the same exchange id on both sides (request.id falls back to it)
    return ex


def _with(ex: Exchange, **attrs: object) -> Exchange:
    for k, v in attrs.items():
        setattr(ex, k, v)
    return ex


#: every natively answered path, in both encodings, with and without trailing NULs
PATHS = [p for name in native.NATIVE_PROPERTIES
         for p in (name.encode(), name.replace(".", "\0").encode(), name.replace(".", "\0").encode() + b"\0")]
#: neighbours that must stay with the Python getters
OTHERS = [b"request.headers.host", b"request.useragent", b"x_request_id", b"source", b"request",
          b"request.path.more", b"connection.id"]

EXCHANGES: dict[str, Callable[[], Exchange]] = {
    "plain": _exchange,
    "no query, no host": lambda: _exchange("/p", Host=None),
    "empty query": lambda: _exchange("/p?"),
    "non-ASCII target and host": lambda: _exchange("/caf\u00e9?q=\u00fc", Host="b\u00fccher.example"),
    "IPv6 peers": lambda: _exchange(client=("::1", 40000), local=("fe80::1%eth0", 443)),
    "HTTP/1.0": lambda: _exchange(version="1.0"),
    "X-Request-Id header": lambda: _exchange(X_Request_Id="rid-7"),
    "front end's request id": lambda: _with(_exchange(X_Request_Id="rid-7"), request_id="front-1"),
    "peer as a list": lambda: _exchange(client=["10.0.0.1", 80]),
    "long IPv6 host": lambda: _exchange(client=("a:" * 100 + "b", 1)),
}


def _answers(stage: WasmStage, ex: Exchange | None, paths: list[bytes]) -> list[tuple[int, bytes]]:
    probe = HostProbe(stage.vm, ex)
    return [probe.prop(p) for p in paths]


@pytest.mark.parametrize("case", list(EXCHANGES))
def test_native_properties_match_python(stages: dict[str, WasmStage], case: str) -> None:
    core, python = (_answers(stages[k], EXCHANGES[case](), PATHS + OTHERS) for k in ("core", "python"))
    assert core == python
    assert all(status == Status.OK for status, _ in core[:len(PATHS)])


def test_native_property_values(stages: dict[str, WasmStage]) -> None:
    """What the answers are (not only that both sides agree)."""
    ex = _exchange(client=("::1", 40000))
    ex.id = 77
    got = dict(zip(native.NATIVE_PROPERTIES, _answers(stages["core"], ex, [n.encode() for n in native.NATIVE_PROPERTIES])))
    assert {k: v for k, (_, v) in got.items()} == {
        "request.path": b"/img/cat.png?w=10", "request.url_path": b"/img/cat.png", "request.query": b"w=10",
        "request.host": b"example.com", "request.scheme": b"http", "request.method": b"GET",
        "request.protocol": b"HTTP/1.1", "request.id": b"77", "source.address": b"[::1]:40000",
        "source.port": I64.pack(40000), "destination.address": b"127.0.0.1:8080",
        "destination.port": I64.pack(8080)}


def test_native_properties_absent_outside_a_stream(stages: dict[str, WasmStage]) -> None:
    core, python = (_answers(stages[k], None, PATHS) for k in ("core", "python"))
    assert core == python == [(Status.NOT_FOUND, b"")] * len(PATHS)


def test_native_properties_follow_header_writes(stages: dict[str, WasmStage]) -> None:
    """A filter's :path / :authority / :scheme / :method writes show in the next read."""
    results = []
    for label in ("core", "python"):
        probe = HostProbe(stages[label].vm, _exchange(X_Request_Id="a"))
        before = [probe.prop(p) for p in PATHS]
        assert probe.replace(":path", "/new/place?x=1&y") == Status.OK
        assert probe.replace(":authority", "other.example") == Status.OK
        assert probe.replace(":method", "POST") == Status.OK
        assert probe.replace("x-request-id", "b") == Status.OK
        after = [probe.prop(p) for p in PATHS]
        assert before != after
        results.append(after)
    assert results[0] == results[1]
    probe = HostProbe(stages["core"].vm, _exchange())
    probe.replace(":path", "/moved?k=v")
    assert probe.prop(b"request.path") == (Status.OK, b"/moved?k=v")
    assert probe.prop(b"request.url_path") == (Status.OK, b"/moved")
    assert probe.prop(b"request.query") == (Status.OK, b"k=v")


def test_port_beyond_64_bits(stages: dict[str, WasmStage]) -> None:
    """The address has the whole number; the port (8 bytes) is the Python getter's error."""
    paths = [b"source.address", b"source.port"]
    answers = []
    for label in ("core", "python"):
        probe = HostProbe(stages[label].vm, _exchange(client=("10.0.0.1", 2**70)))
        answers.append(probe.prop(paths[0]))
        with pytest.raises(FilterFailure, match="argument out of range"):
            probe.prop(paths[1])
    assert answers[0] == answers[1] == (Status.OK, f"10.0.0.1:{2**70}".encode())


def test_unencodable_value_fails_alike(stages: dict[str, WasmStage]) -> None:
    """A lone surrogate cannot be UTF-8: the Python getter's error, on both sides."""
    for label in ("core", "python"):
        probe = HostProbe(stages[label].vm, _exchange("/\udcff"))
        with pytest.raises(FilterFailure, match="surrogates not allowed"):
            probe.prop(b"request.path")


def _metric_run(stage: WasmStage) -> list[object]:
    """One sequence of metric calls: every status and value read back."""
    probe = HostProbe(stage.vm, _exchange())
    out: list[object] = []

    def define(kind: int, name: bytes) -> int:
        out.append(probe.call("proxy_define_metric", kind, *probe.put(name), OUT))
        return struct.unpack("<I", stage.vm.mem.read(OUT, 4))[0]

    def get(mid: int, ptr: int = OUT) -> None:
        stage.vm.mem.write(OUT, b"\0" * 8)
        out.append((probe.call("proxy_get_metric", mid, ptr), struct.unpack("<Q", stage.vm.mem.read(OUT, 8))[0]))

    def u64(value: int) -> tuple[int, int]:
        value &= 2**64 - 1
        return value & 0xFFFFFFFF, value >> 32

    c, g, h = define(0, b"hits total"), define(1, b"depth"), define(2, b"sizes")
    assert len({c, g, h}) == 3
    for delta in (1, 5, -1, 0, 2**40):
        out.append(probe.call("proxy_increment_metric", c, *u64(delta)))
    for delta in (-3, 10, -20):
        out.append(probe.call("proxy_increment_metric", g, *u64(delta)))
    for value in (7, 2**64 - 1, 2**64 - 1):
        out.append(probe.call("proxy_record_metric", c, *u64(value)))
    out.append(probe.call("proxy_record_metric", g, *u64(2**63 + 5)))
    for value in (3, 700, 2**64 - 1):
        out.append(probe.call("proxy_record_metric", h, *u64(value)))
    out.append(probe.call("proxy_increment_metric", h, 1, 0))
    out.append(probe.call("proxy_increment_metric", 999, 1, 0))
    out.append(probe.call("proxy_record_metric", 0, 1, 0))
    for mid in (c, g, h, 999):
        get(mid)
    out.append(probe.call("proxy_get_metric", c, 2 * 65536 - 4))  # past memory: a fault status
    metrics = stage.vm.plugin.metrics
    out.append([(m.name, int(m.type), m.value, m.hist.buckets() if m.hist else None, m.hist.sum if m.hist else None)
                for m in metrics.user_metrics()])
    return out


def test_metric_calls_match_python(stages: dict[str, WasmStage]) -> None:
    core, python = _metric_run(stages["core"]), _metric_run(stages["python"])
    assert core == python
    exported = core[-1]
    assert exported[0][2] == 1 + 5 + 2**40 + 7 + 2 * (2**64 - 1)  # a counter sums past 64 bits
    assert exported[1][2] == 2**63 + 5  # a gauge holds what was recorded last
    assert core[-6:-2] == [(Status.OK, (1 + 5 + 2**40 + 7 + 2 * (2**64 - 1)) & (2**64 - 1)),
                           (Status.OK, 2**63 + 5), (Status.BAD_ARGUMENT, 0), (Status.NOT_FOUND, 0)]
    assert core[-2] == Status.INVALID_MEMORY_ACCESS


def test_metric_calls_reach_the_collector(stages: dict[str, WasmStage]) -> None:
    st = stages["core"]
    probe = HostProbe(st.vm, _exchange())
    assert probe.call("proxy_define_metric", 0, *probe.put(b"calls"), OUT) == Status.OK
    mid = struct.unpack("<I", st.vm.mem.read(OUT, 4))[0]
    for _ in range(1000):
        assert probe.call("proxy_increment_metric", mid, 1, 0) == Status.OK
    assert st.vm.effects  # a metric call is an effect outside the instance (snapshot.py)
    families = {f.name: f for f in wasm_collector.collect()}
    got = [s.value for s in families["edgenode_filter_counter"].samples
           if s.labels == {"filter": st.vm.plugin.name, "metric": "calls"}]
    assert got == [1000]


def test_core_answers_without_python(stages: dict[str, WasmStage]) -> None:
    """The natively answered calls run no Python code of properties.py, hostcalls/ or
    metrics.py (which would be the fallback)."""
    st = stages["core"]
    probe = HostProbe(st.vm, _exchange())
    assert probe.call("proxy_define_metric", 0, *probe.put(b"n"), OUT) == Status.OK
    mid = struct.unpack("<I", st.vm.mem.read(OUT, 4))[0]
    seen: set[str] = set()

    def profile(frame, event, _arg):  # type: ignore[no-untyped-def]
        if event == "call":
            seen.add(frame.f_code.co_filename)

    sys.setprofile(profile)
    try:
        for p in PATHS:
            probe.prop(p)
        probe.call("proxy_increment_metric", mid, 1, 0)
        probe.call("proxy_record_metric", mid, 1, 0)
        probe.call("proxy_get_metric", mid, OUT)
    finally:
        sys.setprofile(None)
    python_side = {f for f in seen if "/wasm/hostcalls/" in f or f.endswith(("/wasm/properties.py", "/wasm/metrics.py"))}
    assert python_side == set()
