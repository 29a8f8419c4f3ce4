"""The routing filter (filters/routing) through the real Proxy-Wasm host."""

from __future__ import annotations

import pytest

from edgenode.wasm.engine import FilterLoadError
from tests.filters.conftest import make_stage, origin_ok, request, run_stage

CONFIG = {
    "default_origin": "default",
    "routes": [
        {"name": "fixed", "match": {"path_prefix": "/healthz"},
         "respond": {"status": 200, "body": "ok\n", "headers": {"content-type": "text/plain", "x-r": "1"}}},
        {"name": "moved", "match": {"path_regex": "^/old/([a-z]+)/([0-9]+)$"},
         "redirect": {"status": 308, "location": "https://new.example.com/$2/$1"}},
        {"name": "api", "match": {"host": "*.api.example.com", "path_prefix": "/v1/"},
         "origin": "api", "rewrite": "/v2/$1",
         "request_headers": {"set": {"x-api": "yes"}, "remove": ["cookie"]},
         "response_headers": {"set": {"x-served-by": "api"}, "add": {"x-extra": "1"}, "remove": ["server"]}},
        {"name": "users", "match": {"path_regex": "^/u/([0-9]+)$"}, "origin": "users",
         "rewrite": "/users?id=$1"},
        {"name": "beta", "match": {"host": "shop.example.com", "headers": {"x-beta": "1"}}, "origin": "beta"},
        {"name": "post", "match": {"host": "shop.example.com", "method": ["POST", "PUT"]}, "origin": "writes"},
        {"name": "shop", "match": {"host": ["shop.example.com", "store.example.com"]}, "origin": "shop"},
        {"name": "canary", "match": {"host": "canary.example.com"},
         "split": {"origins": [{"origin": "stable", "weight": 90}, {"origin": "next", "weight": 10}],
                   "sticky_cookie": "uid", "sticky_header": "x-user"}},
    ],
}


@pytest.fixture(scope="module")
def routing_wasm(build_filter):
    return build_filter("routing")


@pytest.fixture
def stage(routing_wasm):
    st = make_stage(routing_wasm, CONFIG, name="routing")
    yield st


async def test_host_wildcard_prefix_rewrite_and_header_edits(stage) -> None:
    terminal, seen = origin_ok(headers={"server": "origin/1"})
    req = request("/v1/items/7?x=1", {"cookie": "a=b"}, host="eu.api.example.com:8080")
    resp, ex = await run_stage([stage], req, terminal)
    assert ex.origin == "api"
    upstream = seen[0].request
    assert upstream.target == "/v2/items/7?x=1"
    assert upstream.headers.get("x-api") == "yes"
    assert "cookie" not in upstream.headers
    assert resp.headers.get("x-served-by") == "api"
    assert resp.headers.get("x-extra") == "1"
    assert "server" not in resp.headers


async def test_wildcard_does_not_match_the_bare_domain(stage) -> None:
    terminal, seen = origin_ok()
    _, ex = await run_stage([stage], request("/v1/items", host="api.example.com"), terminal)
    assert ex.origin == "default"
    assert seen[0].request.target == "/v1/items"


async def test_regex_rewrite_with_captures(stage) -> None:
    terminal, seen = origin_ok()
    _, ex = await run_stage([stage], request("/u/42"), terminal)
    assert ex.origin == "users"
    assert seen[0].request.target == "/users?id=42"


async def test_redirect_builds_location_from_captures_and_keeps_query(stage) -> None:
    terminal, seen = origin_ok()
    resp, _ = await run_stage([stage], request("/old/shoes/99?ref=mail"), terminal)
    assert resp.status == 308
    assert resp.headers["location"] == "https://new.example.com/99/shoes?ref=mail"
    assert seen == []


async def test_fixed_response(stage) -> None:
    terminal, seen = origin_ok()
    resp, _ = await run_stage([stage], request("/healthz"), terminal)
    assert (resp.status, resp.body) == (200, b"ok\n")
    assert resp.headers["x-r"] == "1"
    assert seen == []


@pytest.mark.parametrize("method,headers,origin", [
    ("GET", {}, "shop"),
    ("GET", {"x-beta": "1"}, "beta"),
    ("GET", {"x-beta": "0"}, "shop"),
    ("POST", {}, "writes"),
])
async def test_method_and_header_matching(stage, method, headers, origin) -> None:
    terminal, _ = origin_ok()
    _, ex = await run_stage([stage], request("/cart", headers, method=method, host="shop.example.com"), terminal)
    assert ex.origin == origin


async def test_host_list_and_default_origin(stage) -> None:
    terminal, _ = origin_ok()
    _, ex = await run_stage([stage], request("/", host="STORE.example.com"), terminal)
    assert ex.origin == "shop"
    _, ex = await run_stage([stage], request("/", host="elsewhere.test"), terminal)
    assert ex.origin == "default"


def _fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


async def test_canary_split_is_sticky_and_proportional(stage) -> None:
    terminal, _ = origin_ok()
    keys = [f"user-{i}" for i in range(400)]
    expected = {k: ("stable" if _fnv1a(k.encode()) % 100 < 90 else "next") for k in keys}
    got = {}
    for k in keys:
        _, ex = await run_stage([stage], request("/", {"cookie": f"theme=dark; uid={k}"},
                                                 host="canary.example.com"), terminal)
        got[k] = ex.origin
    assert got == expected
    share = sum(v == "next" for v in got.values()) / len(keys)
    assert 0.05 < share < 0.15
    # the header key is used before the cookie, and the same key always lands the same way
    for k in keys[:20]:
        _, ex = await run_stage([stage], request("/", {"x-user": k, "cookie": "uid=other"},
                                                 host="canary.example.com"), terminal)
        assert ex.origin == expected[k]


async def test_canary_without_a_key_is_random_over_both_origins(stage) -> None:
    terminal, _ = origin_ok()
    seen = set()
    for _ in range(300):
        _, ex = await run_stage([stage], request("/", host="canary.example.com"), terminal)
        seen.add(ex.origin)
    assert seen == {"stable", "next"}


async def test_no_match_answers_404_when_configured(routing_wasm) -> None:
    st = make_stage(routing_wasm, {"no_match": "404", "routes": [{"match": {"path_prefix": "/a/"}, "origin": "a"}]})
    terminal, seen = origin_ok()
    resp, _ = await run_stage([st], request("/b"), terminal)
    assert resp.status == 404
    assert seen == []
    resp, ex = await run_stage([st], request("/a/x"), terminal)
    assert resp.status == 200 and ex.origin == "a"


async def test_no_default_origin_leaves_the_choice_to_the_route_table(routing_wasm) -> None:
    st = make_stage(routing_wasm, {"routes": []})
    terminal, _ = origin_ok()
    _, ex = await run_stage([st], request("/"), terminal)
    assert ex.origin is None


@pytest.mark.parametrize("config,needle", [
    ({"routes": [{"match": {"path_regex": "(["}}]}, "routes[0].match.path_regex: invalid regular expression"),
    ({"routes": [{"match": {"pathprefix": "/"}}]}, "routes[0].match.pathprefix: unknown key"),
    ({"routes": [{}, {"redirect": {"status": 200, "location": "/"}}]}, "routes[1].redirect.status"),
    ({"routes": [{"split": {"origins": [{"origin": "a", "weight": 0}]}}]}, "weights add up to 0"),
    ({"routes": [{"split": {"origins": [{"origin": f"o{i}", "weight": 1000000} for i in range(4295)]}}]},
     "weights add up to more than 2^32-1"),
    ({"no_match": "teapot"}, "no_match: expected"),
    ("{not json", "not valid JSON"),
])
async def test_bad_config_names_the_key(routing_wasm, config, needle) -> None:
    with pytest.raises(FilterLoadError) as info:
        make_stage(routing_wasm, config)
    assert needle in str(info.value)


async def test_json_config_escapes_reach_the_response(routing_wasm) -> None:
    raw = ('{"routes": [{"respond": {"status": 201, "body": "caf\\u00e9 \\ud83d\\ude00\\n\\"q\\"\\t/",'
           ' "headers": {"X-Tab": "a\\u0041"}}}]}')
    st = make_stage(routing_wasm, raw)
    terminal, _ = origin_ok()
    resp, _ = await run_stage([st], request("/"), terminal)
    assert resp.status == 201
    assert resp.body == "café 😀\n\"q\"\t/".encode()
    assert resp.headers["x-tab"] == "aA"
