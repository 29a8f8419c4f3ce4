"""How host interfaces are declared: resources and functions per WIT interface.

Host functions take the current ``Invocation`` first, then the decoded arguments
(resources as reps); ``result`` is the WIT result type as a ``capi.Spec``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from edgenode.functions.capi import Spec
from edgenode.functions.table import Resource

__all__ = ["Interface", "HostFn"]

HostFn = Callable[..., Any]


@dataclass
class Interface:
    #: e.g. "wasi:io/streams@0.2.0"; wasmtime matches 0.2.x imports semver-compatibly
    name: str
    resources: dict[str, type[Resource]] = field(default_factory=dict)
    funcs: dict[str, tuple[HostFn, Spec | None]] = field(default_factory=dict)

    def fn(self, name: str, result: Spec | None = None) -> Callable[[HostFn], HostFn]:
        def deco(f: HostFn) -> HostFn:
            self.funcs[name] = (f, result)
            return f
        return deco

    @property
    def unversioned(self) -> str:
        return self.name.split("@", 1)[0]
