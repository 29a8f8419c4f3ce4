"""The host functions (``env.proxy_*``), one module per group, registered in
``HOST_FUNCTIONS`` (registry.py) when imported; table.py imports them all.  The package
re-exports the registry's names, which host function modules elsewhere (wasi.py) use."""

from edgenode.wasm.hostcalls.registry import (ALL_VERSIONS, BAD_ARGUMENT, EMPTY, FORBIDDEN,  # noqa: F401
                                              HOST_FUNCTIONS, INTERNAL_FAILURE, INVALID_MEMORY_ACCESS,
                                              NOT_FOUND, OK, UNIMPLEMENTED, V010, V020, V021, V02X,
                                              HostDef, HostVm, _field, _proxy, _ret_bytes, _stream,
                                              _text, _vm, _vm_effect)
