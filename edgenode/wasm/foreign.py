"""Host functions a filter may call by name with ``proxy_call_foreign_function``.

The node (or a test) registers ``fn(args: bytes) -> bytes``; unknown names return
NOT_FOUND to the guest.  An exception raised by ``fn`` returns INTERNAL_FAILURE
(logged), it never traps the filter.  A ``pure`` function (its answer depends on
nothing outside the calling filter) may run during start-up without ruling out a
start-up snapshot (snapshot.py).
"""

from __future__ import annotations

from typing import Callable

__all__ = ["ForeignFunction", "register_foreign_function", "unregister_foreign_function",
           "lookup_foreign_function", "is_pure_foreign_function"]

ForeignFunction = Callable[[bytes], bytes]

_registry: dict[str, ForeignFunction] = {}
_pure: set[str] = set()


def register_foreign_function(name: str, fn: ForeignFunction, *, pure: bool = False) -> None:
    if not name:
        raise ValueError("foreign function name must not be empty")
    _registry[name] = fn
    (_pure.add if pure else _pure.discard)(name)


def unregister_foreign_function(name: str) -> None:
    _registry.pop(name, None)
    _pure.discard(name)


def is_pure_foreign_function(name: str) -> bool:
    return name in _pure


def lookup_foreign_function(name: str) -> ForeignFunction | None:
    return _registry.get(name)
