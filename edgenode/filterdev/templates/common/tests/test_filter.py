"""pytest tests for the {{name}} filter, using edgenode's `filter` fixture.

The fixture loads the .wasm and config named in ../filter.toml (build first:
`edgenode filter build`) and sends requests with no network: the origin is synthesised.
"""

from edgenode.filterdev import OriginReply


def test_greets_and_tags_upstream(filter):
    resp = filter.request("GET", "/a", headers={"accept": "text/plain"})
    assert resp.status == 200
    assert resp.headers["x-greeting"] == "hello from {{name}}"
    assert resp.origin_request.headers["x-filter"] == "{{name}}"
    assert any("allowed /a" in e.message for e in resp.logs)
    assert "request_headers" in resp.timings


def test_denies_private_paths_locally(filter):
    resp = filter.request("GET", "/private/x")
    assert resp.status == 403
    assert resp.body == b"denied\n"
    assert resp.origin_request is None


def test_passes_origin_errors_through(filter):
    resp = filter.request("GET", "/b", origin=OriginReply(status=503, body="down"))
    assert resp.status == 503 and resp.text == "down"
