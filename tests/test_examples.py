"""Every example script runs against fake models, so examples cannot rot."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from langchain_core.messages import AIMessage, BaseMessage

from tests.fakes import FakeChatModel, HashEmbeddings, boxed, last_human

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
