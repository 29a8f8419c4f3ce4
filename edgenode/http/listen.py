"""Listening sockets: clear errors for an address that cannot be bound, and a port
shared through SO_REUSEPORT by one node's workers only.

SO_REUSEPORT lets every socket of the same user that sets it bind the same port, and
the kernel then splits connections between them: two nodes started on one port would
silently share its traffic.  So before a node's workers share a port, the port is
proven free with a plain bind (which fails against any socket already there, with
SO_REUSEPORT or without), and the node's own worker-slot sockets keep it from then on.
"""

from __future__ import annotations

import errno
import socket

__all__ = ["ListenError", "listen_error", "bind_worker_slots"]


class ListenError(Exception):
    """An address could not be listened on; the message names the setting and the reason."""


def listen_error(setting: str, host: str, port: int, exc: OSError) -> ListenError:
    """A one-line ``ListenError`` for ``exc`` raised while binding ``host:port``."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        why = "the address is already in use (another edgenode, or another server?)"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "no such local address on this host"
    else:
        why = exc.strerror or type(exc).__name__
    return ListenError(f"{setting}: cannot listen on {where}: {why}")


def bind_worker_slots(host: str, port: int, count: int,
                      setting: str = "server.listen") -> list[socket.socket]:
    """``count`` listening SO_REUSEPORT sockets on ``host:port`` (port 0: a free one),
    one per worker slot, after a plain bind proved nobody else holds the port.

    Raises ``ListenError`` when the address is taken or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    except OSError as exc:
        raise listen_error(setting, host, port, exc) from None
    finally:
        probe.close()
    slots: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            slots.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(1024)
    except OSError as exc:
        for sock in slots:
            sock.close()
        raise listen_error(setting, host, port, exc) from None
    return slots
