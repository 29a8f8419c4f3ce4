"""The master -> worker control channel: the admin API over a per-worker unix socket.

Each worker serves the same admin app as a single-process node, on a unix socket in
a private (0700) directory and behind a random per-run token, so purge, stats,
metrics and reload reach a worker exactly as they reach a standalone node.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

__all__ = ["ControlClient", "ControlError", "TOKEN_ENV"]

#: environment variable carrying the control token from the master to its workers
TOKEN_ENV = "EDGENODE_CONTROL_TOKEN"


class ControlError(Exception):
    """A worker did not answer a control request."""


class ControlClient:
    """Talks to one worker's control socket."""

    def __init__(self, path: str, token: str, timeout: float = 10.0) -> None:
        self.path = path
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.path, force_close=True),  # workers restart
                timeout=self._timeout,
                headers=self._headers)
        return self._session

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        """One request; JSON answers are decoded, anything else comes back as bytes.
        ``timeout`` replaces the client's for this call (e.g. a reload that compiles)."""
        extra: dict[str, Any] = {} if timeout is None else {"timeout": aiohttp.ClientTimeout(total=timeout)}
        try:
            async with self._client().request(method, f"http://worker{path}", **extra,
                                               data=None if body is None else json.dumps(body)) as resp:
                data = await resp.read()
                if resp.status >= 400:
                    raise ControlError(f"{method} {path}: {resp.status} {data[:200]!r}")
                if resp.content_type == "application/json":
                    return json.loads(data)
                return data
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ControlError(f"{method} {path}: {exc!r}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
