"""How host interfaces are declared: resources and functions per WIT interface.

Host functions written in Python take the current ``Invocation`` first, then the
decoded arguments (resources as reps); ``result`` is the WIT result type as a
``capi.Spec``.  The functions the C core implements for an interface (``natives``)
need no declaration: they are found by the interface's unversioned name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from edgenode.functions.capi import Spec, native_functions

__all__ = ["Interface", "HostFn"]

HostFn = Callable[..., Any]
_NATIVES = native_functions()


@dataclass
class Interface:
    #: e.g. "wasi:io/streams@0.2.0"; wasmtime matches 0.2.x imports semver-compatibly
    name: str
    #: WIT resource name -> host resource type id
    resources: dict[str, int] = field(default_factory=dict)
    funcs: dict[str, tuple[HostFn, Spec | None]] = field(default_factory=dict)

    def fn(self, name: str, result: Spec | None = None) -> Callable[[HostFn], HostFn]:
        def deco(f: HostFn) -> HostFn:
            self.funcs[name] = (f, result)
            return f
        return deco

    @property
    def unversioned(self) -> str:
        return self.name.split("@", 1)[0]

    @property
    def natives(self) -> list[str]:
        """The functions of this interface implemented in C."""
        return _NATIVES.get(self.unversioned, [])

    def provides(self, function: str) -> bool:
        return function in self.funcs or function in self.natives
