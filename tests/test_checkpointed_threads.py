"""Every graph answers many questions on one checkpointed thread as a fresh graph would.

LangGraph Platform threads and apps with a checkpointer keep a graph's state
between invocations; each question must still start afresh and leave only
plain, serialisable data behind.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from langchain_speedup import (
    BestOfN,
    LongCoT,
    QdrantEpisodicStore,
    ScalingEngine,
    SelfRefine,
    TreeOfThoughts,
    create_speedup_graph,
)
from tests.fakes import FakeChatModel, HashEmbeddings, boxed


def question_solver(messages: list[BaseMessage]) -> str:
    """Answers with the sum of the integers of the last human turn that has any.

    Follow-up turns (critique, continue, next step) carry no numbers, so every
    call of one run answers the question itself, and each question differently.
    """
    asked = [m.text for m in messages if isinstance(m, HumanMessage)]
    numbers = next(
        (re.findall(r"\d+", a) for a in reversed(asked) if re.search(r"\d", a)), []
    )
    return boxed(sum(int(n) for n in numbers))


QUESTIONS = [
    "What is 2 + 3?",
    "Tom has 10 apples, buys 20 more and 5 more. How many apples?",
    "What is 7 + 8 + 9?",
]
# The speedup graph meets a repeat too, so one turn is answered from memory.
SPEEDUP_QUESTIONS = [*QUESTIONS, QUESTIONS[0]]

ENGINES: dict[str, Callable[[FakeChatModel, str], ScalingEngine]] = {
    "best_of_n": lambda m, mode: BestOfN(m, budget=3, mode=mode),  # type: ignore[arg-type]
    "self_refine": lambda m, mode: SelfRefine(m, budget=3, mode=mode),  # type: ignore[arg-type]
    "tree_of_thoughts": lambda m, mode: TreeOfThoughts(  # type: ignore[arg-type]
        m, budget=3, breadth=2, max_depth=2, mode=mode
    ),
    "long_cot": lambda m, mode: LongCoT(m, budget=48, segment_tokens=16, mode=mode),  # type: ignore[arg-type]
}


def _saver(kind: str) -> AbstractContextManager[Any]:
    if kind == "memory":
        return nullcontext(InMemorySaver())
    return SqliteSaver.from_conn_string(":memory:")


def _asaver(kind: str) -> AbstractAsyncContextManager[Any]:
    if kind == "memory":

        class _Memory:
            async def __aenter__(self) -> InMemorySaver:
                return InMemorySaver()

            async def __aexit__(self, *exc: object) -> None:
                return None

        return _Memory()
    return AsyncSqliteSaver.from_conn_string(":memory:")


def _essentials(result: dict[str, Any]) -> tuple[Any, ...]:
    return (
        result["answer"],
        result["final_answer"],
        result["budget_used"],
        result["stop_reason"],
    )


def _speedup_essentials(result: dict[str, Any]) -> tuple[Any, ...]:
    solved = result["result"]
    return (
        result["answer"],
        result["route"]["decision"],
        solved and solved["budget_used"],
        result["usage"]["generations"],
    )


def _assert_round_trips(values: dict[str, Any]) -> None:
    serde = JsonPlusSerializer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert serde.loads_typed(serde.dumps_typed(values)) == values


@pytest.fixture(params=["memory", "sqlite"])
def saver_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("mode", ["adaptive", "static"])
@pytest.mark.parametrize("method", list(ENGINES))
def test_method_graph_on_one_thread_matches_fresh_graphs(
    method: str, mode: str, saver_kind: str
) -> None:
    engine = ENGINES[method](FakeChatModel(responder=question_solver), mode)
    fresh = [
        engine.as_graph().invoke({"messages": [HumanMessage(q)]}) for q in QUESTIONS
    ]
    with _saver(saver_kind) as saver:
        graph = engine.as_graph(checkpointer=saver)
        config = {"configurable": {"thread_id": "one"}}
        threaded = [
            graph.invoke({"messages": [HumanMessage(q)]}, config) for q in QUESTIONS
        ]
        values = graph.get_state(config).values
    assert [_essentials(o[method]) for o in threaded] == [
        _essentials(o[method]) for o in fresh
    ]
    assert len({o[method]["final_answer"] for o in fresh}) == len(QUESTIONS)
    # The thread keeps the whole conversation: a question and an answer per turn.
    assert len(values["messages"]) == 2 * len(QUESTIONS)
    assert values.get("memory") is None
    _assert_round_trips(values)


@pytest.mark.parametrize("method", list(ENGINES))
async def test_async_method_graph_on_one_thread_matches_fresh_graphs(
    method: str, saver_kind: str
) -> None:
    engine = ENGINES[method](FakeChatModel(responder=question_solver), "adaptive")
    fresh = [
        await engine.as_graph().ainvoke({"messages": [HumanMessage(q)]})
        for q in QUESTIONS
    ]
    async with _asaver(saver_kind) as saver:
        graph = engine.as_graph(checkpointer=saver)
        config = {"configurable": {"thread_id": "one"}}
        threaded = [
            await graph.ainvoke({"messages": [HumanMessage(q)]}, config)
            for q in QUESTIONS
        ]
        values = (await graph.aget_state(config)).values
    assert [_essentials(o[method]) for o in threaded] == [
        _essentials(o[method]) for o in fresh
    ]
    _assert_round_trips(values)


def test_memory_given_to_one_invocation_does_not_reach_the_next() -> None:
    model = FakeChatModel(responder=question_solver)
    graph = BestOfN(model, budget=2).as_graph(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "one"}}
    memory = {
        "exemplars": [{"question": "Q 1 + 1?", "solution": "2"}],
        "precedents": [],
    }
    graph.invoke({"messages": [HumanMessage(QUESTIONS[0])], "memory": memory}, config)
    graph.invoke({"messages": [HumanMessage(QUESTIONS[1])]}, config)
    second_prompt = model.calls[-1]
    assert all("Q 1 + 1?" not in str(m.content) for m in second_prompt)
    out = graph.get_state(config).values["best_of_n"]
    assert not any(c["with_memory"] for c in out["candidates"])


EMBEDDINGS: dict[str, Callable[[], Embeddings]] = {
    "hash": HashEmbeddings,
    "deterministic_fake": lambda: DeterministicFakeEmbedding(size=64),
}


@pytest.fixture
def stores() -> Iterator[tuple[QdrantEpisodicStore, QdrantEpisodicStore]]:
    with QdrantEpisodicStore() as a, QdrantEpisodicStore() as b:
        yield a, b


@pytest.mark.parametrize("method", list(ENGINES))
@pytest.mark.parametrize("embeddings", list(EMBEDDINGS))
def test_speedup_graph_on_one_thread_matches_fresh_threads(
    embeddings: str,
    method: str,
    saver_kind: str,
    stores: tuple[QdrantEpisodicStore, QdrantEpisodicStore],
) -> None:
    def graph(store: QdrantEpisodicStore, saver: Any) -> Any:
        return create_speedup_graph(
            ENGINES[method](FakeChatModel(responder=question_solver), "adaptive"),
            store=store,
            embeddings=EMBEDDINGS[embeddings](),
            checkpointer=saver,
        )

    with _saver(saver_kind) as saver:
        reference = graph(stores[0], saver)
        fresh = [
            reference.invoke(
                {"messages": [HumanMessage(q)]}, {"configurable": {"thread_id": str(i)}}
            )
            for i, q in enumerate(SPEEDUP_QUESTIONS)
        ]
        threaded_graph = graph(stores[1], saver)
        config = {"configurable": {"thread_id": "one"}}
        threaded = [
            threaded_graph.invoke({"messages": [HumanMessage(q)]}, config)
            for q in SPEEDUP_QUESTIONS
        ]
        values = threaded_graph.get_state(config).values
    assert [_speedup_essentials(o["speedup"]) for o in threaded] == [
        _speedup_essentials(o["speedup"]) for o in fresh
    ]
    assert len(values["messages"]) == 2 * len(SPEEDUP_QUESTIONS)
    assert stores[1].count("default") == stores[0].count("default")
    _assert_round_trips(values)


@pytest.fixture
async def async_stores() -> AsyncIterator[
    tuple[QdrantEpisodicStore, QdrantEpisodicStore]
]:
    with QdrantEpisodicStore() as a, QdrantEpisodicStore() as b:
        yield a, b


@pytest.mark.parametrize("embeddings", list(EMBEDDINGS))
async def test_async_speedup_graph_on_one_thread_matches_fresh_threads(
    embeddings: str,
    saver_kind: str,
    async_stores: tuple[QdrantEpisodicStore, QdrantEpisodicStore],
) -> None:
    def graph(store: QdrantEpisodicStore, saver: Any) -> Any:
        return create_speedup_graph(
            BestOfN(FakeChatModel(responder=question_solver), budget=3),
            store=store,
            embeddings=EMBEDDINGS[embeddings](),
            checkpointer=saver,
        )

    async with _asaver(saver_kind) as saver:
        reference = graph(async_stores[0], saver)
        fresh = [
            await reference.ainvoke(
                {"messages": [HumanMessage(q)]}, {"configurable": {"thread_id": str(i)}}
            )
            for i, q in enumerate(SPEEDUP_QUESTIONS)
        ]
        threaded_graph = graph(async_stores[1], saver)
        config = {"configurable": {"thread_id": "one"}}
        threaded = [
            await threaded_graph.ainvoke({"messages": [HumanMessage(q)]}, config)
            for q in SPEEDUP_QUESTIONS
        ]
        values = (await threaded_graph.aget_state(config)).values
    assert [_speedup_essentials(o["speedup"]) for o in threaded] == [
        _speedup_essentials(o["speedup"]) for o in fresh
    ]
    _assert_round_trips(values)
