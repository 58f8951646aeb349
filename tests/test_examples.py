"""Every example script runs against fake models, so examples cannot rot."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from langchain_core.messages import BaseMessage

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


def test_speedup_agent_reuses_and_uses_memory(capsys):
    decisions = _load("speedup_agent").main(
        FakeChatModel(responder=_change), HashEmbeddings()
    )
    assert decisions[0] == "scratch"
    assert decisions[1] == "reuse"
    assert decisions[2] in ("exemplars", "scratch")
    assert "answer=8" in capsys.readouterr().out


def test_best_of_n_in_a_graph():
    model = FakeChatModel(responder=lambda _: boxed(42))
    state = _load("best_of_n_in_a_graph").main(model)
    answer = state["messages"][-2]
    assert answer.name == "best_of_n"
    assert "42" in answer.content
    assert state["messages"][-1].content == "(answered by best_of_n)"
