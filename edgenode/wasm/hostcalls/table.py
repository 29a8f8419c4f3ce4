"""Every host function the host provides: importing this registers them all."""

from edgenode.wasm import hostcalls_redis, wasi  # noqa: F401
from edgenode.wasm.hostcalls import (buffers, callouts, control, logs, maps, metrics,  # noqa: F401
                                     properties, shared_state)
from edgenode.wasm.hostcalls.registry import HOST_FUNCTIONS, HostDef

__all__ = ["HOST_FUNCTIONS", "HostDef"]
