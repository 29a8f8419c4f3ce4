"""``wasi:io``, ``wasi:clocks``, ``wasi:random``, ``wasi:cli`` and the empty filesystem.

wasi:io (streams, poll, error), the clocks and randomness are implemented in C
(hostcall_io.c); they are declared here with their resources.  The CLI world is what an
edge function gets: environment variables from its config only, no arguments,
stdout/stderr lines into the node's log (stdout at INFO, stderr, a guest's tracebacks,
at WARNING), an empty stdin, no terminal, no preopened directories.
"""

from __future__ import annotations

import logging
from typing import Any

from edgenode.functions._hostcall import Sink, Source, add_native
from edgenode.functions.capi import OWN, TYPES, GuestTrap
from edgenode.functions.interfaces import Interface
from edgenode.functions.invocation import Invocation
from edgenode.functions.table import Resource

__all__ = ["INTERFACES", "TYPE_NAMES"]

V = "@0.2.0"
#: stdout/stderr are not bodies: nothing bounds them but the request's own limits
_UNBOUNDED = 1 << 62


class Descriptor(Resource):
    """Filesystem descriptors never exist (no preopens); the type is still linkable."""

    TYPE, WIT = 5, "descriptor"


class TerminalInput(Resource):
    TYPE, WIT = 6, "terminal-input"


class TerminalOutput(Resource):
    TYPE, WIT = 7, "terminal-output"


# --- implemented in C: wasi:io, wasi:clocks, wasi:random -------------------------------------
error = Interface("wasi:io/error" + V, {"error": TYPES["error"]})
poll = Interface("wasi:io/poll" + V, {"pollable": TYPES["pollable"]})
streams = Interface("wasi:io/streams" + V, {"input-stream": TYPES["input-stream"],
                                            "output-stream": TYPES["output-stream"]})
monotonic = Interface("wasi:clocks/monotonic-clock" + V)
wall = Interface("wasi:clocks/wall-clock" + V)
random = Interface("wasi:random/random" + V)
insecure = Interface("wasi:random/insecure" + V)
insecure_seed = Interface("wasi:random/insecure-seed" + V)

# --- wasi:cli -----------------------------------------------------------------------------
environment = Interface("wasi:cli/environment" + V)
exit_ = Interface("wasi:cli/exit" + V)
stdin = Interface("wasi:cli/stdin" + V)
stdout = Interface("wasi:cli/stdout" + V)
stderr = Interface("wasi:cli/stderr" + V)
terminal_input = Interface("wasi:cli/terminal-input" + V, {"terminal-input": TerminalInput.TYPE})
terminal_output = Interface("wasi:cli/terminal-output" + V, {"terminal-output": TerminalOutput.TYPE})
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


@stdin.fn("get-stdin", (OWN, TYPES["input-stream"]))
def _stdin(inv: Invocation) -> int:
    return add_native(inv.table, TYPES["input-stream"], Source(b""))


def _log_sink(inv: Invocation, stream: str) -> Sink:
    level = logging.WARNING if stream == "stderr" else logging.INFO
    log, name = inv.log, inv.name

    def log_lines(data: bytes | None) -> None:
        for line in (data or b"").decode(errors="replace").splitlines():
            if line:
                log.log(level, "function %s %s: %s", name, stream, line, extra={"function": name})

    return Sink(_UNBOUNDED, log_lines)


@stdout.fn("get-stdout", (OWN, TYPES["output-stream"]))
def _stdout(inv: Invocation) -> int:
    return add_native(inv.table, TYPES["output-stream"], _log_sink(inv, "stdout"))


@stderr.fn("get-stderr", (OWN, TYPES["output-stream"]))
def _stderr(inv: Invocation) -> int:
    return add_native(inv.table, TYPES["output-stream"], _log_sink(inv, "stderr"))


def _no_terminal(inv: Invocation) -> None:
    return None


terminal_stdin.fn("get-terminal-stdin", ("option", (OWN, TerminalInput.TYPE)))(_no_terminal)
terminal_stdout.fn("get-terminal-stdout", ("option", (OWN, TerminalOutput.TYPE)))(_no_terminal)
terminal_stderr.fn("get-terminal-stderr", ("option", (OWN, TerminalOutput.TYPE)))(_no_terminal)

# --- wasi:filesystem: linkable, but there is nothing to open ----------------------------------
fs_types = Interface("wasi:filesystem/types" + V, {"descriptor": Descriptor.TYPE})
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
#: WIT names of the resource types defined here in Python
TYPE_NAMES = {cls.TYPE: cls.WIT for cls in (Descriptor, TerminalInput, TerminalOutput)}
