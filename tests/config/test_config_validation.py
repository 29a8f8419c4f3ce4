"""Config validation: every error names the dotted key and the reason."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from edgenode.config import ConfigError, default_config_text, load_config, parse_config, with_overrides

ORIGIN = {"origins": {"default": {"url": "http://127.0.0.1:8081"}}}


def cfg(**tables: object) -> dict:
    return {**ORIGIN, **tables}


def test_embedded_default_loads_and_matches_shipped_file() -> None:
    c = load_config()
    assert c.server.listen == ("127.0.0.1", 8080) and c.server.workers == (os.cpu_count() or 1)
    assert c.admin.token is None and [(s.type, s.name) for s in c.chain] == [
        ("wasm", "routing"), ("wasm", "waf"), ("wasm", "image-accept"), ("cache", "cache"),
        ("function", "hello-js"), ("function", "hello-py"), ("wasm", "image"), ("cache", "originals")]
    # module paths resolve inside the source tree, wherever the node is started from
    assert (c.base_dir / c.chain[0].options["module"]).parent == c.base_dir / "filters" / "build"
    shipped = Path(__file__).resolve().parents[2] / "config" / "edgenode.toml"
    assert tomllib.loads(shipped.read_text()) == tomllib.loads(default_config_text())


@pytest.mark.parametrize("data,message", [
    (cfg(server={"listen": "nope"}), r"^server\.listen: expected \"host:port\""),
    (cfg(server={"listen": "1.2.3.4:99999"}), r"^server\.listen: port 99999 is out of range"),
    (cfg(server={"workers": 0}), r"^server\.workers: must be a positive integer"),
    (cfg(server={"workres": 2}), r"^server\.workres: unknown key"),
    (cfg(server={"keepalive_timeout": "forever"}), r"^server\.keepalive_timeout: expected a duration"),
    (cfg(cache={"max_bytes": "lots"}), r"^cache\.max_bytes: expected a size"),
    (cfg(cache={"max_bytes": "1MiB", "max_object_bytes": "2MiB"}), r"^cache\.max_object_bytes: must not exceed"),
    (cfg(cache={"key": {"ignore_query": [1]}}), r"^cache\.key\.ignore_query\[0\]: expected a string"),
    (cfg(admin={"listen": "0.0.0.0:9090"}), r"^admin\.token: required when admin\.listen is not a loopback"),
    (cfg(admin={"token": "  "}), r"^admin\.token: must not be empty"),
    ({"origins": {"default": {"url": "https://x"}}}, r"^origins\.default\.url: .*https origins are not supported"),
    ({"origins": {"default": {}}}, r"^origins\.default\.url: required"),
    ({}, r"^origins: at least one origin is required"),
    (cfg(routes=[{"origin": "nope"}]), r"^routes\[0\]\.origin: no origin named 'nope'"),
    (cfg(chain=[{"type": "lua"}]), r"^chain\[0\]\.type: must be \"cache\", \"wasm\" or \"function\""),
    (cfg(log={"format": "xml"}), r"^log\.format: must be one of text, json"),
])
def test_errors_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_admin_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGENODE_ADMIN_TOKEN", "from-env-0123456789")
    assert parse_config(cfg(admin={"token": "in-file"})).admin.token == "from-env-0123456789"
    assert parse_config(cfg(admin={"listen": "0.0.0.0:9090"})).admin.token == "from-env-0123456789"


def test_admin_off_and_without_token_on_loopback() -> None:
    assert parse_config(cfg(admin={"listen": "off"})).admin.listen is None
    open_admin = parse_config(cfg())
    assert open_admin.admin.listen == ("127.0.0.1", 9090) and open_admin.admin.token is None


def test_overrides() -> None:
    c = with_overrides(load_config(), listen="127.0.0.1:0", origin="http://10.0.0.5:9000",
                       workers=3, admin_listen="off")
    assert c.server.listen == ("127.0.0.1", 0) and c.server.workers == 3 and c.admin.listen is None
    o = c.origins["default"]
    assert (o.host, o.port, o.url) == ("10.0.0.5", 9000, "http://10.0.0.5:9000")
    assert o.connect_timeout == 3.0 and c.upstreams["default"] is o
    with pytest.raises(ConfigError, match=r"^--origin: expected http://host\[:port\]"):
        with_overrides(load_config(), origin="ftp://x")
    with pytest.raises(ConfigError, match=r"^--listen: "):
        with_overrides(load_config(), listen="nowhere")
    with pytest.raises(ConfigError, match=r"^--workers: must be at least 1"):
        with_overrides(load_config(), workers=0)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nlisten = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
