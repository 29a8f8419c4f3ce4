"""What a fleet version carries besides modules: a wasm stage's `files` (the WAF's
SecLang rule files) and function stages' components, uploaded by digest and
materialised on every node."""

from __future__ import annotations

from pathlib import Path

from edgenode.config import StageConfig
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.fleetconfig import FleetDoc
from edgenode.fleet.natsserver import NatsServer
from edgenode.fleet.rollout import publish

from fleet_support import FLEET_KEY, SITE, Deadline, get, rolled_out  # noqa: E402

KEY = FLEET_KEY.encode()
REPO = Path(__file__).resolve().parents[2]
WAF = REPO / "filters" / "build" / "waf.wasm"
HELLO_C = REPO / "edgenode" / "functions" / "examples" / "build" / "hello-c.wasm"


def waf_chain(rules: Path) -> list[StageConfig]:
    return [StageConfig("wasm", "waf", {"module": str(WAF), "files": {"site": str(rules)}, "cpu_deadline_ms": 2000,
                                        "config": {"mode": "block", "directives": ["Include site/*.conf"]}}),
            StageConfig("cache", "cache")]


def rule(n: int, word: str) -> str:
    return f'SecRule REQUEST_URI "@contains {word}" "id:{n},phase:1,deny,status:403,log,msg:\'{word}\'"\n'


async def test_rollout_of_a_changed_waf_rule_file_blocks_on_every_node(nats_server: NatsServer, make_fleet_node,
                                                                       operator: ControlBus, tmp_path: Path,
                                                                       module_cache: Path) -> None:
    deadline = Deadline()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.conf").write_text("SecRuleEngine On\n" + rule(1001, "forbidden-a"))
    nodes = [await make_fleet_node(nats_server.url, f"waf-{i}", tier="shield", chain=waf_chain(rules))
             for i in range(2)]
    for n in nodes:
        assert (await get(n.port, "/obj/forbidden-a?size=10", Host=SITE))[0] == 403
        assert (await get(n.port, "/obj/forbidden-b?size=10", Host=SITE))[0] == 200

    # the operator changes the rule file on their machine and rolls it out
    (rules / "site.conf").write_text("SecRuleEngine On\n" + rule(1001, "forbidden-a") + rule(1002, "forbidden-b"))
    version = await publish(operator, KEY, FleetDoc(chain=waf_chain(rules)), Path("/"))
    rows = await rolled_out(operator, version, deadline, {"waf-0", "waf-1"})
    assert all(r["version"] == version for r in rows), rows
    for n in nodes:
        assert (await get(n.port, "/obj/forbidden-b?size=11", Host=SITE))[0] == 403
        assert (await get(n.port, "/obj/forbidden-a?size=11", Host=SITE))[0] == 403
        assert (await get(n.port, "/obj/allowed?size=11", Host=SITE))[0] == 200
        # the node reads the rules the version carried, not the operator's directory
        files = n.filters["waf"].opts.files
        assert files and all(module_cache / "fleet-files" in f.parents for f in files), files

    # a rule file that does not compile: refused with the file and line, the old rules stay
    (rules / "site.conf").write_text("SecRuleEngine On\nSecRule ARGS\n")
    bad = await publish(operator, KEY, FleetDoc(chain=waf_chain(rules)), Path("/"))
    rows = await rolled_out(operator, bad, deadline, {"waf-0", "waf-1"})
    for r in rows:
        assert r["version"] == version and "site/site.conf:2" in r["refused"]["reason"], r["refused"]
    for n in nodes:
        assert (await get(n.port, "/obj/forbidden-b?size=12", Host=SITE))[0] == 403


async def test_rollout_of_a_function_stage_uploads_its_component(nats_server: NatsServer, make_fleet_node,
                                                                 operator: ControlBus, module_cache: Path) -> None:
    def chain(prefix: str) -> list[StageConfig]:
        return [StageConfig("function", "hello", {"component": str(HELLO_C), "match": {"path_prefix": prefix}}),
                StageConfig("cache", "cache")]

    deadline = Deadline()
    node = await make_fleet_node(nats_server.url, "fn-0", tier="shield", chain=chain("/fn/a/"))
    assert (await get(node.port, "/fn/a/hello", Host=SITE))[2] == b"hello from c\n"
    version = await publish(operator, KEY, FleetDoc(chain=chain("/fn/b/")), Path("/"))
    rows = await rolled_out(operator, version, deadline, {"fn-0"})
    assert rows[0]["version"] == version, rows
    assert (await get(node.port, "/fn/b/hello", Host=SITE))[2] == b"hello from c\n"
    assert (await get(node.port, "/fn/a/hello", Host=SITE))[0] == 404  # now the origin's
    component = node.functions["hello"].opts.component
    assert component.parent == module_cache / "fleet-modules" and component.read_bytes() == HELLO_C.read_bytes()
    assert rows[0]["modules"]["hello"].startswith("sha256:")
