"""Every example script runs against fake models, so examples cannot rot."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from tests.fakes import (
    FakeChatModel,
    HashEmbeddings,
    ToolCallingFakeChatModel,
    boxed,
    last_human,
    tool_result_solver,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _change(messages: list[BaseMessage]) -> str:
    # "buys N notebooks at $P each and pays with a $B bill" -> B - N * P
    n, p, bill = map(int, re.findall(r"\d+", last_human(messages))[:3])
    return boxed(bill - n * p)


def test_speedup_agent_solves_then_reuses_then_uses_memory(capsys):
    model = FakeChatModel(responder=_change)
    decisions = _load("speedup_agent").main(model, HashEmbeddings())
    assert decisions == ["scratch", "reuse", "exemplars"]
    shown = [line.split()[1:3] for line in capsys.readouterr().out.splitlines()]
    assert shown == [
        ["answer=8", "generations=3"],
        ["answer=8", "generations=0"],
        ["answer=35", "generations=3"],
    ]
    # The repeat made no call; the variant's first two samples (the router's
    # `memory_samples`) saw the first problem's answer as an exemplar.
    assert len(model.calls) == 6
    exemplars = [
        [m.text for m in call if isinstance(m, AIMessage)] for call in model.calls[3:]
    ]
    assert exemplars == [[boxed(8)], [boxed(8)], []]


def test_best_of_n_in_a_graph():
    model = FakeChatModel(responder=lambda _: boxed(42))
    state = _load("best_of_n_in_a_graph").main(model)
    answer = state["messages"][-2]
    assert answer.name == "best_of_n"
    assert answer.content == boxed(42)
    assert state["messages"][-1].content == "(answered by best_of_n)"
    # Adaptive with a quorum of 2: two agreeing samples of the budget of 6.
    assert len(model.calls) == 2


def _use_tools(messages: list[BaseMessage]) -> list[dict[str, Any]] | None:
    # One tool call per question, then the answer from its result.
    last = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    if any(isinstance(m, ToolMessage) for m in messages[last:]):
        return None
    question = last_human(messages)
    if "calculator" in question:
        expression = re.search(r"what is (.+)\?", question)
        assert expression is not None
        return [{"name": "calculator", "args": {"expression": expression.group(1)}}]
    miles = re.search(r"([\d.]+) miles", question)
    assert miles is not None
    args = {"value": float(miles.group(1)), "from_unit": "miles", "to_unit": "km"}
    return [{"name": "convert_units", "args": args}]


def test_agent_with_middleware(capsys):
    model = ToolCallingFakeChatModel(
        responder=tool_result_solver, tool_caller=_use_tools
    )
    answers = _load("agent_with_middleware").main(model, HashEmbeddings())
    assert [a["decision"] for a in answers] == ["scratch", "reuse", "scratch"]
    assert [a["tools"] for a in answers] == [
        ["calculator"],
        ["calculator"],
        ["convert_units"],
    ]
    assert [a["answer"] for a in answers] == [boxed(449), boxed(449), boxed("42.165")]
    assert answers[1]["tokens"] < answers[0]["tokens"]
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_chat_model_in_a_graph(capsys):
    model = FakeChatModel(responder=lambda _: boxed(80))
    state = _load("chat_model_in_a_graph").main(model)
    reply = state["messages"][-1]
    assert (reply.name, reply.content) == ("speedup", boxed(80))
    # Adaptive: it stopped once the samples agreed, short of the budget of 4;
    # the user's instructions open each prompt.
    assert len(model.calls) == reply.response_metadata["speedup_budget_used"] < 4
    assert all(
        call[0].content.startswith("You are a careful tutor") for call in model.calls
    )
    assert capsys.readouterr().out.startswith(
        f"samples={len(model.calls)} stop=threshold"
    )


def test_langgraph_server(capsys):
    model = FakeChatModel(responder=_change)
    decisions = _load("langgraph_server").main(model, HashEmbeddings())
    assert decisions == ["scratch", "reuse"]
    assert capsys.readouterr().out.splitlines()[-1] == "answer: 8"
    assert len(model.calls) == 3


def test_shared_memory_workers_reuse_each_others_experience(capsys):
    model = FakeChatModel(responder=_change)
    decisions = _load("shared_memory_workers").main(model, HashEmbeddings())
    # Worker 0 solved and verified; the others reused it without a call; the
    # variant saw worker 0's episode as an exemplar.
    assert decisions == ["scratch", "reuse", "reuse", "exemplars"]
    assert [r.split()[3] for r in capsys.readouterr().out.splitlines()] == [
        "answer=8",
        "answer=8",
        "answer=8",
        "answer=35",
    ]
