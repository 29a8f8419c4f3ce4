"""`edgenode filter test`: case files replayed through a filter without a network."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest

from edgenode.cli import main
from edgenode.config import ConfigError
from edgenode.filterdev.cases import load_cases
from edgenode.filterdev.harness import FIXED_EPOCH_NS
from edgenode.filterdev.project import Project


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_project_cases_pass_with_no_arguments(c_project: Project, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(c_project.root)
    assert main(["filter", "test"]) == 0
    out = capsys.readouterr().out
    assert "PASS  adds the greeting and tags the upstream request" in out
    assert "2 passed, 0 failed" in out


def test_failures_are_reported_per_case_and_exit_1(c_project: Project, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cases = _write(tmp_path / "cases.yaml", """\
        cases:
          - name: right
            request: {path: /ok}
            expect: {status: 200, headers: {x-greeting: "yo"}}
          - name: wrong status and header
            request: {path: /private/a}
            expect:
              status: 200
              headers: {x-greeting: "nope", content-type: null}
          - name: expected a local reply
            request: {path: /a}
            expect: {origin_called: false, body_contains: [zzz]}
        """)
    rc = main(["filter", "test", str(cases), "--filter", str(c_project.wasm),
               "--config", '{"greeting": "yo"}'])
    out = capsys.readouterr().out
    assert rc == 1
    assert "PASS  right" in out
    assert "FAIL  wrong status and header" in out
    assert "- status: expected 200, got 403" in out
    assert "- response header x-greeting: expected 'nope', got 'yo'" in out
    assert "- response header content-type: expected absent, got 'text/plain'" in out
    assert "- origin: expected a local reply, but the request reached the origin" in out
    assert "- body: expected to contain 'zzz'" in out
    assert "1 passed, 2 failed" in out


def test_clock_and_randomness_are_deterministic(clock_wasm: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rand = int.from_bytes(random.Random(42).randbytes(4), "little")
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({
        "filter": str(clock_wasm), "seed": 42,
        "cases": [{"name": f"run {i}", "request": {"path": "/a"},
                   "expect": {"headers": {"x-now": str(FIXED_EPOCH_NS), "x-rand": str(rand)},
                              "origin_request": {"headers": {"x-rand": str(rand)}},
                              "logs_contain": [f"now={FIXED_EPOCH_NS} rand={rand}"]}}
                  for i in range(2)]}))
    assert main(["filter", "test", str(cases)]) == 0, capsys.readouterr().out
    assert "2 passed, 0 failed" in capsys.readouterr().out


def test_origin_reply_and_request_body_come_from_the_case(c_project: Project, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cases = _write(tmp_path / "c.yml", f"""\
        filter: {c_project.wasm}
        cases:
          - request: {{method: POST, path: /form, body: "a=1", headers: {{content-type: text/plain}}}}
            origin: {{status: 418, headers: {{x-o: "1"}}, body: "teapot"}}
            expect:
              status: 418
              body: teapot
              headers: {{x-o: "1"}}
              origin_request: {{method: POST, body: "a=1", headers: {{x-filter: hello}}}}
              callbacks: [request_headers, response_headers]
        """)
    assert main(["filter", "test", str(cases)]) == 0, capsys.readouterr().out
    assert "PASS  case 1: POST /form" in capsys.readouterr().out


@pytest.mark.parametrize("doc, message", [
    ("cases: []", "cases: expected a non-empty list"),
    ("cases: [{request: {path: /a}, expect: {stauts: 200}}]", "cases[0].expect.stauts: unknown key"),
    ("cases: [{request: {path: a}}]", "cases[0].request.path: must start with '/'"),
    ("cases: [{expect: {status: ok}}]", "cases[0].expect.status: expected an integer, got 'ok'"),
    ("cases: [{", "not valid YAML"),
])
def test_bad_case_files_name_the_key(tmp_path: Path, doc: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(doc)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_cases(path)


def test_cli_errors_exit_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "bad.yaml", "cases: [{expect: {status: ok}}]\n")
    assert main(["filter", "test", str(path), "--filter", "x.wasm"]) == 2
    assert "cases[0].expect.status: expected an integer" in capsys.readouterr().err
    good = _write(tmp_path / "good.yaml", "cases: [{request: {path: /a}}]\n")
    assert main(["filter", "test", str(good), "--filter", str(tmp_path / "missing.wasm")]) == 2
    assert "missing.wasm: no such file" in capsys.readouterr().err
