"""The C SDK exports only the stream hooks a module's filters define (``PW_HOOKS`` in the
module's ``pw_hooks.h``): the host calls exported hooks only, so an unset hook costs no
guest call per request; a filter whose hook its module does not export fails to load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from edgenode.wasm.engine import FilterLoadError
from tests.filters.conftest import FILTERS, make_stage

STREAM_HOOKS = {"proxy_on_request_headers", "proxy_on_request_body", "proxy_on_response_headers",
                "proxy_on_response_body", "proxy_on_log", "proxy_on_done"}


def exported_hooks(module: Path) -> set[str]:
    names = {e.name for e in wasmtime.Module.from_file(wasmtime.Engine(), str(module)).exports}
    return names & STREAM_HOOKS


@pytest.mark.parametrize("name,hooks", [
    ("routing", {"proxy_on_request_headers", "proxy_on_response_headers"}),
    ("image", {"proxy_on_request_headers", "proxy_on_response_headers", "proxy_on_response_body"}),
    ("waf", {"proxy_on_request_headers", "proxy_on_request_body", "proxy_on_response_headers"}),
])
def test_module_exports_the_hooks_its_filters_define(build_filter, name: str, hooks: set[str]) -> None:
    assert exported_hooks(build_filter(name)) == hooks


FILTER_C = r"""
#include "proxy_wasm.h"
static pw_action on_body(pw_stream *s, size_t n, bool eos) { (void)s; (void)n; (void)eos; return PW_CONTINUE; }
static const pw_filter f = {.on_response_body = on_body};
const pw_filter *const pw_filters[] = {&f, NULL};
"""


def build_module(tmp_path: Path, pw_hooks: str | None) -> Path:
    """Compile FILTER_C with the SDK, with `pw_hooks` as its pw_hooks.h (None: no such file)."""
    (tmp_path / "f.c").write_text(FILTER_C)
    if pw_hooks is not None:
        (tmp_path / "pw_hooks.h").write_text(pw_hooks)
    out = tmp_path / "f.wasm"
    sdk = FILTERS / "sdk"
    proc = subprocess.run([sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi", "-mexec-model=reactor",
                           "-O2", f"-I{sdk}", f"-I{tmp_path}", "-o", str(out), str(tmp_path / "f.c"),
                           *map(str, sorted(sdk.glob("*.c")))], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_module_without_pw_hooks_exports_every_hook(tmp_path: Path) -> None:
    # every hook the SDK has, except proxy_on_done (absent means done)
    assert exported_hooks(build_module(tmp_path, None)) == STREAM_HOOKS - {"proxy_on_done"}


def test_a_hook_the_module_does_not_export_fails_the_configuration(tmp_path: Path) -> None:
    out = build_module(tmp_path, "#define PW_HOOKS PW_HOOK_REQUEST_HEADERS\n")
    assert exported_hooks(out) == {"proxy_on_request_headers"}
    with pytest.raises(FilterLoadError) as info:
        make_stage(out, {})
    assert "filter defines on_response_body but its module does not export it" in str(info.value)
