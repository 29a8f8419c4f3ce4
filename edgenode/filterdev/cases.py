"""Case files for ``edgenode filter test``: requests, synthesised origin replies, expectations.

A case file is YAML (``.yaml``/``.yml``) or JSON::

    filter: ../build/hello.wasm        # optional here: --filter or filter.toml may give it
    config: {greeting: hi}             # string, or a mapping sent as JSON
    root_id: hello
    cases:
      - name: greets
        request: {method: GET, path: /a, headers: {x-name: bob}}
        origin: {status: 200, headers: {content-type: text/plain}, body: "hello"}
        expect:
          status: 200
          headers: {x-greeting: "hi bob", x-secret: null}   # null: must be absent
          body_contains: [hello]
          origin_request: {path: /a, headers: {x-filter: hello}}

Parsing is pure (no I/O past reading the file); every problem names the file and the
dotted key.  Each case runs on a fresh ``FilterHarness`` so cases cannot leak state
into each other and a file's results do not depend on case order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgenode.config import ConfigError
from edgenode.filterdev.harness import FIXED_EPOCH_NS, FilterHarness, FilterResponse, OriginReply
from edgenode.filterdev.project import config_text
from edgenode.http.messages import CIMultiDict

__all__ = ["Case", "CaseFile", "CaseResult", "load_cases", "parse_cases", "run_case", "check",
           "print_result"]

_FILE_KEYS = {"filter", "config", "root_id", "options", "seed", "clock_ns", "upstreams", "cases"}
_CASE_KEYS = {"name", "request", "origin", "expect"}
_REQUEST_KEYS = {"method", "path", "headers", "body", "host"}
_REPLY_KEYS = {"status", "headers", "body"}
_EXPECT_KEYS = {"status", "headers", "body", "body_contains", "body_excludes", "origin_called",
                "origin_request", "logs_contain", "callbacks"}
_ORIGIN_EXPECT_KEYS = {"method", "path", "target", "headers", "body", "body_contains"}


@dataclass
class Case:
    name: str
    method: str
    path: str
    headers: dict[str, str]
    body: str
    host: str
    origin: OriginReply
    expect: dict[str, Any]


@dataclass
class CaseFile:
    path: Path
    cases: list[Case]
    filter: Path | None = None
    config: str | None = None
    root_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    clock_ns: int = FIXED_EPOCH_NS
    upstreams: dict[str, OriginReply] = field(default_factory=dict)


@dataclass
class CaseResult:
    name: str
    failures: list[str]
    response: FilterResponse | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


def print_result(result: CaseResult) -> bool:
    """Print a case's PASS/FAIL line (and its failures); True when it passed."""
    print(f"  {'PASS' if result.passed else 'FAIL'}  {result.name}")
    for f in result.failures:
        print(f"        - {f}")
    return result.passed


# --- parsing -------------------------------------------------------------------------
def _keys(obj: Any, allowed: set[str], key: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(obj).__name__}")
    for k in obj:
        if k not in allowed:
            raise ConfigError(f"{key}.{k}: unknown key (known: {', '.join(sorted(allowed))})")
    return obj


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    return value


def _header_map(value: Any, key: str, allow_null: bool) -> dict[str, str | None]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping of header name to value")
    out: dict[str, str | None] = {}
    for k, v in value.items():
        if v is None and allow_null:
            out[str(k)] = None
        elif isinstance(v, (str, int, float)) and not isinstance(v, bool):
            out[str(k)] = str(v)
        else:
            raise ConfigError(f"{key}.{k}: expected a string{' or null' if allow_null else ''}, got {v!r}")
    return out


def _str_list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ConfigError(f"{key}: expected a string or a list of strings")


def _reply(value: Any, key: str) -> OriginReply:
    spec = _keys(value, _REPLY_KEYS, key)
    return OriginReply(status=_int(spec.get("status", 200), f"{key}.status"),
                       headers=_header_map(spec.get("headers", {}), f"{key}.headers", False),
                       body=_str(spec.get("body", "ok\n"), f"{key}.body"))


def _expect(value: Any, key: str) -> dict[str, Any]:
    spec = dict(_keys(value, _EXPECT_KEYS, key))
    if "status" in spec:
        _int(spec["status"], f"{key}.status")
    if "headers" in spec:
        spec["headers"] = _header_map(spec["headers"], f"{key}.headers", True)
    if "body" in spec:
        _str(spec["body"], f"{key}.body")
    for k in ("body_contains", "body_excludes", "logs_contain", "callbacks"):
        if k in spec:
            spec[k] = _str_list(spec[k], f"{key}.{k}")
    if "origin_called" in spec and not isinstance(spec["origin_called"], bool):
        raise ConfigError(f"{key}.origin_called: expected true or false")
    if "origin_request" in spec:
        o = dict(_keys(spec["origin_request"], _ORIGIN_EXPECT_KEYS, f"{key}.origin_request"))
        for k in ("method", "path", "target", "body"):
            if k in o:
                _str(o[k], f"{key}.origin_request.{k}")
        if "headers" in o:
            o["headers"] = _header_map(o["headers"], f"{key}.origin_request.headers", True)
        if "body_contains" in o:
            o["body_contains"] = _str_list(o["body_contains"], f"{key}.origin_request.body_contains")
        spec["origin_request"] = o
    return spec


def parse_cases(data: Any, path: Path) -> CaseFile:
    """Validate a parsed case document (a mapping with ``cases``, or a bare list)."""
    where = str(path)
    if isinstance(data, list):
        data = {"cases": data}
    top = _keys(data, _FILE_KEYS, where)
    raw_cases = top.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise ConfigError(f"{where}: cases: expected a non-empty list")
    out = CaseFile(path=path, cases=[])
    if "filter" in top:
        out.filter = path.parent / _str(top["filter"], f"{where}: filter")
    if "config" in top:
        out.config = config_text(top["config"], f"{where}: config")
    if "root_id" in top:
        out.root_id = _str(top["root_id"], f"{where}: root_id")
    if "options" in top:
        if not isinstance(top["options"], dict):
            raise ConfigError(f"{where}: options: expected a mapping of wasm stage options")
        out.options = top["options"]
    out.seed = _int(top.get("seed", 0), f"{where}: seed")
    out.clock_ns = _int(top.get("clock_ns", FIXED_EPOCH_NS), f"{where}: clock_ns")
    ups = top.get("upstreams", {})
    if not isinstance(ups, dict):
        raise ConfigError(f"{where}: upstreams: expected a mapping of name to reply")
    out.upstreams = {n: _reply(v, f"{where}: upstreams.{n}") for n, v in ups.items()}
    for i, raw in enumerate(raw_cases):
        key = f"{where}: cases[{i}]"
        c = _keys(raw, _CASE_KEYS, key)
        req = _keys(c.get("request", {}), _REQUEST_KEYS, f"{key}.request")
        path_ = _str(req.get("path", "/"), f"{key}.request.path")
        if not path_.startswith("/"):
            raise ConfigError(f"{key}.request.path: must start with '/', got {path_!r}")
        method = _str(req.get("method", "GET"), f"{key}.request.method").upper()
        headers = _header_map(req.get("headers", {}), f"{key}.request.headers", False)
        out.cases.append(Case(
            name=_str(c.get("name", f"case {i + 1}: {method} {path_}"), f"{key}.name"),
            method=method, path=path_, headers=headers,  # type: ignore[arg-type]
            body=_str(req.get("body", ""), f"{key}.request.body"),
            host=_str(req.get("host", "example.com"), f"{key}.request.host"),
            origin=_reply(c["origin"], f"{key}.origin") if "origin" in c else OriginReply(),
            expect=_expect(c.get("expect", {}), f"{key}.expect")))
    return out


def load_cases(path: Path) -> CaseFile:
    """Read a .yaml/.yml/.json case file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    else:
        raise ConfigError(f"{path}: expected a .yaml, .yml or .json case file")
    return parse_cases(data, path)


# --- checking --------------------------------------------------------------------------
def _check_headers(have: CIMultiDict[str], want: dict[str, str | None], what: str) -> list[str]:
    out = []
    for name, value in want.items():
        values = have.getall(name, [])
        if value is None:
            if values:
                out.append(f"{what} {name}: expected absent, got {values[0]!r}")
        elif value not in values:
            out.append(f"{what} {name}: expected {value!r}, got "
                       + (repr(values[0]) if len(values) == 1 else repr(values) if values else "nothing"))
    return out


def check(resp: FilterResponse, expect: dict[str, Any]) -> list[str]:
    """Every way ``resp`` differs from ``expect`` (empty: the case passes)."""
    failures: list[str] = []
    if resp.error is not None:
        failures.append(f"filter failed: {resp.error}")
    if "status" in expect and resp.status != expect["status"]:
        failures.append(f"status: expected {expect['status']}, got {resp.status}")
    failures += _check_headers(resp.headers, expect.get("headers", {}), "response header")
    if "body" in expect and resp.text != expect["body"]:
        failures.append(f"body: expected {expect['body']!r}, got {resp.text[:200]!r}")
    for frag in expect.get("body_contains", []):
        if frag not in resp.text:
            failures.append(f"body: expected to contain {frag!r}, got {resp.text[:200]!r}")
    for frag in expect.get("body_excludes", []):
        if frag in resp.text:
            failures.append(f"body: expected not to contain {frag!r}")
    want_called = expect.get("origin_called", True if "origin_request" in expect else None)
    if want_called is not None and resp.origin_called != want_called:
        failures.append("origin: expected the request to reach the origin, but the filter answered"
                        if want_called else
                        "origin: expected a local reply, but the request reached the origin")
    seen = resp.origin_request
    if seen is not None and "origin_request" in expect:
        o = expect["origin_request"]
        for k, actual in (("method", seen.method), ("path", seen.path), ("target", seen.target)):
            if k in o and actual != o[k]:
                failures.append(f"origin request {k}: expected {o[k]!r}, got {actual!r}")
        failures += _check_headers(seen.headers, o.get("headers", {}), "origin request header")
        body = seen.body.decode("utf-8", "replace")
        if "body" in o and body != o["body"]:
            failures.append(f"origin request body: expected {o['body']!r}, got {body[:200]!r}")
        for frag in o.get("body_contains", []):
            if frag not in body:
                failures.append(f"origin request body: expected to contain {frag!r}, got {body[:200]!r}")
    for frag in expect.get("logs_contain", []):
        if not any(frag in e.message for e in resp.logs):
            failures.append(f"logs: no message contains {frag!r}")
    phases = [ev.phase for ev in resp.callbacks if ev.phase is not None]
    for phase in expect.get("callbacks", []):
        if phase not in phases:
            failures.append(f"callbacks: expected {phase!r} to run, ran {phases}")
    return failures


def run_case(case: Case, file: CaseFile, wasm: Path, config: str, root_id: str,
             options: dict[str, Any]) -> CaseResult:
    """Run one case on a fresh harness (load errors propagate: they are not case failures)."""
    with FilterHarness(wasm, config, root_id=root_id, origin=case.origin, upstreams=file.upstreams,
                       clock_ns=file.clock_ns, seed=file.seed, options=options) as harness:
        resp = harness.request(case.method, case.path, headers=case.headers, body=case.body,
                               host=case.host)
    return CaseResult(case.name, check(resp, case.expect), resp)
