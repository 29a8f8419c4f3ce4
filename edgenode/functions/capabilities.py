"""Capabilities a function's config grants: outbound HTTP, variables, a key-value store.

Everything is denied by default.  Outbound HTTP goes to the node's configured upstreams
only, named in ``allowed_outbound_hosts`` (by upstream name or URL, Spin-style), through
the node's callout (its origin pools and timeouts).  Variables come from the stage's
``variables`` table (Spin's ``variables`` and ``wasi:config/store``).  The key-value
store is Spin's ``key-value`` interface over a ``KeyValueBackend`` the node provides.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Protocol
from urllib.parse import urlsplit

from multidict import CIMultiDict

from edgenode.functions.capi import OWN, GuestTrap
from edgenode.functions.interfaces import Interface
from edgenode.functions.invocation import Invocation
from edgenode.functions.table import Resource
from edgenode.http.messages import Request, Response, read_body

__all__ = ["INTERFACES", "Outbound", "KeyValueBackend", "MemoryKeyValue", "outbound_policy"]

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
class KeyValueBackend(Protocol):
    """The store functions' key-value data lives in; keys are namespaced by the caller."""

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def keys(self, prefix: str) -> list[str]: ...


class MemoryKeyValue:
    """A byte-bounded, thread-safe in-process backend (one per worker process)."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._data.get(key)

    def set(self, key: str, value: bytes) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._size -= len(key) + len(old)
            self._data[key] = value
            self._size += len(key) + len(value)
            while self._size > self.max_bytes and self._data:
                k, v = self._data.popitem(last=False)
                self._size -= len(k) + len(v)

    def delete(self, key: str) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._size -= len(key) + len(old)

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            return [k[len(prefix):] for k in self._data if k.startswith(prefix)]


class KvStore(Resource):
    TYPE, WIT = 40, "store"
    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix


KV_ERROR = ("variant", {"store-table-full": None, "no-such-store": None, "access-denied": None,
                        "other": "string"})
spin_kv = Interface("fermyon:spin/key-value@2.0.0", {"store": KvStore})


def _kv(inv: Invocation, rep: int) -> tuple[KvStore, KeyValueBackend]:
    store = inv.table.get(rep, KvStore)
    if inv.caps.kv is None:
        raise GuestTrap("key-value store used without a backend")
    return store, inv.caps.kv


@spin_kv.fn("[static]store.open", ("result", (OWN, KvStore.TYPE), KV_ERROR))
def _kv_open(inv: Invocation, label: str) -> Any:
    if inv.caps.kv is None or label not in inv.caps.kv_stores:
        inv.log.warning("key-value store %r denied (not in key_value_stores)", label,
                        extra={"function": inv.name})
        return ("err", ("access-denied", None))
    return ("ok", inv.table.add(KvStore(f"{inv.name}/{label}/")))


@spin_kv.fn("[method]store.get", ("result", ("option", "bytes"), KV_ERROR))
def _kv_get(inv: Invocation, rep: int, key: str) -> Any:
    store, backend = _kv(inv, rep)
    return ("ok", backend.get(store.prefix + key))


@spin_kv.fn("[method]store.set", ("result", None, KV_ERROR))
def _kv_set(inv: Invocation, rep: int, key: str, value: Any) -> Any:
    store, backend = _kv(inv, rep)
    backend.set(store.prefix + key, bytes(value))
    return ("ok", None)


@spin_kv.fn("[method]store.delete", ("result", None, KV_ERROR))
def _kv_delete(inv: Invocation, rep: int, key: str) -> Any:
    store, backend = _kv(inv, rep)
    backend.delete(store.prefix + key)
    return ("ok", None)


@spin_kv.fn("[method]store.exists", ("result", "bool", KV_ERROR))
def _kv_exists(inv: Invocation, rep: int, key: str) -> Any:
    store, backend = _kv(inv, rep)
    return ("ok", backend.get(store.prefix + key) is not None)


@spin_kv.fn("[method]store.get-keys", ("result", ("list", "string"), KV_ERROR))
def _kv_keys(inv: Invocation, rep: int) -> Any:
    store, backend = _kv(inv, rep)
    return ("ok", backend.keys(store.prefix))


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
