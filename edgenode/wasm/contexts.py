"""Root and stream contexts, and the header-map views the host functions act on.

A stream context holds its messages' maps serialised (``native.HeaderBlock``, read by the
host core) over the views below (through which every write goes), each made when a call
first needs it (a read of a request field or a write of an ordinary field needs none); the
blocks live on the Exchange, so the filters of one stream share them until one changes a map.

A view adapts one of the node's messages to Proxy-Wasm map semantics: lower-case
names, pseudo-headers as ordinary entries (``:method :path :authority :scheme`` on
requests, ``:status`` on responses), ``get`` returning the first value.  ``Host`` is
the ``:authority`` entry (as in Envoy); the name ``host`` is accepted as an alias.
"""

from __future__ import annotations

import asyncio

from edgenode.http.messages import CIMultiDict, RawRequest, Request, Response
from edgenode.wasm.holds import Hold
from edgenode.wasm.native import StreamCore, set_view_types

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
    """A stream's state that most streams never set: read from the class until set (the
    hot fields are native.StreamCore's)."""

    #: set_buffer_bytes changed the body buffer during the current body callback
    body_modified = False
    #: the body callback of an in-memory response ran with the headers (and held)
    response_body_delivered = False
    #: what kind of hold it is (holds.py)
    hold_kind = Hold.NONE
    resume: "asyncio.Future[None] | None" = None
    #: maps 1/3 once the body they end is over (None before, and read as empty)
    request_trailers: TrailerFields | None = None
    response_trailers: TrailerFields | None = None


class StreamContext(StreamCore, _StreamDefaults):
    """One HTTP stream's state as the host functions see it: ``StreamCore(vm, exchange)``,
    then ``register()`` (the driver, stream.StreamDriver, is the same object)."""

    __slots__ = ()
    is_root = False

    @property
    def request_view(self) -> RequestHeaders:
        return self.request_block.view  # type: ignore[no-any-return]

    @property
    def response_view(self) -> ResponseHeaders | None:
        block = self.response_block
        return None if block is None else block.view  # type: ignore[no-any-return]

    def resume_stream(self, phase: str) -> None:
        """continue_stream/close_stream/local reply: release a held phase."""
        if self.resume is not None and not self.resume.done() and self.paused == phase:
            self.resume.set_result(None)
        else:
            self.continued = True


set_view_types(RequestHeaders, ResponseHeaders, RawRequest)  # the views HeaderBlock writes through
