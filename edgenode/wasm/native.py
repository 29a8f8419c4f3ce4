"""The host core (``_hostcore``, C, built from native/ by ``make install``), wired to the
wasmtime C API inside the wasmtime wheel and to the Python side.

``Instance`` runs guest calls (a whole hook per Python->native transition, with the hot
host functions answered in C), ``HeaderBlock`` holds a header map serialised once per
change (``set_view_types`` names the view classes its writes go through, contexts.py;
``set_property_functions`` the Python functions behind properties, hostcalls/properties.py),
``StreamCore`` is a stream's context and driver state, each side of the usual stream in
one call (contexts.py, stream.py), ``StreamOpener`` a stage's ``open_stream`` that makes the
usual stream in C (stage.py), ``VmCore`` the VM state a stream reads (vm.py's ``Vm`` is
its subclass), ``Histogram`` counts callback times, ``MetricTable`` holds a filter's own metrics
(``NATIVE_PROPERTIES``: the property paths the core answers itself), ``define``
registers a host function with a linker,
``ticker_add``/``ticker_remove`` drive engine epochs from a native thread.
"""

from __future__ import annotations

import ctypes
import logging

from multidict import getversion
from wasmtime import WasmtimeError
from wasmtime import _bindings as B

from edgenode.wasm import _hostcore
from edgenode.wasm.errors import GuestTrap, HostTrap, MemoryFault
from edgenode.wasm.hostcalls import registry

__all__ = ["Instance", "HeaderBlock", "Histogram", "MetricTable", "NATIVE_PROPERTIES", "define",
           "ticker_add", "ticker_remove", "set_view_types", "set_property_functions", "StreamCore",
           "stream_setup", "StreamOpener", "VmCore"]

_log = logging.getLogger("edgenode.wasm")


def _report(name: str, exc: BaseException) -> None:
    """A Python host function raised something it should not have: the guest traps."""
    _log.error("host function %s failed", name, exc_info=exc)


_LAYOUT = tuple(ctypes.sizeof(t) for t in (B.wasmtime_func_t, B.wasmtime_memory_t, B.wasmtime_extern_t,
                                           B.wasmtime_instance_t, B.wasmtime_val_raw_t))
_hostcore.setup(B.dll._name, _LAYOUT, GuestTrap, HostTrap, MemoryFault, WasmtimeError, getversion,
                _report, vars(registry))

Instance = _hostcore.Instance
HeaderBlock = _hostcore.HeaderBlock
Histogram = _hostcore.Histogram
MetricTable = _hostcore.MetricTable
StreamCore = _hostcore.StreamCore
StreamOpener = _hostcore.StreamOpener
VmCore = _hostcore.VmCore
NATIVE_PROPERTIES: tuple[str, ...] = _hostcore.NATIVE_PROPERTIES
define = _hostcore.define
ticker_add = _hostcore.ticker_add
ticker_remove = _hostcore.ticker_remove
set_view_types = _hostcore.set_view_types
set_property_functions = _hostcore.set_property_functions
stream_setup = _hostcore.stream_setup
