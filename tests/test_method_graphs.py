"""The contract all four methods share: engines, graphs, streams, errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.errors import GraphInterrupt
from langgraph.graph import END, START, MessagesState, StateGraph

import langchain_speedup
from langchain_speedup import (
    BestOfN,
    ConfigurationError,
    FunctionScorer,
    InvalidInputError,
    LongCoT,
    MemoryContext,
    ModelError,
    ScalingEngine,
    ScalingResult,
    ScoringError,
    SelfRefine,
    TreeOfThoughts,
    create_engine,
)
from tests.fakes import (
    EXEMPLAR,
    QUESTION,
    QUORUM,
    SOLUTION_PATH,
    FailingChatModel,
    FakeChatModel,
    Responder,
    boxed,
    constant,
    has_exemplar,
    invoke,
    refiner,
    solve,
    sum_solver,
    thinker,
    three_steps,
)

UNITS = {
    "best_of_n": "generations",
    "self_refine": "rounds",
    "tree_of_thoughts": "expanded_nodes",
    "long_cot": "reasoning_tokens",
}
EDGES = {  # but START's and END's; `~>` is a conditional edge
    "best_of_n": "prepare>sample sample~>sample sample~>select",
    "self_refine": "prepare>generate generate>score score~>critique critique>revise revise>score score~>select",
    "tree_of_thoughts": "prepare>expand expand>evaluate evaluate>prune prune~>expand prune~>select",
    "long_cot": "prepare>think think~>think think~>probe probe>score score~>think score~>select",
}
NAN = float("nan")
NEVER = FunctionScorer(lambda q, c: 0.0)
OUT_OF_RANGE = FunctionScorer(lambda q, c: 2.0)


def factory(engine: type[ScalingEngine]) -> Any:
    """The engine's graph factory, `create_<method>_graph`."""
    return getattr(langchain_speedup, f"create_{engine.method}_graph")


def solver(responder: Responder) -> FakeChatModel:
    """A fake that stops at `max_tokens` words, as long chain-of-thought needs."""
    return FakeChatModel(responder=responder, honours_max_tokens=True)


@dataclass(frozen=True)
class Case:
    """A method with a quorum of 2 on its scripted solver, which finds 42."""

    engine: type[ScalingEngine]
    responder: Responder
    own_options: dict[str, Any]
    used: int
    """The budget spent when the answer reaches the threshold."""
    events: str
    """The custom stream before `stop`: c a candidate, s a score, S a passing one."""
    answer: str = boxed(42)

    @property
    def method(self) -> str:
        return self.engine.method

    @property
    def options(self) -> dict[str, Any]:
        return {"scorer": QUORUM, **self.own_options}

    def graph(self, model: FakeChatModel, **options: Any) -> Any:
        return factory(self.engine)(model, **self.options, **options)

    async def solve(self, model: FakeChatModel, is_async: bool, **options: Any) -> Any:
        options = {**self.options, **options}
        return await solve(self.engine, model, QUESTION, is_async=is_async, **options)

    def reference(self) -> ScalingResult:
        """The engine's result, run sync on a fresh solver."""
        return self.engine(solver(self.responder), **self.options).run(QUESTION)


CASES = [
    Case(BestOfN, sum_solver, {}, 2, "cscS"),
    Case(SelfRefine, refiner, {}, 3, "cscscS"),
    Case(TreeOfThoughts, three_steps, {"breadth": 2}, 3, "ccssccssccSS", SOLUTION_PATH),
    Case(LongCoT, thinker, {"budget": 100, "segment_tokens": 10}, 30, "cscscS"),
]


@pytest.fixture(params=CASES, ids=lambda case: case.method)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


def without_seconds(result: ScalingResult) -> dict[str, Any]:
    """A result without its wall time, for comparing runs."""
    usage = {k: v for k, v in result["usage"].items() if k != "seconds"}
    return {**result, "usage": usage}


# -- the graph -----------------------------------------------------------------------


def test_graph_edges(case: Case) -> None:
    graph = case.graph(solver(case.responder)).get_graph()
    edges = {
        f"{e.source}{'~' if e.conditional else ''}>{e.target}" for e in graph.edges
    }
    assert edges == {"__start__>prepare", *EDGES[case.method].split(), "select>__end__"}


async def test_graph_output_is_the_run_result(case: Case, is_async: bool) -> None:
    expected = case.reference()
    assert (expected["answer"], expected["final_answer"]) == (case.answer, "42")
    assert expected["stop_reason"] == "threshold"
    assert expected["budget_used"] == case.used
    model = solver(case.responder)
    graph = case.graph(model, name="solver")
    out = await invoke(graph, {"messages": [HumanMessage(QUESTION)]}, is_async=is_async)
    assert set(out) == {"messages", "solver"}
    assert without_seconds(out["solver"]) == without_seconds(expected)
    _, last = out["messages"]
    assert isinstance(last, AIMessage)
    assert (last.name, last.content) == ("solver", case.answer)
    usage = expected["usage"]
    assert usage["generations"] + usage["other_calls"] == len(model.calls)


async def test_graph_streams_each_candidate_score_and_the_stop(
    case: Case, is_async: bool
) -> None:
    result = case.reference()
    graph = case.graph(solver(case.responder))
    inputs = {"messages": [HumanMessage(QUESTION)]}
    if is_async:
        events = [e async for e in graph.astream(inputs, stream_mode="custom")]
    else:
        events = list(graph.stream(inputs, stream_mode="custom"))
    *progress, stop = events
    kinds = ["S" if e.get("passed") else e["event"][0] for e in progress]
    assert "".join(kinds) == case.events
    assert {e["method"] for e in events} == {case.method}
    candidates = list(enumerate(result["candidates"]))
    texts = [(e["index"], e["text"]) for e in progress if e["event"] == "candidate"]
    assert texts == [(i, c["text"]) for i, c in candidates]
    scores = [(e["index"], e["answer"], e["score"]) for e in progress if "score" in e]
    assert scores == [(i, c["answer"], c["score"]) for i, c in candidates]
    closing = ("score", "passed", "stop_reason", "budget_used", "budget_unit")
    assert stop == {
        "method": case.method,
        "event": "stop",
        "answer": result["final_answer"],
        **{key: result[key] for key in closing},
    }


@pytest.mark.parametrize(
    ("engine", "responder", "options", "limit", "used", "calls"),
    [
        # prepare, 7 rounds of one sample, select.
        pytest.param(BestOfN, sum_solver, {}, 10, 7, 7, id="best_of_n"),
        # prepare, generate, score, then 3 steps a round; `select` needs the last.
        pytest.param(SelfRefine, refiner, {}, 12, 3, 5, id="self_refine"),
        # prepare, two expansions of three supersteps, select.
        pytest.param(
            TreeOfThoughts,
            constant("Think about it some more."),
            {"breadth": 1, "max_depth": 100},
            10,
            2,
            2,
            id="tree_of_thoughts",
        ),
        # prepare, 5 segments, then probe, score and select.
        pytest.param(
            LongCoT,
            thinker,
            {"budget": 1000, "segment_tokens": 10, "mode": "static"},
            10,
            50,
            5 + 1,
            id="long_cot",
        ),
    ],
)
def test_graph_stops_gracefully_near_the_recursion_limit(
    engine: type[ScalingEngine],
    responder: Responder,
    options: dict[str, Any],
    limit: int,
    used: int,
    calls: int,
) -> None:
    model = solver(responder)
    graph = engine.from_options(model, {"budget": 50, "scorer": NEVER, **options})
    inputs = {"messages": [HumanMessage(QUESTION)]}
    result = graph.as_graph().invoke(inputs, {"recursion_limit": limit})[engine.method]
    assert (result["stop_reason"], result["budget_used"]) == ("budget", used)
    assert len(model.calls) == calls


async def test_graph_runs_as_a_node_of_a_parent_graph(
    case: Case, is_async: bool
) -> None:
    builder = StateGraph(MessagesState)
    builder.add_node(case.graph(solver(case.responder), name="solver"))
    builder.add_edge(START, "solver")
    builder.add_edge("solver", END)
    conversation = [HumanMessage("What is 1 + 2?"), AIMessage("3"), ("user", QUESTION)]
    out = await invoke(builder.compile(), {"messages": conversation}, is_async=is_async)
    assert len(out["messages"]) == 4
    last = out["messages"][-1]
    assert (last.name, last.content) == ("solver", case.answer)


async def test_graph_memory_input_reaches_the_prompt(
    case: Case, is_async: bool
) -> None:
    model = solver(case.responder)
    memory = MemoryContext(exemplars=[EXEMPLAR], precedents=[])
    inputs = {"messages": [HumanMessage(QUESTION)], "memory": memory}
    out = await invoke(case.graph(model), inputs, is_async=is_async)
    assert out[case.method]["candidates"][0]["with_memory"] is True
    assert has_exemplar(model.calls[0])


def test_a_run_inside_a_users_node_writes_nothing_to_its_stream(case: Case) -> None:
    # The user did not ask for the engine's events.
    engine = case.engine(solver(case.responder), **case.options)

    def node(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(engine.run(state["messages"])["answer"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile()
    inputs = {"messages": [("user", QUESTION)]}
    assert list(graph.stream(inputs, stream_mode="custom")) == []
    assert graph.invoke(inputs)["messages"][-1].content == case.answer


# -- the engine ----------------------------------------------------------------------


async def test_every_engine_is_built_by_name_and_answers_alike(
    case: Case, is_async: bool
) -> None:
    model = FakeChatModel(responder=constant(boxed(42)))
    engine = create_engine(model, case.method, mode="static", threshold=0.5)  # type: ignore[arg-type]
    assert type(engine) is case.engine
    assert (engine.method, engine.unit) == (case.method, UNITS[case.method])
    result = await engine.arun(QUESTION) if is_async else engine.run(QUESTION)
    assert set(result) == set(ScalingResult.__annotations__)
    assert (result["method"], result["budget_unit"]) == (case.method, engine.unit)
    assert (result["final_answer"], result["stop_reason"]) == ("42", "budget")


@pytest.mark.parametrize(
    ("system_prompt", "first_prompt"),
    [
        ("Be terse.", [(SystemMessage, "Be terse."), (HumanMessage, QUESTION)]),
        ("", [(HumanMessage, QUESTION)]),
    ],
)
async def test_the_system_prompt_and_the_stripped_question_come_first(
    case: Case, is_async: bool, system_prompt: str, first_prompt: list[Any]
) -> None:
    model = solver(case.responder)
    options = {**case.options, "system_prompt": system_prompt}
    await solve(case.engine, model, f"  {QUESTION}\n", is_async=is_async, **options)
    assert [(type(m), m.text) for m in model.calls[0]] == first_prompt


async def test_the_callers_config_reaches_every_model_call(
    case: Case, is_async: bool
) -> None:
    class Tags(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tags: list[list[str]] = []

        def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
            self.tags.append(kwargs.get("tags") or [])

    seen, model = Tags(), solver(case.responder)
    config = {"callbacks": [seen], "tags": ["mine"]}
    usage = (await case.solve(model, is_async, config=config))["usage"]
    assert len(seen.tags) == len(model.calls)
    assert all("mine" in tags for tags in seen.tags)
    roles = [[t for t in tags if t.startswith("speedup:")] for tags in seen.tags]
    assert roles.count(["speedup:solver"]) == usage["generations"]
    assert roles.count(["speedup:reflection"]) == usage["other_calls"]


# -- errors --------------------------------------------------------------------------

COMMON_BAD_OPTIONS: dict[str, list[Any]] = {
    "budget": [0, -1, True, 2.5, "4"],
    "threshold": [1.5, -0.1, NAN],
    "mode": ["fast"],
    "scorer": [object()],
    "system_prompt": [42, ["not text"]],
}
OWN_BAD_OPTIONS: dict[type[ScalingEngine], dict[str, list[Any]]] = {
    BestOfN: {"n": [4], "parallelism": [0, True]},
    SelfRefine: {"max_rounds": [3], "critique_prompt": [""], "revise_prompt": [3]},
    TreeOfThoughts: {
        "max_nodes": [5],
        "breadth": [0, -3],
        "max_depth": [0, 1.5],
        "prune_below": [1.5, -0.5, NAN, True],
    },
    LongCoT: {
        "max_tokens": [100],
        "segment_tokens": [0, 2.5],
        "probe_tokens": [-1],
        "native_thinking": ["yes"],
        "probe_prompt": [""],
    },
}


@pytest.mark.parametrize(
    ("engine", "name", "value"),
    [
        pytest.param(engine, name, value, id=f"{engine.method}-{name}-{i}")
        for engine, own in OWN_BAD_OPTIONS.items()
        for name, values in {**COMMON_BAD_OPTIONS, **own}.items()
        for i, value in enumerate(values)
    ],
)
def test_bad_options_fail_when_built(
    engine: type[ScalingEngine], name: str, value: Any
) -> None:
    model = FakeChatModel(responder=sum_solver)
    with pytest.raises(ConfigurationError, match=name):
        engine(model, **{name: value})
    with pytest.raises(ConfigurationError, match=name):
        engine.from_options(model, {name: value})
    with pytest.raises(ConfigurationError, match=name):
        create_engine(model, engine.method, **{name: value})
    with pytest.raises(ConfigurationError, match=name):
        factory(engine)(model, **{name: value})
    assert model.calls == []


@pytest.mark.parametrize("model", ["gpt-4o", None, lambda messages: "hi", 42])
def test_the_model_must_be_a_runnable(case: Case, model: Any) -> None:
    with pytest.raises(ConfigurationError, match="model"):
        case.engine(model)
    with pytest.raises(ConfigurationError, match="model"):
        factory(case.engine)(model)


@pytest.mark.parametrize(
    "question",
    [
        pytest.param("", id="empty"),
        pytest.param("   \n\t", id="whitespace"),
        pytest.param(None, id="None"),
        pytest.param(42, id="int"),
        pytest.param(b"What is 2 + 2?", id="bytes"),
        pytest.param([], id="no-messages"),
        pytest.param([AIMessage("4")], id="no-human"),
        pytest.param([SystemMessage("be nice")], id="system-only"),
        pytest.param([HumanMessage("  ")], id="blank-human"),
        pytest.param(["What is 2 + 2?"], id="list-of-str"),
        pytest.param("x" * 20_001, id="too-long"),
    ],
)
async def test_a_bad_question_fails_before_any_call(
    case: Case, is_async: bool, question: Any
) -> None:
    model = solver(case.responder)
    with pytest.raises(InvalidInputError):
        await solve(case.engine, model, question, is_async=is_async)
    assert model.calls == []


async def test_a_graph_input_without_a_question_fails_before_any_call(
    case: Case, is_async: bool
) -> None:
    model = solver(case.responder)
    inputs = {"messages": [SystemMessage("hi"), AIMessage("hello")]}
    with pytest.raises(InvalidInputError):
        await invoke(case.graph(model), inputs, is_async=is_async)
    assert model.calls == []


@pytest.mark.parametrize(
    ("error", "match"),
    [(RuntimeError, "solver model call failed"), (ConnectionError, "reachable")],
)
async def test_a_failing_first_call_is_a_solver_model_error(
    case: Case, is_async: bool, error: type[Exception], match: str
) -> None:
    model = FailingChatModel(responder=case.responder, error=lambda: error("boom"))
    with pytest.raises(ModelError, match=match) as caught:
        await case.solve(model, is_async)
    assert caught.value.role == "solver"
    assert type(caught.value.__cause__) is error


async def test_an_out_of_range_score_is_a_scoring_error(
    case: Case, is_async: bool
) -> None:
    with pytest.raises(ScoringError):
        await case.solve(solver(case.responder), is_async, scorer=OUT_OF_RANGE)


async def test_graph_interrupt_passes_through(case: Case, is_async: bool) -> None:
    model = FailingChatModel(responder=case.responder, error=GraphInterrupt)
    with pytest.raises(GraphInterrupt) as caught:
        await case.solve(model, is_async)
    assert type(caught.value) is GraphInterrupt


@pytest.mark.parametrize(
    ("engine", "responder", "options", "fail_on", "role", "calls"),
    [
        pytest.param(BestOfN, sum_solver, {}, 2, "solver", 2, id="a-later-sample"),
        pytest.param(
            SelfRefine, refiner, {"mode": "static"}, 2, "reflection", 2, id="a-critique"
        ),
        pytest.param(
            TreeOfThoughts, three_steps, {"breadth": 2}, 3, "solver", 4, id="a-proposal"
        ),
        pytest.param(LongCoT, thinker, {"budget": 10}, 2, "solver", 2, id="a-probe"),
    ],
)
async def test_a_later_failing_call_is_a_model_error_of_its_role(
    engine: type[ScalingEngine],
    responder: Responder,
    options: dict[str, Any],
    fail_on: int,
    role: str,
    calls: int,
    is_async: bool,
) -> None:
    model = FailingChatModel(responder=responder, fail_on=fail_on)
    with pytest.raises(ModelError) as caught:
        await solve(engine, model, QUESTION, is_async=is_async, **options)
    assert caught.value.role == role
    assert len(model.calls) <= calls  # nothing after the failing step's batch


# -- per-run settings ----------------------------------------------------------------

RUN_BUDGETS = {"best_of_n": 3, "self_refine": 2, "tree_of_thoughts": 3, "long_cot": 40}


async def test_the_run_context_sets_budget_and_threshold(
    case: Case, is_async: bool
) -> None:
    budget = RUN_BUDGETS[case.method]
    options = {**case.options, "mode": "static"}
    expected = case.engine(solver(case.responder), **{**options, "budget": budget}).run(
        QUESTION
    )
    graph = factory(case.engine)(solver(case.responder), **options)
    inputs = {"messages": [HumanMessage(QUESTION)]}

    async def run(context: dict[str, Any]) -> Any:
        if is_async:
            return await graph.ainvoke(inputs, context=context)
        return graph.invoke(inputs, context=context)

    out = await run({"budget": budget})
    assert without_seconds(out[case.method]) == without_seconds(expected)
    assert out[case.method]["budget_used"] <= budget
    assert set(graph.get_context_jsonschema()["properties"]) == {"budget", "threshold"}
    # Checked when read, like the engine's own options.
    for bad in ({"budget": 0}, {"threshold": 5.0}):
        with pytest.raises(ConfigurationError):
            await run(bad)
