"""What a callback's result does to its stream: Envoy's filter statuses as cpp-host maps them.

A headers hook result other than Continue holds the stream in that direction:

* ``StopIteration`` (1) becomes ``StopAllIterationAndWatermark`` (cpp-host converts it:
  a filter that pauses is waiting for a callout), unless the stage sets
  ``allow_on_headers_stop_iteration`` (Envoy's option of that name), which keeps plain
  StopIteration: body callbacks go on while the headers are held, and a body callback
  returning Continue releases them.
* ``StopAllIterationAndBuffer`` (3) / ``...Watermark`` (4, and any value above 4): the
  filter's body and trailers callbacks are not delivered until ``proxy_continue_stream``
  (or a local reply, ``proxy_close_stream``, the pause timeout); meanwhile the body is
  buffered, and on resume the filter gets the whole buffer in one body callback.  Buffer:
  past ``max_body_bytes`` the stream fails (413 / 502).  Watermark: at ``max_body_bytes``
  the host stops reading (back-pressure) until the resume.
* ``ContinueAndEndStream`` (2) is taken as Continue (the body is not dropped).

Body and trailers results: Continue passes the buffered data on, anything else keeps
buffering; at the end of the stream anything else holds until continue (``Hold.END``).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Hold", "headers_hold", "STOP_ALL"]


class Hold(IntEnum):
    NONE = 0
    #: StopIteration allowed by the stage: body callbacks go on, a body Continue releases
    ITERATION = 1
    #: StopAllIterationAndBuffer: no callbacks until continue; over the limit fails
    ALL_BUFFER = 3
    #: StopAllIterationAndWatermark: no callbacks until continue; reading stops at the limit
    ALL_WATERMARK = 4
    #: the direction's last callback (body at end of stream, trailers) returned Stop
    END = 5


STOP_ALL = (Hold.ALL_BUFFER, Hold.ALL_WATERMARK)


def headers_hold(action: int, allow_stop_iteration: bool) -> Hold:
    """The hold a headers hook result starts (cpp-host's conversion, then Envoy's meaning)."""
    if action == 0 or action == 2:
        return Hold.NONE
    if action == 1:
        return Hold.ITERATION if allow_stop_iteration else Hold.ALL_WATERMARK
    if action == 3:
        return Hold.ALL_BUFFER
    return Hold.ALL_WATERMARK
