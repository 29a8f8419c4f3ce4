"""The admin API's bearer token when none is configured: generated per run, kept in a
private file whose path is printed at start (as Jupyter does with its server token).

Config validation already refuses a missing or placeholder token on a non-loopback
listener (``edgenode.config``), so a generated token only ever guards a loopback port.
The file lives in ``$XDG_RUNTIME_DIR/edgenode`` (else ``<tmp>/edgenode-<uid>``), a
directory only this user can enter, and is removed when the process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import stat
import sys
import tempfile
from pathlib import Path

from edgenode.config import AdminConfig, ConfigError

__all__ = ["admin_token", "token_dir"]


def token_dir() -> Path:
    """Where generated tokens are written (created 0700; refused if others can enter)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(runtime) / "edgenode" if runtime else Path(tempfile.gettempdir()) / f"edgenode-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ConfigError(f"admin.token: cannot keep a generated token in {path}: it must be a "
                          "directory only this user can access; set admin.token instead")
    return path


def admin_token(admin: AdminConfig) -> str:
    """``admin.token``, generating (and announcing) one for this run when it is unset."""
    if admin.token is not None:
        return admin.token
    token = secrets.token_urlsafe(32)
    path = token_dir() / f"admin-{os.getpid()}.token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    atexit.register(_remove, path)
    admin.token = token
    print(f"edgenode: admin API token generated for this run (no admin.token set): {path}",
          file=sys.stderr, flush=True)
    return token


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
