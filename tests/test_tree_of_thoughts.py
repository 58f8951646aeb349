"""Tree-of-Thoughts (DFS): expansion order, pruning, stopping, accounting, graph."""

from __future__ import annotations

import threading
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
    LLMJudgeScorer,
    MemoryContext,
    ModelError,
    ScalingResult,
)
from langchain_speedup.scaling import (
    TreeOfThoughts,
    atree_of_thoughts,
    create_tree_of_thoughts_graph,
    tree_of_thoughts,
)
from tests.fakes import FailingChatModel, FakeChatModel, boxed, constant, last_human

QUESTION = "What is 17 + 25?"
STEP_1 = "Add the tens first."
STEP_2 = "Then add the ones and carry."
FINAL = "So the total is \\boxed{42}."

MERMAID = """graph TD;
\t__start__ --> expand;
\tevaluate --> prune;
\texpand --> evaluate;
\tprune -.-> expand;
\tprune -.-> select;
\tselect --> __end__;
"""


def path_of(messages: list[BaseMessage]) -> list[str]:
    """The steps a proposal prompt shows (empty at the root)."""
    shown = [m for m in messages if isinstance(m, AIMessage)]
    return str(shown[-1].content).split("\n") if shown else []


def three_steps(messages: list[BaseMessage]) -> str:
    """Two partial steps without numbers, then the final answer."""
    return [STEP_1, STEP_2, FINAL][min(len(path_of(messages)), 2)]


def never_finishes(messages: list[BaseMessage]) -> str:
    return "Think about it some more."


class PerDepth:
    """Replies by depth, cycling through each depth's list (thread-safe)."""

    def __init__(self, replies: dict[int, list[str]]) -> None:
        self.replies = replies
        self.counts = dict.fromkeys(replies, 0)
        self.lock = threading.Lock()

    def __call__(self, messages: list[BaseMessage]) -> str:
        depth = len(path_of(messages))
        with self.lock:
            i = self.counts[depth]
            self.counts[depth] += 1
        options = self.replies[depth]
        return options[i % len(options)]


def without_seconds(result: ScalingResult) -> dict[str, Any]:
    usage = {k: v for k, v in result["usage"].items() if k != "seconds"}
    return {**result, "usage": usage}


Runner = Callable[..., Any]


async def run_sync(model: FakeChatModel, question: Any, **kwargs: Any) -> ScalingResult:
    return tree_of_thoughts(model, question, **kwargs)


async def run_async(
    model: FakeChatModel, question: Any, **kwargs: Any
) -> ScalingResult:
    return await atree_of_thoughts(model, question, **kwargs)


both = pytest.mark.parametrize("run", [run_sync, run_async], ids=["sync", "async"])


# -- search and stopping ---------------------------------------------------------------


@both
async def test_adaptive_goes_depth_first_and_stops_at_a_passing_solution(
    run: Runner,
) -> None:
    model = FakeChatModel(responder=three_steps)
    result = await run(
        model, QUESTION, breadth=2, max_depth=4, scorer=ConsensusScorer(quorum=2)
    )
    # Root -> first child -> its first child -> two agreeing solutions.
    assert result["budget_used"] == 3
    assert result["budget_unit"] == "expanded_nodes"
    assert result["stop_reason"] == "threshold"
    assert result["final_answer"] == "42"
    assert result["answer"] == "\n".join([STEP_1, STEP_2, FINAL])
    candidates = result["candidates"]
    assert len(candidates) == 6
    # Partial paths carry no answer; without a number consensus values them 0,
    # and the search still goes deeper (ties broken by proposal order).
    assert [c["answer"] for c in candidates[:4]] == [None] * 4
    assert [c["score"] for c in candidates[:4]] == [0.0] * 4
    assert [c["score"] for c in candidates[4:]] == [1.0, 1.0]


@both
async def test_static_explores_the_whole_tree_within_its_limits(run: Runner) -> None:
    model = FakeChatModel(responder=three_steps)
    result = await run(
        model,
        QUESTION,
        breadth=2,
        max_depth=4,
        max_nodes=20,
        mode="static",
        scorer=ConsensusScorer(quorum=2),
    )
    # 1 root + 2 at depth 1 + 4 at depth 2; depth-3 nodes are all complete.
    assert result["budget_used"] == 7
    assert len(result["candidates"]) == 7 * 2
    assert result["stop_reason"] == "budget"
    # The earliest of the equally valued solutions is kept.
    solutions = [c for c in result["candidates"] if c["answer"] is not None]
    assert len(solutions) == 8
    assert result["answer"] == solutions[0]["text"]


@both
async def test_static_stops_at_max_nodes(run: Runner) -> None:
    model = FakeChatModel(responder=three_steps)
    result = await run(
        model, QUESTION, breadth=2, max_nodes=5, mode="static", scorer=ConsensusScorer()
    )
    assert result["budget_used"] == 5
    assert len(model.calls) == 5 * 2
    assert result["stop_reason"] == "budget"


@both
async def test_the_loop_is_bounded_by_max_nodes(run: Runner) -> None:
    model = FakeChatModel(responder=never_finishes)
    always = FunctionScorer(lambda q, c: 1.0)
    result = await run(
        model, QUESTION, breadth=3, max_depth=1000, max_nodes=6, scorer=always
    )
    assert result["budget_used"] == 6
    assert len(model.calls) == 6 * 3
    # Partial paths never stop a run, even at a full score.
    assert result["stop_reason"] == "budget"
    # No solution: the best partial path, the deepest among equals.
    assert result["final_answer"] is None
    assert result["answer"].count("\n") == 5


@both
async def test_max_depth_one_asks_for_a_finished_solution_at_once(
    run: Runner,
) -> None:
    model = FakeChatModel(responder=constant(FINAL))
    result = await run(model, QUESTION, breadth=3, max_depth=1, mode="static")
    assert result["budget_used"] == 1
    assert len(model.calls) == 3
    assert "last step" in str(model.calls[0][-1].content)
    assert result["final_answer"] == "42"


@both
async def test_dead_ends_at_max_depth_are_not_expanded(run: Runner) -> None:
    model = FakeChatModel(responder=never_finishes)
    result = await run(
        model, QUESTION, breadth=1, max_depth=3, max_nodes=50, mode="static"
    )
    assert result["budget_used"] == 3
    assert result["final_answer"] is None
    # The last depth is told to finish.
    assert "last step" in str(model.calls[2][-1].content)


def test_adaptive_cost_never_exceeds_static_cost() -> None:
    model = FakeChatModel(responder=three_steps)
    scorer = ConsensusScorer(quorum=2)
    for nodes in range(1, 9):
        options: dict[str, Any] = {"breadth": 2, "max_nodes": nodes, "scorer": scorer}
        adaptive = tree_of_thoughts(model, QUESTION, **options)
        static = tree_of_thoughts(model, QUESTION, mode="static", **options)
        assert adaptive["budget_used"] <= static["budget_used"] <= nodes
        assert (
            adaptive["candidates"]
            == static["candidates"][: len(adaptive["candidates"])]
        )


# -- valuing and pruning ---------------------------------------------------------------


def test_children_are_visited_best_first() -> None:
    model = FakeChatModel(
        responder=PerDepth({0: ["Try plan A.", "Try plan B."], 1: [FINAL]})
    )
    prefers_b = FunctionScorer(lambda q, c: 0.9 if "plan B" in c else 0.4)
    result = tree_of_thoughts(
        model, QUESTION, breadth=2, max_nodes=2, mode="static", scorer=prefers_b
    )
    assert result["budget_used"] == 2
    # The second expansion (calls 2 and 3) continues plan B.
    assert {path_of(m)[0] for m in model.calls[2:4]} == {"Try plan B."}


def test_low_value_nodes_are_pruned() -> None:
    model = FakeChatModel(
        responder=PerDepth(
            {0: ["A dead end.", "A good idea."], 1: [STEP_2], 2: [FINAL]}
        )
    )
    scorer = FunctionScorer(lambda q, c: 0.1 if "dead end" in c else 0.8)
    result = tree_of_thoughts(
        model,
        QUESTION,
        breadth=2,
        max_nodes=50,
        prune_below=0.5,
        mode="static",
        scorer=scorer,
    )
    # Only the good branch is searched: root, good idea, and its two children.
    assert result["budget_used"] == 4
    assert [path_of(m)[:1] for m in model.calls[2:]] == [["A good idea."]] * 6


def test_everything_pruned_returns_the_best_partial_path() -> None:
    model = FakeChatModel(responder=constant(STEP_1))
    scorer = FunctionScorer(lambda q, c: 0.2)
    result = tree_of_thoughts(model, QUESTION, prune_below=0.5, scorer=scorer)
    assert result["budget_used"] == 1
    assert result["stop_reason"] == "budget"
    assert result["answer"] == STEP_1
    assert result["final_answer"] is None
    assert result["passed"] is False


def test_siblings_vote_among_their_own_kind() -> None:
    # A partial sibling ending in 42 must not vote for a finished 42.
    model = FakeChatModel(
        responder=PerDepth({0: ["We get 42 so far.", "Hence \\boxed{42}."]})
    )
    result = tree_of_thoughts(
        model, QUESTION, breadth=2, max_nodes=1, scorer=ConsensusScorer(quorum=2)
    )
    scores = {c["text"]: c["score"] for c in result["candidates"]}
    assert scores == {"We get 42 so far.": 0.5, "Hence \\boxed{42}.": 0.5}


@both
async def test_the_judge_values_partial_paths_and_is_counted(run: Runner) -> None:
    model = FakeChatModel(responder=three_steps)
    judge = FakeChatModel(responder=constant("9"))
    result = await run(
        model, QUESTION, breadth=2, threshold=0.8, scorer=LLMJudgeScorer(judge)
    )
    assert result["budget_used"] == 3
    usage = result["usage"]
    assert usage["scorer_calls"] == len(judge.calls) == len(result["candidates"]) == 6
    assert usage["generations"] == 6
    assert usage["scorer_input_tokens"] > 0
    # The judge saw a partial path first.
    assert STEP_1 in last_human(judge.calls[0])
    assert "boxed" not in last_human(judge.calls[0])


# -- memory ----------------------------------------------------------------------------


def test_exemplars_go_into_every_proposal_and_precedents_to_the_scorer() -> None:
    model = FakeChatModel(responder=three_steps)
    memory = MemoryContext(
        exemplars=[{"question": "What is 1 + 1?", "solution": boxed(2)}],
        precedents=["42"],
    )
    result = tree_of_thoughts(
        model, QUESTION, breadth=1, memory=memory, scorer=ConsensusScorer(quorum=2)
    )
    # One solution plus the matching precedent make a quorum.
    assert result["stop_reason"] == "threshold"
    assert result["budget_used"] == 3
    assert all(c["with_memory"] for c in result["candidates"])
    for call in model.calls:
        assert "What is 1 + 1?" in [m.content for m in call]


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"max_nodes": 0},
        {"max_nodes": -1},
        {"breadth": 0},
        {"breadth": -3},
        {"max_depth": 0},
        {"max_depth": 1.5},
        {"prune_below": 1.5},
        {"prune_below": -0.5},
        {"prune_below": float("nan")},
        {"prune_below": True},
        {"threshold": 2.0},
        {"mode": "greedy"},
    ],
)
def test_invalid_options_fail_when_built(options: dict[str, Any]) -> None:
    model = FakeChatModel(responder=three_steps)
    with pytest.raises(ConfigurationError):
        TreeOfThoughts(model, **options)
    with pytest.raises(ConfigurationError):
        create_tree_of_thoughts_graph(model, **options)
    assert model.calls == []


def test_prune_below_uses_the_scorers_range() -> None:
    wide = FunctionScorer(lambda q, c: 5.0, lower=0.0, upper=10.0)
    engine = TreeOfThoughts(
        FakeChatModel(responder=three_steps), scorer=wide, prune_below=4
    )
    assert engine.prune_below == 4.0
    assert TreeOfThoughts(FakeChatModel(responder=three_steps)).prune_below == 0.0


@both
async def test_a_failing_proposal_raises_a_solver_model_error(run: Runner) -> None:
    model = FailingChatModel(responder=three_steps, fail_on=3)
    with pytest.raises(ModelError) as caught:
        await run(model, QUESTION, breadth=2)
    assert caught.value.role == "solver"


# -- the graph -------------------------------------------------------------------------


def test_graph_shape_snapshot() -> None:
    graph = create_tree_of_thoughts_graph(FakeChatModel(responder=three_steps))
    assert graph.get_graph().draw_mermaid(with_styles=False) == MERMAID


@pytest.mark.parametrize("mode", ["static", "adaptive"])
async def test_graph_matches_the_functional_core(mode: str) -> None:
    model = FakeChatModel(responder=three_steps)
    options: dict[str, Any] = {
        "breadth": 2,
        "max_nodes": 6,
        "mode": mode,
        "scorer": ConsensusScorer(quorum=2),
    }
    expected = tree_of_thoughts(model, QUESTION, **options)
    graph = create_tree_of_thoughts_graph(model, **options)
    inputs = {"messages": [HumanMessage(QUESTION)]}
    for state in (graph.invoke(inputs), await graph.ainvoke(inputs)):
        assert set(state) == {"messages", "tree_of_thoughts"}
        assert without_seconds(state["tree_of_thoughts"]) == without_seconds(expected)
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        assert last.name == "tree_of_thoughts"
        assert last.content == expected["answer"]


async def test_graph_streams_candidates_scores_and_the_stop() -> None:
    model = FakeChatModel(responder=three_steps)
    graph = create_tree_of_thoughts_graph(
        model, breadth=2, scorer=ConsensusScorer(quorum=2)
    )
    inputs = {"messages": [HumanMessage(QUESTION)]}
    events = list(graph.stream(inputs, stream_mode="custom"))
    aevents = [e async for e in graph.astream(inputs, stream_mode="custom")]
    assert events == aevents
    per_expansion = ["candidate", "candidate", "score", "score"]
    assert [e["event"] for e in events] == per_expansion * 3 + ["stop"]
    assert [e["index"] for e in events if e["event"] == "candidate"] == list(range(6))
    assert events[0]["text"] == STEP_1
    scores = [e for e in events if e["event"] == "score"]
    # Partial paths never count as passing.
    assert [e["passed"] for e in scores] == [False] * 4 + [True] * 2
    assert events[-1]["stop_reason"] == "threshold"
    assert events[-1]["budget_used"] == 3
    assert events[-1]["budget_unit"] == "expanded_nodes"


def test_graph_stops_gracefully_near_the_recursion_limit() -> None:
    model = FakeChatModel(responder=never_finishes)
    graph = create_tree_of_thoughts_graph(model, breadth=1, max_depth=100, max_nodes=50)
    config: RunnableConfig = {"recursion_limit": 10}
    out = graph.invoke({"messages": [HumanMessage(QUESTION)]}, config)
    result = out["tree_of_thoughts"]
    assert result["stop_reason"] == "budget"
    assert 1 <= result["budget_used"] < 50


def test_graph_runs_as_a_node_of_a_parent_graph() -> None:
    model = FakeChatModel(responder=three_steps)
    builder = StateGraph(MessagesState)
    builder.add_node(
        create_tree_of_thoughts_graph(
            model, breadth=2, scorer=ConsensusScorer(quorum=2)
        )
    )
    builder.add_edge(START, "tree_of_thoughts")
    builder.add_edge("tree_of_thoughts", END)
    out = builder.compile().invoke({"messages": [("user", QUESTION)]})
    assert out["messages"][-1].content.endswith(FINAL)
