"""Host functions a filter may call by name with ``proxy_call_foreign_function``.

The node (or a test) registers ``fn(args: bytes) -> bytes``; unknown names return
NOT_FOUND to the guest.  An exception raised by ``fn`` returns INTERNAL_FAILURE
(logged), it never traps the filter.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["ForeignFunction", "register_foreign_function", "unregister_foreign_function",
           "lookup_foreign_function"]

ForeignFunction = Callable[[bytes], bytes]

_registry: dict[str, ForeignFunction] = {}


def register_foreign_function(name: str, fn: ForeignFunction) -> None:
    if not name:
        raise ValueError("foreign function name must not be empty")
    _registry[name] = fn


def unregister_foreign_function(name: str) -> None:
    _registry.pop(name, None)


def lookup_foreign_function(name: str) -> ForeignFunction | None:
    return _registry.get(name)
