"""Host resources defined in Python.

Every host resource of an instance lives in its table (``_hostcall.Table``, C): a rep
names it, each lookup checks its type, parents count their live children, and reps are
never reused.  The hot resources (fields, streams, bodies, pollables, the request and
the response) are C objects; the rest (outgoing requests, key-value stores, ...) are
instances of ``Resource`` subclasses, added with ``table.add(obj, parent_rep)`` and read
back with ``table.get(rep, cls)`` / ``table.take(rep, cls)``, which trap on a wrong handle.
"""

from __future__ import annotations

__all__ = ["Resource"]


class Resource:
    """Base of the host resources written in Python; ``TYPE`` is its wasmtime host
    resource type id, ``WIT`` its name in error messages."""

    TYPE = 0
    WIT = "resource"
    __slots__ = ()

    def on_drop(self) -> None:
        """Called when the guest drops its handle."""
