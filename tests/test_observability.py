"""What tracing and streaming tools see of a question: its route and its cost."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.store.base import BaseStore

from langchain_speedup import (
    BestOfN,
    create_best_of_n_graph,
    create_speedup_graph,
)
from langchain_speedup import tokens as tokens_module
from langchain_speedup.tokens import usage_metadata
from langchain_speedup.types import Usage, empty_usage
from tests.fakes import FakeChatModel, sum_solver, words

MAYA = "Maya buys 3 pens at 4 dollars each. How many dollars does Maya spend?"
NEW_NUMBERS = MAYA.replace("3 pens", "7 pens")
DECISION_TAGS = ("speedup:decision:", "speedup:method:")


@dataclass
class ChainRun:
    name: str | None
    parent: UUID | None
    tags: list[str]
    metadata: dict[str, Any]

    @property
    def speedup_tags(self) -> list[str]:
        return sorted(t for t in self.tags if t.startswith(DECISION_TAGS))

    @property
    def speedup_metadata(self) -> dict[str, Any]:
        return {k: v for k, v in self.metadata.items() if k.startswith("speedup_")}


class Recorder(BaseCallbackHandler):
    """Records every chain run's name, tags and metadata, and the root's output."""

    run_inline = True

    def __init__(self) -> None:
        self.runs: dict[UUID, ChainRun] = {}
        self.output: dict[str, Any] = {}
        self._lock = threading.Lock()

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = ChainRun(kwargs.get("name"), parent_run_id, tags or [], metadata or {})
        with self._lock:
            self.runs[run_id] = run

    def on_chain_end(
        self,
        outputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id is None:
            self.output = outputs

    def decided(self) -> list[ChainRun]:
        """The runs that carry the decision and whose parent does not."""
        return [
            run
            for run in self.runs.values()
            if run.speedup_tags
            and (run.parent is None or not self.runs[run.parent].speedup_tags)
        ]

    def undecided(self) -> set[str | None]:
        return {run.name for run in self.runs.values() if not run.speedup_tags}


def cost(calls: Sequence[Sequence[BaseMessage]]) -> dict[str, int]:
    """What the fake model reports for `calls` answered by `sum_solver`."""
    prompt = sum(len(words(m.text)) for call in calls for m in call)
    output = sum(len(words(sum_solver(list(call)))) for call in calls)
    return {
        "input_tokens": prompt,
        "output_tokens": output,
        "total_tokens": prompt + output,
    }


async def invoke(graph: Any, question: str, config: Any, is_async: bool) -> Any:
    state = {"messages": [HumanMessage(question)]}
    if is_async:
        return await graph.ainvoke(state, config)
    return graph.invoke(state, config)


@pytest.fixture
def speedup(model: FakeChatModel, store: BaseStore) -> Any:
    return create_speedup_graph(model, store=store)


async def test_what_a_callback_handler_sees_of_each_decision(
    speedup: Any, model: FakeChatModel, is_async: bool
) -> None:
    metadata_of = {
        "scratch": (None, None, 8, False),
        "reuse": (None, None, 0, True),
    }
    # Scratch, then the exact repeat reused, then new numbers with exemplars.
    for question, decision, top in [
        (MAYA, "scratch", "best_of_n"),
        (MAYA, "reuse", "reuse"),
        (NEW_NUMBERS, "exemplars", "best_of_n"),
    ]:
        recorder, before = Recorder(), len(model.calls)
        out = await invoke(speedup, question, {"callbacks": [recorder]}, is_async)
        route = out["speedup"]["route"]
        assert route["decision"] == decision
        if decision == "exemplars":
            assert route["similarity"] >= 0.7
            assert isinstance(route["band"], str)
            metadata_of[decision] = (route["similarity"], route["band"], 8, True)
        similarity, band, budget, memory = metadata_of[decision]

        # One run carries the decision: the method's graph, or the reuse.
        [decided] = recorder.decided()
        assert decided.name == top
        assert decided.speedup_tags == [
            f"speedup:decision:{decision}",
            "speedup:method:best_of_n",
        ]
        assert decided.speedup_metadata == {
            "speedup_decision": decision,
            "speedup_similarity": similarity,
            "speedup_band": band,
            "speedup_budget": budget,
            "speedup_method": "best_of_n",
            "speedup_memory": memory,
        }
        # Routing, remembering and the graph itself run before or after it.
        assert {"speedup", "route"} <= recorder.undecided()
        assert ("remember" in recorder.undecided()) == (decision != "reuse")
        if decision != "reuse":  # the method's own steps inherit it
            tagged = {r.name for r in recorder.runs.values() if r.speedup_tags}
            assert {"prepare", "sample", "select"} <= tagged

        # The final message: named after the speedup graph, with the whole cost.
        answer = recorder.output["messages"][-1]
        assert answer == out["messages"][-1]
        assert isinstance(answer, AIMessage)
        assert (answer.name, answer.text) == ("speedup", out["speedup"]["answer"])
        assert answer.usage_metadata == cost(model.calls[before:])
        assert (answer.usage_metadata["total_tokens"] == 0) == (decision == "reuse")
        # One answer message per question, however it was answered.
        assert [type(m) for m in out["messages"]] == [HumanMessage, AIMessage]


@pytest.mark.parametrize("name", ["best_of_n", "solver"])
async def test_a_method_graphs_answer_is_named_after_it_with_its_cost(
    model: FakeChatModel, is_async: bool, name: str
) -> None:
    graph = create_best_of_n_graph(model, name=name, budget=4)
    out = await invoke(graph, MAYA, None, is_async)
    answer = out["messages"][-1]
    assert (answer.name, answer.text) == (name, out[name]["answer"])
    assert len(model.calls) == 3
    assert answer.usage_metadata == cost(model.calls)


def test_usage_metadata_counts_every_role() -> None:
    usage: Usage = {
        **empty_usage(),
        "solver_input_tokens": 100,
        "solver_output_tokens": 20,
        "scorer_input_tokens": 7,
        "scorer_output_tokens": 3,
        "other_tokens": 50,
        "total_tokens": 180,
    }
    assert usage_metadata(usage) == {
        "input_tokens": 157,
        "output_tokens": 23,
        "total_tokens": 180,
    }
    assert usage_metadata(empty_usage()) == {
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
    }


def route_event(decision: str, reason: str, budget: int) -> dict[str, Any]:
    return {
        "method": "best_of_n",
        "event": "route",
        "decision": decision,
        "reason": reason,
        "similarity": None,
        "band": None,
        "budget": budget,
        "unit": "generations",
    }


async def test_the_route_event_arrives_before_the_answer(
    speedup: Any, is_async: bool
) -> None:
    state = {"messages": [HumanMessage(MAYA)]}
    options: Any = {"stream_mode": ["custom", "updates"]}
    for expected in [
        route_event("scratch", "no verified episode is stored", 8),
        route_event("reuse", "a verified episode holds this exact question", 0),
    ]:
        if is_async:
            chunks = [c async for c in speedup.astream(state, **options)]
        else:
            chunks = list(speedup.stream(state, **options))
        custom = [i for i, (mode, _) in enumerate(chunks) if mode == "custom"]
        answered = [
            i
            for i, (mode, update) in enumerate(chunks)
            if mode == "updates"
            and any(
                isinstance(m, AIMessage)
                for node in update.values()
                for m in (node or {}).get("messages", [])
            )
        ]
        # One route event, first of all, and the answer after it.
        assert chunks[0] == ("custom", expected)
        assert [chunks[i][1]["event"] for i in custom] == ["route"]
        assert answered
        assert min(answered) > 0


# -- the offline token estimate's warning -------------------------------------------


@pytest.fixture
def no_encoding(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No tiktoken encoding, and a process that has not warned yet."""
    import tiktoken

    def unavailable(name: str) -> Any:
        raise OSError("no network")

    monkeypatch.setattr(tiktoken, "get_encoding", unavailable)
    monkeypatch.setattr(tokens_module, "_ESTIMATING", threading.Lock())
    tokens_module._encoding.cache_clear()
    yield
    tokens_module._encoding.cache_clear()


@pytest.mark.usefixtures("no_encoding")
@pytest.mark.parametrize("report_usage", [True, False], ids=["reported", "estimated"])
async def test_the_estimate_warns_once_and_never_when_usage_is_reported(
    caplog: pytest.LogCaptureFixture, is_async: bool, report_usage: bool
) -> None:
    model = FakeChatModel(responder=sum_solver, report_usage=report_usage)
    engine = BestOfN(model, budget=4, mode="static")
    with caplog.at_level(logging.DEBUG, logger="langchain_speedup.tokens"):
        for _ in range(2):
            result = await engine.arun(MAYA) if is_async else engine.run(MAYA)
            prompt = result["usage"]["solver_input_tokens"]
            if report_usage:
                assert prompt == cost(model.calls[-4:])["input_tokens"]
            else:  # four characters a token, and the message's framing
                assert prompt == 4 * sum(len(m.text) // 4 + 4 for m in model.calls[-1])
    logged = [r for r in caplog.records if "tiktoken" in r.getMessage()]
    assert [r.levelno for r in logged] == ([] if report_usage else [logging.WARNING])
