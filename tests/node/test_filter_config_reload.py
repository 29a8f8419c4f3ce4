"""Reloading filters re-reads the config file: changed filter settings apply without a restart."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from edgenode.config import ConfigError, load_config, with_overrides
from edgenode.node import Node

ECHO = Path(__file__).parent / "wat" / "config_echo.wat"


def write_config(path: Path, origin_url: str, value: str) -> None:
    path.write_text(f'''
[admin]
listen = "off"
[origins.default]
url = "{origin_url}"
[[chain]]
type = "wasm"
name = "echo"
module = "{ECHO}"
config = "{value}"
[[chain]]
type = "cache"
[log]
access = "off"
''')


async def echoed(node: Node, path: str) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}{path}") as r:
            return r.headers["x-config"]


async def test_reload_applies_the_changed_filter_config(tmp_path: Path, origin_url: str) -> None:
    conf = tmp_path / "node.toml"
    write_config(conf, origin_url, "first")
    node = Node(with_overrides(load_config(conf), listen="127.0.0.1:0"))
    await node.start()
    try:
        assert await echoed(node, "/obj/a") == "first"
        write_config(conf, origin_url, "second")
        assert await node.reload_filters(None) == {"reloaded": ["echo"]}
        assert await echoed(node, "/obj/b") == "second"
        conf.write_text("[origins.default\n")  # broken: the running filter stays as it was
        with pytest.raises(ConfigError):
            await node.reload_filters("echo")
        assert await echoed(node, "/obj/c") == "second"
    finally:
        await node.stop(1.0)
