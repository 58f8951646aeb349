"""Faults across the package: every failure is a `SpeedupError`, raised before
anything is spent or written where it can be, and no answer is lost to memory."""

from __future__ import annotations

import math
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.runnables import RunnableLambda
from langgraph.store.base import BaseStore, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

from langchain_speedup import (
    BestOfN,
    BudgetRouter,
    EmbeddingError,
    EmbeddingSizeError,
    InvalidInputError,
    MemoryStoreError,
    ModelError,
    Scorer,
    ScoringError,
    memory_index,
)
from tests.fakes import (
    FailingChatModel,
    FakeChatModel,
    FaultyStore,
    HashEmbeddings,
    boxed,
    episodes_in,
    sum_solver,
)

QUESTION = "What is 3 + 4?"


class BadEmbeddings(Embeddings):
    """Embeddings that raise `error`, or return `vector`."""

    def __init__(self, vector: Any = None, error: Exception | None = None) -> None:
        self.vector, self.error = vector, error

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> Any:
        if self.error is not None:
            raise self.error
        return self.vector


async def ask(solver: Any, question: Any, is_async: bool) -> Any:
    """`solve` / `run` the question, sync or async."""
    if isinstance(solver, BudgetRouter):
        return await solver.asolve(question) if is_async else solver.solve(question)
    return await solver.arun(question) if is_async else solver.run(question)


@pytest.mark.parametrize(
    "embeddings",
    [
        BadEmbeddings(error=ConnectionError("embedding server refused")),
        BadEmbeddings([]),
        BadEmbeddings(None),
        BadEmbeddings("0.5"),
        BadEmbeddings({"x": 1.0}),
        BadEmbeddings(["x"]),
        BadEmbeddings([math.nan, 1.0]),
        BadEmbeddings([1.0, math.inf]),
    ],
    ids=["raises", "empty", "None", "str", "dict", "not-numbers", "nan", "inf"],
)
async def test_failing_embeddings_are_an_embedding_error_before_any_generation(
    embeddings: BadEmbeddings, model: FakeChatModel, is_async: bool
) -> None:
    store = InMemoryStore(index=memory_index(embeddings, dims=8))
    router = BudgetRouter(model, store=store)
    with pytest.raises(EmbeddingError) as info:
        await ask(router, QUESTION, is_async)
    if embeddings.error is not None:
        assert info.value.__cause__ is embeddings.error
    assert model.calls == []
    assert len(episodes_in(store, "default")) == 0


async def test_a_store_failing_to_embed_is_a_store_error_before_any_generation(
    model: FakeChatModel, is_async: bool
) -> None:
    # Embeddings given to a store's index directly, not through `memory_index`.
    refused = BadEmbeddings(error=ConnectionError("embedding server refused"))
    index: Any = {"dims": 8, "embed": refused, "fields": ["question"]}
    store = InMemoryStore(index=index)
    with pytest.raises(MemoryStoreError, match="embedding server refused"):
        await ask(BudgetRouter(model, store=store), QUESTION, is_async)
    assert model.calls == []


@pytest.mark.parametrize("solver", ["router", "engine"])
async def test_a_lone_surrogate_is_invalid_input(
    solver: str,
    model: FakeChatModel,
    store: BaseStore,
    embeddings: HashEmbeddings,
    is_async: bool,
) -> None:
    engine = BestOfN(model)
    target = BudgetRouter(engine, store=store) if solver == "router" else engine
    with pytest.raises(InvalidInputError, match="not valid Unicode"):
        await ask(target, "What is 2 + 3?\ud800", is_async)
    assert (model.calls, embeddings.calls) == ([], 0)


@pytest.mark.parametrize(
    "reply", ["The answer is 7.", None, {"answer": 7}], ids=["str", "None", "dict"]
)
async def test_a_runnable_returning_no_message_is_a_model_error(
    reply: Any, is_async: bool
) -> None:
    runnable = RunnableLambda(lambda _: reply)
    with pytest.raises(ModelError, match="not a chat message") as info:
        await ask(BestOfN(runnable, budget=2), QUESTION, is_async)
    assert info.value.role == "solver"
    assert type(reply).__name__ in str(info.value)


async def test_model_error_carries_the_usage_spent(is_async: bool) -> None:
    # Adaptive Best-of-N samples one at a time: two answers, then the failure.
    model = FailingChatModel(responder=sum_solver, fail_on=3)
    with pytest.raises(ModelError) as info:
        await ask(BestOfN(model), QUESTION, is_async)
    usage = info.value.usage
    assert usage is not None
    assert (usage["generations"], usage["failed_calls"]) == (2, 1)
    assert usage["solver_output_tokens"] > 0


class ExplodingScorer(Scorer):
    """A custom scorer whose own code fails."""

    def score(self, question: str, candidate: str, **_: Any) -> float:
        raise ZeroDivisionError("division by zero")

    async def ascore(self, question: str, candidate: str, **_: Any) -> float:
        raise ZeroDivisionError("division by zero")


async def test_a_raising_scorer_is_a_scoring_error(
    model: FakeChatModel, is_async: bool
) -> None:
    engine = BestOfN(model, scorer=ExplodingScorer())
    with pytest.raises(ScoringError, match="ExplodingScorer failed") as info:
        await ask(engine, QUESTION, is_async)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


async def test_embedding_size_mismatch_answers_without_memory(
    model: FakeChatModel, store: BaseStore, is_async: bool
) -> None:
    await ask(BudgetRouter(model, store=store), "What is 1 + 2?", is_async)
    # A store that checks vector sizes, holding vectors of another size.
    mismatch = EmbeddingSizeError(
        "the store holds vectors of size 256, the embeddings give 64",
        expected=256,
        got=64,
    )
    sized = FaultyStore(
        store, fails=lambda op: isinstance(op, SearchOp | PutOp), error=mismatch
    )
    router = BudgetRouter(model, store=sized)
    out = await ask(router, QUESTION, is_async)
    assert (out["final_answer"], out["route"]["decision"]) == ("7", "scratch")
    assert out["route"]["reason"].startswith("memory unusable: ")
    assert "64" in out["route"]["reason"]
    assert "256" in out["route"]["reason"]
    assert out["episode_id"] is None
    assert "256" in out["memory_error"]
    assert len(episodes_in(store, "default")) == 1


async def test_an_oversized_answer_is_returned_but_not_stored(
    store: BaseStore, embeddings: HashEmbeddings, is_async: bool
) -> None:
    huge = "x" * 100_000 + " " + boxed(7)
    model = FakeChatModel(responder=lambda _: huge)
    router = BudgetRouter(model, store=store)
    out = await ask(router, QUESTION, is_async)
    assert (out["answer"], out["final_answer"]) == (huge, "7")
    assert out["episode_id"] is None
    assert "memory_error" in out
    assert len(episodes_in(store, "default")) == 0
