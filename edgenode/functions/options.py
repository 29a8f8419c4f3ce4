"""Validation of a function stage's options (``[[chain]] type = "function"``).

Every problem is a ``ConfigError("chain[i].<key>: <reason>")`` raised at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgenode.config import ConfigError, parse_duration, parse_size
from edgenode.functions.invocation import Limits

__all__ = ["FunctionOptions", "parse_function_options", "ISOLATIONS", "EXECUTIONS"]

ISOLATIONS = ("per-request", "reuse")
EXECUTIONS = ("auto", "inline", "threaded")
_KEYS = {"component", "match", "isolation", "execution", "allowed_outbound_hosts", "variables",
         "key_value_stores", "env", "memory_limit", "cpu_deadline_ms", "timeout", "max_body_bytes",
         "server_timing", "watch", "threads"}


@dataclass
class FunctionOptions:
    component: Path
    #: requests this stage serves: path prefix and optional Host; others pass through
    path_prefix: str = "/"
    host: str | None = None
    isolation: str = "per-request"
    execution: str = "auto"
    allowed_outbound_hosts: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    key_value_stores: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    server_timing: bool = True
    #: reload when the component file changes (``edgenode function run`` turns it on)
    watch: bool = False
    #: worker threads for threaded execution
    threads: int = 4


def _str_table(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table of strings")
    out = {}
    for k, v in value.items():
        if not isinstance(v, (str, int, float, bool)):
            raise ConfigError(f"{key}.{k}: expected a string, got {v!r}")
        out[str(k)] = v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
    return out


def _str_list(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected an array of strings")
    return list(value)


def parse_function_options(options: dict[str, Any], prefix: str, base_dir: Path) -> FunctionOptions:
    extra = sorted(set(options) - _KEYS)
    if extra:
        raise ConfigError(f"{prefix}.{extra[0]}: unknown key (function stages take "
                          f"{', '.join(sorted(_KEYS))})")
    comp = options.get("component")
    if not isinstance(comp, str) or not comp:
        raise ConfigError(f"{prefix}.component: required (the .wasm component file)")
    path = Path(comp)
    opts = FunctionOptions(component=path if path.is_absolute() else (base_dir / path).resolve())
    match = options.get("match", {})
    if not isinstance(match, dict) or set(match) - {"path_prefix", "host"}:
        raise ConfigError(f"{prefix}.match: expected a table with path_prefix and/or host")
    opts.path_prefix = match.get("path_prefix", "/")
    if not isinstance(opts.path_prefix, str) or not opts.path_prefix.startswith("/"):
        raise ConfigError(f"{prefix}.match.path_prefix: must start with '/'")
    host = match.get("host")
    if host is not None and not isinstance(host, str):
        raise ConfigError(f"{prefix}.match.host: expected a string")
    opts.host = host.lower() if host else None
    for key, choices in (("isolation", ISOLATIONS), ("execution", EXECUTIONS)):
        value = options.get(key, getattr(opts, key))
        if value not in choices:
            raise ConfigError(f"{prefix}.{key}: must be one of {', '.join(choices)}, got {value!r}")
        setattr(opts, key, value)
    opts.allowed_outbound_hosts = _str_list(options.get("allowed_outbound_hosts", []),
                                            f"{prefix}.allowed_outbound_hosts")
    opts.key_value_stores = _str_list(options.get("key_value_stores", []), f"{prefix}.key_value_stores")
    opts.variables = _str_table(options.get("variables", {}), f"{prefix}.variables")
    opts.env = _str_table(options.get("env", {}), f"{prefix}.env")
    cpu = options.get("cpu_deadline_ms", 1000)
    if not isinstance(cpu, (int, float)) or cpu <= 0:
        raise ConfigError(f"{prefix}.cpu_deadline_ms: must be a positive number of milliseconds")
    opts.limits = Limits(
        memory_bytes=parse_size(options.get("memory_limit", "256MiB"), f"{prefix}.memory_limit"),
        cpu_ms=float(cpu),
        timeout=parse_duration(options.get("timeout", "30s"), f"{prefix}.timeout"),
        max_body_bytes=parse_size(options.get("max_body_bytes", "16MiB"), f"{prefix}.max_body_bytes"),
    )
    if opts.limits.timeout <= 0:
        raise ConfigError(f"{prefix}.timeout: must be positive")
    for key in ("server_timing", "watch"):
        value = options.get(key, getattr(opts, key))
        if not isinstance(value, bool):
            raise ConfigError(f"{prefix}.{key}: expected true or false")
        setattr(opts, key, value)
    threads = options.get("threads", opts.threads)
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"{prefix}.threads: must be a positive integer")
    opts.threads = threads
    return opts
