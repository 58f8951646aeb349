"""Self-Refine: rounds, stopping, prompts, memory, accounting, graph; plus the
contract all four methods share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_speedup import (
    METHODS,
    ConfigurationError,
    ConsensusScorer,
    FunctionScorer,
    InvalidInputError,
    LLMJudgeScorer,
    MemoryContext,
    ModelError,
    ScalingResult,
    ScoringError,
    SelfRefine,
    create_best_of_n_graph,
    create_engine,
    create_long_cot_graph,
    create_self_refine_graph,
    create_tree_of_thoughts_graph,
)
from langchain_speedup.scaling.self_refine import CRITIQUE_PROMPT, REVISE_PROMPT
from tests.fakes import (
    FailingChatModel,
    FakeChatModel,
    boxed,
    constant,
    last_human,
    solve,
    text_of,
)

QUESTION = "What is 17 + 25?"
QUORUM = ConsensusScorer(quorum=2)  # stateless: safe to share
FEEDBACK = "Step 2 adds the ones wrongly: 7 + 5 is 12, not 11."
EXEMPLAR = {"question": "What is 1 + 1?", "solution": boxed(2)}

MERMAID = """graph TD;
\t__start__ --> prepare;
\tcritique --> revise;
\tgenerate --> score;
\tprepare --> generate;
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


def has_exemplar(prompt: list[BaseMessage]) -> bool:
    return any(text_of(m) == EXEMPLAR["question"] for m in prompt)


def without_seconds(result: ScalingResult) -> dict[str, Any]:
    """A result without its wall time, for comparing runs."""
    usage = {k: v for k, v in result["usage"].items() if k != "seconds"}
    return {**result, "usage": usage}


Run = Callable[..., Awaitable[ScalingResult]]


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Run:
    """`self_refine` or `aself_refine`, awaitable either way."""

    async def call(model: Any, question: Any, **options: Any) -> ScalingResult:
        is_async = request.param == "async"
        return await solve(SelfRefine, model, question, is_async=is_async, **options)

    return call


# -- rounds and stopping ---------------------------------------------------------------


async def test_adaptive_stops_at_the_threshold(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(model, QUESTION, scorer=QUORUM)
    # 41 (0.5), 42 against [41] (0.5), 42 against [41, 42] (1.0): stop.
    assert [c["answer"] for c in result["candidates"]] == ["41", "42", "42"]
    assert [c["score"] for c in result["candidates"]] == [0.5, 0.5, 1.0]
    assert result["stop_reason"] == "threshold"
    assert result["passed"] is True
    assert result["final_answer"] == "42"
    assert (result["method"], result["mode"]) == ("self_refine", "adaptive")
    assert (result["budget_used"], result["budget_unit"]) == (3, "rounds")


async def test_static_spends_every_round_and_keeps_the_latest_best(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(model, QUESTION, mode="static", budget=4, scorer=QUORUM)
    assert result["budget_used"] == 4
    assert [c["score"] for c in result["candidates"]] == [0.5, 0.5, 1.0, 1.0]
    # Static never stops on the threshold; equal scores go to the latest.
    assert result["stop_reason"] == "budget"
    assert result["passed"] is True
    assert result["answer"] == result["candidates"][3]["text"]


async def test_adaptive_without_a_passing_answer_spends_the_budget(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(model, QUESTION, budget=2, scorer=ConsensusScorer(quorum=3))
    assert result["stop_reason"] == "budget"
    assert result["passed"] is False
    assert result["budget_used"] == 2
    # Both score 1/3; the revision wins the tie.
    assert result["final_answer"] == "42"


async def test_a_first_draft_that_passes_costs_one_round(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(model, QUESTION, scorer=FunctionScorer(lambda q, c: 1.0))
    assert result["budget_used"] == 1
    assert len(model.calls) == 1
    assert result["usage"]["other_calls"] == 0


async def test_the_loop_is_bounded_by_the_budget(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(
        model, QUESTION, budget=5, scorer=FunctionScorer(lambda q, c: 0.0)
    )
    assert result["budget_used"] == 5
    # One draft, then a critique and a revision per further round.
    assert len(model.calls) == 5 + 4
    assert result["stop_reason"] == "budget"


def test_the_default_budget_is_four_rounds() -> None:
    model = FakeChatModel(responder=refiner)
    result = SelfRefine(model, scorer=FunctionScorer(lambda q, c: 0.0)).run(QUESTION)
    assert result["budget_used"] == SelfRefine(model).budget == 4


def test_adaptive_cost_never_exceeds_static_cost() -> None:
    model = FakeChatModel(responder=refiner)
    for rounds in range(1, 6):
        adaptive = SelfRefine(model, budget=rounds, scorer=QUORUM).run(QUESTION)
        static = SelfRefine(model, budget=rounds, mode="static", scorer=QUORUM).run(
            QUESTION
        )
        assert adaptive["budget_used"] <= static["budget_used"] == rounds
        assert (
            adaptive["candidates"]
            == static["candidates"][: len(adaptive["candidates"])]
        )


# -- prompts ---------------------------------------------------------------------------


def test_critique_and_revision_see_the_current_answer() -> None:
    model = FakeChatModel(responder=refiner)
    SelfRefine(model, budget=3, mode="static").run(QUESTION)
    draft, critique, revision, critique2, _ = model.calls
    assert last_human(draft) == QUESTION
    assert isinstance(critique[-2], AIMessage)
    assert critique[-2].content == boxed(41)
    assert critique[-1].content == CRITIQUE_PROMPT
    assert revision[:-2] == critique
    assert [m.content for m in revision[-2:]] == [FEEDBACK, REVISE_PROMPT]
    # The next critique is of the revision, not of the first draft.
    assert critique2[-2].content == boxed(42)
    assert critique2[:-2] == draft


def test_custom_prompts_are_used() -> None:
    model = FakeChatModel(responder=constant(boxed(3)))
    SelfRefine(
        model,
        budget=2,
        mode="static",
        system_prompt="Be terse.",
        critique_prompt="Find the flaw.",
        revise_prompt="Fix it.",
    ).run(QUESTION)
    assert model.calls[0][0].content == "Be terse."
    assert model.calls[1][-1].content == "Find the flaw."
    assert model.calls[2][-1].content == "Fix it."


def test_a_conversation_is_answered_in_context() -> None:
    model = FakeChatModel(responder=refiner)
    conversation = [HumanMessage("Hi"), AIMessage("Hello"), HumanMessage(QUESTION)]
    result = SelfRefine(model, scorer=QUORUM).run(conversation)
    assert result["final_answer"] == "42"
    assert [m.content for m in model.calls[0][1:]] == ["Hi", "Hello", QUESTION]


# -- accounting ------------------------------------------------------------------------


async def test_usage_counts_rounds_critiques_and_scorer_calls(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    judge = FakeChatModel(responder=constant("Rating: 7"))
    result = await run(
        model, QUESTION, budget=3, mode="static", scorer=LLMJudgeScorer(judge)
    )
    usage = result["usage"]
    assert usage["generations"] == result["budget_used"] == 3
    assert usage["other_calls"] == 2  # critiques, under the reflection role
    assert usage["scorer_calls"] == len(judge.calls) == 3
    assert usage["solver_output_tokens"] > 0
    assert usage["other_tokens"] > 0
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
    memory = MemoryContext(exemplars=[EXEMPLAR], precedents=["41"])
    result = SelfRefine(model, scorer=QUORUM).run(QUESTION, memory=memory)
    # The precedent adds a vote to the first draft's 41, which then passes.
    assert result["budget_used"] == 1
    assert result["final_answer"] == "41"
    assert result["candidates"][0]["with_memory"] is True
    assert has_exemplar(model.calls[0])
    assert boxed(2) in [m.content for m in model.calls[0]]


def test_memory_that_allows_no_samples_keeps_exemplars_out() -> None:
    model = FakeChatModel(responder=refiner)
    memory = MemoryContext(exemplars=[EXEMPLAR], precedents=[], samples=0)
    result = SelfRefine(model, budget=1).run(QUESTION, memory=memory)
    assert result["candidates"][0]["with_memory"] is False
    assert not has_exemplar(model.calls[0])


async def test_past_memorys_start_the_run_drafts_afresh(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    memory = MemoryContext(exemplars=[EXEMPLAR], precedents=[], samples=2)
    result = await run(model, QUESTION, memory=memory, budget=4, mode="static")
    assert [c["with_memory"] for c in result["candidates"]] == [
        True,
        True,
        False,
        False,
    ]
    # Round 3 is a plain draft, not a revision: no critique precedes it.
    asked = [last_human(p) for p in model.calls]
    assert asked == [QUESTION, CRITIQUE_PROMPT, REVISE_PROMPT] * 2
    assert [has_exemplar(p) for p in model.calls] == [True] * 3 + [False] * 3
    assert len(model.calls[3]) == 2  # system prompt, question
    # The new chain critiques its own draft.
    assert model.calls[4][:2] == model.calls[3]
    assert result["usage"]["other_calls"] == 2


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"budget": 0},
        {"budget": -2},
        {"budget": True},
        {"budget": 2.5},
        {"max_rounds": 3},
        {"mode": "eager"},
        {"threshold": 1.5},
        {"threshold": -0.1},
        {"scorer": object()},
        {"critique_prompt": ""},
        {"revise_prompt": 3},
        {"system_prompt": ["not text"]},
    ],
)
async def test_invalid_options_fail_before_any_call(
    options: dict[str, Any], run: Run
) -> None:
    model = FakeChatModel(responder=refiner)
    with pytest.raises(ConfigurationError):
        SelfRefine.from_options(model, options)
    with pytest.raises(ConfigurationError):
        create_self_refine_graph(model, **options)
    with pytest.raises(ConfigurationError):
        await run(model, QUESTION, **options)
    assert model.calls == []


def test_a_non_runnable_model_fails_when_built() -> None:
    with pytest.raises(ConfigurationError, match="model"):
        create_self_refine_graph(refiner)  # type: ignore[arg-type]


async def test_an_empty_question_is_invalid_input(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    with pytest.raises(InvalidInputError):
        await run(model, "   ")
    assert model.calls == []


async def test_a_failing_critique_raises_a_reflection_model_error(run: Run) -> None:
    model = FailingChatModel(responder=refiner, fail_on=2)
    with pytest.raises(ModelError) as caught:
        await run(model, QUESTION, budget=3, mode="static")
    assert caught.value.role == "reflection"


async def test_a_failing_draft_raises_a_solver_model_error(run: Run) -> None:
    model = FailingChatModel(responder=refiner, fail_on=1)
    with pytest.raises(ModelError) as caught:
        await run(model, QUESTION)
    assert caught.value.role == "solver"


async def test_an_out_of_range_score_is_a_scoring_error(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    with pytest.raises(ScoringError):
        await run(model, QUESTION, scorer=FunctionScorer(lambda q, c: 2.0))


# -- the graph -------------------------------------------------------------------------


def test_graph_shape_snapshot() -> None:
    graph = create_self_refine_graph(FakeChatModel(responder=refiner))
    assert graph.get_graph().draw_mermaid(with_styles=False) == MERMAID


async def test_graph_output_is_the_answer_and_the_result(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    expected = await run(model, QUESTION, scorer=QUORUM)
    graph = create_self_refine_graph(model, scorer=QUORUM)
    inputs = {"messages": [HumanMessage(QUESTION)]}
    for state in (graph.invoke(inputs), await graph.ainvoke(inputs)):
        assert set(state) == {"messages", "self_refine"}
        assert without_seconds(state["self_refine"]) == without_seconds(expected)
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        assert (last.name, last.content) == ("self_refine", boxed(42))


def test_graph_memory_input_reaches_the_prompt() -> None:
    model = FakeChatModel(responder=refiner)
    memory = MemoryContext(exemplars=[EXEMPLAR], precedents=[])
    graph = create_self_refine_graph(model, budget=1)
    out = graph.invoke({"messages": [HumanMessage(QUESTION)], "memory": memory})
    assert out["self_refine"]["candidates"][0]["with_memory"] is True
    assert has_exemplar(model.calls[0])


async def test_graph_streams_candidates_scores_and_the_stop() -> None:
    model = FakeChatModel(responder=refiner)
    graph = create_self_refine_graph(model, scorer=QUORUM)
    inputs = {"messages": [HumanMessage(QUESTION)]}
    events = list(graph.stream(inputs, stream_mode="custom"))
    aevents = [e async for e in graph.astream(inputs, stream_mode="custom")]
    assert events == aevents
    assert [e["event"] for e in events] == ["candidate", "score"] * 3 + ["stop"]
    assert {e["method"] for e in events} == {"self_refine"}
    assert [e.get("index") for e in events] == [0, 0, 1, 1, 2, 2, None]
    assert [e.get("text") for e in events[:-1:2]] == [boxed(41), boxed(42), boxed(42)]
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
        model, budget=50, scorer=FunctionScorer(lambda q, c: 0.0)
    )
    config: RunnableConfig = {"recursion_limit": 12}
    result = graph.invoke({"messages": [HumanMessage(QUESTION)]}, config)["self_refine"]
    assert result["stop_reason"] == "budget"
    # prepare, generate, score, then 3 steps a round; `select` needs the last.
    assert result["budget_used"] == 3


def test_graph_runs_as_a_node_of_a_parent_graph() -> None:
    model = FakeChatModel(responder=refiner)
    builder = StateGraph(MessagesState)
    builder.add_node(create_self_refine_graph(model, scorer=QUORUM))
    builder.add_edge(START, "self_refine")
    builder.add_edge("self_refine", END)
    out = builder.compile().invoke({"messages": [("user", QUESTION)]})
    assert out["messages"][-1].content == boxed(42)


# -- the contract all four methods share --------------------------------------------------

UNITS = {
    "best_of_n": "generations",
    "self_refine": "rounds",
    "tree_of_thoughts": "expanded_nodes",
    "long_cot": "reasoning_tokens",
}
FACTORIES = [
    create_best_of_n_graph,
    create_self_refine_graph,
    create_tree_of_thoughts_graph,
    create_long_cot_graph,
]


@pytest.mark.parametrize("method", METHODS)
async def test_every_engine_shares_one_contract(method: str) -> None:
    model = FakeChatModel(responder=constant(boxed(42)))
    engine = create_engine(model, method, threshold=0.5, scorer=ConsensusScorer())  # type: ignore[arg-type]
    assert (engine.method, engine.unit) == (method, UNITS[method])
    for result in (engine.run(QUESTION), await engine.arun(QUESTION)):
        assert set(result) == set(ScalingResult.__annotations__)
        assert (result["method"], result["budget_unit"]) == (method, UNITS[method])
        assert result["final_answer"] == "42"
        assert result["budget_used"] >= 1


@pytest.mark.parametrize("factory", FACTORIES)
def test_every_factory_swaps_by_name(factory: Any) -> None:
    model = FakeChatModel(responder=constant(boxed(42)))
    graph = factory(model, mode="static", threshold=0.5, scorer=ConsensusScorer())
    out = graph.invoke({"messages": [HumanMessage(QUESTION)]})
    assert set(out) == {"messages", graph.name}
    assert out[graph.name]["method"] == graph.name
    assert out[graph.name]["final_answer"] == "42"
    assert out[graph.name]["stop_reason"] == "budget"


def test_functional_cores_write_no_stream_events() -> None:
    # Inside a user's node, a functional core must not write into the user's
    # stream: the user did not ask for its events.
    model = FakeChatModel(responder=refiner)

    def node(state: MessagesState) -> dict[str, Any]:
        result = SelfRefine(model).run(state["messages"])
        return {"messages": [AIMessage(result["answer"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile()
    inputs = {"messages": [("user", QUESTION)]}
    assert list(graph.stream(inputs, stream_mode="custom")) == []
    assert len(model.calls) == 7  # the core ran: 4 rounds
