"""Capabilities a function's config grants: outbound HTTP, variables, a key-value store.

Everything is denied by default.  Outbound HTTP goes to the node's configured upstreams
only, named in ``allowed_outbound_hosts`` (by upstream name or URL, Spin-style), through
the node's callout (its origin pools and timeouts).  Variables come from the stage's
``variables`` table (Spin's ``variables`` and ``wasi:config/store``).  The key-value
store is Spin's ``key-value`` interface over the node's ``KeyValueBackend`` (kv.py): a
label the config does not grant answers ``access-denied``, a storage failure or a full
store ``other`` with the reason.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from multidict import CIMultiDict

from edgenode.functions.capi import OWN
from edgenode.functions.interfaces import Interface
from edgenode.functions.invocation import Invocation
from edgenode.functions.kv import MAX_KEY_BYTES, KeyValueBackend, KeyValueError
from edgenode.functions.table import Resource
from edgenode.http.messages import Request, Response, read_body

__all__ = ["INTERFACES", "TYPE_NAMES", "Outbound", "outbound_policy", "MAX_OPEN_STORES"]

Callout = Callable[[str, Request, float | None], Awaitable[Response]]


class Outbound:
    """``allowed_outbound_hosts`` resolved against the node's upstreams at load time."""

    def __init__(self, allowed: dict[str, str], callout: Callout, timeout: float) -> None:
        #: authority (upstream name or host:port) -> upstream name
        self.allowed = allowed
        self._callout = callout
        self.timeout = timeout

    def resolve(self, authority: str) -> str | None:
        return self.allowed.get(authority.lower())

    async def call(self, upstream: str, method: str, path: str, headers: CIMultiDict[str], body: bytes,
                   timeouts: dict[str, int | None]) -> tuple[int, list[tuple[str, bytes]], bytes, Any]:
        first_byte = timeouts.get("first-byte")
        timeout = first_byte / 1e9 if first_byte else self.timeout
        req = Request(method, path, headers, body)
        resp = await self._callout(upstream, req, timeout)
        data = await read_body(resp.body)
        items = [(k, v.encode("latin-1")) for k, v in resp.headers.items()]
        return resp.status, items, data, resp.trailers


def outbound_policy(allowed: list[str], upstreams: dict[str, Any], callout: Callout | None,
                    timeout: float, where: str) -> Outbound | None:
    """Resolve each allowed entry (an upstream name or ``http://host:port``) or raise ValueError."""
    if not allowed:
        return None
    if callout is None:
        raise ValueError(f"{where}: outbound HTTP needs a node (no callout available)")
    table: dict[str, str] = {}
    for entry in allowed:
        name = entry if entry in upstreams else None
        if name is None:
            parts = urlsplit(entry if "://" in entry else f"http://{entry}")
            port = parts.port or 80
            for uname, cfg in upstreams.items():
                if cfg.host == parts.hostname and cfg.port == port:
                    name = uname
                    break
        if name is None:
            raise ValueError(f"{where}: {entry!r} is neither an upstream name nor the URL of one "
                             f"(known: {', '.join(sorted(upstreams))})")
        cfg = upstreams[name]
        table[name.lower()] = name
        table[f"{cfg.host}:{cfg.port}".lower()] = name
        if cfg.port == 80:
            table[cfg.host.lower()] = name
    return Outbound(table, callout, timeout)


# --- key-value -------------------------------------------------------------------------------
#: how many stores one request may have open at once (Spin's store table capacity)
MAX_OPEN_STORES = 256


class KvStore(Resource):
    TYPE, WIT = 40, "store"
    __slots__ = ("store", "label", "max_bytes", "inv")

    def __init__(self, inv: Invocation, label: str, max_bytes: int) -> None:
        self.store = f"{inv.name}\0{label}"
        self.label = label
        self.max_bytes = max_bytes
        self.inv = inv

    def on_drop(self) -> None:
        self.inv.kv_open -= 1


KV_ERROR = ("variant", {"store-table-full": None, "no-such-store": None, "access-denied": None,
                        "other": "string"})
spin_kv = Interface("fermyon:spin/key-value@2.0.0", {"store": KvStore.TYPE})


def _kv_op(inv: Invocation, rep: int, key: str | None, op: Callable[[KeyValueBackend, KvStore], Any]) -> Any:
    """``op`` on the store behind ``rep``; a bad key or a storage failure is ``other``."""
    store = inv.table.get(rep, KvStore)
    if key is not None and len(key.encode()) > MAX_KEY_BYTES:
        return ("err", ("other", f"key longer than {MAX_KEY_BYTES} bytes"))
    try:
        return ("ok", op(inv.caps.kv, store))
    except KeyValueError as exc:
        inv.log.warning("function %s: key-value store %r: %s", inv.name, store.label, exc,
                        extra={"function": inv.name})
        return ("err", ("other", str(exc)))


@spin_kv.fn("[static]store.open", ("result", (OWN, KvStore.TYPE), KV_ERROR))
def _kv_open(inv: Invocation, label: str) -> Any:
    max_bytes = inv.caps.kv_stores.get(label)
    if max_bytes is None:
        inv.log.warning("key-value store %r denied (not in key_value_stores)", label,
                        extra={"function": inv.name})
        return ("err", ("access-denied", None))
    if inv.caps.kv is None:
        return ("err", ("no-such-store", None))
    if inv.kv_open >= MAX_OPEN_STORES:
        return ("err", ("store-table-full", None))
    inv.kv_open += 1
    return ("ok", inv.table.add(KvStore(inv, label, max_bytes)))


@spin_kv.fn("[method]store.get", ("result", ("option", "bytes"), KV_ERROR))
def _kv_get(inv: Invocation, rep: int, key: str) -> Any:
    return _kv_op(inv, rep, key, lambda kv, s: kv.get(s.store, key))


@spin_kv.fn("[method]store.set", ("result", None, KV_ERROR))
def _kv_set(inv: Invocation, rep: int, key: str, value: Any) -> Any:
    return _kv_op(inv, rep, key, lambda kv, s: kv.set(s.store, key, bytes(value), s.max_bytes))


@spin_kv.fn("[method]store.delete", ("result", None, KV_ERROR))
def _kv_delete(inv: Invocation, rep: int, key: str) -> Any:
    return _kv_op(inv, rep, key, lambda kv, s: kv.delete(s.store, key))


@spin_kv.fn("[method]store.exists", ("result", "bool", KV_ERROR))
def _kv_exists(inv: Invocation, rep: int, key: str) -> Any:
    return _kv_op(inv, rep, key, lambda kv, s: kv.get(s.store, key) is not None)


@spin_kv.fn("[method]store.get-keys", ("result", ("list", "string"), KV_ERROR))
def _kv_keys(inv: Invocation, rep: int) -> Any:
    return _kv_op(inv, rep, None, lambda kv, s: kv.keys(s.store))


# --- variables ------------------------------------------------------------------------------
spin_vars = Interface("fermyon:spin/variables@2.0.0")
config_store = Interface("wasi:config/store@0.2.0-draft-2024-09-27")
VAR_ERROR = ("variant", {"invalid-name": "string", "undefined": "string", "provider": "string",
                         "other": "string"})
CONFIG_ERROR = ("variant", {"upstream": "string", "io": "string"})


@spin_vars.fn("get", ("result", "string", VAR_ERROR))
def _var_get(inv: Invocation, name: str) -> Any:
    value = inv.caps.variables.get(name)
    if value is None:
        return ("err", ("undefined", f"no variable named {name!r}"))
    return ("ok", value)


@config_store.fn("get", ("result", ("option", "string"), CONFIG_ERROR))
def _config_get(inv: Invocation, name: str) -> Any:
    return ("ok", inv.caps.variables.get(name))


@config_store.fn("get-all", ("result", ("list", ("tuple", "string", "string")), CONFIG_ERROR))
def _config_all(inv: Invocation) -> Any:
    return ("ok", list(inv.caps.variables.items()))


INTERFACES = [spin_kv, spin_vars, config_store]
#: WIT names of the resource types defined here
TYPE_NAMES = {KvStore.TYPE: KvStore.WIT}
