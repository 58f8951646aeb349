"""Each scaling method against the real model: structure, stopping and the ledger.

Best-of-N runs static, adaptive and as an async graph with memory, long
chain-of-thought through its engine, Tree-of-Thoughts through the async path,
and Self-Refine through the speedup graph (route, the method's own subgraph,
remember), so the router's method translation meets the real server too.
Budgets are tiny; the checks are structural and can fail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai import ChatOpenAI

from integration_tests.conftest import episodes_in, new_store
from langchain_speedup import (
    Candidate,
    ConsensusScorer,
    MemoryContext,
    ScalingResult,
    Usage,
    create_best_of_n_graph,
    create_speedup_graph,
    extract_answer,
)
from langchain_speedup.answers import states_answer
from langchain_speedup.bench.methods import BENCH_CRITIQUE_PROMPT, BENCH_REVISE_PROMPT
from langchain_speedup.bench.questions import (
    BENCH_STEP_PROMPT,
    DEMO_SYSTEM_PROMPT,
    TEMPLATES,
)
from langchain_speedup.local import MiniLMEmbeddings
from langchain_speedup.scaling import (
    BestOfN,
    LongCoT,
    SelfRefine,
    TreeOfThoughts,
    create_engine,
)

pytestmark = pytest.mark.integration

QUESTION = TEMPLATES[0].question(0)  # Maya's change: 20 - 3 * 4
QUORUM = 2
TOKEN_PARTS = (
    "solver_input_tokens",
    "solver_output_tokens",
    "scorer_input_tokens",
    "scorer_output_tokens",
    "other_tokens",
)


def scorer() -> ConsensusScorer:
    return ConsensusScorer(quorum=QUORUM)


def check_usage(usage: Usage) -> None:
    """What every method's ledger must satisfy."""
    assert usage["generations"] >= 1
    assert usage["failed_calls"] == 0
    assert usage["scorer_calls"] == 0  # consensus scoring calls no model
    assert usage["solver_input_tokens"] > 0
    assert usage["solver_output_tokens"] > 0
    assert usage["total_tokens"] == sum(usage[k] for k in TOKEN_PARTS)
    assert usage["seconds"] > 0


def check_common(result: ScalingResult, *, method: str, unit: str, budget: int) -> None:
    """What every method's adaptive result must satisfy."""
    assert result["method"] == method
    assert result["mode"] == "adaptive"
    assert result["budget_unit"] == unit
    assert result["budget_used"] >= 1
    check_usage(result["usage"])
    assert result["candidates"]
    assert not any(c["with_memory"] for c in result["candidates"])
    # Adaptive: a pass stops at the threshold, anything else at the budget.
    assert result["stop_reason"] == ("threshold" if result["passed"] else "budget")
    if result["passed"]:
        assert result["score"] >= 1.0
        assert result["final_answer"] is not None
    elif result["score"] >= 1.0:
        # Only a partial Tree-of-Thoughts path may score without passing.
        assert method == "tree_of_thoughts"
        assert result["final_answer"] is None
    assert result["answer"] in [c["text"] for c in result["candidates"]]
    if method != "long_cot":
        assert result["budget_used"] <= budget


def check_candidates(
    candidates: Sequence[Candidate], *, static: bool, quorum: int = 3
) -> None:
    # Only a reply that states its answer votes or scores.
    stated = [c["answer"] if states_answer(c["text"]) else None for c in candidates]
    for i, c in enumerate(candidates):
        assert c["text"].strip()
        assert c["answer"] == extract_answer(c["text"])
        # Static: each candidate is voted on by all the others; adaptive: by
        # those drawn before it.
        peers = stated if static else stated[: i + 1]
        votes = sum(a == stated[i] for a in peers)
        expected = 0.0 if stated[i] is None else min(1.0, votes / quorum)
        assert c["score"] == pytest.approx(expected)
    # Loosely: the short-answer prompt gets at least one answer out.
    assert any(c["answer"] is not None for c in candidates)


def check_selection(result: ScalingResult, n: int, quorum: int = 3) -> None:
    candidates = result["candidates"]
    assert result["method"] == "best_of_n"
    assert result["budget_unit"] == "generations"
    assert 1 <= result["budget_used"] <= n
    assert result["budget_used"] == len(candidates) == result["usage"]["generations"]
    check_usage(result["usage"])
    assert result["usage"]["other_calls"] == result["usage"]["other_tokens"] == 0
    assert result["passed"] == (result["score"] >= 1.0)
    if result["mode"] == "adaptive" and result["passed"]:
        # Stops at the first candidate that reaches the quorum, and keeps it.
        assert result["stop_reason"] == "threshold"
        assert [c["score"] >= 1.0 for c in candidates] == [False] * (
            len(candidates) - 1
        ) + [True]
        assert result["budget_used"] >= quorum
        chosen = candidates[-1]
    else:
        assert result["stop_reason"] == "budget"
        assert result["budget_used"] == n
        chosen = max(candidates, key=lambda c: c["score"])
    assert result["answer"] == chosen["text"]
    assert result["final_answer"] == chosen["answer"]
    assert result["score"] == chosen["score"]


def test_static_best_of_n_spends_the_whole_budget(chat_model: ChatOpenAI) -> None:
    result = BestOfN(
        chat_model, budget=3, mode="static", system_prompt=DEMO_SYSTEM_PROMPT
    ).run(QUESTION)
    assert result["mode"] == "static"
    assert result["budget_used"] == 3
    check_selection(result, n=3)
    check_candidates(result["candidates"], static=True)
    assert not any(c["with_memory"] for c in result["candidates"])


def test_adaptive_best_of_n_stops_at_the_quorum_or_the_budget(
    chat_model: ChatOpenAI,
) -> None:
    engine = create_engine(
        chat_model,
        "best_of_n",
        budget=4,
        mode="adaptive",
        system_prompt=DEMO_SYSTEM_PROMPT,
    )
    assert isinstance(engine, BestOfN)
    result = engine.run(QUESTION)
    assert result["mode"] == "adaptive"
    assert result["budget_used"] <= 4
    check_selection(result, n=4)
    check_candidates(result["candidates"], static=False)


async def test_best_of_n_graph_runs_async_with_memory(chat_model: ChatOpenAI) -> None:
    graph = create_best_of_n_graph(
        chat_model,
        budget=4,
        mode="adaptive",
        scorer=ConsensusScorer(quorum=2),
        system_prompt=DEMO_SYSTEM_PROMPT,
    )
    garden = TEMPLATES[1]
    memory = MemoryContext(
        exemplars=[
            {
                "question": garden.question(0),
                "solution": "6 * 8 = 48\n48 - 5 = 43\nThe final answer is \\boxed{43}.",
            }
        ],
        precedents=[],
        samples=1,
    )
    out = await graph.ainvoke({"messages": [HumanMessage(QUESTION)], "memory": memory})

    assert set(out) == {"messages", "best_of_n"}
    result = out["best_of_n"]
    check_selection(result, n=4, quorum=2)
    check_candidates(result["candidates"], static=False, quorum=2)
    # Only the first sample sees the exemplar.
    flags = [c["with_memory"] for c in result["candidates"]]
    assert flags == [True] + [False] * (len(flags) - 1)
    assert len(out["messages"]) == 2
    reply = out["messages"][-1]
    assert isinstance(reply, AIMessage)
    assert reply.name == "best_of_n"
    assert reply.content == result["answer"]


async def test_tree_of_thoughts_async(chat_model: ChatOpenAI) -> None:
    # One expansion at the last depth: two proposals asked to finish.
    engine = create_engine(
        chat_model,
        "tree_of_thoughts",
        budget=1,
        breadth=2,
        max_depth=1,
        scorer=scorer(),
        system_prompt=BENCH_STEP_PROMPT,
    )
    assert isinstance(engine, TreeOfThoughts)
    result = await engine.arun(QUESTION)
    check_common(result, method="tree_of_thoughts", unit="expanded_nodes", budget=1)
    assert result["budget_used"] == 1
    assert len(result["candidates"]) == 2 == result["usage"]["generations"]


def test_self_refine_through_the_speedup_graph(
    chat_model: ChatOpenAI, embeddings: MiniLMEmbeddings
) -> None:
    store = new_store(embeddings)
    solver = SelfRefine(
        chat_model,
        budget=2,
        scorer=scorer(),
        system_prompt=DEMO_SYSTEM_PROMPT,
        critique_prompt=BENCH_CRITIQUE_PROMPT,
        revise_prompt=BENCH_REVISE_PROMPT,
    )
    graph = create_speedup_graph(solver, store=store, namespace="methods-live")
    out = graph.invoke({"messages": [HumanMessage(QUESTION)]})
    answer = out["speedup"]
    route = answer["route"]
    assert route["decision"] == "scratch"
    assert route["method"] == "self_refine"
    assert route["unit"] == "rounds"
    assert route["budget"] == 2
    result = answer["result"]
    assert result is not None
    check_common(result, method="self_refine", unit="rounds", budget=2)
    rounds = result["budget_used"]
    assert len(result["candidates"]) == rounds == result["usage"]["generations"]
    # A critique before every revision, counted apart from the answers.
    assert result["usage"]["other_calls"] == rounds - 1
    if not result["passed"]:
        assert rounds == 2
    last = out["messages"][-1]
    assert isinstance(last, AIMessage)
    # One name for the speedup graph's answers, solved or reused, and the
    # question's whole cost on the message.
    assert last.name == "speedup"
    assert last.usage_metadata is not None
    assert last.usage_metadata["total_tokens"] == answer["usage"]["total_tokens"]
    assert last.content == result["answer"]
    [episode] = episodes_in(store, "methods-live")
    assert episode["method"] == "self_refine"
    assert episode["budget_unit"] == "rounds"
    assert episode["verified"] == (
        result["passed"] and result["final_answer"] is not None
    )


def test_long_cot(chat_model: ChatOpenAI) -> None:
    budget, segment = 32, 16
    engine = create_engine(
        chat_model,
        "long_cot",
        budget=budget,
        segment_tokens=segment,
        probe_tokens=16,
        scorer=scorer(),
        system_prompt=DEMO_SYSTEM_PROMPT,
    )
    assert isinstance(engine, LongCoT)
    result = engine.run(QUESTION)
    check_common(result, method="long_cot", unit="reasoning_tokens", budget=budget)
    # Adaptive: every thinking segment is probed once.
    segments = len(result["candidates"])
    assert 1 <= segments <= math.ceil(budget / segment)
    assert result["usage"]["generations"] == 2 * segments
    assert result["budget_used"] <= result["usage"]["solver_output_tokens"]
    if not result["passed"]:
        # Thinking ended: the tokens or the segments ran out.
        assert result["budget_used"] >= budget or segments == math.ceil(
            budget / segment
        )
    # Each segment is capped by the server (`LocalChatOpenAI` sends `max_tokens`).
    assert result["budget_used"] <= budget
