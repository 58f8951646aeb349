"""Every graph answers many questions on one checkpointed thread as a fresh graph would.

LangGraph Platform threads and apps with a checkpointer keep a graph's state
between invocations; each question must still start afresh and leave only
plain, serialisable data behind.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.base import BaseStore

from langchain_speedup import (
    BestOfN,
    LongCoT,
    ScalingEngine,
    SelfRefine,
    TreeOfThoughts,
    create_speedup_graph,
)
from tests.fakes import FakeChatModel, HashEmbeddings, boxed, episodes_in, new_store

QUESTIONS = [
    "What is 2 + 3?",
    "Tom has 10 apples, buys 20 more and 5 more. How many apples?",
    "What is 7 + 8 + 9?",
]
# The speedup graph meets a repeat too, so one turn is answered from memory.
SPEEDUP_QUESTIONS = [*QUESTIONS, QUESTIONS[0]]


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


ENGINES: dict[str, Callable[[str], ScalingEngine]] = {
    "best_of_n": lambda mode: BestOfN(
        FakeChatModel(responder=question_solver), budget=3, mode=mode
    ),  # type: ignore[arg-type]
    "self_refine": lambda mode: SelfRefine(
        FakeChatModel(responder=question_solver), budget=3, mode=mode
    ),  # type: ignore[arg-type]
    "tree_of_thoughts": lambda mode: TreeOfThoughts(  # type: ignore[arg-type]
        FakeChatModel(responder=question_solver),
        budget=3,
        breadth=2,
        max_depth=2,
        mode=mode,
    ),
    "long_cot": lambda mode: LongCoT(  # type: ignore[arg-type]
        FakeChatModel(responder=question_solver),
        budget=48,
        segment_tokens=16,
        mode=mode,
    ),
}
EMBEDDINGS: dict[str, Callable[[], Embeddings]] = {
    "hash": HashEmbeddings,
    "deterministic_fake": lambda: DeterministicFakeEmbedding(size=64),
}


@asynccontextmanager
async def saver(kind: str, is_async: bool) -> AsyncIterator[Any]:
    """A fresh checkpointer: in memory, or SQLite in the form the run needs."""
    if kind == "memory":
        yield InMemorySaver()
    elif is_async:
        async with AsyncSqliteSaver.from_conn_string(":memory:") as sqlite:
            yield sqlite
    else:
        with SqliteSaver.from_conn_string(":memory:") as sqlite:
            yield sqlite


async def ask(
    graph: Any, question: str | list[Any], thread: str, is_async: bool
) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread}}
    messages = [HumanMessage(question)] if isinstance(question, str) else question
    inputs = {"messages": messages}
    return (
        await graph.ainvoke(inputs, config)
        if is_async
        else graph.invoke(inputs, config)
    )


async def values_of(graph: Any, thread: str, is_async: bool) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread}}
    state = await graph.aget_state(config) if is_async else graph.get_state(config)
    return dict(state.values)


def assert_round_trips(values: dict[str, Any]) -> None:
    serde = JsonPlusSerializer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert serde.loads_typed(serde.dumps_typed(values)) == values


@pytest.fixture(params=["memory", "sqlite"])
def saver_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("mode", ["adaptive", "static"])
@pytest.mark.parametrize("method", list(ENGINES))
async def test_method_graph_on_one_thread_matches_fresh_graphs(
    method: str, mode: str, saver_kind: str, is_async: bool
) -> None:
    engine = ENGINES[method](mode)
    fresh = [await ask(engine.as_graph(), q, "fresh", is_async) for q in QUESTIONS]
    async with saver(saver_kind, is_async) as checkpointer:
        graph = engine.as_graph(checkpointer=checkpointer)
        threaded = [await ask(graph, q, "one", is_async) for q in QUESTIONS]
        values = await values_of(graph, "one", is_async)

    def essentials(out: dict[str, Any]) -> tuple[Any, ...]:
        result = out[method]
        return (result["answer"], result["budget_used"], result["stop_reason"])

    assert [essentials(o) for o in threaded] == [essentials(o) for o in fresh]
    assert len({o[method]["final_answer"] for o in fresh}) == len(QUESTIONS)
    # The thread keeps the whole conversation: a question and an answer per turn.
    assert len(values["messages"]) == 2 * len(QUESTIONS)
    assert values.get("memory") is None
    assert_round_trips(values)


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
    assert all("Q 1 + 1?" not in str(m.content) for m in model.calls[-1])
    out = graph.get_state(config).values["best_of_n"]
    assert not any(c["with_memory"] for c in out["candidates"])


@pytest.mark.parametrize("method", list(ENGINES))
@pytest.mark.parametrize("embeddings", list(EMBEDDINGS))
async def test_speedup_graph_on_one_thread_matches_fresh_threads(
    embeddings: str, method: str, saver_kind: str, is_async: bool
) -> None:
    def graph(store: BaseStore, checkpointer: Any) -> Any:
        return create_speedup_graph(
            ENGINES[method]("adaptive"), store=store, checkpointer=checkpointer
        )

    def essentials(out: dict[str, Any]) -> tuple[Any, ...]:
        answer = out["speedup"]
        solved = answer["result"]
        return (
            answer["answer"],
            answer["route"]["decision"],
            solved and solved["budget_used"],
            answer["usage"]["generations"],
        )

    fresh_store = new_store(EMBEDDINGS[embeddings]())
    thread_store = new_store(EMBEDDINGS[embeddings]())
    async with saver(saver_kind, is_async) as checkpointer:
        reference = graph(fresh_store, checkpointer)
        threaded_graph = graph(thread_store, checkpointer)
        fresh, threaded, history = [], [], []
        for i, q in enumerate(SPEEDUP_QUESTIONS):
            # A fresh graph on a new thread, given the same conversation.
            turn = [*history, HumanMessage(q)]
            fresh.append(await ask(reference, turn, f"fresh-{i}", is_async))
            threaded.append(await ask(threaded_graph, q, "one", is_async))
            history = (await values_of(threaded_graph, "one", is_async))["messages"]
        values = await values_of(threaded_graph, "one", is_async)
    assert (
        len(episodes_in(thread_store, "default"))
        == len(episodes_in(fresh_store, "default"))
        >= 1
    )
    assert [essentials(o) for o in threaded] == [essentials(o) for o in fresh]
    assert len(values["messages"]) == 2 * len(SPEEDUP_QUESTIONS)
    # No vector, store handle or numpy value is kept between questions.
    assert "vector" not in values
    assert_round_trips(values)
