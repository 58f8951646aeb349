"""`SpeedupChatModel`: LangChain's standard unit suite, tools, instructions, memory."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
)
from langchain_core.tools import tool
from langchain_tests.unit_tests import ChatModelUnitTests
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.base import BaseStore

from langchain_speedup import (
    BestOfN,
    ConfigurationError,
    SpeedupChatModel,
)
from langchain_speedup._internal import DEFAULT_SYSTEM_PROMPT
from tests.fakes import (
    ToolCallingFakeChatModel,
    boxed,
    episodes_in,
    sum_solver,
)

SUM = "What is 3 + 4?"


class TestSpeedupChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return SpeedupChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": ToolCallingFakeChatModel(responder=sum_solver), "budget": 2}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def always_add(_messages: list[Any]) -> list[dict[str, Any]]:
    return [{"name": "add", "args": {"a": 3, "b": 4}}]


async def call(model: Any, messages: Any, is_async: bool) -> AIMessage:
    reply = await model.ainvoke(messages) if is_async else model.invoke(messages)
    assert isinstance(reply, AIMessage)
    return reply


async def test_answers_with_the_method_and_no_extra_call(is_async: bool) -> None:
    inner = ToolCallingFakeChatModel(responder=sum_solver)
    reply = await call(SpeedupChatModel(model=inner, budget=4), SUM, is_async)
    alone = ToolCallingFakeChatModel(responder=sum_solver)
    result = BestOfN(alone, budget=4).run(SUM)
    assert reply.text == result["answer"] == boxed(7)
    assert reply.name == "speedup"
    assert len(inner.calls) == len(alone.calls)
    assert reply.response_metadata["speedup_method"] == "best_of_n"
    assert reply.response_metadata["speedup_budget_used"] == len(inner.calls)
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["total_tokens"] > 0


async def test_a_reply_with_tool_calls_comes_back_as_is(is_async: bool) -> None:
    inner = ToolCallingFakeChatModel(responder=sum_solver, tool_caller=always_add)
    model = SpeedupChatModel(model=inner, budget=4).bind_tools([add])
    reply = await call(model, SUM, is_async)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("add", {"a": 3, "b": 4})
    ]
    assert len(inner.calls) == 1
    assert inner.call_kwargs[0]["tools"][0]["function"]["name"] == "add"


async def test_structured_output_goes_through_the_tools(is_async: bool) -> None:
    inner = ToolCallingFakeChatModel(
        responder=sum_solver,
        tool_caller=lambda _m: [{"name": "Sum", "args": {"total": 7}}],
    )

    from pydantic import BaseModel

    class Sum(BaseModel):
        total: int

    model = SpeedupChatModel(model=inner).with_structured_output(Sum)
    out = await model.ainvoke(SUM) if is_async else model.invoke(SUM)
    assert out == Sum(total=7)


async def test_the_callers_system_message_replaces_the_default(is_async: bool) -> None:
    inner = ToolCallingFakeChatModel(responder=sum_solver)
    model = SpeedupChatModel(model=inner, budget=3)
    pirate = "You are a pirate. No LaTeX."
    await call(model, [SystemMessage(pirate), HumanMessage(SUM)], is_async)
    systems = {c[0].text for c in inner.calls if isinstance(c[0], SystemMessage)}
    assert systems == {pirate}
    inner.calls.clear()
    await call(model, SUM, is_async)
    assert {c[0].text for c in inner.calls[1:]} == {DEFAULT_SYSTEM_PROMPT}


async def test_with_a_store_it_reuses_verified_answers(
    store: BaseStore, is_async: bool
) -> None:
    inner = ToolCallingFakeChatModel(responder=sum_solver)
    model = SpeedupChatModel(
        model=inner,
        budget=4,
        store=store,
        router_options={"namespace": "chat"},
    )
    first = await call(model, SUM, is_async)
    calls = len(inner.calls)
    again = await call(model, SUM, is_async)
    assert first.response_metadata["speedup_decision"] == "scratch"
    assert again.response_metadata["speedup_decision"] == "reuse"
    assert again.text == first.text
    assert len(inner.calls) - calls == 1  # only the first reply
    assert again.usage_metadata is not None
    assert first.usage_metadata is not None
    assert again.usage_metadata["total_tokens"] < first.usage_metadata["total_tokens"]
    assert len(episodes_in(store, "chat")) == 1


async def test_in_a_hand_made_graph(is_async: bool) -> None:
    model = SpeedupChatModel(model=ToolCallingFakeChatModel(responder=sum_solver))

    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    async def aanswer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("answer", aanswer if is_async else answer)
    builder.add_edge(START, "answer")
    graph = builder.compile()
    state = {"messages": [HumanMessage(SUM)]}
    out = await graph.ainvoke(state) if is_async else graph.invoke(state)
    assert out["messages"][-1].text == boxed(7)


def test_settings_reach_the_underlying_model() -> None:
    inner = ToolCallingFakeChatModel(responder=sum_solver)
    model = SpeedupChatModel(
        model=inner, budget=2, temperature=0.3, max_tokens=50, stop=["\n\n"]
    )
    model.invoke(SUM)
    assert inner.call_kwargs
    for kwargs in inner.call_kwargs:
        assert kwargs["temperature"] == 0.3
        assert kwargs["max_tokens"] == 50
        assert kwargs["stop"] == ["\n\n"]


def test_bad_options_fail_when_built() -> None:
    inner = ToolCallingFakeChatModel(responder=sum_solver)
    with pytest.raises(ConfigurationError, match="budget"):
        SpeedupChatModel(model=inner, budget=0)
    with pytest.raises(ConfigurationError, match="method"):
        SpeedupChatModel(model=inner, method="beam")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="breadth"):
        SpeedupChatModel(model=inner, options={"breadth": 2})


async def test_the_answer_streams_as_one_chunk(is_async: bool) -> None:
    inner = ToolCallingFakeChatModel(responder=sum_solver)
    model = SpeedupChatModel(model=inner, budget=3)
    if is_async:
        chunks = [c async for c in model.astream(SUM)]
    else:
        chunks = list(model.stream(SUM))
    # The whole answer in one chunk (langchain-core closes with an empty one).
    assert chunks[0].text == boxed(7)
    assert all(not c.text for c in chunks[1:])
    chunk = sum(chunks[1:], chunks[0])
    assert isinstance(chunk, AIMessageChunk)
    assert chunk.text == boxed(7)
    assert chunk.usage_metadata is not None
    assert chunk.response_metadata["speedup_method"] == "best_of_n"
    # A tool call streams as a tool call.
    tools = SpeedupChatModel(
        model=ToolCallingFakeChatModel(responder=sum_solver, tool_caller=always_add)
    ).bind_tools([add])
    parts = list(tools.stream(SUM))
    call = sum(parts[1:], parts[0])
    assert isinstance(call, AIMessageChunk)
    assert [(c["name"], c["args"]) for c in call.tool_calls] == [
        ("add", {"a": 3, "b": 4})
    ]
