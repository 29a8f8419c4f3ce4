"""The filters in filters/ reset in place under per-request isolation (Vm.recycle).

Their toolchains (clang via zig cc, AssemblyScript) give every one a function table,
which none of their code changes (snapshot.mutations), so a used instance goes back to
its post-configure snapshot instead of a new one being started per stream.  After each
stream here the instance waiting in the pool has, byte for byte, the snapshot's whole
linear memory and every mutable global the snapshot recorded, and the next stream's
answer is the same as the first's."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from edgenode.wasm.globalstate import GlobalState
from edgenode.wasm.snapshot import Snapshot, mutations, resettable
from edgenode.wasm.stage import WasmStage
from edgenode.wasm.vm import Vm
from tests.filters.conftest import FILTERS, make_stage, origin_ok, request, run_stage

ROUTES = {"default_origin": "default", "routes": [
    {"name": "health", "match": {"path_prefix": "/healthz"}, "respond": {"status": 200, "body": "ok"}},
    {"name": "api", "match": {"path_regex": "^/v1/(.*)$"}, "origin": "api", "rewrite": "/v2/$1",
     "response_headers": {"set": {"x-served-by": "api"}}}]}

#: filter -> (stage options, [(target, request headers, expected status, reset after it)])
CASES: dict[str, tuple[dict[str, Any], list[tuple[str, dict[str, str], int, bool]]]] = {
    "routing": ({"config": ROUTES}, [("/v1/items/7", {"cookie": "a=b"}, 200, True),
                                      ("/healthz", {}, 200, True), ("/other", {}, 200, True)]),
    # its start-up reads random bytes (Rust's hash seeds): a snapshot only when asked for;
    # a blocked request's audit record may grow memory by a page: then that instance is closed
    "waf": ({"config": {"mode": "block"}, "snapshot": "always"}, [
        ("/?q=1", {}, 200, True), ("/?q=<script>alert(1)</script>", {}, 403, False),
        ("/a/b?page=2&sort=name", {"accept": "text/html"}, 200, True)]),
    "image": ({"config": {"path_prefix": "/img/"}}, [
        ("/img/a.jpg?w=100", {"accept": "image/webp"}, 200, True), ("/page", {}, 200, True)]),
    "as_example": ({"config": "tag=edge-1; reply_path=/as-hello", "root_id": "as_example"},
                   [("/page?q=1", {"x-as-name": "alice"}, 200, True), ("/as-hello", {}, 200, True)]),
}


@pytest.fixture(scope="module")
def built(build_filter: Callable[[str], Path]) -> Callable[[str], Path]:
    def module(name: str) -> Path:
        if name != "as_example":
            return build_filter(name)
        proc = subprocess.run(["make", "-C", str(FILTERS / "examples" / "assemblyscript")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return FILTERS / "build" / "as_example.wasm"
    return module


def _started_memory(snap: Snapshot) -> bytes:
    out = bytearray(snap.memory_size)
    for off, data in snap.image:
        out[off:off + len(data)] = data
    return bytes(out)


def _assert_is_snapshot(vm: Vm, snap: Snapshot, memory: bytes) -> None:
    vm.mem.stale = True
    assert bytes(vm.mem.refresh()) == memory
    names = [(name, wtype) for name, wtype, _ in snap.globals]
    assert GlobalState.read(vm.inst.ctx_ptr, vm.inst.instance_ptr, names) == snap.globals


@pytest.mark.parametrize("name", list(CASES))
async def test_used_instance_of_a_real_filter_is_its_snapshot_again(built, name: str) -> None:  # type: ignore[no-untyped-def]
    module = built(name)
    wasm = module.read_bytes()
    assert mutations(wasm) == set() and resettable(wasm)
    options, requests = CASES[name]
    st: WasmStage = make_stage(module, options["config"], name=f"reset-{name}",
                               isolation="per-request", prewarm=0,
                               **{k: v for k, v in options.items() if k != "config"})
    assert st.stats()["reset"] is True
    snap = st._reset[0]  # type: ignore[index]
    memory = _started_memory(snap)
    terminal, _ = origin_ok()
    first: dict[str, tuple[int, dict[str, str]]] = {}
    await run_stage([st], request("/warm-up"), terminal)
    await asyncio.sleep(0)
    starts = st.plugin.metrics.vm_starts
    for round_ in range(3):
        for target, headers, status, reset in requests:
            resp, _ = await run_stage([st], request(target, dict(headers)), terminal)
            assert resp.status == status, (target, resp.status)
            answer = (resp.status, {k.lower(): v for k, v in resp.headers.items()
                                    if k.lower().startswith("x-") and k.lower() != "x-request-id"})  # the node's
            assert first.setdefault(target, answer) == answer  # a reset instance answers as a fresh one
            for _ in range(3):
                await asyncio.sleep(0)  # the reset runs in the loop's idle time
            if reset or st._pool:  # without `reset`, kept only if its memory did not grow
                assert len(st._pool) == 1  # put back, not closed
                _assert_is_snapshot(st._pool[0], snap, memory)
            else:
                starts += 1  # the next stream starts a new instance
    assert st.plugin.metrics.vm_starts == starts  # no other stream needed a new instance
    await st.close()
