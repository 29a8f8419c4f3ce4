"""Lean host calls on the wasmtime C API's component values (``wasmtime_component_val_t``).

wasmtime-py's component ``add_func`` rebuilds the function's type objects and converts
every value through them on each call (tens of µs).  Here a host function gets its
arguments decoded straight from the raw value array (self-describing: kind byte + union)
and encodes its result from a small type spec computed once, with one ctypes call per
allocation the C API needs (strings, lists, resources).

Layout (32 bytes per value): kind at 0, the union at 8.  Ownership follows the C API:
wasmtime frees the arguments after the call and takes the results.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any, Callable

from wasmtime import _bindings as B

__all__ = ["GuestTrap", "host_callback", "dtor_callback", "encode_into", "decode_args", "VAL_SIZE",
           "Spec", "OWN", "BORROW", "call_func", "own_arg", "new_val_array"]

_VP, _SZ, _U32 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32
_NOGIL = ctypes.PyDLL(B.dll._name)


def _fn(name: str, restype: object, *argtypes: object, gil: bool = True) -> Any:
    f = (_NOGIL if gil else B.dll)[name]
    f.restype = restype
    f.argtypes = argtypes
    return f


_any_to_host = _fn("wasmtime_component_resource_any_to_host", _VP, _VP, _VP, _VP)
_host_rep = _fn("wasmtime_component_resource_host_rep", _U32, _VP)
_host_type = _fn("wasmtime_component_resource_host_type", _U32, _VP)
_host_delete = _fn("wasmtime_component_resource_host_delete", None, _VP)
_any_delete = _fn("wasmtime_component_resource_any_delete", None, _VP)
_host_new = _fn("wasmtime_component_resource_host_new", _VP, ctypes.c_bool, _U32, _U32)
_host_to_any = _fn("wasmtime_component_resource_host_to_any", _VP, _VP, _VP, _VP)
_byte_vec_new = _fn("wasm_byte_vec_new", None, _VP, _SZ, ctypes.c_char_p)
_vallist_uninit = _fn("wasmtime_component_vallist_new_uninit", None, _VP, _SZ)
_valtuple_uninit = _fn("wasmtime_component_valtuple_new_uninit", None, _VP, _SZ)
_valrecord_uninit = _fn("wasmtime_component_valrecord_new_uninit", None, _VP, _SZ)
_val_new = _fn("wasmtime_component_val_new", _VP, _VP)
_error_new = _fn("wasmtime_error_new", _VP, ctypes.c_char_p)
#: guest calls release the GIL, so the epoch ticker and other threads keep running
_func_call = _fn("wasmtime_component_func_call", _VP, _VP, _VP, _VP, _SZ, _VP, _SZ, gil=False)
_post_return = _fn("wasmtime_component_func_post_return", _VP, _VP, _VP, gil=False)

VAL_SIZE = ctypes.sizeof(B.wasmtime_component_val_t)
assert VAL_SIZE == 32 and B.wasmtime_component_val_t.of.offset == 8
_ENTRY = ctypes.sizeof(B.wasmtime_component_valrecord_entry_t)  # name (16) + val (32)

# value kinds (wasmtime_component_valkind_t)
K_BOOL, K_S8, K_U8, K_S16, K_U16, K_S32, K_U32, K_S64, K_U64 = range(9)
K_STRING, K_LIST, K_RECORD, K_TUPLE, K_VARIANT, K_ENUM, K_OPTION, K_RESULT, K_FLAGS = range(12, 21)
K_RESOURCE = 21
_INT_FMT = {K_BOOL: "?", K_S8: "b", K_U8: "B", K_S16: "h", K_U16: "H", K_S32: "i", K_U32: "I",
            K_S64: "q", K_U64: "Q"}
_INT_KIND = {"bool": K_BOOL, "u8": K_U8, "u16": K_U16, "u32": K_U32, "u64": K_U64, "s32": K_S32,
             "s64": K_S64}
_QQ = struct.Struct("<QQ")
_Q = struct.Struct("<Q")

HOST_FN = ctypes.CFUNCTYPE(_SZ, _VP, _VP, _VP, _VP, _SZ, _VP, _SZ)
DTOR_FN = ctypes.CFUNCTYPE(_SZ, _VP, _VP, _U32)

#: a result type spec: "bool"/"u8".."s64", "string", "bytes", ("own", type_id),
#: ("option", spec), ("result", ok|None, err|None), ("list", spec), ("tuple", *specs),
#: ("record", (name, spec), ...), ("variant", {case: spec|None}), ("enum",)
Spec = Any
OWN = "own"
BORROW = "borrow"


class GuestTrap(Exception):
    """Raised by a host function: the guest traps with this message; the node carries on."""


# --- decoding arguments ---------------------------------------------------------------
def decode_args(ctx: int, args: int, nargs: int) -> list[Any]:
    """Python values for ``nargs`` raw arguments (wasmtime frees them after the call):
    ints, str, bytes (list<u8>), lists, tuples, dict (records), (case, payload)
    (variants/results), None/x (options), and resources as their host ``rep`` (a
    guest-defined resource traps)."""
    return [_decode(ctx, args + i * VAL_SIZE) for i in range(nargs)]


def _decode(ctx: int, addr: int) -> Any:
    raw = ctypes.string_at(addr, VAL_SIZE)
    kind = raw[0]
    fmt = _INT_FMT.get(kind)
    if fmt is not None:
        return struct.unpack_from("<" + fmt, raw, 8)[0]
    if kind == K_RESOURCE:
        return _resource_rep(ctx, _Q.unpack_from(raw, 8)[0])
    if kind == K_STRING or kind == K_ENUM:
        size, data = _QQ.unpack_from(raw, 8)
        return ctypes.string_at(data, size).decode() if size else ""
    if kind == K_LIST or kind == K_TUPLE:
        size, data = _QQ.unpack_from(raw, 8)
        if kind == K_LIST and size and ctypes.string_at(data, 1)[0] == K_U8:
            return ctypes.string_at(data, size * VAL_SIZE)[8::VAL_SIZE]
        items = [_decode(ctx, data + i * VAL_SIZE) for i in range(size)]
        return items if kind == K_LIST else tuple(items)
    if kind == K_OPTION:
        ptr = _Q.unpack_from(raw, 8)[0]
        return None if not ptr else _decode(ctx, ptr)
    if kind == K_RESULT:
        ok = raw[8]
        ptr = _Q.unpack_from(raw, 16)[0]
        return ("ok" if ok else "err", _decode(ctx, ptr) if ptr else None)
    if kind == K_VARIANT:
        size, data, ptr = struct.unpack_from("<QQQ", raw, 8)
        return (ctypes.string_at(data, size).decode(), _decode(ctx, ptr) if ptr else None)
    if kind == K_RECORD:
        size, data = _QQ.unpack_from(raw, 8)
        out = {}
        for i in range(size):
            e = data + i * _ENTRY
            nsize, ndata = _QQ.unpack(ctypes.string_at(e, 16))
            out[ctypes.string_at(ndata, nsize).decode()] = _decode(ctx, e + 16)
        return out
    raise GuestTrap(f"unsupported value kind {kind}")


_host_out = ctypes.c_void_p()
_host_out_addr = ctypes.addressof(_host_out)


def _resource_rep(ctx: int, any_ptr: int) -> int:
    err = _any_to_host(ctx, any_ptr, _host_out_addr)
    if err:
        B.wasmtime_error_delete(ctypes.cast(err, ctypes.POINTER(B.wasmtime_error_t)))
        raise GuestTrap("a guest-defined resource was passed where a host resource is expected")
    host = _host_out.value
    rep = _host_rep(host)
    _host_delete(host)
    return rep


# --- encoding results -----------------------------------------------------------------
def new_val_array(n: int) -> ctypes.Array[Any]:
    return (ctypes.c_char * (VAL_SIZE * n))()


def encode_into(ctx: int, spec: Spec, value: Any, addr: int) -> None:
    """Write ``value`` as a raw value of type ``spec`` at ``addr`` (allocating via the C API)."""
    if type(spec) is str:
        kind = _INT_KIND.get(spec)
        if kind is not None:
            ctypes.memmove(addr, struct.pack("<B7x" + _INT_FMT[kind], kind, value), 8 + struct.calcsize(_INT_FMT[kind]))
            return
        if spec == "string":
            _put_bytes(addr, K_STRING, value.encode())
            return
        if spec == "bytes":
            _put_u8_list(addr, value)
            return
        raise ValueError(spec)
    tag = spec[0]
    if tag == OWN:
        ctypes.memmove(addr, struct.pack("<B7xQ", K_RESOURCE, _resource_any(ctx, True, value, spec[1])), 16)
    elif tag == BORROW:
        ctypes.memmove(addr, struct.pack("<B7xQ", K_RESOURCE, _resource_any(ctx, False, value, spec[1])), 16)
    elif tag == "option":
        ptr = 0 if value is None else _boxed(ctx, spec[1], value)
        ctypes.memmove(addr, struct.pack("<B7xQ", K_OPTION, ptr), 16)
    elif tag == "result":
        case, payload = value
        sub = spec[1] if case == "ok" else spec[2]
        ptr = 0 if sub is None else _boxed(ctx, sub, payload)
        ctypes.memmove(addr, struct.pack("<B7x?7xQ", K_RESULT, case == "ok", ptr), 24)
    elif tag == "list":
        n = len(value)
        ctypes.memset(addr, K_LIST, 1)
        _vallist_uninit(addr + 8, n)
        data = _Q.unpack(ctypes.string_at(addr + 16, 8))[0]
        for i, item in enumerate(value):
            encode_into(ctx, spec[1], item, data + i * VAL_SIZE)
    elif tag == "tuple":
        ctypes.memset(addr, K_TUPLE, 1)
        _valtuple_uninit(addr + 8, len(value))
        data = _Q.unpack(ctypes.string_at(addr + 16, 8))[0]
        for i, (sub, item) in enumerate(zip(spec[1:], value)):
            encode_into(ctx, sub, item, data + i * VAL_SIZE)
    elif tag == "record":
        ctypes.memset(addr, K_RECORD, 1)
        fields = spec[1:]
        _valrecord_uninit(addr + 8, len(fields))
        data = _Q.unpack(ctypes.string_at(addr + 16, 8))[0]
        for i, (name, sub) in enumerate(fields):
            e = data + i * _ENTRY
            _byte_vec_new(e, len(name), name.encode())
            encode_into(ctx, sub, value[name], e + 16)
    elif tag == "variant":
        case, payload = value
        sub = spec[1][case]
        ptr = 0 if sub is None else _boxed(ctx, sub, payload)
        ctypes.memset(addr, K_VARIANT, 1)
        name = case.encode()
        _byte_vec_new(addr + 8, len(name), name)
        ctypes.memmove(addr + 24, _Q.pack(ptr), 8)
    elif tag == "enum":
        _put_bytes(addr, K_ENUM, value.encode())
    else:
        raise ValueError(spec)


def _put_bytes(addr: int, kind: int, data: bytes) -> None:
    ctypes.memset(addr, kind, 1)
    _byte_vec_new(addr + 8, len(data), data)


def _put_u8_list(addr: int, data: bytes) -> None:
    n = len(data)
    ctypes.memset(addr, K_LIST, 1)
    _vallist_uninit(addr + 8, n)
    if n:
        buf = bytearray(n * VAL_SIZE)
        buf[0::VAL_SIZE] = bytes((K_U8,)) * n
        buf[8::VAL_SIZE] = data
        ctypes.memmove(_Q.unpack(ctypes.string_at(addr + 16, 8))[0], bytes(buf), len(buf))


def _boxed(ctx: int, spec: Spec, value: Any) -> int:
    """A heap value (``wasmtime_component_val_new``) holding ``value``."""
    tmp = new_val_array(1)
    a = ctypes.addressof(tmp)
    encode_into(ctx, spec, value, a)
    return _val_new(a) or 0


_any_out = ctypes.c_void_p()
_any_out_addr = ctypes.addressof(_any_out)


def _resource_any(ctx: int, owned: bool, rep: int, type_id: int) -> int:
    host = _host_new(owned, rep, type_id)
    err = _host_to_any(ctx, host, _any_out_addr)
    _host_delete(host)
    if err:
        raise GuestTrap("cannot hand a resource to the guest")
    return _any_out.value or 0


# --- callbacks ------------------------------------------------------------------------
HostImpl = Callable[..., Any]


def _error(message: str) -> int:
    return _error_new(message.encode(errors="replace")) or 0


def host_callback(impl: HostImpl, result: Spec | None, on_error: Callable[[BaseException], str]) -> Any:
    """A C callback running ``impl(ctx, *args)`` and encoding its return as ``result``.

    A ``GuestTrap`` traps the guest with its message; any other exception is reported
    through ``on_error`` (which logs it) and traps the guest too: the node never fails.
    """

    def cb(_data: int, ctx: int, _ty: int, args: int, nargs: int, results: int, nresults: int) -> int:
        try:
            value = impl(ctx, *decode_args(ctx, args, nargs)) if nargs else impl(ctx)
            if nresults:
                encode_into(ctx, result, value, results)
            return 0
        except GuestTrap as exc:
            return _error(str(exc))
        except BaseException as exc:  # noqa: BLE001 - a host bug must trap the guest, not abort
            return _error(on_error(exc))

    return HOST_FN(cb)


def dtor_callback(drop: Callable[[int], None], on_error: Callable[[BaseException], str]) -> Any:
    def cb(_data: int, _ctx: int, rep: int) -> int:
        try:
            drop(rep)
            return 0
        except GuestTrap as exc:
            return _error(str(exc))
        except BaseException as exc:  # noqa: BLE001
            return _error(on_error(exc))

    return DTOR_FN(cb)


def call_func(func_addr: int, ctx: int, args: ctypes.Array[Any], nargs: int) -> int:
    """Call a component function with prepared raw args (no results); returns an error
    pointer (0 on success).  ``post_return`` runs afterwards on success."""
    err = _func_call(func_addr, ctx, ctypes.addressof(args), nargs, None, 0)
    if err:
        return err
    return _post_return(func_addr, ctx) or 0


def own_arg(ctx: int, rep: int, type_id: int, addr: int) -> None:
    """Write an ``own`` resource argument at ``addr``."""
    ctypes.memmove(addr, struct.pack("<B7xQ", K_RESOURCE, _resource_any(ctx, True, rep, type_id)), 16)
