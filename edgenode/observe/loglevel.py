"""The node's log levels: Python's, plus ``TRACE`` (5) below ``DEBUG``.

Filters log at Proxy-Wasm's trace level; importing this module names level 5 so
``[log] level = "trace"`` (``logging.basicConfig(level="TRACE")``) and the records of
filter trace logs read ``TRACE``.
"""

from __future__ import annotations

import logging

__all__ = ["TRACE", "LEVELS"]

TRACE = 5
#: the names ``[log] level`` accepts, most verbose first
LEVELS = ("trace", "debug", "info", "warning", "error")

logging.addLevelName(TRACE, "TRACE")
