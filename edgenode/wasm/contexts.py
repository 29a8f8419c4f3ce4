"""Root and stream contexts, and the header-map views the host functions act on.

A stream context holds its messages' maps serialised (``native.HeaderBlock``, read by the
host core) over the views below (through which every write goes); the blocks live on the
Exchange, so the filters of one stream share them until one changes a map.

A view adapts one of the node's messages to Proxy-Wasm map semantics: lower-case
names, pseudo-headers as ordinary entries (``:method :path :authority :scheme`` on
requests, ``:status`` on responses), ``get`` returning the first value.  ``Host`` is
the ``:authority`` entry (as in Envoy); the name ``host`` is accepted as an alias.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from edgenode.http.messages import CIMultiDict, Request, Response
from edgenode.wasm.holds import Hold
from edgenode.wasm.native import HeaderBlock, set_view_types

if TYPE_CHECKING:
    from edgenode.pipeline.exchange import Exchange

__all__ = ["RootContext", "StreamContext", "RequestHeaders", "ResponseHeaders", "PairsMap",
           "HeaderMap", "TrailerFields"]


class HeaderMap:
    """Interface of a map view (the host only writes to views of the node's messages)."""


    def pairs(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def get(self, key: str) -> str | None:
        key = key.lower()
        for k, v in self.pairs():
            if k == key:
                return v
        return None

    def add(self, key: str, value: str) -> None:
        raise NotImplementedError

    def replace(self, key: str, value: str) -> None:
        raise NotImplementedError

    def remove(self, key: str) -> None:
        raise NotImplementedError

    def set_pairs(self, pairs: list[tuple[str, str]]) -> None:
        raise NotImplementedError


class PairsMap(HeaderMap):
    """A read-only list of pairs (http call response headers/trailers, trailers)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def pairs(self) -> list[tuple[str, str]]:
        return self._pairs


class TrailerFields(HeaderMap):
    """Map 1/3: a message's trailer fields, edited in place.

    ``fields`` is the very CIMultiDict the wire writer serialises (docs/architecture.md,
    Trailers), so an edit needs no copying back; it is None when the message ended
    without trailers until a filter adds one (the stream driver then attaches the new
    map to the message).  ``writable`` is True only in the window the host allows
    (the trailers hook or the last body callback with end_of_stream, holds included).
    """

    __slots__ = ("fields", "writable")

    def __init__(self, fields: CIMultiDict[str] | None) -> None:
        self.fields = fields
        self.writable = False

    def __len__(self) -> int:
        return 0 if self.fields is None else len(self.fields)

    def _target(self) -> CIMultiDict[str]:
        if self.fields is None:
            self.fields = CIMultiDict()
        return self.fields

    def pairs(self) -> list[tuple[str, str]]:
        fields = self.fields
        return [] if fields is None else [(k.lower(), v) for k, v in fields.items()]

    def get(self, key: str) -> str | None:
        return None if self.fields is None else self.fields.get(key)

    def add(self, key: str, value: str) -> None:
        if key[:1] == ":":
            raise ValueError("pseudo-header in trailers")
        self._target().add(key.lower(), value)

    def replace(self, key: str, value: str) -> None:
        if key[:1] == ":":
            raise ValueError("pseudo-header in trailers")
        self._target()[key.lower()] = value

    def remove(self, key: str) -> None:
        if self.fields is not None:
            self.fields.popall(key, None)

    def set_pairs(self, pairs: list[tuple[str, str]]) -> None:
        if any(k[:1] == ":" for k, _ in pairs):
            raise ValueError("pseudo-header in trailers")
        fields = self._target()
        fields.clear()
        for k, v in pairs:
            fields.add(k.lower(), v)


class _MessageHeaders(HeaderMap):
    _pseudo: tuple[str, ...] = ()

    def __init__(self, headers: CIMultiDict[str]) -> None:
        self.headers = headers

    def _get_pseudo(self, key: str) -> str:
        raise NotImplementedError

    def _set_pseudo(self, key: str, value: str) -> None:
        raise NotImplementedError

    def pairs(self) -> list[tuple[str, str]]:
        out = [(k, self._get_pseudo(k)) for k in self._pseudo]
        out.extend((k.lower(), v) for k, v in self.headers.items() if not self._hidden(k))
        return out

    def _hidden(self, key: str) -> bool:
        return False

    def _alias(self, key: str) -> str:
        return key.lower()

    def get(self, key: str) -> str | None:
        key = self._alias(key)
        if key in self._pseudo:
            return self._get_pseudo(key)
        return self.headers.get(key)

    def add(self, key: str, value: str) -> None:
        key = self._alias(key)
        if key in self._pseudo:
            self._set_pseudo(key, value)
        else:
            self.headers.add(key, value)

    def replace(self, key: str, value: str) -> None:
        key = self._alias(key)
        if key in self._pseudo:
            self._set_pseudo(key, value)
        else:
            self.headers[key] = value

    def remove(self, key: str) -> None:
        key = self._alias(key)
        if key not in self._pseudo:
            self.headers.popall(key, None)

    def set_pairs(self, pairs: list[tuple[str, str]]) -> None:
        for k in list(self.headers.keys()):
            if not self._hidden(k):
                self.headers.popall(k, None)
        for k, v in pairs:
            self.add(k, v)


class RequestHeaders(_MessageHeaders):
    _pseudo = (":method", ":path", ":authority", ":scheme")

    def __init__(self, request: Request) -> None:
        super().__init__(request.headers)
        self.request = request

    def _alias(self, key: str) -> str:
        key = key.lower()
        return ":authority" if key == "host" else key

    def _hidden(self, key: str) -> bool:
        return key.lower() == "host"

    def pairs(self) -> list[tuple[str, str]]:
        r = self.request
        headers = r.headers
        out = [(":method", r.method), (":path", r.target), (":authority", headers.get("host", "")),
               (":scheme", r.scheme)]
        for k, v in headers.items():
            k = k.lower()
            if k != "host":
                out.append((k, v))
        return out

    def get(self, key: str) -> str | None:
        key = key.lower()
        if key == "host":  # the :authority entry itself ("" without a Host field, as in the map)
            return self._get_pseudo(":authority")
        if key[:1] != ":":
            return self.headers.get(key)
        if key in self._pseudo:
            return self._get_pseudo(key)
        return None

    def _get_pseudo(self, key: str) -> str:
        r = self.request
        if key == ":method":
            return r.method
        if key == ":path":
            return r.target
        if key == ":authority":
            return r.headers.get("host", "")
        return r.scheme

    def _set_pseudo(self, key: str, value: str) -> None:
        r = self.request
        if key == ":method":
            r.method = value
        elif key == ":path":
            r.set_target(value)
        elif key == ":authority":
            r.headers["Host"] = value
        else:
            r.scheme = value


class ResponseHeaders(_MessageHeaders):
    _pseudo = (":status",)

    def __init__(self, response: Response) -> None:
        super().__init__(response.headers)
        self.response = response

    def pairs(self) -> list[tuple[str, str]]:
        out = [(":status", str(self.response.status))]
        out.extend((k.lower(), v) for k, v in self.headers.items())
        return out

    def get(self, key: str) -> str | None:
        key = key.lower()
        if key == ":status":
            return str(self.response.status)
        return None if key[:1] == ":" else self.headers.get(key)

    def _get_pseudo(self, key: str) -> str:
        return str(self.response.status)

    def _set_pseudo(self, key: str, value: str) -> None:
        if not (value.isdigit() and 100 <= int(value) <= 999):
            raise ValueError(f"bad :status {value!r}")
        self.response.status = int(value)


class RootContext:
    """The plugin's root context: configuration, ticks, callouts and queues."""

    __slots__ = ("id", "tick_handle", "tick_ms")
    is_root = True

    def __init__(self, context_id: int) -> None:
        self.id = context_id
        self.tick_handle: asyncio.TimerHandle | None = None
        self.tick_ms = 0


class _StreamDefaults:
    """A stream's state that most streams never change: read from the class until set."""

    response: Response | None = None
    response_block: HeaderBlock | None = None
    #: set_buffer_bytes changed the body buffer during the current body callback
    body_modified = False
    response_headers_open = False
    #: the response headers callback ran (response_phase.py)
    response_started = False
    #: the body callback of an in-memory response ran with the headers (and held)
    response_body_delivered = False
    #: final phase: every header map readable, nothing writable
    in_log = False
    #: buffered body visible as buffer 0/1 during the body callbacks
    request_body: bytearray | None = None
    response_body: bytearray | None = None
    local_response: Response | None = None
    closed = False
    #: the stream phase currently held by a Stop* result ("request"/"response")
    paused: str | None = None
    #: what kind of hold it is (holds.py)
    hold = Hold.NONE
    resume: "asyncio.Future[None] | None" = None
    #: continue_stream() arrived during the callback that paused
    continued = False
    done_pending = False
    finished = False
    #: maps 1/3 once the body they end is over (None before, and read as empty)
    request_trailers: TrailerFields | None = None
    response_trailers: TrailerFields | None = None


class StreamContext(_StreamDefaults):
    """One HTTP stream's state as the host functions see it."""

    __slots__ = ("id", "root", "exchange", "request", "request_block", "request_headers_open")
    is_root = False

    def __init__(self, context_id: int, root: RootContext, exchange: "Exchange") -> None:
        self.id = context_id
        self.root = root
        self.exchange = exchange
        request = self.request = exchange.request
        maps = exchange.wasm_maps
        if maps is None:
            maps = exchange.wasm_maps = [None, None]
        block = maps[0]
        if block is None or block.message is not request:
            block = maps[0] = HeaderBlock(request, True)
        #: map 0 serialised (host core); writes go through its view
        self.request_block = block
        #: request headers readable/writable (request-header phase, or paused in it)
        self.request_headers_open = True

    @property
    def request_view(self) -> RequestHeaders:
        return self.request_block.view  # type: ignore[no-any-return]

    @property
    def response_view(self) -> ResponseHeaders | None:
        block = self.response_block
        return None if block is None else block.view  # type: ignore[no-any-return]

    def set_response(self, response: Response) -> None:
        self.response = response
        maps = self.exchange.wasm_maps
        block = maps[1]  # type: ignore[index]
        if block is None or block.message is not response:
            block = maps[1] = HeaderBlock(response, False)  # type: ignore[index]
        self.response_block = block

    def resume_stream(self, phase: str) -> None:
        """continue_stream/close_stream/local reply: release a held phase."""
        if self.resume is not None and not self.resume.done() and self.paused == phase:
            self.resume.set_result(None)
        else:
            self.continued = True


set_view_types(RequestHeaders, ResponseHeaders)  # the views HeaderBlock writes through
