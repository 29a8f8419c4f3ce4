"""The chain as data: synchronous steps, awaitables only where a stage waits, stages with
only the ``wrap`` contract, and the import layering the request path relies on."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

from edgenode.http.messages import CIMultiDict, Request, Response
from edgenode.pipeline.chain import Chain, Next, Outcome, settle
from edgenode.pipeline.exchange import Exchange
from edgenode.pipeline.stage import Handler, build_chain

ROOT = Path(__file__).resolve().parents[2] / "edgenode"


class Tag:
    """A stage with a step: adds its name to the request on the way in, the response on
    the way out; ``answer`` replies without calling the rest."""

    def __init__(self, name: str, answer: bool = False) -> None:
        self.name = name
        self.answer = answer

    def handle(self, exchange: Exchange, rest: Next) -> Outcome:
        exchange.request.headers.add("x-in", self.name)
        if self.answer:
            return Response(200, CIMultiDict({"x-out": self.name}), b"local")
        out = rest(exchange)
        if isinstance(out, Response):
            out.headers.add("x-out", self.name)
            return out
        return self._later(out)

    async def _later(self, pending: "asyncio.Future[Response]") -> Response:
        response = await pending
        response.headers.add("x-out", self.name)
        return response


class Wrapped:
    """A stage with only the ``wrap`` contract."""

    name = "wrapped"

    def wrap(self, next_handler: Handler) -> Handler:
        async def handle(exchange: Exchange) -> Response:
            exchange.request.headers.add("x-in", self.name)
            response = await next_handler(exchange)
            response.headers.add("x-out", self.name)
            return response
        return handle


async def origin(exchange: Exchange) -> Response:
    await asyncio.sleep(0)
    return Response(200, CIMultiDict(), b"origin")


def exchange() -> Exchange:
    return Exchange(Request("GET", "/", CIMultiDict({"Host": "example.com"})))


async def test_a_local_answer_is_synchronous_and_passes_the_outer_stages() -> None:
    chain = Chain([Tag("a"), Tag("b", answer=True), Tag("c")], origin)
    ex = exchange()
    out = chain(ex)
    assert isinstance(out, Response) and out.body == b"local"
    assert out.headers.getall("x-out") == ["b", "a"]  # response work in reverse order
    assert ex.request.headers.getall("x-in") == ["a", "b"]  # c never ran


async def test_the_origin_makes_it_awaitable_through_every_kind_of_stage() -> None:
    chain = Chain([Tag("a"), Wrapped(), Tag("c")], origin)
    ex = exchange()
    out = chain(ex)
    assert not isinstance(out, Response)
    response = await settle(out)
    assert response.body == b"origin" and response.headers.getall("x-out") == ["c", "wrapped", "a"]
    assert ex.request.headers.getall("x-in") == ["a", "wrapped", "c"]
    handler = build_chain([Tag("a", answer=True)], origin)  # the async contract: always awaitable
    assert (await handler(exchange())).body == b"local"


class Streamed:
    """A stage that opens a stream around the rest (``Opens``), logging its calls in
    ``log``; ``reply``: its request side answers (a local reply), ``pause``: its request
    side waits, then goes on with the rest itself."""

    def __init__(self, name: str, log: list[str], reply: bool = False, pause: bool = False) -> None:
        self.name, self.log, self.reply, self.pause = name, log, reply, pause

    def handle(self, exchange: Exchange, rest: Next) -> Outcome:
        """The nested step (a stream after one that went on by itself)."""
        steps = self.open_stream(exchange)
        out = steps.enter(rest)
        return out if out is not None else steps.around(rest(exchange))

    def open_stream(self, exchange: Exchange) -> "Streamed._Steps":
        return Streamed._Steps(self, exchange)

    class _Steps:
        def __init__(self, stage: "Streamed", exchange: Exchange) -> None:
            self.stage, self.ex = stage, exchange

        def enter(self, rest: Next) -> Outcome | None:
            self.stage.log.append(f"enter {self.stage.name}")
            if self.stage.reply:
                return Response(403, CIMultiDict(), b"no")
            if self.stage.pause:
                return self._later(rest)
            return None

        async def _later(self, rest: Next) -> Response:
            await asyncio.sleep(0)
            response = await settle(rest(self.ex))
            self.stage.log.append(f"around {self.stage.name}")
            return response

        def around(self, outcome: Outcome) -> Outcome:
            self.stage.log.append(f"around {self.stage.name}")
            return outcome

        def abort(self) -> None:
            self.stage.log.append(f"abort {self.stage.name}")


class Hits(Tag):
    """A tag stage that answers "/hit" by itself (``hit_response``)."""

    def hit_response(self, exchange: Exchange) -> Response | None:
        if exchange.request.target != "/hit":
            return None
        return Response(200, CIMultiDict(), b"hit")


async def test_leading_streams_run_flat_around_the_rest() -> None:
    log: list[str] = []
    chain = Chain([Streamed("a", log), Streamed("b", log), Hits("cache")], origin)
    ex = Exchange(Request("GET", "/hit", CIMultiDict({"Host": "example.com"})))
    out = chain(ex)
    assert isinstance(out, Response) and out.body == b"hit" and "x-in" not in ex.request.headers
    assert log == ["enter a", "enter b", "around b", "around a"]
    log.clear()
    response = await settle(chain(exchange()))  # declined: the stage's own step, then the origin
    assert response.body == b"origin" and response.headers.getall("x-out") == ["cache"]
    assert log == ["enter a", "enter b", "around b", "around a"]


async def test_a_stream_that_does_not_continue_goes_on_by_itself() -> None:
    log: list[str] = []
    chain = Chain([Streamed("a", log), Streamed("b", log, reply=True), Streamed("c", log)], origin)
    out = chain(exchange())
    assert isinstance(out, Response) and out.status == 403
    assert log == ["enter a", "enter b", "around a"]  # c never entered, b's reply wraps a
    log.clear()
    chain = Chain([Streamed("a", log), Streamed("b", log, pause=True), Streamed("c", log)], origin)
    response = await settle(chain(exchange()))
    assert response.body == b"origin"
    assert log == ["enter a", "enter b", "around a", "enter c", "around c", "around b"]


async def test_a_failing_rest_aborts_the_streams_that_entered() -> None:
    log: list[str] = []

    def broken(exchange: Exchange) -> Response:
        raise RuntimeError("boom")

    chain = Chain([Streamed("a", log), Streamed("b", log)], broken)  # type: ignore[arg-type]
    try:
        chain(exchange())
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failure must propagate")
    assert log == ["enter a", "enter b", "abort a", "abort b"]


async def test_one_leading_stream_runs_the_same_steps_as_several() -> None:
    log: list[str] = []

    def broken(exchange: Exchange) -> Response:
        raise RuntimeError("boom")

    chain = Chain([Streamed("a", log), Hits("cache")], origin)
    ex = Exchange(Request("GET", "/hit", CIMultiDict({"Host": "example.com"})))
    out = chain(ex)
    assert isinstance(out, Response) and out.body == b"hit"
    assert log == ["enter a", "around a"]
    log.clear()
    response = await settle(chain(exchange()))  # declined: the stage's own step, then the origin
    assert response.body == b"origin" and response.headers.getall("x-out") == ["cache"]
    assert log == ["enter a", "around a"]
    log.clear()
    out = Chain([Streamed("a", log, reply=True), Tag("b")], origin)(exchange())
    assert isinstance(out, Response) and out.status == 403 and log == ["enter a"]
    log.clear()
    response = await settle(Chain([Streamed("a", log, pause=True), Tag("b")], origin)(exchange()))
    assert response.body == b"origin" and log[0] == "enter a" and log[-1] == "around a"
    log.clear()
    try:
        Chain([Streamed("a", log)], broken)(exchange())  # type: ignore[arg-type]
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failure must propagate")
    assert log == ["enter a", "abort a"]


def _modules() -> set[str]:
    """Every edgenode module and package, C extensions included."""
    names = {".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
             for p in ROOT.rglob("*.py")}
    return names | {".".join(p.relative_to(ROOT.parent).parent.parts + (p.name.split(".")[0],))
                    for p in ROOT.rglob("*.so")}


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Modules ``path`` imports at run time (``TYPE_CHECKING`` blocks left out); ``from
    package import module`` counts as the module only."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for h in node.handlers:
                    visit(h.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES
                found.update(subs)
                if len(subs) < len(node.names):
                    found.add(node.module)
    visit(ast.parse(path.read_text()).body)
    return {m for m in found if m.startswith("edgenode.")}


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_layering_of_the_request_path() -> None:
    """http (messages, protocol helpers, origin client) <- pipeline <- the stages and the
    front end: no lower package imports a higher one."""
    above = {"edgenode.http": {"edgenode.pipeline", "edgenode.frontend", "edgenode.wasm", "edgenode.cache",
                               "edgenode.proxy"},
             "edgenode.pipeline": {"edgenode.frontend", "edgenode.wasm", "edgenode.cache", "edgenode.proxy"}}
    wrong = []
    for package, forbidden in above.items():
        for path in (ROOT / package.split(".")[1]).rglob("*.py"):
            wrong += [f"{path.relative_to(ROOT)} imports {m}" for m in _imports(path)
                      if _package(m) in forbidden]
    assert wrong == []


def test_no_import_cycles_between_modules() -> None:
    modules = {".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in ROOT.rglob("*.py")}
    graph = {name: {m for m in _imports(path) if m in modules and m != name}
             for name, path in modules.items()}
    state: dict[str, int] = {}
    cycles: list[str] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                walk(dep, stack + [dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert cycles == []
