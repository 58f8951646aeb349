"""The budget router driving each of the four scaling methods, fully offline.

Every decision comes out in the method's budget unit, `exemplars` shows
memory to the method's first units (throughout for long chain-of-thought)
and the speedup graph solves with the method's own graph.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from langchain_speedup import (
    BestOfN,
    ConfigurationError,
    LongCoT,
    SelfRefine,
    TreeOfThoughts,
    create_engine,
)
from langchain_speedup.scaling.long_cot import CONTINUE_PROMPT, PROBE_PROMPT
from langchain_speedup.scaling.self_refine import CRITIQUE_PROMPT, REVISE_PROMPT
from langchain_speedup.scaling.tree_of_thoughts import TREE_OF_THOUGHTS_SYSTEM_PROMPT
from langchain_speedup.types import METHODS
from tests.fakes import FakeChatModel, boxed
from tests.test_router import (
    MAYA,
    NEW_NUMBERS,
    SYNC_AND_ASYNC,
    UNRELATED,
    World,
    pick,
    world_fixture,  # noqa: F401  (the `world` fixture)
)

# Each method's engine, default budget and budget unit.
ENGINES: dict[str, tuple[Any, int, str]] = {
    "best_of_n": (BestOfN, 8, "generations"),
    "self_refine": (SelfRefine, 4, "rounds"),
    "tree_of_thoughts": (TreeOfThoughts, 10, "expanded_nodes"),
    "long_cot": (LongCoT, 4096, "reasoning_tokens"),
}
_CONTROL = {CRITIQUE_PROMPT, REVISE_PROMPT, CONTINUE_PROMPT, PROBE_PROMPT}
_CONTROL.add("Write only the next step.")


def question_in(prompt: Sequence[BaseMessage]) -> str:
    """The question a prompt asks: its last human turn that is no control prompt."""
    humans = [m.text for m in prompt if isinstance(m, HumanMessage)]
    return [h for h in humans if h not in _CONTROL and "last step" not in h][-1]


def method_solver(prompt: list[BaseMessage]) -> str:
    """Right for every method: critiques approve, every other call gives the sum."""
    if prompt[-1].text == CRITIQUE_PROMPT:
        return "The solution is correct."
    return boxed(sum(int(n) for n in re.findall(r"\d+", question_in(prompt))))


def has_exemplar(prompt: Sequence[BaseMessage]) -> bool:
    """Whether MAYA is shown as an exemplar: a turn, but not the one asked."""
    humans = [m.text for m in prompt if isinstance(m, HumanMessage)]
    return MAYA in humans and question_in(prompt) != MAYA


@SYNC_AND_ASYNC
@pytest.mark.parametrize("method", METHODS)
async def test_each_decision_in_the_methods_unit(world: World, method: str) -> None:
    world.model = FakeChatModel(responder=method_solver)
    engine, budget, unit = ENGINES[method]
    router = world.router(engine(world.model, system_prompt="Be brief."))
    graph = router.as_graph()
    nodes = {"__start__", "route", "reuse", method, "remember", "__end__"}
    assert set(graph.get_graph().nodes) == nodes
    keys = "decision method unit budget memory_samples"

    # Scratch: the whole budget, no memory.
    out = await world.invoke(graph, MAYA)
    assert set(out) == {"messages", "speedup"}
    scratch, result = out["speedup"], out["speedup"]["result"]
    assert pick(scratch["route"], keys) == ("scratch", method, unit, budget, 0)
    assert pick(result, "method budget_unit passed") == (method, unit, True)
    assert 1 <= result["budget_used"] <= budget
    assert scratch["final_answer"] == "14"
    assert not any(c["with_memory"] for c in result["candidates"])
    assert not any(map(has_exemplar, world.model.calls))
    assert out["messages"][-1].text == scratch["answer"]
    assert out["messages"][-1].name == "speedup"
    [episode] = world.memory.episodes("default")
    expected = (scratch["episode_id"], method, unit, True)
    assert pick(episode, "id method budget_unit verified") == expected

    # Reuse: nothing spent, nothing written; case, spacing and punctuation
    # do not matter.
    calls = len(world.model.calls)
    for repeat in (MAYA, "  " + MAYA.upper().replace("?", "??") + " "):
        out = await world.invoke(graph, repeat)
        reuse = out["speedup"]
        assert pick(reuse["route"], keys) == ("reuse", method, unit, 0, 0)
        assert reuse["route"]["exemplar_ids"] == [scratch["episode_id"]]
        assert pick(reuse, "result episode_id") == (None, None)
        assert pick(reuse, "answer final_answer score") == pick(
            scratch, "answer final_answer score"
        )
        assert reuse["usage"]["total_tokens"] == 0
        assert out["messages"][-1].text == scratch["answer"]
        assert out["messages"][-1].name == "speedup"
    assert len(world.model.calls) == calls
    assert world.count("default") == 1

    # Exemplars: a small start, then escalation; long CoT keeps them throughout.
    similar = (await world.invoke(graph, NEW_NUMBERS))["speedup"]
    start = budget if method == "long_cot" else 2
    assert pick(similar["route"], keys) == ("exemplars", method, unit, budget, start)
    assert similar["route"]["precedents"] == []
    assert similar["final_answer"] == "18"
    assert similar["result"]["budget_used"] <= budget
    assert similar["result"]["candidates"][0]["with_memory"] is True
    assert has_exemplar(world.model.calls[calls])

    # Unrelated: scratch again, the gate keeping memory out.
    calls = len(world.model.calls)
    unrelated = (await world.invoke(graph, UNRELATED))["speedup"]
    route = unrelated["route"]
    assert pick(route, "decision budget explored") == ("scratch", budget, False)
    assert route["similarity"] < 0.7
    assert route["band"] == router.gate.band_of(route["similarity"])
    assert "closed" in route["reason"]
    assert unrelated["final_answer"] == "63"
    assert not any(map(has_exemplar, world.model.calls[calls:]))
    # The router solves with the engine as given, options and all.
    assert {p[0].text for p in world.model.calls} == {"Be brief."}


Q, C, R, K = NEW_NUMBERS, CRITIQUE_PROMPT, REVISE_PROMPT, CONTINUE_PROMPT
ESCALATING_ENGINES = {
    "self_refine": {},
    "tree_of_thoughts": {"budget": 4, "breadth": 2},
    "long_cot": {"budget": 200, "segment_tokens": 20},
}
# memory_samples, the route's memory_samples, budget used, each call's last
# turn and whether it shows the exemplar, each candidate's `with_memory`.
ESCALATIONS = {
    # Two rounds with memory, then a fresh plain draft makes the quorum.
    "self_refine": (2, 2, 3, [(Q, 1), (C, 1), (R, 1), (Q, 0)], [1, 1, 0]),
    # An expansion with memory (2 of 3 votes), then a fresh root without it.
    "tree_of_thoughts": (1, 1, 2, [(Q, 1), (Q, 1), (Q, 0), (Q, 0)], [1, 1, 0, 0]),
    # Exemplars throughout; each segment states its answer, so no probe.
    "long_cot": (1, 200, 42, [(Q, 1), (K, 1), (K, 1)], [1, 1, 1]),
}


@SYNC_AND_ASYNC
@pytest.mark.parametrize("method", list(ESCALATIONS))
async def test_exemplars_then_escalation_in_each_method(
    world: World, method: str
) -> None:
    samples, start, used, calls, with_memory = ESCALATIONS[method]
    world.model = FakeChatModel(responder=method_solver)
    world.remember(MAYA, final_answer="14")
    engine = ENGINES[method][0](world.model, **ESCALATING_ENGINES[method])
    out = await world.solve(world.router(engine, memory_samples=samples), Q)
    assert pick(out["route"], "decision memory_samples") == ("exemplars", start)
    assert pick(out["result"], "budget_used passed") == (used, True)
    assert [c["with_memory"] for c in out["result"]["candidates"]] == with_memory
    assert [(p[-1].text, has_exemplar(p)) for p in world.model.calls] == calls
    # A plain prompt, once escalated: the system message, then the question.
    plain = [p for p in world.model.calls if not has_exemplar(p)]
    assert all(len(p) == 2 for p in plain)


# -- engines by name ---------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_create_engine_builds_each_method_with_its_budget(method: str) -> None:
    engine = create_engine(FakeChatModel(responder=method_solver), method, budget=5)
    cls, _, unit = ENGINES[method]
    assert type(engine) is cls
    assert (engine.method, engine.unit, engine.budget) == (method, unit, 5)


def test_create_engine_defaults_and_options() -> None:
    model = FakeChatModel(responder=method_solver)
    engine = create_engine(model, "tree_of_thoughts", breadth=2, max_depth=3)
    assert isinstance(engine, TreeOfThoughts)
    assert (engine.budget, engine.breadth, engine.max_depth) == (10, 2, 3)
    assert engine.system_prompt == TREE_OF_THOUGHTS_SYSTEM_PROMPT


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("", {}, "method"),
        ("BestOfN", {}, "method"),
        ("best-of-n", {}, "method"),
        (None, {}, "method"),
        (1, {}, "method"),
        ("tree_of_thoughts", {"width": 2}, "breadth"),  # names the valid options
        ("best_of_n", {"n": 4}, "budget"),
        ("long_cot", {"max_tokens": 8}, "budget"),
        ("self_refine", {"max_rounds": 3}, "budget"),
    ],
)
def test_create_engine_rejects_unknown_methods_and_options(
    method: Any, options: dict[str, Any], message: str
) -> None:
    model = FakeChatModel(responder=method_solver)
    with pytest.raises(ConfigurationError, match=message):
        create_engine(model, method, **options)
    assert model.calls == []
