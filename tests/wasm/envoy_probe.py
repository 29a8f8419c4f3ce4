"""The Envoy-extension probe (wat/envoy_probe.wat) as a test helper: call host functions
with chosen arguments from inside a real filter instance (a plain module: tests/ is not
a package)."""

from __future__ import annotations

import struct

from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.vm import Vm

RET_PTR, RET_SIZE, OUT = 16, 20, 24


class EnvoyProbe:
    def __init__(self, vm: Vm, exchange: Exchange | None = None) -> None:
        self.vm = vm
        self.ex = exchange
        self.ctx = vm.new_stream(exchange) if exchange is not None else None
        self._next = 8192

    def put(self, data: bytes) -> tuple[int, int]:
        ptr = self._next
        self.vm.mem.write(ptr, data)
        self._next += len(data) + 8
        return ptr, len(data)

    def call(self, fn: str, *args: int, root: bool = False) -> int:
        """Call re-exported host function ``fn`` in the stream context (or the root's)."""
        name = "t_" + fn
        if name not in self.vm.funcs:
            self.vm.export(name, len(args), 1)
        return self.vm.call(name, self.vm.root if root or self.ctx is None else self.ctx, *args)

    def returned(self) -> bytes:
        ptr, size = struct.unpack("<II", self.vm.mem.read(RET_PTR, 8))
        return self.vm.mem.read(ptr, size) if size else b""

    def prop(self, path: str | bytes, root: bool = False) -> tuple[int, bytes]:
        raw = path.encode() if isinstance(path, str) else path
        status = self.call("proxy_get_property", *self.put(raw), RET_PTR, RET_SIZE, root=root)
        return status, self.returned() if status == 0 else b""

    def set_prop(self, path: str, value: bytes, root: bool = False) -> int:
        return self.call("proxy_set_property", *self.put(path.encode()), *self.put(value), root=root)

    def foreign(self, name: str, args: bytes = b"") -> tuple[int, bytes]:
        status = self.call("proxy_call_foreign_function", *self.put(name.encode()), *self.put(args),
                           RET_PTR, RET_SIZE)
        return status, self.returned() if status == 0 else b""

    def u32(self, ptr: int) -> int:
        return struct.unpack("<I", self.vm.mem.read(ptr, 4))[0]

    def redis_reply(self) -> tuple[int, int, int, bytes]:
        """(token, status, size, reply bytes) recorded by the last proxy_on_redis_call_response."""
        return self.u32(68), self.u32(72), self.u32(76), self.vm.mem.read(4096, self.u32(80))
