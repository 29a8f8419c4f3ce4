"""Exceptions of the guest call path (raised by the host core and the host functions)."""

from __future__ import annotations

__all__ = ["GuestTrap", "HostTrap", "MemoryFault"]


class GuestTrap(Exception):
    """A guest call trapped (unreachable, out-of-bounds, deadline, proc_exit, host trap).

    ``args``: (message, hook id).
    """


class HostTrap(Exception):
    """Raised inside a host function to trap the calling guest with this message."""


class MemoryFault(Exception):
    """A guest pointer/size pair falls outside linear memory."""
