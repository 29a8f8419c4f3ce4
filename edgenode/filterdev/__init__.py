"""Tools for filter authors: scaffold, build, test (no network), run, inspect.

The Python API (also behind ``edgenode filter test`` and the pytest ``filter`` fixture)::

    from edgenode.filterdev import FilterHarness, OriginReply
    with FilterHarness("build/hello.wasm", config={"greeting": "hi"}) as f:
        resp = f.request("GET", "/a", headers={"accept": "text/html"})
        resp.status, resp.headers, resp.body, resp.origin_request, resp.logs, resp.timings

docs/filter-authors.md walks through the whole workflow.
"""

from edgenode.filterdev.harness import (CallbackEvent, FilterHarness, FilterResponse, LogEntry,
                                        OriginReply, OriginRequest)

__all__ = ["FilterHarness", "FilterResponse", "OriginReply", "OriginRequest", "CallbackEvent",
           "LogEntry"]
