"""The budget router and the speedup graph on the real model, MiniLM and Qdrant."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.store.base import BaseStore

from integration_tests.conftest import episodes_in, new_store
from langchain_speedup import (
    BestOfN,
    BudgetRouter,
    ConsensusScorer,
    FunctionScorer,
    Scorer,
    SpeedupResult,
    create_speedup_graph,
    question_key,
)
from langchain_speedup.bench.questions import DEMO_SYSTEM_PROMPT, TEMPLATES
from langchain_speedup.local import MiniLMEmbeddings

pytestmark = pytest.mark.integration

NAMESPACE = "live"
GATE = 0.8
MEMORY_SAMPLES = 2
CHANGE = TEMPLATES[0]
UNRELATED = next(t for t in TEMPLATES if t.key == "ages")


def best_of_n(model: ChatOpenAI, budget: int, scorer: Scorer | None = None) -> BestOfN:
    # Two agreeing samples verify an answer, so episodes get verified often.
    return BestOfN(
        model,
        budget=budget,
        scorer=scorer or ConsensusScorer(quorum=2),
        system_prompt=DEMO_SYSTEM_PROMPT,
    )


def make_router(
    model: ChatOpenAI, store: BaseStore, embeddings: MiniLMEmbeddings
) -> BudgetRouter:
    return BudgetRouter(
        best_of_n(model, budget=4),
        store=store,
        namespace=NAMESPACE,
        similarity_gate=GATE,
        memory_samples=MEMORY_SAMPLES,
    )


def check_solved(answer: SpeedupResult, *, budget: int = 4) -> None:
    result = answer["result"]
    assert result is not None
    assert answer["episode_id"] is not None
    assert "memory_error" not in answer
    assert answer["usage"]["generations"] == result["budget_used"] >= 1
    assert answer["usage"]["total_tokens"] == result["usage"]["total_tokens"] > 0
    assert answer["final_answer"] == result["final_answer"]
    assert answer["answer"] == result["answer"]
    assert answer["route"]["budget"] == budget
    assert result["budget_used"] <= budget
    flags = [c["with_memory"] for c in result["candidates"]]
    shown = answer["route"]["memory_samples"]
    assert flags == [True] * min(shown, len(flags)) + [False] * max(
        0, len(flags) - shown
    )


def check_reused(answer: SpeedupResult, episode: dict[str, object]) -> None:
    route = answer["route"]
    assert route["decision"] == "reuse"
    assert route["budget"] == 0
    assert route["exemplar_ids"] == [episode["id"]]
    assert answer["result"] is None
    assert answer["episode_id"] is None
    assert answer["usage"]["generations"] == 0
    assert answer["usage"]["total_tokens"] == 0
    assert answer["final_answer"] == episode["final_answer"]
    assert answer["answer"] == episode["answer"]
    assert answer["score"] == episode["score"]


def test_router_reuses_only_verified_repeats_and_a_new_router_remembers(
    chat_model: ChatOpenAI, embeddings: MiniLMEmbeddings
) -> None:
    store = new_store(embeddings)
    router = make_router(chat_model, store, embeddings)
    question = CHANGE.question(0)

    # 1. A new question on an empty store: scratch, then one episode.
    first = router.solve(question)
    assert first["route"]["decision"] == "scratch"
    assert first["route"]["similarity"] is None
    check_solved(first)
    [episode] = episodes_in(store, NAMESPACE)
    assert episode["id"] == first["episode_id"]
    assert episode["question_key"] == question_key(question)
    assert episode["decision"] == "scratch"
    assert episode["generations"] == first["usage"]["generations"]
    first_result = first["result"]
    assert first_result is not None
    verified = episode["verified"]
    assert verified == (first_result["passed"] and first["final_answer"] is not None)

    # 2. The exact repeat is reused if and only if the episode was verified.
    again = router.solve(question)
    if verified:
        check_reused(again, episode)
        assert again["final_answer"] == first["final_answer"]
        assert len(episodes_in(store, NAMESPACE)) == 1
    else:
        # Unverified episodes are neither reused nor shown.
        assert again["route"]["decision"] == "scratch"
        check_solved(again)
        assert len(episodes_in(store, NAMESPACE)) == 2

    # 3. New numbers for the same problem: never reused; shown as an
    #    exemplar exactly when a verified episode is similar enough.
    variant = CHANGE.question(1)
    vector = embeddings.embed_query(variant)
    close = [
        e
        for e in episodes_in(store, NAMESPACE)
        if e["verified"]
        and np.dot(vector, embeddings.embed_query(e["question"])) >= GATE
    ]
    renumbered = router.solve(variant)
    assert renumbered["route"]["decision"] == ("exemplars" if close else "scratch")
    assert renumbered["route"]["precedents"] == []
    assert sorted(renumbered["route"]["exemplar_ids"]) == sorted(e["id"] for e in close)
    assert renumbered["route"]["memory_samples"] == (MEMORY_SAMPLES if close else 0)
    check_solved(renumbered)

    # 4. A different problem: scratch.
    unrelated = router.solve(UNRELATED.question(0))
    assert unrelated["route"]["decision"] == "scratch"
    similarity = unrelated["route"]["similarity"]
    assert similarity is None or similarity < GATE
    assert unrelated["route"]["exemplar_ids"] == []
    check_solved(unrelated)

    stored = episodes_in(store, NAMESPACE)
    assert len(stored) == 4 - int(verified)

    # 5. A new router on the same store finds every episode there.
    reopened = store
    router = make_router(chat_model, reopened, embeddings)
    known = [e for e in stored if e["verified"]]
    if known:
        check_reused(router.solve(known[-1]["question"]), known[-1])
        assert len(episodes_in(reopened, NAMESPACE)) == len(stored)
    else:
        # Nothing verified: a repeat is solved again, never reused.
        repeat = router.solve(question)
        assert repeat["route"]["decision"] == "scratch"
        assert len(episodes_in(reopened, NAMESPACE)) == len(stored) + 1


@pytest.mark.parametrize("verdict", [1.0, 0.0], ids=["verified", "unverified"])
def test_exact_repeat_is_reused_if_and_only_if_verified(
    chat_model: ChatOpenAI,
    embeddings: MiniLMEmbeddings,
    tmp_path: Path,
    verdict: float,
) -> None:
    # A fixed score takes chance out of the verdict, so both branches run.
    store = new_store(embeddings)
    router = BudgetRouter(
        best_of_n(
            chat_model,
            budget=1,
            scorer=FunctionScorer(lambda question, candidate: verdict),
        ),
        store=store,
        namespace=NAMESPACE,
    )
    question = CHANGE.question(2)
    first = router.solve(question)
    check_solved(first, budget=1)
    [episode] = episodes_in(store, NAMESPACE)
    assert episode["verified"] == (verdict == 1.0 and first["final_answer"] is not None)

    # Case, spacing and punctuation do not make a new question.
    again = router.solve(f"  {question.upper()}!! ")
    if episode["verified"]:
        check_reused(again, episode)
        assert len(episodes_in(store, NAMESPACE)) == 1
    else:
        assert again["route"]["decision"] == "scratch"
        check_solved(again, budget=1)
        assert len(episodes_in(store, NAMESPACE)) == 2


def test_speedup_graph_answers_and_remembers(
    chat_model: ChatOpenAI, embeddings: MiniLMEmbeddings, tmp_path: Path
) -> None:
    store = new_store(embeddings)
    graph = create_speedup_graph(
        best_of_n(chat_model, budget=2),
        store=store,
        namespace="graph",
    )
    question = TEMPLATES[2].question(0)
    out = graph.invoke({"messages": [HumanMessage(question)]})

    assert set(out) == {"messages", "speedup"}
    speedup = out["speedup"]
    assert speedup["question"] == question
    assert speedup["route"]["decision"] == "scratch"
    check_solved(speedup, budget=2)
    assert len(out["messages"]) == 2
    reply = out["messages"][-1]
    assert isinstance(reply, AIMessage)
    assert reply.content == speedup["answer"]
    [episode] = episodes_in(store, "graph")
    assert episode["id"] == speedup["episode_id"]
    assert str(uuid.UUID(episode["id"])) == episode["id"]
    assert episode["question"] == question
    assert len(episodes_in(store, NAMESPACE)) == 0
