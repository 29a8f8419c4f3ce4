"""Node-wide leases on cache keys, as POSIX byte-range locks on one file of the store.

A lease is an exclusive lock on one byte of ``<store>/leases`` at an offset derived
from the key (62 bits of its hash, so distinct keys practically never share a byte;
the file stays empty: locks beyond the end of a file are allowed).  Taking one is a
single non-blocking ``fcntl`` call; the kernel drops a process's locks when it exits,
so a worker killed in the middle of an origin fetch never leaves a lease behind for
others to wait out.  POSIX locks belong to the process, so within one process the
cache stage's own collapsing decides who fetches; these leases only arbitrate between
processes.
"""

from __future__ import annotations

import fcntl
import hashlib

__all__ = ["FileLeases"]

_MASK = (1 << 62) - 1


def _offset(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") & _MASK


class FileLeases:
    """``acquire`` / ``release`` / ``held_elsewhere`` over one open lease file."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        #: offsets this process holds (a shared probe on one of them would downgrade it)
        self._mine: set[int] = set()

    def acquire(self, key: str) -> bool:
        off = _offset(key)
        if off in self._mine:
            return False
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, off)
        except OSError:
            return False
        self._mine.add(off)
        return True

    def release(self, key: str) -> None:
        off = _offset(key)
        if off in self._mine:
            self._mine.discard(off)
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, off)

    def held_elsewhere(self, key: str) -> bool:
        off = _offset(key)
        if off in self._mine:
            return False
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, off)
        except OSError:
            return True
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, off)
        return False
