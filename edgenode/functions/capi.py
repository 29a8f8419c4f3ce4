"""The edge-function host's C core (``_hostcall``), configured for this wasmtime wheel.

The hot host functions (wasi:io, wasi:clocks, wasi:random and most of wasi:http/types)
are C: a guest's call runs no Python at all.  The rest are Python functions called
through one C trampoline with the request's ``Invocation`` first and the decoded
arguments after; their return value is encoded from a result type spec compiled once.
The C core gets the wasmtime C API by address from the wheel's shared library, so it
needs no wasmtime headers or link step.

Values for Python host functions: ints; ``str``; ``bytes`` for ``list<u8>``; lists;
tuples; dicts for records; ``(case, payload)`` for variants and results
(``"ok"``/``"err"``); None or the value for options; resources as their host ``rep``
(a guest-defined resource traps).
"""

from __future__ import annotations

import ctypes
from typing import Any, Callable

from multidict import CIMultiDict
from wasmtime import _bindings as B

from edgenode.functions import _hostcall

__all__ = ["GuestTrap", "Spec", "OWN", "BORROW", "TYPES", "python_callback", "native_callback",
           "native_functions", "dtor_callback", "configure"]

#: a result type spec: "bool", "u8".."u64", "s32", "s64", "string", "bytes" (list<u8>),
#: ("own", type_id), ("borrow", type_id), ("option", spec), ("result", ok|None, err|None),
#: ("list", spec), ("tuple", *specs), ("record", (name, spec), ...),
#: ("variant", {case: spec|None}), ("enum",)
Spec = Any
OWN = "own"
BORROW = "borrow"
#: WIT resource name -> host resource type id, for the resources implemented in C
TYPES: dict[str, int] = dict(_hostcall.TYPES)
_C_API = ("wasmtime_component_resource_any_to_host", "wasmtime_component_resource_host_rep",
          "wasmtime_component_resource_host_delete", "wasmtime_component_resource_host_new",
          "wasmtime_component_resource_host_to_any", "wasm_byte_vec_new", "wasm_byte_vec_delete",
          "wasmtime_component_vallist_new_uninit", "wasmtime_component_valtuple_new_uninit",
          "wasmtime_component_valrecord_new_uninit", "wasmtime_component_val_new",
          "wasmtime_component_val_delete", "wasmtime_error_new",
          "wasmtime_error_delete", "wasmtime_error_message", "wasmtime_component_func_call",
          "wasmtime_component_func_post_return", "wasmtime_store_new", "wasmtime_store_context",
          "wasmtime_store_limiter", "wasmtime_store_delete", "wasmtime_context_set_epoch_deadline",
          "wasmtime_component_linker_instantiate", "wasmtime_component_instance_get_func",
          "wasmtime_engine_increment_epoch")


class GuestTrap(Exception):
    """Raised by a host function: the guest traps with this message; the node carries on."""


def configure(on_error: Callable[[BaseException, Any], str], type_names: dict[int, str]) -> None:
    """Hand the C core the wasmtime C API, how to report a failing host function
    (``on_error(exception, invocation | None)`` logs and returns the trap message), and
    the WIT names of every resource type for its error messages."""
    _hostcall.configure({name: ctypes.cast(B.dll[name], ctypes.c_void_p).value for name in _C_API},
                        GuestTrap, CIMultiDict, on_error, {**{v: k for k, v in TYPES.items()}, **type_names},
                        ctypes.sizeof(B.wasmtime_component_instance_t), ctypes.sizeof(B.wasmtime_component_func_t))


def python_callback(impl: Callable[..., Any], result: Spec | None) -> tuple[int, int]:
    """(callback, data) addresses for ``wasmtime_component_linker_instance_add_func``
    of a host function written in Python: ``impl(invocation, *args)``."""
    return _hostcall.python_function(impl, result)


def native_callback(interface: str, name: str) -> tuple[int, int] | None:
    """The same for a host function written in C (None: there is none of that name)."""
    return _hostcall.native_function(interface, name)


def native_functions() -> dict[str, list[str]]:
    """Unversioned interface name -> the functions implemented in C."""
    return _hostcall.native_functions()


def dtor_callback() -> tuple[int, int]:
    """(callback, data) of the destructor every host resource type shares (the guest
    dropped a handle: the request's table drops the rep)."""
    return _hostcall.destructor()
