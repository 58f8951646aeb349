"""Self-Refine: rounds, stopping, accounting, graph; plus the shared contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_speedup import (
    ConfigurationError,
    ConsensusScorer,
    FunctionScorer,
    InvalidInputError,
    LLMJudgeScorer,
    MemoryContext,
    ModelError,
    ScalingResult,
    ScoringError,
)
from langchain_speedup.scaling import (
    BestOfN,
    LongCoT,
    SelfRefine,
    TreeOfThoughts,
    aself_refine,
    create_best_of_n_graph,
    create_long_cot_graph,
    create_self_refine_graph,
    create_tree_of_thoughts_graph,
    self_refine,
)
from langchain_speedup.scaling.self_refine import CRITIQUE_PROMPT, REVISE_PROMPT
from tests.fakes import FailingChatModel, FakeChatModel, boxed, constant, last_human

QUESTION = "What is 17 + 25?"
FEEDBACK = "Step 2 adds the ones wrongly: 7 + 5 is 12, not 11."

MERMAID = """graph TD;
\t__start__ --> generate;
\tcritique --> revise;
\tgenerate --> score;
\trevise --> score;
\tscore -.-> critique;
\tscore -.-> select;
\tselect --> __end__;
"""


def refiner(messages: list[BaseMessage]) -> str:
    """Drafts 41, critiques, and revises to 42."""
    asked = last_human(messages)
    if asked == CRITIQUE_PROMPT:
        return FEEDBACK
    if asked == REVISE_PROMPT:
        return boxed(42)
    return boxed(41)


def without_seconds(result: ScalingResult) -> dict[str, Any]:
    """A result without its wall time, for comparing runs."""
    usage = {k: v for k, v in result["usage"].items() if k != "seconds"}
    return {**result, "usage": usage}


Runner = Callable[..., Any]


async def run_sync(model: FakeChatModel, question: Any, **kwargs: Any) -> ScalingResult:
    return self_refine(model, question, **kwargs)


async def run_async(
    model: FakeChatModel, question: Any, **kwargs: Any
) -> ScalingResult:
    return await aself_refine(model, question, **kwargs)


both = pytest.mark.parametrize("run", [run_sync, run_async], ids=["sync", "async"])


# -- rounds and stopping ---------------------------------------------------------------


@both
async def test_adaptive_stops_at_the_threshold(run: Runner) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(model, QUESTION, scorer=ConsensusScorer(quorum=2))
    # 41 (0.5), 42 against [41] (0.5), 42 against [41, 42] (1.0): stop.
    assert [c["answer"] for c in result["candidates"]] == ["41", "42", "42"]
    assert [c["score"] for c in result["candidates"]] == [0.5, 0.5, 1.0]
    assert result["stop_reason"] == "threshold"
    assert result["passed"] is True
    assert result["final_answer"] == "42"
    assert result["method"] == "self_refine"
    assert result["mode"] == "adaptive"
    assert result["budget_used"] == 3
    assert result["budget_unit"] == "rounds"


@both
async def test_static_spends_every_round_and_keeps_the_latest_best(
    run: Runner,
) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(
        model, QUESTION, mode="static", max_rounds=4, scorer=ConsensusScorer(quorum=2)
    )
    assert result["budget_used"] == 4
    assert [c["score"] for c in result["candidates"]] == [0.5, 0.5, 1.0, 1.0]
    # Static never stops on the threshold; equal scores go to the latest.
    assert result["stop_reason"] == "budget"
    assert result["passed"] is True
    assert result["answer"] == result["candidates"][3]["text"]


@both
async def test_adaptive_without_a_passing_answer_spends_the_budget(
    run: Runner,
) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(model, QUESTION, max_rounds=2, scorer=ConsensusScorer(quorum=3))
    assert result["stop_reason"] == "budget"
    assert result["passed"] is False
    assert result["budget_used"] == 2
    # Both score 1/3; the revision wins the tie.
    assert result["final_answer"] == "42"


@both
async def test_a_first_draft_that_passes_costs_one_round(run: Runner) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(model, QUESTION, scorer=FunctionScorer(lambda q, c: 1.0))
    assert result["budget_used"] == 1
    assert len(model.calls) == 1
    assert result["usage"]["other_calls"] == 0


@both
async def test_the_loop_is_bounded_by_max_rounds(run: Runner) -> None:
    model = FakeChatModel(responder=refiner)
    never = FunctionScorer(lambda q, c: 0.0)
    result = await run(model, QUESTION, max_rounds=5, scorer=never)
    assert result["budget_used"] == 5
    # One draft, then a critique and a revision per further round.
    assert len(model.calls) == 5 + 4
    assert result["stop_reason"] == "budget"


def test_adaptive_cost_never_exceeds_static_cost() -> None:
    model = FakeChatModel(responder=refiner)
    scorer = ConsensusScorer(quorum=2)
    for rounds in range(1, 6):
        adaptive = self_refine(model, QUESTION, max_rounds=rounds, scorer=scorer)
        static = self_refine(
            model, QUESTION, max_rounds=rounds, mode="static", scorer=scorer
        )
        assert adaptive["budget_used"] <= static["budget_used"] == rounds
        assert (
            adaptive["candidates"]
            == static["candidates"][: len(adaptive["candidates"])]
        )


# -- prompts ---------------------------------------------------------------------------


def test_critique_and_revision_see_the_current_answer() -> None:
    model = FakeChatModel(responder=refiner)
    self_refine(model, QUESTION, max_rounds=3, mode="static")
    draft, critique, revision, critique2, _ = model.calls
    assert last_human(draft) == QUESTION
    assert isinstance(critique[-2], AIMessage)
    assert critique[-2].content == boxed(41)
    assert critique[-1].content == CRITIQUE_PROMPT
    assert [m.content for m in revision[-4:]] == [
        boxed(41),
        CRITIQUE_PROMPT,
        FEEDBACK,
        REVISE_PROMPT,
    ]
    # The next critique is of the revision, not of the first draft.
    assert critique2[-2].content == boxed(42)


def test_custom_prompts_are_used() -> None:
    model = FakeChatModel(responder=constant(boxed(3)))
    self_refine(
        model,
        QUESTION,
        max_rounds=2,
        mode="static",
        system_prompt="Be terse.",
        critique_prompt="Find the flaw.",
        revise_prompt="Fix it.",
    )
    assert model.calls[0][0].content == "Be terse."
    assert model.calls[1][-1].content == "Find the flaw."
    assert model.calls[2][-1].content == "Fix it."


def test_a_conversation_is_answered_in_context() -> None:
    model = FakeChatModel(responder=refiner)
    conversation = [
        HumanMessage("Hi"),
        AIMessage("Hello"),
        HumanMessage(QUESTION),
    ]
    result = self_refine(model, conversation, scorer=ConsensusScorer(quorum=2))
    assert result["final_answer"] == "42"
    assert [m.content for m in model.calls[0][1:]] == ["Hi", "Hello", QUESTION]


# -- accounting ------------------------------------------------------------------------


@both
async def test_usage_counts_rounds_critiques_and_scorer_calls(run: Runner) -> None:
    model = FakeChatModel(responder=refiner)
    judge = FakeChatModel(responder=constant("7"))
    result = await run(
        model, QUESTION, max_rounds=3, mode="static", scorer=LLMJudgeScorer(judge)
    )
    usage = result["usage"]
    assert usage["generations"] == result["budget_used"] == 3
    assert usage["other_calls"] == 2  # critiques, under the reflection role
    assert usage["scorer_calls"] == 3
    assert len(judge.calls) == 3
    assert usage["solver_output_tokens"] > 0
    assert usage["scorer_input_tokens"] > 0
    assert usage["total_tokens"] == (
        usage["solver_input_tokens"]
        + usage["solver_output_tokens"]
        + usage["scorer_input_tokens"]
        + usage["scorer_output_tokens"]
        + usage["other_tokens"]
    )
    assert [c["score"] for c in result["candidates"]] == [0.7, 0.7, 0.7]


# -- memory ----------------------------------------------------------------------------


def test_exemplars_go_into_every_prompt_and_precedents_to_the_scorer() -> None:
    model = FakeChatModel(responder=refiner)
    memory = MemoryContext(
        exemplars=[{"question": "What is 1 + 1?", "solution": boxed(2)}],
        precedents=["41"],
    )
    result = self_refine(
        model, QUESTION, memory=memory, scorer=ConsensusScorer(quorum=2)
    )
    # The precedent adds a vote to the first draft's 41, which then passes.
    assert result["budget_used"] == 1
    assert result["final_answer"] == "41"
    assert result["candidates"][0]["with_memory"] is True
    contents = [m.content for m in model.calls[0]]
    assert "What is 1 + 1?" in contents
    assert boxed(2) in contents


def test_memory_that_allows_no_samples_keeps_exemplars_out() -> None:
    model = FakeChatModel(responder=refiner)
    memory = MemoryContext(
        exemplars=[{"question": "What is 1 + 1?", "solution": boxed(2)}],
        precedents=[],
        samples=0,
    )
    result = self_refine(model, QUESTION, memory=memory, max_rounds=1)
    assert result["candidates"][0]["with_memory"] is False
    assert "What is 1 + 1?" not in [m.content for m in model.calls[0]]


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"max_rounds": 0},
        {"max_rounds": -2},
        {"max_rounds": True},
        {"max_rounds": 2.5},
        {"mode": "eager"},
        {"threshold": 1.5},
        {"threshold": -0.1},
        {"scorer": object()},
        {"critique_prompt": ""},
        {"revise_prompt": 3},
        {"system_prompt": None},
    ],
)
def test_invalid_options_fail_when_built(options: dict[str, Any]) -> None:
    model = FakeChatModel(responder=refiner)
    with pytest.raises(ConfigurationError):
        SelfRefine(model, **options)
    with pytest.raises(ConfigurationError):
        create_self_refine_graph(model, **options)
    assert model.calls == []


def test_a_non_runnable_model_fails_when_built() -> None:
    with pytest.raises(ConfigurationError, match="model"):
        create_self_refine_graph(refiner)  # type: ignore[arg-type]


@both
async def test_an_empty_question_is_invalid_input(run: Runner) -> None:
    with pytest.raises(InvalidInputError):
        await run(FakeChatModel(responder=refiner), "   ")


@both
async def test_a_failing_critique_raises_a_reflection_model_error(run: Runner) -> None:
    model = FailingChatModel(responder=refiner, fail_on=2)
    with pytest.raises(ModelError) as caught:
        await run(model, QUESTION, max_rounds=3, mode="static")
    assert caught.value.role == "reflection"


@both
async def test_a_failing_draft_raises_a_solver_model_error(run: Runner) -> None:
    model = FailingChatModel(responder=refiner, fail_on=1)
    with pytest.raises(ModelError) as caught:
        await run(model, QUESTION)
    assert caught.value.role == "solver"


@both
async def test_an_out_of_range_score_is_a_scoring_error(run: Runner) -> None:
    model = FakeChatModel(responder=refiner)
    with pytest.raises(ScoringError):
        await run(model, QUESTION, scorer=FunctionScorer(lambda q, c: 2.0))


# -- the graph -------------------------------------------------------------------------


def test_graph_shape_snapshot() -> None:
    graph = create_self_refine_graph(FakeChatModel(responder=refiner))
    assert graph.get_graph().draw_mermaid(with_styles=False) == MERMAID


@pytest.mark.parametrize("mode", ["static", "adaptive"])
async def test_graph_matches_the_functional_core(mode: str) -> None:
    model = FakeChatModel(responder=refiner)
    options: dict[str, Any] = {
        "max_rounds": 4,
        "mode": mode,
        "scorer": ConsensusScorer(quorum=2),
    }
    expected = self_refine(model, QUESTION, **options)
    graph = create_self_refine_graph(model, **options)
    inputs = {"messages": [HumanMessage(QUESTION)]}
    out = graph.invoke(inputs)
    aout = await graph.ainvoke(inputs)
    for state in (out, aout):
        assert set(state) == {"messages", "self_refine"}
        assert without_seconds(state["self_refine"]) == without_seconds(expected)
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        assert last.name == "self_refine"
        assert last.content == expected["answer"]


def test_graph_memory_input_reaches_the_prompt() -> None:
    model = FakeChatModel(responder=refiner)
    memory = MemoryContext(
        exemplars=[{"question": "What is 1 + 1?", "solution": boxed(2)}],
        precedents=[],
    )
    graph = create_self_refine_graph(model, max_rounds=1)
    out = graph.invoke({"messages": [HumanMessage(QUESTION)], "memory": memory})
    assert out["self_refine"]["candidates"][0]["with_memory"] is True
    assert "What is 1 + 1?" in [m.content for m in model.calls[0]]


async def test_graph_streams_candidates_scores_and_the_stop() -> None:
    model = FakeChatModel(responder=refiner)
    graph = create_self_refine_graph(model, scorer=ConsensusScorer(quorum=2))
    inputs = {"messages": [HumanMessage(QUESTION)]}
    events = list(graph.stream(inputs, stream_mode="custom"))
    aevents = [e async for e in graph.astream(inputs, stream_mode="custom")]
    assert events == aevents
    assert [e["event"] for e in events] == ["candidate", "score"] * 3 + ["stop"]
    assert {e["method"] for e in events} == {"self_refine"}
    assert [e["index"] for e in events if e["event"] == "score"] == [0, 1, 2]
    assert events[0]["text"] == boxed(41)
    assert [e["score"] for e in events if e["event"] == "score"] == [0.5, 0.5, 1.0]
    assert events[-1] == {
        "method": "self_refine",
        "event": "stop",
        "answer": "42",
        "score": 1.0,
        "passed": True,
        "stop_reason": "threshold",
        "budget_used": 3,
        "budget_unit": "rounds",
    }


def test_graph_stops_gracefully_near_the_recursion_limit() -> None:
    model = FakeChatModel(responder=refiner)
    graph = create_self_refine_graph(
        model, max_rounds=50, scorer=FunctionScorer(lambda q, c: 0.0)
    )
    config: RunnableConfig = {"recursion_limit": 12}
    out = graph.invoke({"messages": [HumanMessage(QUESTION)]}, config)
    result = out["self_refine"]
    assert result["stop_reason"] == "budget"
    assert 1 <= result["budget_used"] < 50


def test_graph_runs_as_a_node_of_a_parent_graph() -> None:
    model = FakeChatModel(responder=refiner)
    builder = StateGraph(MessagesState)
    builder.add_node(create_self_refine_graph(model, scorer=ConsensusScorer(quorum=2)))
    builder.add_edge(START, "self_refine")
    builder.add_edge("self_refine", END)
    out = builder.compile().invoke({"messages": [("user", QUESTION)]})
    assert out["messages"][-1].content == boxed(42)


# -- the contract all four methods share --------------------------------------------------


ENGINES = [
    (BestOfN, "best_of_n", "generations"),
    (SelfRefine, "self_refine", "rounds"),
    (TreeOfThoughts, "tree_of_thoughts", "expanded_nodes"),
    (LongCoT, "long_cot", "reasoning_tokens"),
]
FACTORIES = [
    create_best_of_n_graph,
    create_self_refine_graph,
    create_tree_of_thoughts_graph,
    create_long_cot_graph,
]


@pytest.mark.parametrize(("engine", "method", "unit"), ENGINES)
async def test_every_engine_shares_one_contract(
    engine: Any, method: str, unit: str
) -> None:
    model = FakeChatModel(responder=constant(boxed(42)))
    built = engine(model, mode="adaptive", threshold=0.5, scorer=ConsensusScorer())
    assert (built.method, built.unit) == (method, unit)
    for result in (built.run(QUESTION), await built.arun(QUESTION)):
        assert set(result) == set(ScalingResult.__annotations__)
        assert result["method"] == method
        assert result["budget_unit"] == unit
        assert result["final_answer"] == "42"
        assert result["candidates"]
        assert result["budget_used"] >= 1


@pytest.mark.parametrize("factory", FACTORIES)
def test_every_factory_swaps_by_name(factory: Any) -> None:
    model = FakeChatModel(responder=constant(boxed(42)))
    graph = factory(model, mode="static", threshold=0.5, scorer=ConsensusScorer())
    out = graph.invoke({"messages": [HumanMessage(QUESTION)]})
    assert set(out) == {"messages", graph.name}
    assert out[graph.name]["method"] == graph.name
    assert out[graph.name]["final_answer"] == "42"


def test_best_of_n_graph_streams_candidates_scores_and_the_stop() -> None:
    model = FakeChatModel(responder=constant(boxed(42)))
    graph = create_best_of_n_graph(model, n=4, scorer=ConsensusScorer(quorum=2))
    events = list(
        graph.stream({"messages": [HumanMessage(QUESTION)]}, stream_mode="custom")
    )
    assert [e["event"] for e in events] == ["candidate", "score"] * 2 + ["stop"]
    assert {e["method"] for e in events} == {"best_of_n"}
    assert [e["score"] for e in events if e["event"] == "score"] == [0.5, 1.0]
    assert events[-1]["stop_reason"] == "threshold"
    assert events[-1]["budget_used"] == 2


def test_functional_cores_write_no_stream_events() -> None:
    # Outside a graph there is no stream; inside a user's node, a functional
    # core must not write into the user's stream either.
    model = FakeChatModel(responder=refiner)

    def node(state: MessagesState) -> dict[str, Any]:
        result = self_refine(model, state["messages"])
        return {"messages": [AIMessage(result["answer"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile()
    assert (
        list(graph.stream({"messages": [("user", QUESTION)]}, stream_mode="custom"))
        == []
    )
