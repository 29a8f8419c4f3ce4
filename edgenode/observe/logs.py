"""The operator's log (stderr): one format, with the request id on every line written
while a request runs (a filter's log, an origin warning), so it matches the access log
and the ``X-Request-Id`` header."""

from __future__ import annotations

import logging
import sys

from edgenode.http.request_id import current_request_id

__all__ = ["RequestIdFormatter", "setup_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIdFormatter(logging.Formatter):
    """Appends `` rid=<id>`` to records emitted inside a request's task."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = current_request_id.get()
        return f"{line} rid={rid}" if rid else line


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RequestIdFormatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
