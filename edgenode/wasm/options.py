"""Validation of a wasm stage's options (``[[chain]] type = "wasm"``).

Every problem is a ``ConfigError("chain[i].<key>: <reason>")`` raised at start-up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgenode.config import ConfigError, parse_duration, parse_size
from edgenode.wasm.wasi import WasiGrants

__all__ = ["WasmOptions", "parse_options", "ISOLATIONS", "FAILURE_POLICIES", "LOG_LEVELS"]

ISOLATIONS = ("shared", "per-request")
FAILURE_POLICIES = ("fail_closed", "fail_open", "reload")
LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "critical")

_KEYS = {"module", "config", "vm_config", "root_id", "vm_id", "isolation", "failure_policy",
         "memory_limit", "cpu_deadline_ms", "env", "log_level", "server_timing", "reload_backoff",
         "max_body_bytes", "pause_timeout", "prewarm", "snapshot", "startup_cpu_deadline", "args",
         "wasi_dirs", "files", "allow_on_headers_stop_iteration"}
#: total size of the files a stage's `files` option may hand to its filter
MAX_FILES_BYTES = 32 * 1024 * 1024


@dataclass
class WasmOptions:
    module: Path
    plugin_config: bytes = b""
    vm_config: bytes = b""
    root_id: str = ""
    vm_id: str = ""
    isolation: str = "shared"
    failure_policy: str = "fail_closed"
    memory_limit: int = 64 * 1024 * 1024
    cpu_deadline_ms: float = 100.0
    #: CPU deadline of each start-up call (_initialize/main, root context create,
    #: on_vm_start, on_configure): runtimes and configure-time loading need more than a request
    startup_cpu_deadline: float = 5.0
    #: granted environment variables (name -> value read at start-up)
    env: dict[str, str] = field(default_factory=dict)
    #: WASI arguments and read-only preopened directories
    wasi: WasiGrants = field(default_factory=WasiGrants)
    #: Proxy-Wasm log level (0 trace .. 5 critical); None: not set (info; a node sets its
    #: ``[log] level``)
    log_level: int | None = None
    server_timing: bool = True
    reload_backoff: float = 1.0
    max_body_bytes: int = 16 * 1024 * 1024
    #: longest a Stop* result may hold a stream before failure_policy applies (504 / continue)
    pause_timeout: float = 30.0
    #: per-request isolation: instances started ahead of time in idle loop iterations
    prewarm: int = 2
    #: per-request isolation: start instances from a post-configure snapshot (snapshot.py)
    snapshot: bool = True
    #: snapshot even when start-up read random bytes (``snapshot = "always"``): every
    #: instance then starts with the same seeds (Go's and Rust's runtimes read some)
    snapshot_random: bool = False
    #: files read for the filter (`files` option), watched for reloads
    files: list[Path] = field(default_factory=list)
    #: StopIteration from a headers hook stays StopIteration (Envoy's option): body
    #: callbacks go on while the headers are held; else it is StopAllIterationAndWatermark
    allow_on_headers_stop_iteration: bool = False


def _config_bytes(value: Any, key: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":")).encode()
    raise ConfigError(f"{key}: expected a string or a table (sent as JSON), got {value!r}")


def _read_files(spec: Any, key: str, base_dir: Path) -> tuple[dict[str, str], list[Path]]:
    """``{mount: path}`` -> ``{"mount/rel/path": text}`` for every file under each path.

    Hands data files (e.g. the WAF's rule files) to a filter inside its plugin
    configuration, re-read on every reload, with no filesystem access granted.
    """
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(f"{key}: expected a table {{name = \"path\"}} of files or directories")
    out: dict[str, str] = {}
    paths: list[Path] = []
    total = 0
    for mount, value in spec.items():
        if not isinstance(value, str) or not value or "/" in mount or not mount:
            raise ConfigError(f"{key}.{mount}: expected a path (string) under a name without '/'")
        root = Path(value) if Path(value).is_absolute() else base_dir / value
        if root.is_file():
            found = [(mount, root)]
        elif root.is_dir():
            found = [(f"{mount}/{p.relative_to(root).as_posix()}", p) for p in sorted(root.rglob("*"))
                     if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
        else:
            raise ConfigError(f"{key}.{mount}: no such file or directory {root}")
        for name, path in found:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{key}.{mount}: cannot read {path}: {exc}") from None
            total += len(text)
            if total > MAX_FILES_BYTES:
                raise ConfigError(f"{key}: more than {MAX_FILES_BYTES} bytes of files")
            out[name] = text
            paths.append(path)
    return out, paths


def parse_options(options: dict[str, Any], prefix: str, base_dir: Path) -> WasmOptions:
    """Validate ``options``; ``prefix`` is the dotted key of the stage, e.g. ``chain[2]``."""
    for key in options:
        if key not in _KEYS:
            raise ConfigError(f"{prefix}.{key}: unknown key")
    module = options.get("module")
    if not isinstance(module, str) or not module:
        raise ConfigError(f"{prefix}.module: required (path to a .wasm or .wat file)")
    path = Path(module) if Path(module).is_absolute() else base_dir / module
    if not path.is_file():
        raise ConfigError(f"{prefix}.module: no such file {path}")
    opts = WasmOptions(module=path)
    if "files" in options:
        config = options.get("config", {})
        if not isinstance(config, dict) or "files" in config:
            raise ConfigError(f"{prefix}.config: with `files`, config must be a table without a `files` key "
                              "(the host adds it)")
        files, opts.files = _read_files(options["files"], f"{prefix}.files", base_dir)
        opts.plugin_config = _config_bytes({**config, "files": files}, f"{prefix}.config")
    elif "config" in options:
        opts.plugin_config = _config_bytes(options["config"], f"{prefix}.config")
    if "vm_config" in options:
        opts.vm_config = _config_bytes(options["vm_config"], f"{prefix}.vm_config")
    for key in ("root_id", "vm_id"):
        if key in options:
            if not isinstance(options[key], str):
                raise ConfigError(f"{prefix}.{key}: expected a string, got {options[key]!r}")
            setattr(opts, key, options[key])
    for key, choices in (("isolation", ISOLATIONS), ("failure_policy", FAILURE_POLICIES)):
        if key in options:
            if options[key] not in choices:
                raise ConfigError(f"{prefix}.{key}: must be one of {', '.join(choices)}, "
                                  f"got {options[key]!r}")
            setattr(opts, key, options[key])
    if "memory_limit" in options:
        opts.memory_limit = parse_size(options["memory_limit"], f"{prefix}.memory_limit")
        if opts.memory_limit < 64 * 1024:
            raise ConfigError(f"{prefix}.memory_limit: must be at least 64KiB (one Wasm page)")
    if "max_body_bytes" in options:
        opts.max_body_bytes = parse_size(options["max_body_bytes"], f"{prefix}.max_body_bytes")
    if "cpu_deadline_ms" in options:
        value = options["cpu_deadline_ms"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{prefix}.cpu_deadline_ms: expected a positive number, got {value!r}")
        opts.cpu_deadline_ms = float(value)
    if "startup_cpu_deadline" in options:
        opts.startup_cpu_deadline = parse_duration(options["startup_cpu_deadline"],
                                                   f"{prefix}.startup_cpu_deadline")
        if opts.startup_cpu_deadline <= 0:
            raise ConfigError(f"{prefix}.startup_cpu_deadline: must be positive")
    if "reload_backoff" in options:
        opts.reload_backoff = parse_duration(options["reload_backoff"], f"{prefix}.reload_backoff")
    if "pause_timeout" in options:
        opts.pause_timeout = parse_duration(options["pause_timeout"], f"{prefix}.pause_timeout")
        if opts.pause_timeout <= 0:
            raise ConfigError(f"{prefix}.pause_timeout: must be positive")
    if "prewarm" in options:
        value = options["prewarm"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 64:
            raise ConfigError(f"{prefix}.prewarm: expected an integer 0..64, got {value!r}")
        opts.prewarm = value
    if "env" in options:
        names = options["env"]
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"{prefix}.env: expected a list of environment variable names")
        opts.env = {n: os.environ[n] for n in names if n in os.environ}
    if "log_level" in options:
        level = options["log_level"]
        if level not in LOG_LEVELS:
            raise ConfigError(f"{prefix}.log_level: must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        opts.log_level = LOG_LEVELS.index(level)
    for key in ("server_timing", "allow_on_headers_stop_iteration"):
        if key in options:
            if not isinstance(options[key], bool):
                raise ConfigError(f"{prefix}.{key}: expected true or false")
            setattr(opts, key, options[key])
    if "snapshot" in options:
        value = options["snapshot"]
        if value not in (True, False, "always"):
            raise ConfigError(f"{prefix}.snapshot: expected true or false (or \"always\"), got {value!r}")
        opts.snapshot, opts.snapshot_random = value is not False, value == "always"
    opts.wasi = _wasi_grants(options, prefix, base_dir)
    return opts


def _wasi_grants(options: dict[str, Any], prefix: str, base_dir: Path) -> WasiGrants:
    args = options.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{prefix}.args: expected a list of strings")
    dirs = options.get("wasi_dirs", {})
    if not isinstance(dirs, dict):
        raise ConfigError(f"{prefix}.wasi_dirs: expected a table of guest directory = host directory")
    granted: list[tuple[str, Path]] = []
    for guest, host in dirs.items():
        if not isinstance(host, str) or not guest:
            raise ConfigError(f"{prefix}.wasi_dirs.{guest}: expected a host directory path")
        path = Path(host) if Path(host).is_absolute() else base_dir / host
        if not path.is_dir():
            raise ConfigError(f"{prefix}.wasi_dirs.{guest}: no such directory {path}")
        granted.append((guest, path.resolve()))
    return WasiGrants(tuple(args), tuple(granted))
