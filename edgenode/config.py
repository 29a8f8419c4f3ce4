"""Node configuration: TOML in, validated dataclasses out.

Every problem is reported as ``ConfigError("<dotted.key>: <reason>")`` at start-up,
so an operator never meets a bad value at request time.  Unknown keys are errors too
(a typo in a cache setting should not silently leave the default in force).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ConfigError", "Config", "ServerConfig", "AdminConfig", "CacheConfig", "CacheKeyConfig", "CACHE_STORES",
    "OriginConfig", "RouteConfig", "StageConfig", "LogConfig", "RedisConfig", "FleetConfig", "ParentConfig",
    "load_config", "parse_config",
    "default_config_text", "read_toml", "parse_size", "parse_duration", "parse_listen", "with_overrides",
    "default_state_dir", "cache_path", "apply_settings", "check_admin", "is_loopback",
]


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with the dotted key."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4,
               "tb": 1000**4, "tib": 1024**4, "ki": 1024, "mi": 1024**2, "gi": 1024**3}
_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DUR_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_size(value: Any, key: str) -> int:
    """Accept 1048576, "1MiB", "16 MB"; return bytes."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a size, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{key}: must not be negative")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m and (m.group(2) or "").lower() in _SIZE_UNITS:
            return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])
    raise ConfigError(f"{key}: expected a size like 1048576 or \"16MiB\", got {value!r}")


def parse_duration(value: Any, key: str) -> float:
    """Accept 1.5 (seconds), "250ms", "2s", "5m"; return seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration, got a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"{key}: must not be negative")
        return float(value)
    if isinstance(value, str):
        m = _DUR.match(value)
        if m:
            return float(m.group(1)) * _DUR_UNITS[m.group(2)]
    raise ConfigError(f"{key}: expected a duration like 2.5 or \"250ms\", got {value!r}")


def parse_listen(value: Any, key: str) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{key}: expected \"host:port\", got {value!r}")
    host, _, port = value.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        raise ConfigError(f"{key}: port {port!r} is not a number") from None
    if not 0 <= port_n <= 65535:
        raise ConfigError(f"{key}: port {port_n} is out of range")
    return host.strip("[]") or "0.0.0.0", port_n


class _Section:
    """Reads one TOML table, tracking which keys were used so leftovers are errors."""

    def __init__(self, data: Any, key: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{key}: expected a table, got {type(data).__name__}")
        self.data = data
        self.key = key
        self.used: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def get(self, name: str, default: Any, kind: type | tuple[type, ...] | None = None) -> Any:
        self.used.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if kind is not None:
            ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in (
                kind if isinstance(kind, tuple) else (kind,)))
            if not ok:
                names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
                raise ConfigError(f"{self.path(name)}: expected {names}, got {value!r}")
        return value

    def size(self, name: str, default: int) -> int:
        return parse_size(self.get(name, default), self.path(name))

    def duration(self, name: str, default: float) -> float:
        return parse_duration(self.get(name, default), self.path(name))

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(name, default, str)
        if value not in choices:
            raise ConfigError(f"{self.path(name)}: must be one of {', '.join(choices)}, got {value!r}")
        return value

    def str_list(self, name: str, default: list[str]) -> list[str]:
        value = self.get(name, default, list)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{self.path(name)}[{i}]: expected a string, got {item!r}")
        return list(value)

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise ConfigError(f"{self.path(extra[0])}: unknown key")


@dataclass
class ServerConfig:
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    #: worker processes for `serve`; the TOML default "auto" means one per core
    workers: int = 1
    max_header_bytes: int = 16384
    max_request_line_bytes: int = 8192
    keepalive_timeout: float = 75.0
    request_timeout: float = 60.0
    #: a request body with no byte for this long, or not complete after the total, is a 408
    body_between_bytes_timeout: float = 30.0
    body_timeout: float = 300.0
    #: a client that reads nothing of its responses for this long is dropped
    send_timeout: float = 60.0
    #: lingering close after an error answered mid-message: at most this long in all, and
    #: at most ``lingering_timeout`` without input (0: close at once)
    lingering_time: float = 10.0
    lingering_timeout: float = 2.0
    #: response bytes buffered per connection before the node stops writing, parsing and
    #: starting pipelined requests on it until the client reads
    write_high_water: int = 256 * 1024
    shutdown_grace: float = 10.0
    server_timing: bool = True
    via: str = "edgenode"
    #: the node's state directory (the cache store and filter state live under it)
    state_dir: Path = field(default_factory=lambda: default_state_dir())
    #: keep Proxy-Wasm shared data and queues across restarts (in ``state_dir``)
    persist_shared_data: bool = False


@dataclass
class AdminConfig:
    listen: tuple[str, int] | None = ("127.0.0.1", 9090)
    #: None: ``edgenode serve`` generates one per run (only allowed on a loopback address)
    token: str | None = None
    #: the environment variable that overrides ``token`` (named in error messages)
    token_env: str = "EDGENODE_ADMIN_TOKEN"


@dataclass
class CacheKeyConfig:
    ignore_query: list[str] = field(default_factory=list)
    query_whitelist: list[str] | None = None
    sort_query: bool = False
    headers: list[str] = field(default_factory=list)


#: cache store kinds: ``lmdb`` (one store for all workers, kept across restarts) or
#: ``memory`` (per process, for tests and tiny setups)
CACHE_STORES = ("lmdb", "memory")


@dataclass
class CacheConfig:
    #: node-wide bound on what the cache holds (the lmdb store: all workers together)
    max_bytes: int = 256 * 1024 * 1024
    max_object_bytes: int = 16 * 1024 * 1024
    store: str = "memory"
    #: the lmdb store's directory; None: ``<server.state_dir>/cache``
    path: Path | None = None
    #: per-worker memory for decoded hot objects of the lmdb store (0: none)
    hot_bytes: int = 32 * 1024 * 1024
    heuristic_fraction: float = 0.1
    heuristic_max: float = 86400.0
    default_ttl: float = 0.0
    collapse: bool = True
    collapse_timeout: float = 30.0
    #: how long past its freshness a stored response may be served while the origin cannot
    #: be reached (RFC 9111 §4.2.4 "disconnected"); 0 turns it off
    stale_if_unreachable: float = 86400.0
    key: CacheKeyConfig = field(default_factory=CacheKeyConfig)


@dataclass
class OriginConfig:
    name: str
    url: str
    scheme: str = "http"
    host: str = "127.0.0.1"
    port: int = 80
    #: "pass" (client's Host), "origin" (origin's host:port), or a literal value
    host_header: str = "pass"
    connect_timeout: float = 3.0
    first_byte_timeout: float = 30.0
    between_bytes_timeout: float = 10.0
    max_connections: int = 256
    idle_timeout: float = 30.0
    #: the largest response head (and trailer section) accepted from the origin; past it
    #: the request gets a 502
    max_header_bytes: int = 64 * 1024


@dataclass
class RouteConfig:
    origin: str
    host: str | None = None
    path_prefix: str = "/"
    #: what filters read as ``route_name`` (default ``routes[i]``)
    name: str | None = None


@dataclass
class StageConfig:
    """One element of the chain: ``type = "cache"``, ``"wasm"`` or ``"function"``."""

    type: str
    name: str
    #: wasm/function: the module or component path and its settings, validated by
    #: edgenode.wasm / edgenode.functions
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RedisConfig:
    """A Redis service filters may call (``[redis.NAME]``), configured like an origin."""

    name: str
    url: str
    host: str = "127.0.0.1"
    port: int = 6379
    username: str = ""
    password: str = ""
    db: int = 0
    connect_timeout: float = 1.0
    #: per-command timeout when the filter's proxy_redis_init passes 0
    timeout: float = 1.0
    max_connections: int = 16
    #: further cluster names that mean this service (e.g. an Envoy cluster name)
    aliases: list[str] = field(default_factory=list)


@dataclass
class LogConfig:
    access: str = "stdout"  # "stdout", "stderr", "off" or a file path
    format: str = "text"  # "text" or "json"
    level: str = "info"


@dataclass
class ParentConfig:
    """A parent cache of an edge node (a shield), by node id and data-plane URL."""

    id: str
    url: str


@dataclass
class FleetConfig:
    """``[fleet]``: this node as a member of a fleet (docs/fleet.md)."""

    node_id: str
    tier: str = "edge"  # "edge" or "shield"
    #: the fleet's name: the prefix of its NATS subjects, streams and buckets
    name: str = "edgenode"
    nats: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    #: a NATS credentials file (JWT + nkey seed), for NATS-side authorization
    credentials: str | None = None
    #: the shared fleet key: every control message carries an HMAC-SHA256 made with it
    key: bytes = b""
    #: the data-plane URL other nodes use to reach this one (default: from server.listen)
    advertise: str | None = None
    #: static parents of an edge; live shields from membership are added unless
    #: ``discover_parents`` is false
    parents: list[ParentConfig] = field(default_factory=list)
    discover_parents: bool = True
    heartbeat: float = 1.0
    #: a member whose last heartbeat is older than this is taken as gone
    node_ttl: float = 3.0
    #: how long start-up waits to apply missed purges before serving anyway
    catchup_timeout: float = 10.0
    #: what a node serves while it may have missed purges: "serve" (what it has) or
    #: "revalidate" (soft-purge everything, so each hit revalidates first)
    unsynced: str = "serve"
    connect_timeout: float = 2.0
    #: consecutive failed fetches that open a parent's circuit, and for how long
    breaker_failures: int = 3
    breaker_cooldown: float = 5.0


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    origins: dict[str, OriginConfig] = field(default_factory=dict)
    default_origin: str = "default"
    routes: list[RouteConfig] = field(default_factory=list)
    chain: list[StageConfig] = field(default_factory=list)
    log: LogConfig = field(default_factory=LogConfig)
    #: the directory relative paths (wasm modules) are resolved against
    base_dir: Path = field(default_factory=Path.cwd)
    #: named upstreams that filters may call (proxy_http_call); default: all origins
    upstreams: dict[str, OriginConfig] = field(default_factory=dict)
    #: Redis services filters may call (proxy_redis_call)
    redis: dict[str, RedisConfig] = field(default_factory=dict)
    #: the file this config was read from (None: the embedded defaults); filter reloads
    #: re-read it so changed filter settings take effect without a restart
    source: Path | None = None
    #: fleet membership (None: a standalone node)
    fleet: FleetConfig | None = None
    #: ``--set KEY=VALUE`` items applied on top of the file (workers and reloads get them too)
    settings: list[str] = field(default_factory=list)


def _server(data: Any) -> ServerConfig:
    s = _Section(data, "server")
    workers = s.get("workers", "auto", (int, str))
    if workers == "auto":
        workers = os.cpu_count() or 1
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"server.workers: must be a positive integer or \"auto\", got {workers!r}")
    cfg = ServerConfig(
        listen=parse_listen(s.get("listen", "127.0.0.1:8080"), "server.listen"),
        workers=workers,
        max_header_bytes=s.size("max_header_bytes", 16384),
        max_request_line_bytes=s.size("max_request_line_bytes", 8192),
        keepalive_timeout=s.duration("keepalive_timeout", 75.0),
        request_timeout=s.duration("request_timeout", 60.0),
        body_between_bytes_timeout=s.duration("body_between_bytes_timeout", 30.0),
        body_timeout=s.duration("body_timeout", 300.0),
        send_timeout=s.duration("send_timeout", 60.0),
        lingering_time=s.duration("lingering_time", 10.0),
        lingering_timeout=s.duration("lingering_timeout", 2.0),
        write_high_water=s.size("write_high_water", 256 * 1024),
        shutdown_grace=s.duration("shutdown_grace", 10.0),
        server_timing=s.get("server_timing", True, bool),
        via=s.get("via", "edgenode", str),
        persist_shared_data=s.get("persist_shared_data", False, bool),
    )
    state_dir = s.get("state_dir", None, str)
    if state_dir is not None:
        if not state_dir.strip():
            raise ConfigError("server.state_dir: must not be empty")
        cfg.state_dir = Path(state_dir).expanduser()
    s.done()
    for name in ("body_between_bytes_timeout", "body_timeout", "send_timeout"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"server.{name}: must be more than 0")
    if cfg.write_high_water < 1024:
        raise ConfigError(f"server.write_high_water: must be at least 1 KiB, got {cfg.write_high_water}")
    return cfg


def default_state_dir() -> Path:
    """``$EDGENODE_STATE_DIR``, else ``$XDG_STATE_HOME/edgenode``, else ``~/.local/state/edgenode``."""
    explicit = os.environ.get("EDGENODE_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "edgenode"


def _admin(data: Any) -> AdminConfig:
    s = _Section(data, "admin")
    listen = s.get("listen", "127.0.0.1:9090", str)
    token = s.get("token", None, str)
    token_env = s.get("token_env", "EDGENODE_ADMIN_TOKEN", str)
    s.done()
    token = os.environ.get(token_env) or token
    if token is not None and not token.strip():
        raise ConfigError("admin.token: must not be empty (leave it out on a loopback address "
                          "to get one generated at start)")
    addr = None if listen in ("", "off") else parse_listen(listen, "admin.listen")
    cfg = AdminConfig(listen=addr, token=token, token_env=token_env)
    check_admin(cfg, "admin.listen")
    return cfg


#: example values found in old configs and tutorials: never accepted as a token
PLACEHOLDER_TOKENS = frozenset({"change-me", "changeme", "secret", "token", "admin", "password"})
#: the shortest token accepted for an admin API reachable from other hosts
MIN_REMOTE_TOKEN = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_admin(admin: AdminConfig, where: str) -> None:
    """Refuse an admin API other hosts can reach without a real token, and placeholders.

    ``where`` names what set the listen address (``admin.listen`` or ``--admin-listen``).
    """
    token = admin.token
    hint = (f"set admin.token or {admin.token_env} to a random value, e.g. "
            f"python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    if token is not None and token.strip().lower() in PLACEHOLDER_TOKENS:
        raise ConfigError(f"admin.token: {token!r} is a placeholder, not a secret; {hint}")
    if admin.listen is None or is_loopback(admin.listen[0]):
        return
    if token is None:
        raise ConfigError(f"admin.token: required when {where} is not a loopback address "
                          f"(got {admin.listen[0]!r}); {hint}")
    if len(token) < MIN_REMOTE_TOKEN:
        raise ConfigError(f"admin.token: at least {MIN_REMOTE_TOKEN} characters when {where} is "
                          f"not a loopback address (got {len(token)}); {hint}")


def _cache(data: Any) -> CacheConfig:
    s = _Section(data, "cache")
    key = _Section(s.get("key", {}, dict), "cache.key")
    whitelist = key.get("query_whitelist", None, list)
    if whitelist is not None:
        whitelist = key.str_list("query_whitelist", [])
    key_cfg = CacheKeyConfig(
        ignore_query=key.str_list("ignore_query", []),
        query_whitelist=whitelist,
        sort_query=key.get("sort_query", False, bool),
        headers=[h.lower() for h in key.str_list("headers", [])],
    )
    key.done()
    fraction = s.get("heuristic_fraction", 0.1, (int, float))
    if not 0 <= fraction <= 1:
        raise ConfigError(f"cache.heuristic_fraction: must be between 0 and 1, got {fraction}")
    path = s.get("path", None, str)
    if path is not None and not path.strip():
        raise ConfigError("cache.path: must not be empty (leave it out for <server.state_dir>/cache)")
    cfg = CacheConfig(
        max_bytes=s.size("max_bytes", 256 * 1024 * 1024),
        max_object_bytes=s.size("max_object_bytes", 16 * 1024 * 1024),
        store=s.choice("store", "lmdb", CACHE_STORES),
        path=Path(path).expanduser() if path is not None else None,
        hot_bytes=s.size("hot_bytes", 32 * 1024 * 1024),
        heuristic_fraction=float(fraction),
        heuristic_max=s.duration("heuristic_max", 86400.0),
        default_ttl=s.duration("default_ttl", 0.0),
        collapse=s.get("collapse", True, bool),
        collapse_timeout=s.duration("collapse_timeout", 30.0),
        stale_if_unreachable=s.duration("stale_if_unreachable", 86400.0),
        key=key_cfg,
    )
    s.done()
    if cfg.max_object_bytes > cfg.max_bytes:
        raise ConfigError("cache.max_object_bytes: must not exceed cache.max_bytes")
    if cfg.max_bytes < 1:
        raise ConfigError("cache.max_bytes: must be at least 1 byte")
    return cfg


def _origin(name: str, data: Any, key: str) -> OriginConfig:
    s = _Section(data, key)
    url = s.get("url", None, str)
    if url is None:
        raise ConfigError(f"{key}.url: required")
    parts = urlsplit(url)
    if parts.scheme not in ("http",) or not parts.hostname:
        raise ConfigError(f"{key}.url: expected http://host[:port], got {url!r}"
                          + (" (https origins are not supported yet)" if parts.scheme == "https" else ""))
    try:
        port = parts.port or 80
    except ValueError:
        raise ConfigError(f"{key}.url: bad port in {url!r}") from None
    max_conn = s.get("max_connections", 256, int)
    if max_conn < 1:
        raise ConfigError(f"{key}.max_connections: must be at least 1")
    cfg = OriginConfig(
        name=name, url=url, scheme=parts.scheme, host=parts.hostname, port=port,
        host_header=s.get("host_header", "pass", str),
        connect_timeout=s.duration("connect_timeout", 3.0),
        first_byte_timeout=s.duration("first_byte_timeout", 30.0),
        between_bytes_timeout=s.duration("between_bytes_timeout", 10.0),
        max_connections=max_conn,
        idle_timeout=s.duration("idle_timeout", 30.0),
        max_header_bytes=s.size("max_header_bytes", 64 * 1024),
    )
    s.done()
    if cfg.max_header_bytes < 1024:
        raise ConfigError(f"{key}.max_header_bytes: must be at least 1 KiB, got {cfg.max_header_bytes}")
    return cfg


def _redis(name: str, data: Any) -> RedisConfig:
    key = f"redis.{name}"
    s = _Section(data, key)
    url = s.get("url", None, str)
    if url is None:
        raise ConfigError(f"{key}.url: required, e.g. \"redis://127.0.0.1:6379/0\"")
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ConfigError(f"{key}.url: expected redis://[user:password@]host[:port][/db], got {url!r}"
                          + (" (TLS is not supported)" if parts.scheme == "rediss" else ""))
    try:
        port = parts.port or 6379
        db = int(parts.path.strip("/") or 0)
    except ValueError:
        raise ConfigError(f"{key}.url: bad port or database number in {url!r}") from None
    password_env = s.get("password_env", None, str)
    password = s.get("password", parts.password or "", str)
    if password_env is not None:
        password = os.environ.get(password_env, password)
    max_conn = s.get("max_connections", 16, int)
    if max_conn < 1:
        raise ConfigError(f"{key}.max_connections: must be at least 1")
    cfg = RedisConfig(
        name=name, url=url, host=parts.hostname, port=port, db=db,
        username=s.get("username", parts.username or "", str), password=password,
        connect_timeout=s.duration("connect_timeout", 1.0), timeout=s.duration("timeout", 1.0),
        max_connections=max_conn, aliases=s.str_list("aliases", []),
    )
    s.done()
    if cfg.timeout <= 0 or cfg.connect_timeout <= 0:
        raise ConfigError(f"{key}.timeout: timeouts must be positive")
    return cfg


def _routes(data: Any, origins: dict[str, OriginConfig]) -> list[RouteConfig]:
    if not isinstance(data, list):
        raise ConfigError("routes: expected an array of tables ([[routes]])")
    out = []
    for i, item in enumerate(data):
        key = f"routes[{i}]"
        s = _Section(item, key)
        origin = s.get("origin", None, str)
        if origin is None:
            raise ConfigError(f"{key}.origin: required")
        if origin not in origins:
            raise ConfigError(f"{key}.origin: no origin named {origin!r} (known: {', '.join(sorted(origins))})")
        prefix = s.get("path_prefix", "/", str)
        if not prefix.startswith("/"):
            raise ConfigError(f"{key}.path_prefix: must start with '/', got {prefix!r}")
        out.append(RouteConfig(origin=origin, host=s.get("host", None, str), path_prefix=prefix,
                               name=s.get("name", None, str)))
        s.done()
    return out


def _chain(data: Any) -> list[StageConfig]:
    if not isinstance(data, list):
        raise ConfigError("chain: expected an array of tables ([[chain]])")
    out: list[StageConfig] = []
    names: set[str] = set()
    for i, item in enumerate(data):
        key = f"chain[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{key}: expected a table")
        kind = item.get("type")
        if kind not in ("cache", "wasm", "function"):
            raise ConfigError(f"{key}.type: must be \"cache\", \"wasm\" or \"function\", got {kind!r}")
        name = item.get("name", kind)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{key}.name: expected a non-empty string")
        if name in names:
            raise ConfigError(f"{key}.name: duplicate stage name {name!r}")
        names.add(name)
        if kind == "cache" and set(item) - {"type", "name"}:
            extra = sorted(set(item) - {"type", "name"})[0]
            raise ConfigError(f"{key}.{extra}: unknown key (cache settings live in [cache])")
        options = {k: v for k, v in item.items() if k not in ("type", "name")}
        out.append(StageConfig(type=kind, name=name, options=options))
    return out


def _log(data: Any) -> LogConfig:
    s = _Section(data, "log")
    cfg = LogConfig(
        access=s.get("access", "stdout", str),
        format=s.choice("format", "text", ("text", "json")),
        level=s.choice("level", "info", ("debug", "info", "warning", "error")),
    )
    s.done()
    return cfg


_FLEET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _fleet(data: Any) -> FleetConfig:
    s = _Section(data, "fleet")
    node_id = s.get("node_id", None, str)
    if node_id is None or not _FLEET_NAME.match(node_id):
        raise ConfigError(f"fleet.node_id: required, 1-64 of A-Z a-z 0-9 _ - (got {node_id!r})")
    cfg = FleetConfig(node_id=node_id, tier=s.choice("tier", "edge", ("edge", "shield")))
    cfg.name = s.get("name", cfg.name, str)
    if not _FLEET_NAME.match(cfg.name):
        raise ConfigError(f"fleet.name: 1-64 of A-Z a-z 0-9 _ - (got {cfg.name!r})")
    nats = s.get("nats", cfg.nats, (str, list))
    cfg.nats = [nats] if isinstance(nats, str) else s.str_list("nats", cfg.nats)
    for url in cfg.nats:
        if urlsplit(url).scheme not in ("nats", "tls"):
            raise ConfigError(f"fleet.nats: expected nats://host:port URLs, got {url!r}")
    if not cfg.nats:
        raise ConfigError("fleet.nats: at least one server URL")
    cfg.credentials = s.get("credentials", None, str)
    key_env = s.get("key_env", "EDGENODE_FLEET_KEY", str)
    key = os.environ.get(key_env) or s.get("key", None, str)
    if not key or len(key) < 16:
        raise ConfigError(f"fleet.key: required, at least 16 characters (set it or {key_env}); "
                          "control messages are authenticated with it")
    cfg.key = key.encode()
    cfg.advertise = s.get("advertise", None, str)
    if cfg.advertise is not None and urlsplit(cfg.advertise).scheme != "http":
        raise ConfigError(f"fleet.advertise: expected http://host:port, got {cfg.advertise!r}")
    for i, item in enumerate(s.get("parents", [], list)):
        p = _Section(item, f"fleet.parents[{i}]")
        pid, url = p.get("id", None, str), p.get("url", None, str)
        if not pid or not url or urlsplit(url).scheme != "http" or not urlsplit(url).hostname:
            raise ConfigError(f"fleet.parents[{i}]: expected {{id = \"shield-1\", url = \"http://host:port\"}}")
        p.done()
        cfg.parents.append(ParentConfig(pid, url.rstrip("/")))
    if cfg.parents and cfg.tier != "edge":
        raise ConfigError("fleet.parents: only an edge node has parents (a shield fetches from the origin)")
    cfg.discover_parents = s.get("discover_parents", True, bool)
    cfg.heartbeat = s.duration("heartbeat", cfg.heartbeat)
    cfg.node_ttl = s.duration("node_ttl", max(cfg.node_ttl, 3 * cfg.heartbeat))
    if cfg.heartbeat <= 0 or cfg.node_ttl <= cfg.heartbeat:
        raise ConfigError("fleet.node_ttl: must be longer than fleet.heartbeat (which must be positive)")
    cfg.catchup_timeout = s.duration("catchup_timeout", cfg.catchup_timeout)
    cfg.unsynced = s.choice("unsynced", cfg.unsynced, ("serve", "revalidate"))
    cfg.connect_timeout = s.duration("connect_timeout", cfg.connect_timeout)
    cfg.breaker_failures = s.get("breaker_failures", cfg.breaker_failures, int)
    if cfg.breaker_failures < 1:
        raise ConfigError("fleet.breaker_failures: must be at least 1")
    cfg.breaker_cooldown = s.duration("breaker_cooldown", cfg.breaker_cooldown)
    s.done()
    return cfg


def parse_config(data: dict[str, Any], base_dir: Path | None = None) -> Config:
    """Validate a parsed TOML document."""
    top = _Section(data, "")
    cfg = Config(base_dir=base_dir or Path.cwd())
    cfg.server = _server(top.get("server", {}))
    cfg.admin = _admin(top.get("admin", {}))
    cfg.cache = _cache(top.get("cache", {}))
    origins = top.get("origins", None)
    if not isinstance(origins, dict) or not origins:
        raise ConfigError("origins: at least one origin is required, e.g. [origins.default] url = \"http://127.0.0.1:8081\"")
    cfg.origins = {name: _origin(name, o, f"origins.{name}") for name, o in origins.items()}
    cfg.default_origin = top.get("default_origin", next(iter(cfg.origins)), str)
    if cfg.default_origin not in cfg.origins:
        raise ConfigError(f"default_origin: no origin named {cfg.default_origin!r}")
    cfg.routes = _routes(top.get("routes", []), cfg.origins)
    upstreams = top.get("upstreams", {}, dict)
    cfg.upstreams = dict(cfg.origins)
    cfg.upstreams.update({name: _origin(name, o, f"upstreams.{name}") for name, o in upstreams.items()})
    cfg.chain = _chain(top.get("chain", [{"type": "cache"}]))
    cfg.log = _log(top.get("log", {}))
    fleet = top.get("fleet", None)
    cfg.fleet = None if fleet is None else _fleet(fleet)
    cfg.redis = {name: _redis(name, r) for name, r in top.get("redis", {}, dict).items()}
    top.done()
    return cfg


def with_overrides(cfg: Config, listen: str | None = None, origin: str | None = None,
                   workers: int | None = None, admin_listen: str | None = None) -> Config:
    """Apply command-line overrides (``--listen``, ``--origin``, ...) to a loaded config.

    ``origin`` replaces the URL of the default origin, keeping its other settings.
    """
    if listen is not None:
        cfg.server.listen = parse_listen(listen, "--listen")
    if admin_listen is not None:
        cfg.admin.listen = None if admin_listen == "off" else parse_listen(admin_listen, "--admin-listen")
        check_admin(cfg.admin, "--admin-listen")
    if workers is not None:
        if workers < 1:
            raise ConfigError(f"--workers: must be at least 1, got {workers}")
        cfg.server.workers = workers
    if origin is not None:
        old = cfg.origins[cfg.default_origin]
        table = {"url": origin, "host_header": old.host_header, "connect_timeout": old.connect_timeout,
                 "first_byte_timeout": old.first_byte_timeout,
                 "between_bytes_timeout": old.between_bytes_timeout,
                 "max_connections": old.max_connections, "idle_timeout": old.idle_timeout,
                 "max_header_bytes": old.max_header_bytes}
        try:
            new = _origin(old.name, table, "--origin")
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("--origin.url", "--origin", 1)) from None
        cfg.origins[old.name] = new
        if cfg.upstreams.get(old.name) is old:
            cfg.upstreams[old.name] = new
    return cfg


def cache_path(cfg: Config) -> Path:
    """The lmdb store's directory: ``[cache] path``, else ``<server.state_dir>/cache``."""
    path = cfg.cache.path if cfg.cache.path is not None else cfg.server.state_dir / "cache"
    return path if path.is_absolute() else cfg.base_dir / path


def default_config_text() -> str:
    """The embedded default configuration (config/edgenode.toml ships the same text)."""
    return resources.files("edgenode").joinpath("default.toml").read_text()


def _parse_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None


def read_toml(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Read a TOML file (a node config, a workload, a filter.toml), with errors that name it."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror}") from None
    return _parse_toml(text, str(p))


def apply_settings(data: dict[str, Any], settings: list[str]) -> None:
    """``--set dotted.key=value`` on a parsed document, before validation.

    The value is read as a TOML value (``4``, ``true``, ``"16MiB"``, ``[1, 2]``) and
    otherwise taken as a string (``--set log.access=off``); tables are created as needed.
    """
    for item in settings:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set: expected KEY=VALUE with a dotted key, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        table = data
        for i, part in enumerate(parts[:-1]):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:i + 1])} is not a table")
        table[parts[-1]] = value


def load_config(path: str | os.PathLike[str] | None = None, settings: list[str] | None = None) -> Config:
    """Load a TOML file, or the embedded defaults when ``path`` is None, with ``settings``
    (``--set`` items) applied on top."""
    if path is None:
        # the embedded defaults name filters/build/*.wasm of the source tree edgenode runs from
        data = _parse_toml(default_config_text(), "default config")
        base = Path(__file__).resolve().parent.parent
    else:
        data = read_toml(path, "config file")
        p = Path(path).resolve()
        base = p.parent.parent if p.parent.name == "config" else p.parent
    apply_settings(data, settings or [])
    cfg = parse_config(data, base)
    cfg.source = None if path is None else Path(path).resolve()
    cfg.settings = list(settings or [])
    return cfg
