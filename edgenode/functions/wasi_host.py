"""``wasi:io``, ``wasi:clocks``, ``wasi:random``, ``wasi:cli`` and the empty filesystem.

Streams wrap the invocation's ``ByteSource``/``ByteSink``; pollables are ready-checks
the invocation waits on.  The CLI world is what an edge function gets: environment
variables from its config only, no arguments, stdout/stderr lines into the node's log,
no stdin, no terminal, no preopened directories.  stdout lines log at INFO, stderr
lines (a guest's tracebacks) at WARNING.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

from edgenode.functions.capi import OWN, GuestTrap
from edgenode.functions.interfaces import Interface
from edgenode.functions.invocation import ByteSink, ByteSource, Invocation
from edgenode.functions.table import Resource

__all__ = ["INTERFACES", "Pollable", "IoError", "InputStream", "OutputStream", "STREAM_ERROR",
           "stream_result"]

V = "@0.2.0"
#: how much ``check-write`` lets a guest write at once
WRITE_BUDGET = 1 << 20


class Pollable(Resource):
    TYPE, WIT = 1, "pollable"
    __slots__ = ("ready", "until")

    def __init__(self, ready: Callable[[], bool], until: float | None = None) -> None:
        super().__init__()
        self.ready = ready
        self.until = until  # a timer's deadline (monotonic seconds)


class IoError(Resource):
    TYPE, WIT = 2, "error"
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class InputStream(Resource):
    TYPE, WIT = 3, "input-stream"
    __slots__ = ("source",)

    def __init__(self, source: ByteSource) -> None:
        super().__init__()
        self.source = source


class OutputStream(Resource):
    TYPE, WIT = 4, "output-stream"
    __slots__ = ("sink", "log_name")

    def __init__(self, sink: ByteSink | None, log_name: str = "") -> None:
        super().__init__()
        self.sink = sink
        self.log_name = log_name  # stdout/stderr: lines go to the log


class Descriptor(Resource):
    """Filesystem descriptors never exist (no preopens); the type is still linkable."""

    TYPE, WIT = 5, "descriptor"


class TerminalInput(Resource):
    TYPE, WIT = 6, "terminal-input"


class TerminalOutput(Resource):
    TYPE, WIT = 7, "terminal-output"


STREAM_ERROR = ("variant", {"last-operation-failed": (OWN, IoError.TYPE), "closed": None})
CLOSED = ("err", ("closed", None))
OK_UNIT = ("ok", None)


def stream_result(ok: Any) -> Any:
    return ("result", ok, STREAM_ERROR)


# --- wasi:io ----------------------------------------------------------------------------
error = Interface("wasi:io/error" + V, {"error": IoError})
poll = Interface("wasi:io/poll" + V, {"pollable": Pollable})
streams = Interface("wasi:io/streams" + V, {"input-stream": InputStream, "output-stream": OutputStream})


@error.fn("[method]error.to-debug-string", "string")
def _error_debug(inv: Invocation, rep: int) -> str:
    return inv.table.get(rep, IoError).message


@poll.fn("[method]pollable.ready", "bool")
def _pollable_ready(inv: Invocation, rep: int) -> bool:
    return bool(inv.table.get(rep, Pollable).ready())


@poll.fn("[method]pollable.block")
def _pollable_block(inv: Invocation, rep: int) -> None:
    p = inv.table.get(rep, Pollable)
    inv.wait(p.ready, p.until)


@poll.fn("poll", ("list", "u32"))
def _poll(inv: Invocation, reps: list[int]) -> list[int]:
    if not reps:
        raise GuestTrap("poll with an empty list")
    ps = [inv.table.get(r, Pollable) for r in reps]

    def ready_now() -> list[int]:
        return [i for i, p in enumerate(ps) if p.ready()]

    got = ready_now()
    if not got:
        timers = [p.until for p in ps if p.until is not None]
        inv.wait(lambda: any(p.ready() for p in ps), min(timers) if timers else None)
        got = ready_now()
    return got


def _source_read(inv: Invocation, rep: int, n: int, blocking: bool) -> Any:
    src = inv.table.get(rep, InputStream).source
    if blocking:
        inv.wait(src.ready)
    data = src.read(min(n, 1 << 20))
    if data is None:
        if src.error:
            return ("err", ("last-operation-failed", _io_error(inv, src.error)))
        return CLOSED
    return ("ok", data)


def _io_error(inv: Invocation, message: str) -> int:
    return inv.table.add(IoError(message))


@streams.fn("[method]input-stream.read", stream_result("bytes"))
def _read(inv: Invocation, rep: int, n: int) -> Any:
    return _source_read(inv, rep, n, False)


@streams.fn("[method]input-stream.blocking-read", stream_result("bytes"))
def _blocking_read(inv: Invocation, rep: int, n: int) -> Any:
    return _source_read(inv, rep, n, True)


@streams.fn("[method]input-stream.skip", stream_result("u64"))
def _skip(inv: Invocation, rep: int, n: int) -> Any:
    res = _source_read(inv, rep, n, False)
    return ("ok", len(res[1])) if res[0] == "ok" else res


@streams.fn("[method]input-stream.blocking-skip", stream_result("u64"))
def _blocking_skip(inv: Invocation, rep: int, n: int) -> Any:
    res = _source_read(inv, rep, n, True)
    return ("ok", len(res[1])) if res[0] == "ok" else res


@streams.fn("[method]input-stream.subscribe", (OWN, Pollable.TYPE))
def _input_subscribe(inv: Invocation, rep: int) -> int:
    stream = inv.table.get(rep, InputStream)
    return inv.table.add(Pollable(stream.source.ready), stream)


def _write(inv: Invocation, rep: int, data: bytes) -> Any:
    out = inv.table.get(rep, OutputStream)
    if out.log_name:
        _log_output(inv, out.log_name, bytes(data))
        return OK_UNIT
    assert out.sink is not None
    if out.sink.closed:
        return CLOSED
    out.sink.write(bytes(data))
    return OK_UNIT


def _log_output(inv: Invocation, stream: str, data: bytes) -> None:
    for line in data.decode(errors="replace").splitlines():
        if line:
            inv.log.log(logging.WARNING if stream == "stderr" else logging.INFO, "function %s %s: %s",
                        inv.name, stream, line, extra={"function": inv.name})


@streams.fn("[method]output-stream.check-write", stream_result("u64"))
def _check_write(inv: Invocation, rep: int) -> Any:
    out = inv.table.get(rep, OutputStream)
    if out.sink is not None and out.sink.closed:
        return CLOSED
    return ("ok", WRITE_BUDGET)


streams.fn("[method]output-stream.write", stream_result(None))(_write)
streams.fn("[method]output-stream.blocking-write-and-flush", stream_result(None))(_write)


@streams.fn("[method]output-stream.flush", stream_result(None))
def _flush(inv: Invocation, rep: int) -> Any:
    out = inv.table.get(rep, OutputStream)
    return CLOSED if out.sink is not None and out.sink.closed else OK_UNIT


streams.fn("[method]output-stream.blocking-flush", stream_result(None))(_flush)


@streams.fn("[method]output-stream.subscribe", (OWN, Pollable.TYPE))
def _output_subscribe(inv: Invocation, rep: int) -> int:
    out = inv.table.get(rep, OutputStream)
    return inv.table.add(Pollable(_always), out)


def _always() -> bool:
    return True


@streams.fn("[method]output-stream.write-zeroes", stream_result(None))
def _write_zeroes(inv: Invocation, rep: int, n: int) -> Any:
    return _write(inv, rep, bytes(n))


streams.fn("[method]output-stream.blocking-write-zeroes-and-flush", stream_result(None))(_write_zeroes)


def _splice(inv: Invocation, rep: int, src: int, n: int, blocking: bool) -> Any:
    res = _source_read(inv, src, n, blocking)
    if res[0] != "ok":
        return res
    wrote = _write(inv, rep, res[1])
    return ("ok", len(res[1])) if wrote[0] == "ok" else wrote


@streams.fn("[method]output-stream.splice", stream_result("u64"))
def _splice_now(inv: Invocation, rep: int, src: int, n: int) -> Any:
    return _splice(inv, rep, src, n, False)


@streams.fn("[method]output-stream.blocking-splice", stream_result("u64"))
def _splice_blocking(inv: Invocation, rep: int, src: int, n: int) -> Any:
    return _splice(inv, rep, src, n, True)


# --- wasi:clocks, wasi:random -------------------------------------------------------------
monotonic = Interface("wasi:clocks/monotonic-clock" + V)
wall = Interface("wasi:clocks/wall-clock" + V)
random = Interface("wasi:random/random" + V)
insecure = Interface("wasi:random/insecure" + V)
insecure_seed = Interface("wasi:random/insecure-seed" + V)


@monotonic.fn("now", "u64")
def _mono_now(inv: Invocation) -> int:
    return time.monotonic_ns()


@monotonic.fn("resolution", "u64")
def _mono_res(inv: Invocation) -> int:
    return 1


def _timer(inv: Invocation, at_ns: int) -> int:
    until = at_ns / 1e9
    return inv.table.add(Pollable(lambda: time.monotonic() >= until, until))


@monotonic.fn("subscribe-instant", (OWN, Pollable.TYPE))
def _sub_instant(inv: Invocation, at: int) -> int:
    return _timer(inv, at)


@monotonic.fn("subscribe-duration", (OWN, Pollable.TYPE))
def _sub_duration(inv: Invocation, ns: int) -> int:
    return _timer(inv, time.monotonic_ns() + ns)


DATETIME = ("record", ("seconds", "u64"), ("nanoseconds", "u32"))


@wall.fn("now", DATETIME)
def _wall_now(inv: Invocation) -> dict[str, int]:
    ns = time.time_ns()
    return {"seconds": ns // 1_000_000_000, "nanoseconds": ns % 1_000_000_000}


@wall.fn("resolution", DATETIME)
def _wall_res(inv: Invocation) -> dict[str, int]:
    return {"seconds": 0, "nanoseconds": 1000}


class _Entropy:
    """OS randomness read 64 KiB at a time: guests ask for a few bytes many times per
    request (CPython seeds its hash and random modules per instance), one syscall each
    would cost more than the rest of the call."""

    CHUNK = 65536

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bytes:
        if n > self.CHUNK:
            return os.urandom(n)
        with self._lock:
            if self._pos + n > len(self._buf):
                self._buf, self._pos = os.urandom(self.CHUNK), 0
            out = self._buf[self._pos:self._pos + n]
            self._pos += n
            return out


_entropy = _Entropy()


@random.fn("get-random-bytes", "bytes")
def _random_bytes(inv: Invocation, n: int) -> bytes:
    if n > 1 << 20:
        raise GuestTrap("get-random-bytes: at most 1 MiB per call")
    return _entropy.take(n)


@random.fn("get-random-u64", "u64")
def _random_u64(inv: Invocation) -> int:
    return int.from_bytes(_entropy.take(8), "little")


insecure.fn("get-insecure-random-bytes", "bytes")(_random_bytes)
insecure.fn("get-insecure-random-u64", "u64")(_random_u64)


@insecure_seed.fn("insecure-seed", ("tuple", "u64", "u64"))
def _seed(inv: Invocation) -> tuple[int, int]:
    b = _entropy.take(16)
    return int.from_bytes(b[:8], "little"), int.from_bytes(b[8:], "little")


# --- wasi:cli -----------------------------------------------------------------------------
environment = Interface("wasi:cli/environment" + V)
exit_ = Interface("wasi:cli/exit" + V)
stdin = Interface("wasi:cli/stdin" + V)
stdout = Interface("wasi:cli/stdout" + V)
stderr = Interface("wasi:cli/stderr" + V)
terminal_input = Interface("wasi:cli/terminal-input" + V, {"terminal-input": TerminalInput})
terminal_output = Interface("wasi:cli/terminal-output" + V, {"terminal-output": TerminalOutput})
terminal_stdin = Interface("wasi:cli/terminal-stdin" + V)
terminal_stdout = Interface("wasi:cli/terminal-stdout" + V)
terminal_stderr = Interface("wasi:cli/terminal-stderr" + V)


@environment.fn("get-environment", ("list", ("tuple", "string", "string")))
def _env(inv: Invocation) -> list[tuple[str, str]]:
    return list(inv.caps.env.items())


@environment.fn("get-arguments", ("list", "string"))
def _args(inv: Invocation) -> list[str]:
    return []


@environment.fn("initial-cwd", ("option", "string"))
def _cwd(inv: Invocation) -> None:
    return None


@exit_.fn("exit")
def _exit(inv: Invocation, status: Any) -> None:
    raise GuestTrap(f"the guest called exit ({'success' if status[0] == 'ok' else 'failure'})")


@stdin.fn("get-stdin", (OWN, InputStream.TYPE))
def _stdin(inv: Invocation) -> int:
    return inv.table.add(InputStream(ByteSource(b"")))


@stdout.fn("get-stdout", (OWN, OutputStream.TYPE))
def _stdout(inv: Invocation) -> int:
    return inv.table.add(OutputStream(None, "stdout"))


@stderr.fn("get-stderr", (OWN, OutputStream.TYPE))
def _stderr(inv: Invocation) -> int:
    return inv.table.add(OutputStream(None, "stderr"))


def _no_terminal(inv: Invocation) -> None:
    return None


terminal_stdin.fn("get-terminal-stdin", ("option", (OWN, TerminalInput.TYPE)))(_no_terminal)
terminal_stdout.fn("get-terminal-stdout", ("option", (OWN, TerminalOutput.TYPE)))(_no_terminal)
terminal_stderr.fn("get-terminal-stderr", ("option", (OWN, TerminalOutput.TYPE)))(_no_terminal)

# --- wasi:filesystem: linkable, but there is nothing to open ----------------------------------
fs_types = Interface("wasi:filesystem/types" + V, {"descriptor": Descriptor})
fs_preopens = Interface("wasi:filesystem/preopens" + V)


@fs_preopens.fn("get-directories", ("list", ("tuple", (OWN, Descriptor.TYPE), "string")))
def _preopens(inv: Invocation) -> list[Any]:
    return []


@fs_types.fn("filesystem-error-code", ("option", ("enum",)))
def _fs_error_code(inv: Invocation, rep: int) -> None:
    return None


INTERFACES = [error, poll, streams, monotonic, wall, random, insecure, insecure_seed, environment,
              exit_, stdin, stdout, stderr, terminal_input, terminal_output, terminal_stdin,
              terminal_stdout, terminal_stderr, fs_types, fs_preopens]
