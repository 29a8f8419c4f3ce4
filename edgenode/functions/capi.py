"""Host calls on the wasmtime C API's component values, through ``_hostcall`` (C).

wasmtime-py's component ``add_func`` rebuilds the function's type objects and converts
every value through them on each call (tens of µs).  Here each host function gets a C
trampoline (``_hostcall.c``, built with the package) that decodes the raw argument array
(self-describing: kind byte + union) into Python values and encodes the return value
from a result type spec compiled once.  The trampoline gets the C API functions by
address from the wasmtime wheel's shared library, so it needs no wasmtime headers or
link step.

Values: ints; ``str``; ``bytes`` for ``list<u8>``; lists; tuples; dicts for records;
``(case, payload)`` for variants and results (``"ok"``/``"err"``); None or the value for
options; resources as their host ``rep`` (a guest-defined resource traps).  Ownership
follows the C API: wasmtime frees the arguments after the call and takes the results.
"""

from __future__ import annotations

import ctypes
from typing import Any, Callable

from wasmtime import _bindings as B

from edgenode.functions import _hostcall

__all__ = ["GuestTrap", "Spec", "OWN", "BORROW", "host_callback", "dtor_callback", "call_handler"]

#: a result type spec: "bool", "u8".."u64", "s32", "s64", "string", "bytes" (list<u8>),
#: ("own", type_id), ("borrow", type_id), ("option", spec), ("result", ok|None, err|None),
#: ("list", spec), ("tuple", *specs), ("record", (name, spec), ...),
#: ("variant", {case: spec|None}), ("enum",)
Spec = Any
OWN = "own"
BORROW = "borrow"
_C_API = ("wasmtime_component_resource_any_to_host", "wasmtime_component_resource_host_rep",
          "wasmtime_component_resource_host_delete", "wasmtime_component_resource_host_new",
          "wasmtime_component_resource_host_to_any", "wasm_byte_vec_new",
          "wasmtime_component_vallist_new_uninit", "wasmtime_component_valtuple_new_uninit",
          "wasmtime_component_valrecord_new_uninit", "wasmtime_component_val_new", "wasmtime_error_new",
          "wasmtime_error_delete", "wasmtime_component_func_call", "wasmtime_component_func_post_return")


class GuestTrap(Exception):
    """Raised by a host function: the guest traps with this message; the node carries on."""


_hostcall.configure({name: ctypes.cast(B.dll[name], ctypes.c_void_p).value for name in _C_API}, GuestTrap)

HostImpl = Callable[..., Any]


def host_callback(impl: HostImpl, result: Spec | None, on_error: Callable[[BaseException], str],
                  account: Callable[[float], None]) -> tuple[int, int]:
    """(callback, data) addresses for ``wasmtime_component_linker_instance_add_func``.

    The callback runs ``impl(*args)`` and encodes its return as ``result``.  A
    ``GuestTrap`` traps the guest with its message; any other exception goes to
    ``on_error`` (which logs it and returns the trap message): the node never fails.
    ``account`` receives the seconds spent (decoding, the host function, encoding).
    """
    return _hostcall.host_function(impl, result, on_error, account)


def dtor_callback(drop: Callable[[int], None], on_error: Callable[[BaseException], str],
                  account: Callable[[float], None]) -> tuple[int, int]:
    """(callback, data) addresses of a resource destructor calling ``drop(rep)``."""
    return _hostcall.destructor(drop, on_error, account)


def call_handler(func_addr: int, ctx: int, first: tuple[int, int], second: tuple[int, int]) -> int:
    """Call ``handle(own, own)`` with two host resources ((rep, type id) each), then
    ``post_return``; the GIL is released meanwhile.  Returns an error address (0: success)."""
    return _hostcall.call_handler(func_addr, ctx, first, second) or 0
