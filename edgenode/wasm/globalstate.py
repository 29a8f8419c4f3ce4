"""Exported globals of an instance, read through the wasmtime C API when a post-configure
snapshot is taken (snapshot.py); ``native.Instance.restore`` writes them back."""

from __future__ import annotations

import ctypes

from wasmtime import _bindings as B

__all__ = ["GlobalState"]

_VP = ctypes.c_void_p
_addressof = ctypes.addressof


def _raw_fn(name: str, restype: object, *argtypes: object) -> object:
    """A private binding that keeps the GIL (these calls return in nanoseconds)."""
    fn = ctypes.PyDLL(B.dll._name)[name]
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


#: (context, instance, name, name length, extern out) -> found; all plain addresses
_export_get = _raw_fn("wasmtime_instance_export_get", ctypes.c_bool, _VP, _VP, ctypes.c_char_p,
                      ctypes.c_size_t, _VP)
_global_get = _raw_fn("wasmtime_global_get", None, _VP, _VP, _VP)
#: offset of the union (the global struct) inside a wasmtime_extern_t
EXTERN_OF = B.wasmtime_extern_t.of.offset

_VAL_KINDS = {"i32": (0, "i32"), "i64": (1, "i64"), "f32": (2, "f32"), "f64": (3, "f64")}
_VAL_SIZE = ctypes.sizeof(B.wasmtime_val_t)
_EXTERN_GLOBAL = 1


class GlobalState:
    """A snapshot's global values: one preallocated ``wasmtime_val_t`` array (and the
    export names in its order), so writing them into a new instance allocates nothing."""

    def __init__(self, globals_: list[tuple[str, str, int | float]]) -> None:
        self.names = [name.encode() for name, _, _ in globals_]
        self.values = (B.wasmtime_val_t * max(1, len(globals_)))()
        for val, (_, wtype, value) in zip(self.values, globals_):
            kind, field = _VAL_KINDS[wtype]
            val.kind = kind
            setattr(val.of, field, value)
        self.values_addr = _addressof(self.values)
        self.value_size = _VAL_SIZE

    @staticmethod
    def read(ctx: int, inst_addr: int, exports: list[tuple[str, str]]) -> list[tuple[str, str, int | float]]:
        out: list[tuple[str, str, int | float]] = []
        for name, wtype in exports:
            ext = B.wasmtime_extern_t()
            encoded = name.encode()
            if not _export_get(ctx, inst_addr, encoded, len(encoded), _addressof(ext)) \
                    or ext.kind != _EXTERN_GLOBAL:
                raise KeyError(name)
            val = B.wasmtime_val_t()
            _global_get(ctx, _addressof(ext) + EXTERN_OF, _addressof(val))
            out.append((name, wtype, getattr(val.of, _VAL_KINDS[wtype][1])))
        return out
