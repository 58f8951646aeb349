"""Self-Refine: draft an answer, then critique and revise it, round after round.

Each round's answer is scored against the answers before it (Madaan et al.,
2023). Budget unit: rounds, that is answers generated; critiques are counted
under the `reflection` role. When memory's exemplars are limited to its first
`samples` rounds and none passed, the run escalates to a fresh draft from the
plain prompt, refined in the remaining rounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, Unpack

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from langchain_speedup._internal import (
    GraphOptions,
    check_prompt,
    question_of,
)
from langchain_speedup.scaling._base import (
    Generate,
    ScalingEngine,
    ScalingInput,
    ScalingOptions,
    ScalingState,
    Step,
    escalates_at,
    exemplars_at,
)
from langchain_speedup.types import ChatRunnable, MemoryContext, ScalingResult

__all__ = [
    "CRITIQUE_PROMPT",
    "REVISE_PROMPT",
    "SelfRefine",
    "SelfRefineOptions",
    "create_self_refine_graph",
]

CRITIQUE_PROMPT = (
    "Review your solution above. Check every step for mistakes in reasoning or "
    "arithmetic and say concretely what is wrong and how to fix it; if it is "
    "correct, say so. Do not write a new solution yet."
)
REVISE_PROMPT = (
    "Now write the improved solution, fixing what the feedback points out and "
    "keeping what was right. Reason briefly, step by step, and end with the line "
    "'The final answer is \\boxed{ANSWER}.'"
)


class SelfRefineOptions(ScalingOptions, total=False):
    """The keyword options of `SelfRefine`."""

    critique_prompt: str
    revise_prompt: str


class SelfRefineGraphOptions(SelfRefineOptions, GraphOptions, total=False):
    """The keyword options of `create_self_refine_graph`."""


class SelfRefineState(ScalingState):
    """Self-Refine's working state."""

    pending: NotRequired[str]
    """The newest answer, not yet scored."""
    feedback: NotRequired[str]
    """The critique of the current answer."""


class SelfRefine(ScalingEngine):
    """Self-Refine over one chat model, which answers, critiques and revises.

    A run makes at most `budget` answer calls, `budget - 1` critique calls
    and `budget` scorer calls.

    Args:
        model: Any chat model (or runnable returning a message).
        critique_prompt: Asks for feedback on the current answer.
        revise_prompt: Asks for a new answer given that feedback.
        **options: The options every engine takes (see `ScalingEngine`):
            `budget` in rounds (answers generated, the first draft
            included), default 4; `mode`, `scorer`, `threshold` and
            `system_prompt`.

    Raises:
        ConfigurationError: An option is out of range.
    """

    method = "self_refine"
    unit = "rounds"
    default_budget = 4
    State = SelfRefineState

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        critique_prompt: str = CRITIQUE_PROMPT,
        revise_prompt: str = REVISE_PROMPT,
        **options: Unpack[ScalingOptions],
    ) -> None:
        super().__init__(model, **options)
        self.critique_prompt = check_prompt("critique_prompt", critique_prompt)
        self.revise_prompt = check_prompt("revise_prompt", revise_prompt)

    def _fresh(self) -> dict[str, Any]:
        return {"pending": "", "feedback": ""}

    def _chain(self, state: Mapping[str, Any]) -> tuple[list[AnyMessage], int, bool]:
        """The next answer's prompt so far, its index, and whether it is a draft.

        A draft (the first answer, or a fresh start once memory's start is
        spent) gets the plain prompt; otherwise the prompt goes on to the
        current answer and the request to critique it.
        """
        _, conversation = question_of(state["messages"])
        memory: MemoryContext | None = state.get("memory")
        unit = len(state["candidates"])
        prompt = self.prompt(conversation, memory, exemplars_at(memory, unit))
        if unit == 0 or escalates_at(memory, unit):
            return prompt, unit, True
        current = AIMessage(state["candidates"][-1]["text"])
        return [*prompt, current, HumanMessage(self.critique_prompt)], unit, False

    def _critique(self, state: Mapping[str, Any]) -> Step:
        prompt, _, draft = self._chain(state)
        if draft:
            return {}  # nothing to critique
        [reply] = yield Generate([prompt], role="reflection")
        return {"feedback": reply.text}

    def _answer(self, state: Mapping[str, Any]) -> Step:
        prompt, unit, draft = self._chain(state)
        if not draft:
            prompt += [AIMessage(state["feedback"]), HumanMessage(self.revise_prompt)]
        [reply] = yield Generate([prompt])
        self.candidate_event(unit, reply.text)
        return {"pending": reply.text}

    def _score(self, state: Mapping[str, Any]) -> Step:
        memory: MemoryContext | None = state.get("memory")
        with_memory = bool(exemplars_at(memory, len(state["candidates"])))
        return self.score_next(state, state["pending"], with_memory=with_memory)

    def _after_score(self, state: Mapping[str, Any]) -> Literal["critique", "select"]:
        candidates = state["candidates"]
        finished = len(candidates) >= self.budget or self.stops(candidates)
        # Another round is critique, revise, score: three supersteps.
        return "select" if finished or not self.steps_left(state, 3) else "critique"

    def _add_steps(self, builder: StateGraph[Any, Any, Any, Any]) -> None:
        builder.add_node("generate", self.node("generate", self._answer))
        builder.add_node("score", self.node("score", self._score))
        builder.add_node("critique", self.node("critique", self._critique))
        builder.add_node("revise", self.node("revise", self._answer))
        builder.add_edge("prepare", "generate")
        builder.add_edge("generate", "score")
        builder.add_conditional_edges("score", self._after_score)
        builder.add_edge("critique", "revise")
        builder.add_edge("revise", "score")

    def _select(self, state: Mapping[str, Any]) -> ScalingResult:
        candidates = state["candidates"]
        return self.result(state, self.latest_best(candidates), len(candidates))


def create_self_refine_graph(
    model: ChatRunnable,
    /,
    *,
    name: str = "self_refine",
    **options: Unpack[SelfRefineGraphOptions],
) -> CompiledStateGraph[Any, None, ScalingInput, Any]:
    """Build Self-Refine as a compiled graph.

    `generate` drafts the first answer and `score` rates it; while the run is
    not finished, `critique` asks for feedback on the current answer, `revise`
    writes the next one and `score` rates it again. The loop ends at the
    threshold (adaptive mode), after `budget` answers, or early when the
    caller's recursion limit is near. The answer is appended to `messages`
    and the `ScalingResult` is under the key `name`.

    Example:
        ```python
        builder = StateGraph(MessagesState)
        builder.add_node(create_self_refine_graph(model, budget=3))
        builder.add_edge(START, "self_refine")
        app = builder.compile()  # the refined answer is the last message
        ```

    Options are those of `SelfRefine` and LangGraph's `compile` (`checkpointer`,
    `store`, `interrupt_before`, `interrupt_after`, `debug`); an unknown or
    out-of-range one raises `ConfigurationError` here, not at run time.
    """
    return SelfRefine.graph_of(model, name, options)
