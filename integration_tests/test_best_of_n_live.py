"""Best-of-N against the real model: structure, stopping and the ledger."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai import ChatOpenAI

from langchain_speedup import (
    BestOfN,
    Candidate,
    ConsensusScorer,
    MemoryContext,
    ScalingResult,
    Usage,
    create_best_of_n_graph,
    extract_answer,
)
from langchain_speedup.bench.demo import DEMO_SYSTEM_PROMPT
from langchain_speedup.bench.questions import TEMPLATES

pytestmark = pytest.mark.integration

QUESTION = TEMPLATES[0].question(0)  # Maya's change: 20 - 3 * 4


def check_usage(usage: Usage, *, generations: int) -> None:
    assert usage["generations"] == generations
    assert usage["failed_calls"] == 0
    # Consensus scoring makes no model calls.
    assert usage["scorer_calls"] == 0
    assert usage["other_calls"] == usage["other_tokens"] == 0
    assert usage["solver_input_tokens"] > 0
    assert usage["solver_output_tokens"] > 0
    assert usage["total_tokens"] > 0
    assert usage["total_tokens"] == (
        usage["solver_input_tokens"]
        + usage["solver_output_tokens"]
        + usage["scorer_input_tokens"]
        + usage["scorer_output_tokens"]
    )
    assert usage["seconds"] > 0


def check_candidates(
    candidates: Sequence[Candidate], *, static: bool, quorum: int = 3
) -> None:
    answers = [c["answer"] for c in candidates]
    for i, c in enumerate(candidates):
        assert c["text"].strip()
        assert c["answer"] == extract_answer(c["text"])
        # Static: each candidate is voted on by all the others; adaptive: by
        # those drawn before it.
        peers = answers if static else answers[: i + 1]
        votes = sum(a == c["answer"] for a in peers)
        expected = 0.0 if c["answer"] is None else min(1.0, votes / quorum)
        assert c["score"] == pytest.approx(expected)
    # Loosely: the short-answer prompt gets at least one answer out.
    assert any(a is not None for a in answers)


def check_selection(result: ScalingResult, n: int, quorum: int = 3) -> None:
    candidates = result["candidates"]
    assert result["method"] == "best_of_n"
    assert result["budget_unit"] == "generations"
    assert 1 <= result["budget_used"] <= n
    assert result["budget_used"] == len(candidates)
    check_usage(result["usage"], generations=result["budget_used"])
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
    result = BestOfN(
        chat_model, budget=4, mode="adaptive", system_prompt=DEMO_SYSTEM_PROMPT
    ).run(QUESTION)
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
