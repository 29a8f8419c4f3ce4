"""Settings of the simulated origin, from CLI flags or a TOML ``[origin]`` table.

Kept apart from the app so the CLI (and benchmarks) can validate flags before any
socket is opened; errors use the node's ``ConfigError("<dotted.key>: reason")`` form.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import Any

from edgenode.config import ConfigError, parse_duration, parse_listen

__all__ = ["OriginSettings", "add_origin_arguments", "settings_from_args"]


@dataclass(frozen=True)
class OriginSettings:
    listen: tuple[str, int] = ("127.0.0.1", 8081)
    #: added to every content response before it starts (milliseconds)
    latency_ms: float = 0.0
    #: uniform +/- spread around ``latency_ms`` (milliseconds)
    jitter_ms: float = 0.0
    #: share of content requests answered with 500 or 503 (0..1)
    error_rate: float = 0.0
    #: max-age of /obj and friends when the request gives no ``ttl=``
    max_age: int = 60
    #: seeds the error and jitter RNGs so a run is repeatable
    seed: int = 1

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ConfigError("origin.latency: must not be negative")
        if self.jitter_ms < 0:
            raise ConfigError("origin.jitter: must not be negative")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ConfigError(f"origin.error_rate: must be between 0 and 1, got {self.error_rate}")
        if self.max_age < 0:
            raise ConfigError("origin.max_age: must not be negative")

    @classmethod
    def from_table(cls, table: dict[str, Any], key: str = "origin") -> "OriginSettings":
        """Build from a TOML table; ``latency``/``jitter`` take durations ("20ms", 0.02)."""
        known = {"listen", "latency", "jitter", "error_rate", "max_age", "seed"}
        for name in table:
            if name not in known:
                raise ConfigError(f"{key}.{name}: unknown key")
        kw: dict[str, Any] = {}
        if "listen" in table:
            kw["listen"] = parse_listen(table["listen"], f"{key}.listen")
        if "latency" in table:
            kw["latency_ms"] = parse_duration(table["latency"], f"{key}.latency") * 1000.0
        if "jitter" in table:
            kw["jitter_ms"] = parse_duration(table["jitter"], f"{key}.jitter") * 1000.0
        for name, kind in (("error_rate", (int, float)), ("max_age", int), ("seed", int)):
            if name in table:
                value = table[name]
                if isinstance(value, bool) or not isinstance(value, kind):
                    raise ConfigError(f"{key}.{name}: expected a number, got {value!r}")
                kw[name] = float(value) if name == "error_rate" else value
        return cls(**kw)


def add_origin_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``edgenode origin`` flags; unset flags leave the table/defaults in force."""
    parser.add_argument("--listen", help="host:port to listen on (default 127.0.0.1:8081)")
    parser.add_argument("--latency", help="added latency, e.g. 20ms or 0.02")
    parser.add_argument("--jitter", help="latency spread, e.g. 5ms")
    parser.add_argument("--error-rate", type=float, help="share of 500/503 answers, 0..1")
    parser.add_argument("--max-age", type=int, help="default Cache-Control max-age in seconds")
    parser.add_argument("--seed", type=int, help="RNG seed for errors and jitter")


def settings_from_args(args: argparse.Namespace, base: OriginSettings | None = None) -> OriginSettings:
    """Overlay the flags that were given on ``base`` (e.g. settings from a TOML table)."""
    settings = base or OriginSettings()
    kw: dict[str, Any] = {}
    if getattr(args, "listen", None):
        kw["listen"] = parse_listen(args.listen, "--listen")
    if getattr(args, "latency", None) is not None:
        kw["latency_ms"] = parse_duration(args.latency, "--latency") * 1000.0
    if getattr(args, "jitter", None) is not None:
        kw["jitter_ms"] = parse_duration(args.jitter, "--jitter") * 1000.0
    for flag, name in (("error_rate", "error_rate"), ("max_age", "max_age"), ("seed", "seed")):
        if getattr(args, flag, None) is not None:
            kw[name] = getattr(args, flag)
    return replace(settings, **kw)
