"""WASI preview 1 as filter runtimes use it (wat/wasi_probe.wat): Go's start-up probes
pass without a log line, stdio goes to the node log, args/environ/files only as granted,
and every refusal is an errno, never a trap."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest

from edgenode.config import ConfigError, StageConfig
from edgenode.wasm.engine import WasmEngine
from edgenode.wasm.stage import WasmStage
from edgenode.wasm.wasi import EBADF, EISDIR, ENOENT, ENOTCAPABLE, ENOTSUP, EROFS, ESPIPE

from envoy_probe import EnvoyProbe

WAT = Path(__file__).parent / "wat"
BUF = 4096  # scratch area in the probe's memory


def _stage(engine: WasmEngine, **options: object) -> WasmStage:
    return WasmStage(StageConfig("wasm", "wasi", {"module": str(WAT / "wasi_probe.wat"), **options}),
                     base_dir=WAT, engine=engine)


@pytest.fixture
def granted(tmp_path: Path) -> Path:
    root = tmp_path / "dict"
    (root / "sub").mkdir(parents=True)
    (root / "words.txt").write_bytes(b"alpha\nbeta\n")
    (tmp_path / "secret.txt").write_text("outside")
    return root


def _strings(p: EnvoyProbe, sizes: str, get: str) -> list[bytes]:
    assert p.call(sizes, 8, 12) == 0
    count, size = p.u32(8), p.u32(12)
    assert p.call(get, BUF, BUF + 256) == 0
    return [p.vm.mem.read(p.u32(BUF + 4 * i), 64).split(b"\0")[0] for i in range(count)] if size else []


def test_go_startup_probes_pass_silently(engine: WasmEngine, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="edgenode"):
        stage = _stage(engine)
    p = EnvoyProbe(stage.vm)
    assert p.u32(0) == 0  # no unexpected errno in _initialize
    assert p.u32(4) == 0  # no preopens without a grant
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    stage.vm.close()


def test_args_and_environ_are_empty_unless_granted(engine: WasmEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILTER_MODE", "strict")
    monkeypatch.setenv("UNGRANTED", "x")
    plain = EnvoyProbe(_stage(engine).vm)
    assert _strings(plain, "args_sizes_get", "args_get") == []
    assert _strings(plain, "environ_sizes_get", "environ_get") == []
    granted = EnvoyProbe(_stage(engine, args=["filter", "--fast"], env=["FILTER_MODE"]).vm)
    assert _strings(granted, "args_sizes_get", "args_get") == [b"filter", b"--fast"]
    assert _strings(granted, "environ_sizes_get", "environ_get") == [b"FILTER_MODE=strict"]


def test_stdio_clock_random(engine: WasmEngine, caplog: pytest.LogCaptureFixture) -> None:
    p = EnvoyProbe(_stage(engine).vm)
    p.vm.mem.write(BUF, b"hello log\n")
    p.vm.mem.write(BUF + 64, struct.pack("<II", BUF, 10))
    with caplog.at_level(logging.INFO, logger="edgenode.filter.wasi"):
        assert p.call("fd_write", 1, BUF + 64, 1, 8) == 0 and p.u32(8) == 10
        assert p.call("fd_write", 2, BUF + 64, 1, 8) == 0
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("INFO", "hello log"), ("ERROR", "hello log")]
    assert p.call("fd_write", 7, BUF + 64, 1, 8) == EBADF
    assert p.call("fd_read", 0, BUF + 64, 1, 8) == 0 and p.u32(8) == 0  # stdin: end of file
    assert p.call("fd_seek", 1, 0, 0, 8) == ESPIPE
    assert p.call("fd_fdstat_get", 1, 16) == 0 and p.vm.mem.read(16, 1) == b"\x02"  # character device
    assert p.call("fd_filestat_get", 2, 16) == 0 and p.vm.mem.read(32, 1) == b"\x02"
    assert p.call("clock_time_get", 1, 1, 16) == 0 and struct.unpack("<Q", p.vm.mem.read(16, 8))[0] > 0
    assert p.call("clock_time_get", 9, 1, 16) != 0
    assert p.call("random_get", BUF, 32) == 0 and p.vm.mem.read(BUF, 32) != bytes(32)


def test_files_are_refused_without_a_grant(engine: WasmEngine) -> None:
    p = EnvoyProbe(_stage(engine).vm)
    p.vm.mem.write(BUF, b"words.txt")
    assert p.call("fd_prestat_get", 3, 16) == EBADF
    assert p.call("path_open", 3, 0, BUF, 9, 0, 2, 0, 0, 8) == ENOTSUP
    assert p.call("fd_read", 3, BUF + 64, 1, 8) == EBADF
    assert p.call("path_unlink_file", 3, BUF, 9) == EROFS
    assert p.vm.failed is None


def test_granted_directory_reads_but_never_writes_or_escapes(engine: WasmEngine, granted: Path) -> None:
    stage = _stage(engine, wasi_dirs={"/dict": str(granted)})
    p = EnvoyProbe(stage.vm)
    assert p.u32(4) == 1  # the start-up scan found the one preopen
    assert p.call("fd_prestat_get", 3, 16) == 0 and p.u32(20) == 5
    assert p.call("fd_prestat_dir_name", 3, BUF, 5) == 0 and p.vm.mem.read(BUF, 5) == b"/dict"

    def open_(path: bytes, oflags: int = 0, rights: int = 2) -> int:
        p.vm.mem.write(BUF, path)
        return p.call("path_open", 3, 0, BUF, len(path), oflags, rights, 0, 0, 8)

    assert open_(b"words.txt") == 0
    fd = p.u32(8)
    p.vm.mem.write(BUF + 64, struct.pack("<II", BUF + 128, 5))
    assert p.call("fd_read", fd, BUF + 64, 1, 12) == 0 and p.vm.mem.read(BUF + 128, 5) == b"alpha"
    assert p.call("fd_seek", fd, 1, 1, 16) == 0  # skip the newline
    assert p.call("fd_read", fd, BUF + 64, 1, 12) == 0 and p.vm.mem.read(BUF + 128, 5) == b"beta\n"
    assert p.call("fd_filestat_get", fd, BUF + 256) == 0
    assert struct.unpack("<Q", p.vm.mem.read(BUF + 256 + 32, 8))[0] == 11  # size
    assert p.call("fd_pwrite", fd, BUF + 64, 1, 0, 12) == ENOTCAPABLE
    assert p.call("fd_write", fd, BUF + 64, 1, 12) == ENOTCAPABLE
    assert p.call("fd_close", fd) == 0 and p.call("fd_close", fd) == EBADF
    assert open_(b"words.txt", rights=1 << 6) == EROFS  # asks for fd_write
    assert open_(b"new.txt", oflags=1) == EROFS  # O_CREAT
    assert open_(b"missing") == ENOENT
    assert open_(b"../secret.txt") == ENOTCAPABLE
    assert open_(b"/etc/passwd") == ENOTCAPABLE
    assert open_(b"sub") == 0
    sub = p.u32(8)
    assert p.call("fd_read", sub, BUF + 64, 1, 12) == EISDIR
    assert p.call("fd_readdir", 3, BUF + 512, 512, 0, 12) == 0
    listing = p.vm.mem.read(BUF + 512, p.u32(12))
    assert b"words.txt" in listing and b"sub" in listing
    assert p.vm.failed is None


def test_wasi_dirs_option_is_checked(engine: WasmEngine, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"wasi_dirs\./data: no such directory"):
        _stage(engine, wasi_dirs={"/data": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match=r"\.args: expected a list of strings"):
        _stage(engine, args="x")
