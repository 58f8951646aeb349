"""Per-run settings of the speedup graph, through LangGraph's run context."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.store.base import BaseStore

from langchain_speedup import (
    BestOfN,
    ConfigurationError,
    create_speedup_graph,
)
from tests.fakes import FakeChatModel, episodes_in

QUESTION = "What is 1 + 2?"


async def ask(graph: Any, context: dict[str, Any] | None, is_async: bool) -> Any:
    inputs = {"messages": [HumanMessage(QUESTION)]}
    if is_async:
        out = await graph.ainvoke(inputs, context=context)
    else:
        out = graph.invoke(inputs, context=context)
    return out["speedup"]


@pytest.fixture
def graph(model: FakeChatModel, store: BaseStore) -> Any:
    engine = BestOfN(model, budget=8, mode="static")
    return create_speedup_graph(engine, store=store)


def test_the_context_schema_lists_every_setting(graph: Any) -> None:
    schema = graph.get_context_jsonschema()
    assert schema["properties"] == {
        "budget": {"title": "Budget", "type": "integer"},
        "threshold": {"title": "Threshold", "type": "number"},
        "namespace": {"title": "Namespace", "type": "string"},
    }


async def test_a_runs_budget_is_granted_and_spent(
    graph: Any, model: FakeChatModel, is_async: bool
) -> None:
    answer = await ask(graph, {"budget": 3}, is_async)
    assert answer["route"]["budget"] == 3
    assert answer["result"]["budget_used"] == 3
    assert len(model.calls) == 3
    answer = await ask(graph, {"budget": 2, "namespace": "other"}, is_async)
    assert answer["route"]["budget"] == 2
    assert len(model.calls) == 5


async def test_a_runs_namespace_keeps_tenants_apart(
    graph: Any, store: BaseStore, is_async: bool
) -> None:
    decisions = [
        (await ask(graph, context, is_async))["route"]["decision"]
        for context in (
            {"namespace": "team-a"},
            {"namespace": "team-b"},
            {"namespace": "team-a"},
            None,
        )
    ]
    assert decisions == ["scratch", "scratch", "reuse", "scratch"]
    assert [len(episodes_in(store, ns)) for ns in ("team-a", "team-b", "default")] == [
        1,
        1,
        1,
    ]


async def test_bad_settings_fail_before_any_call(
    graph: Any, model: FakeChatModel, is_async: bool
) -> None:
    for bad in ({"budget": 0}, {"namespace": " "}, {"threshold": -1.0}):
        with pytest.raises(ConfigurationError):
            await ask(graph, bad, is_async)
    assert model.calls == []
