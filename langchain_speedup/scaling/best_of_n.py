"""Best-of-N: sample candidates, score them, keep the best.

Static mode draws all `budget` candidates and keeps the best (the paper's
baseline). Adaptive mode draws `parallelism` candidates per round, scores each
against the ones before it, and stops at the first whose score reaches the
threshold; if none does, it keeps the best. Budget unit: generations.

Memory's exemplars go into the prompt of the first `samples` candidates, after
which sampling falls back to the plain prompt; its precedents count as votes
for the consensus scorer.

With `program_every=k`, every k-th candidate is a program-of-thought: the
model is asked for a short Python program (`programs.PROGRAM_PROMPT`), the
program runs in a `Sandbox`, and the candidate is the reply followed by the
answer it computed. With `ProgramVerifiedScorer`, programs and prose answers
then verify each other, and the scorer samples only what no earlier
candidate supplies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Unpack

from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from langchain_speedup._internal import (
    GraphOptions,
    build_prompt,
    check_count,
    question_of,
)
from langchain_speedup.programs import PROGRAM_PROMPT
from langchain_speedup.sandbox import Sandbox
from langchain_speedup.scaling._base import (
    Execute,
    Generate,
    ScalingEngine,
    ScalingInput,
    ScalingOptions,
    Score,
    Step,
    exemplars_at,
)
from langchain_speedup.types import (
    ChatRunnable,
    MemoryContext,
    ScalingResult,
)

__all__ = [
    "BestOfN",
    "BestOfNOptions",
    "create_best_of_n_graph",
]


class BestOfNOptions(ScalingOptions, total=False):
    """The keyword options of `BestOfN`."""

    parallelism: int
    program_every: int
    sandbox: Sandbox | None


class BestOfNGraphOptions(BestOfNOptions, GraphOptions, total=False):
    """The keyword options of `create_best_of_n_graph`."""


class BestOfN(ScalingEngine):
    """Best-of-N over one chat model.

    A run makes at most `budget` model calls and as many scorer calls.

    Args:
        model: Any chat model (or runnable returning a message).
        parallelism: Candidates generated per adaptive round (static mode
            generates all at once); calls go through `batch`, which honours
            `max_concurrency` in the config.
        program_every: Every `program_every`-th candidate (the 2nd, 4th, ...
            for 2; all for 1) is a program run in the sandbox; 0, the
            default, samples prose only. Program candidates see no exemplars.
        sandbox: Where program candidates run; a `Sandbox()` of the engine's
            own when `None` and `program_every` is set.
        **options: The options every engine takes (see `ScalingEngine`):
            `budget` in generations, default 8; `mode`, `scorer`,
            `threshold` and `system_prompt`.

    Raises:
        ConfigurationError: An option is out of range.
    """

    method = "best_of_n"
    unit = "generations"
    default_budget = 8

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        parallelism: int = 1,
        program_every: int = 0,
        sandbox: Sandbox | None = None,
        **options: Unpack[ScalingOptions],
    ) -> None:
        super().__init__(model, **options)
        self.parallelism = check_count("parallelism", parallelism)
        self.program_every = check_count("program_every", program_every, minimum=0)
        self.sandbox = Sandbox.checked(sandbox) or (
            Sandbox() if self.program_every else None
        )

    def _is_program(self, unit: int) -> bool:
        return bool(self.program_every) and (unit + 1) % self.program_every == 0

    def _fresh(self) -> dict[str, Any]:
        return {}

    def _sample(self, state: Mapping[str, Any]) -> Step:
        question, conversation = question_of(state["messages"])
        memory: MemoryContext | None = state.get("memory")
        done = state["candidates"]
        size = self.budget if self.mode == "static" else self.parallelism
        units = range(len(done), min(len(done) + size, self.budget))
        programs = [self._is_program(unit) for unit in units]
        exemplars = [
            [] if program else exemplars_at(memory, unit)
            for unit, program in zip(units, programs, strict=True)
        ]
        replies = yield Generate(
            [
                build_prompt(conversation, system_prompt=PROGRAM_PROMPT)
                if program
                else self.prompt(conversation, memory, e)
                for e, program in zip(exemplars, programs, strict=True)
            ]
        )
        texts = [reply.text for reply in replies]
        # A program that computed nothing keeps its reply, with no answer.
        computed = [True] * len(texts)
        if any(programs):
            assert self.sandbox is not None
            asked = [t for t, p in zip(texts, programs, strict=True) if p]
            ran = iter((yield Execute(asked, self.sandbox)))
            for i in (i for i, p in enumerate(programs) if p):
                solution = next(ran)
                texts[i], computed[i] = solution or texts[i], solution is not None
        earlier = [c["text"] for c in done]
        # Adaptive: a candidate is judged against those drawn before it.
        # Static: against all others, so selection is a plain vote.
        peers = [
            earlier + texts[:i] + (texts[i + 1 :] if self.mode == "static" else [])
            for i in range(len(texts))
        ]
        precedents = memory["precedents"] if memory else []
        scores = yield Score(question, texts, peers, precedents)
        new = [
            self.candidate(text, score, with_memory=bool(e), complete=ok)
            for text, score, e, ok in zip(
                texts, scores, exemplars, computed, strict=True
            )
        ]
        for index, (candidate, ok) in enumerate(
            zip(new, computed, strict=True), start=len(done)
        ):
            self.candidate_event(index, candidate["text"])
            self.score_event(index, candidate, complete=ok)
        return {"candidates": [*done, *new]}

    def _after_sample(self, state: Mapping[str, Any]) -> Literal["sample", "select"]:
        candidates = state["candidates"]
        finished = len(candidates) >= self.budget or self.stops(candidates)
        return "select" if finished or not self.steps_left(state, 1) else "sample"

    def _add_steps(self, builder: StateGraph[Any, Any, Any, Any]) -> None:
        builder.add_node("sample", self.node("sample", self._sample))
        builder.add_edge("prepare", "sample")
        builder.add_conditional_edges("sample", self._after_sample)

    def _select(self, state: Mapping[str, Any]) -> ScalingResult:
        candidates = state["candidates"]
        passing = [c for c in candidates if self.passed(c)]
        if self.mode == "adaptive" and passing:
            best = passing[0]
        else:
            best = max(candidates, key=lambda c: c["score"])  # the earliest of equals
        return self.result(state, best, len(candidates))


def create_best_of_n_graph(
    model: ChatRunnable,
    /,
    *,
    name: str = "best_of_n",
    **options: Unpack[BestOfNGraphOptions],
) -> CompiledStateGraph[Any, None, ScalingInput, Any]:
    """Build Best-of-N as a compiled graph (`prepare`, a `sample` loop, `select`).

    Each `sample` step is one round of `parallelism` candidates (all of them
    in static mode); the loop ends at the threshold, at the budget, or early
    when the caller's recursion limit is near. The answer is appended to
    `messages` and the `ScalingResult` is under the key `name`.

    Example:
        ```python
        graph = create_best_of_n_graph(model, budget=4)
        out = graph.invoke({"messages": [("user", "What is 17 + 25?")]})
        print(out["messages"][-1].content, out["best_of_n"]["budget_used"])
        ```

    Options are those of `BestOfN` and LangGraph's `compile` (`checkpointer`,
    `store`, `interrupt_before`, `interrupt_after`, `debug`); an unknown or
    out-of-range one raises `ConfigurationError` here, not at run time.
    """
    return BestOfN.graph_of(model, name, options)
