"""The host side of one instance's resources: ``rep`` -> object, with type and ownership checks.

wasmtime keeps the guest's handle table (own/borrow handles, drops); a handle names a
host ``rep`` here.  Every lookup checks the object's type, so a guest that passes a
stream where a body is expected traps instead of confusing the host.  Parent objects
count their live children (a body's stream, a response's body): dropping or finishing a
parent while a child lives traps, as WASI 0.2 requires.  Reps are never reused within
an instance.
"""

from __future__ import annotations

from typing import TypeVar

from edgenode.functions.capi import GuestTrap

__all__ = ["Resource", "ResourceTable", "T"]

T = TypeVar("T", bound="Resource")


class Resource:
    """Base of every host resource; ``TYPE`` is its wasmtime host resource type id."""

    TYPE = 0
    WIT = "resource"
    __slots__ = ("rep", "parent", "children")

    def __init__(self) -> None:
        self.rep = 0
        self.parent: Resource | None = None
        self.children = 0

    def on_drop(self) -> None:
        """Called when the guest drops its handle (or the host consumes it)."""


class ResourceTable:
    __slots__ = ("items", "_next")

    def __init__(self) -> None:
        self.items: dict[int, Resource] = {}
        self._next = 1

    def add(self, obj: Resource, parent: Resource | None = None) -> int:
        rep = self._next
        self._next = rep + 1
        obj.rep = rep
        if parent is not None:
            obj.parent = parent
            parent.children += 1
        self.items[rep] = obj
        return rep

    def get(self, rep: int, cls: type[T]) -> T:
        obj = self.items.get(rep)
        if obj is None or not isinstance(obj, cls):
            raise GuestTrap(f"invalid {cls.WIT} handle (rep {rep})")
        return obj

    def take(self, rep: int, cls: type[T]) -> T:
        """Remove an object whose ownership the guest hands to the host (``own`` param)."""
        obj = self.get(rep, cls)
        self._remove(obj)
        return obj

    def drop(self, rep: int) -> None:
        obj = self.items.get(rep)
        if obj is None:
            raise GuestTrap(f"drop of unknown resource (rep {rep})")
        if obj.children:
            raise GuestTrap(f"{obj.WIT} dropped while a child resource is still alive")
        self._remove(obj)
        obj.on_drop()

    def _remove(self, obj: Resource) -> None:
        if obj.children:
            raise GuestTrap(f"{obj.WIT} consumed while a child resource is still alive")
        del self.items[obj.rep]
        parent = obj.parent
        if parent is not None:
            parent.children -= 1
            obj.parent = None

    def forget_from(self, rep: int) -> int:
        """Drop the host side of every resource added since ``rep`` (the ones a request
        created and the guest never dropped): a reused instance must not accumulate
        requests; a later use of such a handle traps.  Returns how many were left."""
        stale = [r for r in self.items if r >= rep]
        for r in stale:
            del self.items[r]
        return len(stale)

    @property
    def next_rep(self) -> int:
        return self._next

    def __len__(self) -> int:
        return len(self.items)

    def live(self) -> dict[str, int]:
        """Live resources by WIT type (for leak checks in tests and tools)."""
        out: dict[str, int] = {}
        for obj in self.items.values():
            out[obj.WIT] = out.get(obj.WIT, 0) + 1
        return out
