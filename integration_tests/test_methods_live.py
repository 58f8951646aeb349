"""Each scaling method once, adaptive with a tiny budget, on the real model.

Best-of-N and long chain-of-thought run through their engines, Tree-of-Thoughts
through the async path, and Self-Refine through the speedup graph (route, the
method's own subgraph, remember), so the router's method translation meets the
real server too. Consensus of 2 keeps the budgets tiny (about 12 short calls
in all) while a pass stays possible. The checks are structural and can fail:
the budget spent within the budget, the method's unit, tokens counted, and a
stop reason that agrees with `passed`.
"""

from __future__ import annotations

import math

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai import ChatOpenAI

from langchain_speedup import (
    ConsensusScorer,
    QdrantEpisodicStore,
    ScalingResult,
    create_speedup_graph,
    extract_answer,
)
from langchain_speedup.bench.demo import DEMO_SYSTEM_PROMPT
from langchain_speedup.bench.methods import (
    BENCH_CRITIQUE_PROMPT,
    BENCH_REVISE_PROMPT,
    BENCH_STEP_PROMPT,
)
from langchain_speedup.bench.questions import TEMPLATES
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


def scorer() -> ConsensusScorer:
    return ConsensusScorer(quorum=QUORUM)


def check_common(result: ScalingResult, *, method: str, unit: str, budget: int) -> None:
    """What every method's adaptive result must satisfy."""
    assert result["method"] == method
    assert result["mode"] == "adaptive"
    assert result["budget_unit"] == unit
    assert result["budget_used"] >= 1
    usage = result["usage"]
    assert usage["generations"] >= 1
    assert usage["solver_input_tokens"] > 0
    assert usage["solver_output_tokens"] > 0
    assert usage["total_tokens"] > 0
    assert usage["failed_calls"] == 0
    assert usage["scorer_calls"] == 0  # consensus scoring calls no model
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


def test_best_of_n(chat_model: ChatOpenAI) -> None:
    engine = create_engine(
        chat_model,
        "best_of_n",
        budget=2,
        scorer=scorer(),
        system_prompt=DEMO_SYSTEM_PROMPT,
    )
    assert isinstance(engine, BestOfN)
    result = engine.run(QUESTION)
    check_common(result, method="best_of_n", unit="generations", budget=2)
    candidates = result["candidates"]
    assert result["budget_used"] == len(candidates) == result["usage"]["generations"]
    for c in candidates:
        assert c["answer"] == extract_answer(c["text"])
    if not result["passed"]:
        assert result["budget_used"] == 2


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
    with QdrantEpisodicStore() as store:
        solver = SelfRefine(
            chat_model,
            budget=2,
            scorer=scorer(),
            system_prompt=DEMO_SYSTEM_PROMPT,
            critique_prompt=BENCH_CRITIQUE_PROMPT,
            revise_prompt=BENCH_REVISE_PROMPT,
        )
        graph = create_speedup_graph(
            solver, store=store, embeddings=embeddings, namespace="methods-live"
        )
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
        assert last.name == "self_refine"
        assert last.content == result["answer"]
        [episode] = store.episodes("methods-live")
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
