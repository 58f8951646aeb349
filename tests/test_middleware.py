"""`SpeedupMiddleware` in a `create_agent` agent with two real tools."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langgraph.store.base import BaseStore

from langchain_speedup import (
    BestOfN,
    ConfigurationError,
    ModelError,
    SpeedupMiddleware,
    TreeOfThoughts,
)
from tests.fakes import (
    FailingChatModel,
    ToolCallingFakeChatModel,
    boxed,
    episodes_in,
    last_human,
    tool_result_solver,
    words,
)

MILES = "How many km is 10 miles?"
SUM = "What is 3 + 4?"


@tool
def calculator(expression: str) -> str:
    """Evaluate a sum of integers such as `3 + 4`."""
    return str(sum(int(term) for term in expression.split("+")))


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a length between miles and km."""
    factor = {("miles", "km"): 1.609344, ("km", "miles"): 1 / 1.609344}
    return f"{value * factor.get((from_unit, to_unit), 1.0):.3f}"


def after_question(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    last = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    return list(messages[last + 1 :])


def call_tools(messages: list[BaseMessage]) -> list[dict[str, Any]] | None:
    """Converts miles with a tool; every other question is answered directly."""
    if any(isinstance(m, ToolMessage) for m in after_question(messages)):
        return None
    miles = re.search(r"(\d+) miles", last_human(messages))
    if not miles:
        return None
    args = {"value": float(miles.group(1)), "from_unit": "miles", "to_unit": "km"}
    return [{"name": "convert_units", "args": args}]


@pytest.fixture
def agent_model() -> ToolCallingFakeChatModel:
    return ToolCallingFakeChatModel(
        responder=tool_result_solver, tool_caller=call_tools
    )


@pytest.fixture
def middleware(store: BaseStore) -> SpeedupMiddleware:
    return SpeedupMiddleware("best_of_n", budget=4, store=store)


async def ask(agent: Any, messages: list[Any], is_async: bool) -> list[BaseMessage]:
    state = {"messages": messages}
    out = await agent.ainvoke(state) if is_async else agent.invoke(state)
    return list(out["messages"])


def shape(messages: Sequence[BaseMessage]) -> list[tuple[Any, ...]]:
    """What a turn says, without the ids that differ on every run."""
    return [
        (
            m.type,
            m.text,
            [(c["name"], c["args"]) for c in getattr(m, "tool_calls", [])],
        )
        for m in messages
    ]


async def test_tool_turns_are_what_they_are_without_the_middleware(
    agent_model: ToolCallingFakeChatModel,
    middleware: SpeedupMiddleware,
    is_async: bool,
) -> None:
    tools = [calculator, convert_units]
    plain_model = ToolCallingFakeChatModel(
        responder=tool_result_solver, tool_caller=call_tools
    )
    plain = await ask(create_agent(plain_model, tools), [HumanMessage(MILES)], is_async)
    sped = await ask(
        create_agent(agent_model, tools, middleware=[middleware]),
        [HumanMessage(MILES)],
        is_async,
    )
    # The tool-calling turn and the tool's result: the same messages.
    assert shape(sped[:3]) == shape(plain[:3])
    assert plain[1].tool_calls
    assert isinstance(plain[2], ToolMessage)
    # The model saw the same first request, tools bound the same way.
    assert shape(agent_model.calls[0]) == shape(plain_model.calls[0])
    assert agent_model.call_kwargs[0] == plain_model.call_kwargs[0]
    # The answer turn went through the router.
    answer = sped[-1]
    assert isinstance(answer, AIMessage)
    assert answer.name == "speedup"
    assert answer.response_metadata["speedup_decision"] == "scratch"
    assert "16.093" in answer.text


async def test_a_repeated_question_costs_less_the_second_time(
    agent_model: ToolCallingFakeChatModel,
    middleware: SpeedupMiddleware,
    is_async: bool,
) -> None:
    agent = create_agent(
        agent_model, [calculator, convert_units], middleware=[middleware]
    )
    costs, calls, decisions = [], [], []
    for _ in range(2):
        before = len(agent_model.calls)
        answer = (await ask(agent, [HumanMessage(MILES)], is_async))[-1]
        calls.append(len(agent_model.calls) - before)
        costs.append(answer.usage_metadata["total_tokens"])  # type: ignore[attr-defined]
        decisions.append(answer.response_metadata["speedup_decision"])
    # New tool call ids the second time, the same conversation otherwise.
    assert decisions == ["scratch", "reuse"]
    assert calls[1] < calls[0]
    assert costs[1] < costs[0]


async def test_the_first_reply_is_the_methods_first_sample(
    agent_model: ToolCallingFakeChatModel,
    middleware: SpeedupMiddleware,
    is_async: bool,
) -> None:
    agent = create_agent(agent_model, [calculator], middleware=[middleware])
    answer = (await ask(agent, [HumanMessage(SUM)], is_async))[-1]
    alone = ToolCallingFakeChatModel(responder=tool_result_solver)
    result = BestOfN(alone, budget=4).run(SUM)
    # No call is spent beyond what the method spends on its own.
    assert len(agent_model.calls) == len(alone.calls) == result["budget_used"]
    assert answer.text == result["answer"]
    assert answer.usage_metadata["total_tokens"] == sum(  # type: ignore[attr-defined]
        len(words(m.text)) for call in agent_model.calls for m in call
    ) + sum(len(words(tool_result_solver(c))) for c in agent_model.calls)


async def test_a_partial_step_method_counts_the_first_reply(
    agent_model: ToolCallingFakeChatModel,
    store: BaseStore,
    is_async: bool,
) -> None:
    middleware = SpeedupMiddleware("tree_of_thoughts", budget=3, store=store)
    agent = create_agent(agent_model, [calculator], middleware=[middleware])
    answer = (await ask(agent, [HumanMessage(SUM)], is_async))[-1]
    assert answer.response_metadata["speedup_method"] == "tree_of_thoughts"
    everything = sum(
        len(words(m.text)) for call in agent_model.calls for m in call
    ) + sum(len(words(tool_result_solver(c))) for c in agent_model.calls)
    assert answer.usage_metadata["total_tokens"] == everything  # type: ignore[attr-defined]
    assert len(agent_model.calls) > 1
    assert isinstance(middleware.router.engine, TreeOfThoughts)


def conversation_sum(messages: list[BaseMessage]) -> str:
    """Answers with the sum of every integer the user has said."""
    said = " ".join(m.text for m in messages if isinstance(m, HumanMessage))
    return boxed(sum(int(n) for n in re.findall(r"\d+", said)))


async def test_the_same_follow_up_in_two_conversations_is_two_questions(
    middleware: SpeedupMiddleware, is_async: bool
) -> None:
    model = ToolCallingFakeChatModel(responder=conversation_sum)
    agent = create_agent(model, [calculator], middleware=[middleware])
    decisions, answers = [], []
    for opening in ("What is 3 + 4?", "What is 10 + 20?"):
        first = await ask(agent, [HumanMessage(opening)], is_async)
        follow_up = await ask(
            agent, [*first, HumanMessage("What is 2 + that?")], is_async
        )
        decisions.append(follow_up[-1].response_metadata["speedup_decision"])
        answers.append(follow_up[-1].text)
    assert "reuse" not in decisions
    assert answers == [boxed(9), boxed(32)]


async def test_another_system_prompt_is_another_question(
    agent_model: ToolCallingFakeChatModel,
    middleware: SpeedupMiddleware,
    is_async: bool,
) -> None:
    decisions = []
    for system in ("Answer briefly.", "Answer like a pirate, no LaTeX.", None):
        agent = create_agent(
            agent_model, [calculator], system_prompt=system, middleware=[middleware]
        )
        answer = (await ask(agent, [HumanMessage(SUM)], is_async))[-1]
        decisions.append(answer.response_metadata["speedup_decision"])
    assert "reuse" not in decisions
    # The agent's system prompt is the method's only instruction.
    pirate = [c for c in agent_model.calls if "pirate" in c[0].text]
    assert pirate
    assert all(c[0].text == "Answer like a pirate, no LaTeX." for c in pirate)


async def test_a_failing_sample_stores_nothing(
    store: BaseStore, is_async: bool
) -> None:
    model = FailingChatModel(responder=tool_result_solver, fail_on=2)
    middleware = SpeedupMiddleware(budget=4, store=store)
    agent = create_agent(model, [], middleware=[middleware])
    with pytest.raises(ModelError):
        await ask(agent, [HumanMessage(SUM)], is_async)
    assert episodes_in(store) == []


def test_options_are_checked_when_built(store: BaseStore) -> None:
    with pytest.raises(ConfigurationError, match="method"):
        SpeedupMiddleware("beam_search", store=store)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="budget"):
        SpeedupMiddleware(budget=0, store=store)
    with pytest.raises(ConfigurationError, match="breadth"):
        SpeedupMiddleware(breadth=2, store=store)
    middleware = SpeedupMiddleware(
        "self_refine", budget=2, namespace="team-a", store=store
    )
    assert middleware.router.namespace == "team-a"
    assert middleware.router.engine.budget == 2


async def test_a_turn_without_a_usable_question_passes_through(
    agent_model: ToolCallingFakeChatModel,
    middleware: SpeedupMiddleware,
    store: BaseStore,
    is_async: bool,
) -> None:
    agent = create_agent(agent_model, [calculator], middleware=[middleware])
    image = HumanMessage(
        [{"type": "image", "url": "https://example.com/a.png"}]  # never fetched
    )
    answer = (await ask(agent, [image], is_async))[-1]
    # The agent's own reply, as without the middleware; nothing remembered.
    assert answer.name is None
    assert "speedup_decision" not in answer.response_metadata
    assert len(agent_model.calls) == 1
    assert episodes_in(store) == []
