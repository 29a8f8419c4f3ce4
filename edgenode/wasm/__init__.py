"""Proxy-Wasm host on wasmtime: ``WasmStage`` runs a filter module as a chain stage.

See docs/filters-abi.md for what filters can rely on (host functions, properties,
foreign functions, limits, failure policies).
"""

from edgenode.wasm.engine import FilterLoadError, WasmEngine, default_engine
from edgenode.wasm.foreign import register_foreign_function
from edgenode.wasm.metrics import wasm_collector
from edgenode.wasm.stage import WasmStage

__all__ = ["WasmStage", "WasmEngine", "FilterLoadError", "default_engine",
           "register_foreign_function", "wasm_collector"]
