r"""Self-Refine: generate an answer, critique it, revise it, up to K rounds.

Round 1 drafts an answer; every later round asks the same model to critique
the current answer and then to revise it in the light of that feedback (Madaan
et al., 2023). Each round's answer is scored. Static mode runs all
`max_rounds` rounds (the paper's baseline) and keeps the best-scored answer,
the latest among equals; adaptive mode stops at the first answer whose score
reaches the threshold. Budget unit: rounds, that is answers generated, so
`usage["generations"]` equals `budget_used`; critiques are counted under the
`reflection` role.

Memory enters through a `MemoryContext`: its exemplars go into the prompt all
rounds share, and its precedents go to the scorer. Each answer is scored
against the answers before it, so a `ConsensusScorer` rewards an answer that
survives critique unchanged. When memory limits the exemplars to its first
`samples` rounds (the router's smaller start) and the run goes on past them,
it escalates: the next round is a fresh draft from the plain prompt, critiqued
and revised as before, and the answers of both chains keep voting together.

`self_refine` / `aself_refine` are the functional core; `create_self_refine_graph`
wraps the same steps in a compiled LangGraph subgraph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps
from typing_extensions import TypedDict

from langchain_speedup._internal import message_text
from langchain_speedup.budget import Ledger, Usage, add_usage, empty_usage
from langchain_speedup.scaling import _common
from langchain_speedup.scaling._common import ChatRunnable
from langchain_speedup.scaling.base import (
    DEFAULT_SYSTEM_PROMPT,
    Candidate,
    MemoryContext,
    Mode,
    ScalingOptions,
    ScalingResult,
    build_prompt,
    question_of,
)
from langchain_speedup.scoring import Scorer

__all__ = [
    "CRITIQUE_PROMPT",
    "REVISE_PROMPT",
    "SelfRefine",
    "SelfRefineInput",
    "SelfRefineOutput",
    "SelfRefineState",
    "aself_refine",
    "create_self_refine_graph",
    "self_refine",
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


class SelfRefine:
    """Self-Refine over one chat model, with validated options.

    The shared engine behind `self_refine`, `aself_refine` and the graph; build
    it once and call `run` / `arun` for many questions. A run makes at most
    `max_rounds` answer calls, `max_rounds - 1` critique calls and
    `max_rounds` scorer calls.

    Args:
        model: Any chat model (or runnable returning a message); it answers,
            critiques and revises.
        max_rounds: The most rounds (answers generated), including the first
            draft; default 4.
        mode: `"static"` or `"adaptive"` (default).
        scorer: Rates answers; `ConsensusScorer()` when `None`.
        threshold: Score that stops an adaptive run; the scorer's upper bound
            when `None`.
        system_prompt: Instructions placed before the exemplars and question.
        critique_prompt: Asks for feedback on the current answer.
        revise_prompt: Asks for a new answer given that feedback.

    Raises:
        ConfigurationError: An option is out of range.
    """

    method = "self_refine"
    unit = "rounds"

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        max_rounds: int = 4,
        mode: Mode = "adaptive",
        scorer: Scorer | None = None,
        threshold: float | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        critique_prompt: str = CRITIQUE_PROMPT,
        revise_prompt: str = REVISE_PROMPT,
    ) -> None:
        _common.check_model(model)
        _common.check_count("max_rounds", max_rounds)
        self.model = model
        self.options = ScalingOptions(
            mode=mode,
            budget=max_rounds,
            scorer=scorer,
            threshold=threshold,
            system_prompt=system_prompt,
        )
        self.critique_prompt = _common.check_prompt("critique_prompt", critique_prompt)
        self.revise_prompt = _common.check_prompt("revise_prompt", revise_prompt)

    @property
    def max_rounds(self) -> int:
        """The most rounds one run makes."""
        return self.options.budget

    # -- prompts -----------------------------------------------------------------------

    def _base(
        self,
        conversation: Sequence[BaseMessage],
        memory: MemoryContext | None,
        unit: int,
    ) -> tuple[list[AnyMessage], bool]:
        # `unit` is the index of the answer whose chain the prompt belongs to.
        exemplars, with_memory = _common.exemplars_at(memory, unit)
        prompt = build_prompt(
            conversation,
            system_prompt=self.options.system_prompt,
            exemplars=exemplars,
            lessons=_common.lessons_of(memory),
        )
        return prompt, with_memory

    def _critique_prompt(self, base: list[AnyMessage], answer: str) -> list[AnyMessage]:
        return [*base, AIMessage(answer), HumanMessage(self.critique_prompt)]

    def _revise_prompt(
        self, base: list[AnyMessage], answer: str, feedback: str
    ) -> list[AnyMessage]:
        return [
            *self._critique_prompt(base, answer),
            AIMessage(feedback),
            HumanMessage(self.revise_prompt),
        ]

    # -- steps (the graph's nodes call these one by one) ---------------------------------

    def _draft(
        self,
        conversation: Sequence[BaseMessage],
        memory: MemoryContext | None,
        config: RunnableConfig | None,
        unit: int = 0,
    ) -> tuple[str, Usage]:
        ledger = Ledger()
        base, _ = self._base(conversation, memory, unit)
        reply = _common.invoke(
            self.model, base, ledger.config(config, role="solver"), role="solver"
        )
        return message_text(reply), ledger.usage()

    async def _adraft(
        self,
        conversation: Sequence[BaseMessage],
        memory: MemoryContext | None,
        config: RunnableConfig | None,
        unit: int = 0,
    ) -> tuple[str, Usage]:
        ledger = Ledger()
        base, _ = self._base(conversation, memory, unit)
        reply = await _common.ainvoke(
            self.model, base, ledger.config(config, role="solver"), role="solver"
        )
        return message_text(reply), ledger.usage()

    def _critique(
        self,
        conversation: Sequence[BaseMessage],
        answer: str,
        memory: MemoryContext | None,
        config: RunnableConfig | None,
        unit: int,
    ) -> tuple[str, Usage]:
        ledger = Ledger()
        base, _ = self._base(conversation, memory, unit)
        reply = _common.invoke(
            self.model,
            self._critique_prompt(base, answer),
            ledger.config(config, role="reflection"),
            role="reflection",
        )
        return message_text(reply), ledger.usage()

    async def _acritique(
        self,
        conversation: Sequence[BaseMessage],
        answer: str,
        memory: MemoryContext | None,
        config: RunnableConfig | None,
        unit: int,
    ) -> tuple[str, Usage]:
        ledger = Ledger()
        base, _ = self._base(conversation, memory, unit)
        reply = await _common.ainvoke(
            self.model,
            self._critique_prompt(base, answer),
            ledger.config(config, role="reflection"),
            role="reflection",
        )
        return message_text(reply), ledger.usage()

    def _revise(
        self,
        conversation: Sequence[BaseMessage],
        answer: str,
        feedback: str,
        memory: MemoryContext | None,
        config: RunnableConfig | None,
        unit: int,
    ) -> tuple[str, Usage]:
        ledger = Ledger()
        base, _ = self._base(conversation, memory, unit)
        reply = _common.invoke(
            self.model,
            self._revise_prompt(base, answer, feedback),
            ledger.config(config, role="solver"),
            role="solver",
        )
        return message_text(reply), ledger.usage()

    async def _arevise(
        self,
        conversation: Sequence[BaseMessage],
        answer: str,
        feedback: str,
        memory: MemoryContext | None,
        config: RunnableConfig | None,
        unit: int,
    ) -> tuple[str, Usage]:
        ledger = Ledger()
        base, _ = self._base(conversation, memory, unit)
        reply = await _common.ainvoke(
            self.model,
            self._revise_prompt(base, answer, feedback),
            ledger.config(config, role="solver"),
            role="solver",
        )
        return message_text(reply), ledger.usage()

    def _score(
        self,
        question: str,
        text: str,
        candidates: Sequence[Candidate],
        memory: MemoryContext | None,
        config: RunnableConfig | None,
    ) -> tuple[Candidate, Usage]:
        return _common.score_in_turn(
            self.options.active_scorer,
            question,
            text,
            candidates,
            memory,
            config,
            with_memory=_common.exemplars_at(memory, len(candidates))[1],
        )

    async def _ascore(
        self,
        question: str,
        text: str,
        candidates: Sequence[Candidate],
        memory: MemoryContext | None,
        config: RunnableConfig | None,
    ) -> tuple[Candidate, Usage]:
        return await _common.ascore_in_turn(
            self.options.active_scorer,
            question,
            text,
            candidates,
            memory,
            config,
            with_memory=_common.exemplars_at(memory, len(candidates))[1],
        )

    # -- stopping and selection ----------------------------------------------------------

    def passed(self, candidate: Candidate) -> bool:
        """Whether an answer's score reaches the threshold."""
        return candidate["score"] >= self.options.active_threshold

    def _finished(self, candidates: Sequence[Candidate]) -> bool:
        if len(candidates) >= self.max_rounds:
            return True
        return self.options.mode == "adaptive" and any(map(self.passed, candidates))

    def _select(self, candidates: Sequence[Candidate], usage: Usage) -> ScalingResult:
        return _common.build_result(
            method=self.method,
            unit=self.unit,
            options=self.options,
            best=_common.pick_latest_best(candidates, self.options),
            candidates=candidates,
            budget_used=len(candidates),
            usage=usage,
        )

    # -- whole runs ----------------------------------------------------------------------

    def run(
        self,
        question: str | Sequence[BaseMessage],
        *,
        memory: MemoryContext | None = None,
        config: RunnableConfig | None = None,
    ) -> ScalingResult:
        """Answer one question (a string or a conversation).

        Args:
            question: The question, or a conversation ending in it.
            memory: Exemplars and precedents from memory, if any.
            config: Passed to every model and scorer call.

        Returns:
            The selected answer with every round's answer, score and the usage.

        Raises:
            InvalidInputError: The question is empty or not text.
            ModelError: A model call failed; nothing partial is returned.
            ScoringError: The scorer returned an unusable score.
        """
        text, conversation = question_of(question)
        candidates: list[Candidate] = []
        answer, usage = self._draft(conversation, memory, config)
        # Bounded: every pass adds one candidate and `_finished` caps the count.
        while True:
            candidate, spent = self._score(text, answer, candidates, memory, config)
            candidates.append(candidate)
            usage = add_usage(usage, spent)
            if self._finished(candidates):
                return self._select(candidates, usage)
            unit = len(candidates)
            if _common.escalates_at(memory, unit):
                # Memory's start is spent without a passing answer: draft afresh.
                answer, spent = self._draft(conversation, memory, config, unit)
                usage = add_usage(usage, spent)
                continue
            feedback, spent = self._critique(
                conversation, answer, memory, config, unit - 1
            )
            usage = add_usage(usage, spent)
            answer, spent = self._revise(
                conversation, answer, feedback, memory, config, unit - 1
            )
            usage = add_usage(usage, spent)

    async def arun(
        self,
        question: str | Sequence[BaseMessage],
        *,
        memory: MemoryContext | None = None,
        config: RunnableConfig | None = None,
    ) -> ScalingResult:
        """Async form of `run`."""
        text, conversation = question_of(question)
        candidates: list[Candidate] = []
        answer, usage = await self._adraft(conversation, memory, config)
        while True:
            candidate, spent = await self._ascore(
                text, answer, candidates, memory, config
            )
            candidates.append(candidate)
            usage = add_usage(usage, spent)
            if self._finished(candidates):
                return self._select(candidates, usage)
            unit = len(candidates)
            if _common.escalates_at(memory, unit):
                answer, spent = await self._adraft(conversation, memory, config, unit)
                usage = add_usage(usage, spent)
                continue
            feedback, spent = await self._acritique(
                conversation, answer, memory, config, unit - 1
            )
            usage = add_usage(usage, spent)
            answer, spent = await self._arevise(
                conversation, answer, feedback, memory, config, unit - 1
            )
            usage = add_usage(usage, spent)

    # -- as a graph ----------------------------------------------------------------------

    def as_graph(
        self, *, name: str = "self_refine"
    ) -> CompiledStateGraph[SelfRefineState, None, SelfRefineInput, SelfRefineOutput]:
        """This engine as a compiled subgraph; see `create_self_refine_graph`.

        Args:
            name: The graph's name, used as its node name in a parent graph.

        Returns:
            The compiled graph, with `messages` in and out and the result
            under `self_refine`.
        """
        engine = self
        method = self.method

        def _spent(state: SelfRefineState, spent: Usage) -> Usage:
            return add_usage(state.get("usage", empty_usage()), spent)

        def _current(state: SelfRefineState) -> str:
            return state["candidates"][-1]["text"]

        def _produced(
            state: SelfRefineState, answer: str, spent: Usage
        ) -> dict[str, Any]:
            index = len(state.get("candidates", []))
            _common.emit(_common.candidate_event(method, index, answer))
            return {"pending": answer, "usage": _spent(state, spent)}

        def generate(state: SelfRefineState, config: RunnableConfig) -> dict[str, Any]:
            _, conversation = question_of(state["messages"])
            answer, spent = engine._draft(conversation, state.get("memory"), config)
            return _produced(state, answer, spent)

        async def agenerate(
            state: SelfRefineState, config: RunnableConfig
        ) -> dict[str, Any]:
            _, conversation = question_of(state["messages"])
            answer, spent = await engine._adraft(
                conversation, state.get("memory"), config
            )
            return _produced(state, answer, spent)

        def _scored(
            state: SelfRefineState, candidate: Candidate, spent: Usage
        ) -> dict[str, Any]:
            candidates = [*state.get("candidates", []), candidate]
            event = _common.score_event(
                method, len(candidates) - 1, candidate, engine.options
            )
            _common.emit(event)
            return {"candidates": candidates, "usage": _spent(state, spent)}

        def score(state: SelfRefineState, config: RunnableConfig) -> dict[str, Any]:
            text, _ = question_of(state["messages"])
            candidate, spent = engine._score(
                text,
                state["pending"],
                state.get("candidates", []),
                state.get("memory"),
                config,
            )
            return _scored(state, candidate, spent)

        async def ascore(
            state: SelfRefineState, config: RunnableConfig
        ) -> dict[str, Any]:
            text, _ = question_of(state["messages"])
            candidate, spent = await engine._ascore(
                text,
                state["pending"],
                state.get("candidates", []),
                state.get("memory"),
                config,
            )
            return _scored(state, candidate, spent)

        def after_score(state: SelfRefineState) -> Literal["critique", "select"]:
            # Another round is critique, revise, score: three supersteps.
            if engine._finished(state["candidates"]) or not _common.steps_left(
                state, 3
            ):
                return "select"
            return "critique"

        def _unit(state: SelfRefineState) -> tuple[int, bool]:
            # The next answer's index, and whether it starts a fresh chain
            # because memory's start is spent (then there is nothing to critique).
            unit = len(state["candidates"])
            return unit, _common.escalates_at(state.get("memory"), unit)

        def critique(state: SelfRefineState, config: RunnableConfig) -> dict[str, Any]:
            unit, fresh = _unit(state)
            if fresh:
                return {}
            _, conversation = question_of(state["messages"])
            feedback, spent = engine._critique(
                conversation, _current(state), state.get("memory"), config, unit - 1
            )
            return {"feedback": feedback, "usage": _spent(state, spent)}

        async def acritique(
            state: SelfRefineState, config: RunnableConfig
        ) -> dict[str, Any]:
            unit, fresh = _unit(state)
            if fresh:
                return {}
            _, conversation = question_of(state["messages"])
            feedback, spent = await engine._acritique(
                conversation, _current(state), state.get("memory"), config, unit - 1
            )
            return {"feedback": feedback, "usage": _spent(state, spent)}

        def revise(state: SelfRefineState, config: RunnableConfig) -> dict[str, Any]:
            unit, fresh = _unit(state)
            _, conversation = question_of(state["messages"])
            if fresh:
                answer, spent = engine._draft(
                    conversation, state.get("memory"), config, unit
                )
            else:
                answer, spent = engine._revise(
                    conversation,
                    _current(state),
                    state["feedback"],
                    state.get("memory"),
                    config,
                    unit - 1,
                )
            return _produced(state, answer, spent)

        async def arevise(
            state: SelfRefineState, config: RunnableConfig
        ) -> dict[str, Any]:
            unit, fresh = _unit(state)
            _, conversation = question_of(state["messages"])
            if fresh:
                answer, spent = await engine._adraft(
                    conversation, state.get("memory"), config, unit
                )
            else:
                answer, spent = await engine._arevise(
                    conversation,
                    _current(state),
                    state["feedback"],
                    state.get("memory"),
                    config,
                    unit - 1,
                )
            return _produced(state, answer, spent)

        def select(state: SelfRefineState) -> dict[str, Any]:
            result = engine._select(
                state["candidates"], state.get("usage", empty_usage())
            )
            _common.emit(_common.stop_event(result))
            return {
                "self_refine": result,
                "messages": [AIMessage(result["answer"], name=name)],
            }

        builder = StateGraph(
            SelfRefineState,
            input_schema=SelfRefineInput,
            output_schema=SelfRefineOutput,
        )
        builder.add_node(
            "generate", RunnableLambda(generate, afunc=agenerate, name="generate")
        )
        builder.add_node("score", RunnableLambda(score, afunc=ascore, name="score"))
        builder.add_node(
            "critique", RunnableLambda(critique, afunc=acritique, name="critique")
        )
        builder.add_node("revise", RunnableLambda(revise, afunc=arevise, name="revise"))
        builder.add_node("select", select)
        builder.add_edge(START, "generate")
        builder.add_edge("generate", "score")
        builder.add_conditional_edges("score", after_score)
        builder.add_edge("critique", "revise")
        builder.add_edge("revise", "score")
        builder.add_edge("select", END)
        return builder.compile(name=name)


def self_refine(
    model: ChatRunnable,
    question: str | Sequence[BaseMessage],
    *,
    memory: MemoryContext | None = None,
    config: RunnableConfig | None = None,
    **options: Any,
) -> ScalingResult:
    """Answer a question with Self-Refine.

    Example:
        ```python
        result = self_refine(model, "What is 17 + 25?", max_rounds=3)
        print(result["final_answer"], result["budget_used"], result["stop_reason"])
        ```

    Args:
        model: Any chat model.
        question: The question, or a conversation ending in it.
        memory: Exemplars and precedents from memory, if any.
        config: Passed to every model call.
        **options: The keyword options of `SelfRefine`.

    Returns:
        The selected answer with every round's answer, score and the usage.

    Raises:
        ConfigurationError: An option is out of range.
        InvalidInputError: The question is empty or not text.
        ModelError: A model call failed.
        ScoringError: The scorer returned an unusable score.
    """
    return SelfRefine(model, **options).run(question, memory=memory, config=config)


async def aself_refine(
    model: ChatRunnable,
    question: str | Sequence[BaseMessage],
    *,
    memory: MemoryContext | None = None,
    config: RunnableConfig | None = None,
    **options: Any,
) -> ScalingResult:
    """Async form of `self_refine`."""
    return await SelfRefine(model, **options).arun(
        question, memory=memory, config=config
    )


# -- the graph -----------------------------------------------------------------------


class SelfRefineInput(TypedDict):
    """Input of the Self-Refine graph: a conversation ending in the question."""

    messages: Annotated[list[AnyMessage], add_messages]
    memory: NotRequired[MemoryContext]


class SelfRefineOutput(TypedDict):
    """Output: the answer appended to `messages`, details under `self_refine`."""

    messages: Annotated[list[AnyMessage], add_messages]
    self_refine: ScalingResult


class SelfRefineState(SelfRefineInput):
    """Internal state; everything but the result stays private to the subgraph."""

    candidates: NotRequired[list[Candidate]]
    pending: NotRequired[str]
    """The newest answer, not yet scored."""
    feedback: NotRequired[str]
    """The critique of the current answer."""
    usage: NotRequired[Usage]
    self_refine: NotRequired[ScalingResult]
    remaining_steps: RemainingSteps


def create_self_refine_graph(
    model: ChatRunnable,
    /,
    *,
    max_rounds: int = 4,
    mode: Mode = "adaptive",
    scorer: Scorer | None = None,
    threshold: float | None = None,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    critique_prompt: str = CRITIQUE_PROMPT,
    revise_prompt: str = REVISE_PROMPT,
    name: str = "self_refine",
) -> CompiledStateGraph[SelfRefineState, None, SelfRefineInput, SelfRefineOutput]:
    """Build Self-Refine as a compiled subgraph.

    `generate` drafts the first answer and `score` rates it; while the run is
    not finished, `critique` asks for feedback on the current answer, `revise`
    writes the next one and `score` rates it again. The loop ends at the
    threshold (adaptive mode), after `max_rounds` answers, or early when the
    caller's recursion limit is near. Cost: at most `max_rounds` answer calls,
    `max_rounds - 1` critique calls and `max_rounds` scorer calls.

    It runs standalone and as a node of a parent graph with a `messages` key.
    The answer is appended to `messages` and the `ScalingResult` is under
    `self_refine`. With `stream_mode="custom"` each answer, score and the stop
    decision arrive as `ScalingEvent`s.

    Example:
        ```python
        graph = create_self_refine_graph(model, max_rounds=3)
        out = graph.invoke({"messages": [("user", "What is 17 + 25?")]})
        print(out["messages"][-1].content, out["self_refine"]["budget_used"])
        ```

    Args:
        model: Any chat model.
        max_rounds: The most answers to generate, the first draft included;
            default 4.
        mode: `"static"` or `"adaptive"` (default).
        scorer: Rates answers; `ConsensusScorer()` when `None`.
        threshold: Stop score for adaptive mode; the scorer's upper bound when
            `None`.
        system_prompt: Instructions placed before the question.
        critique_prompt: Asks for feedback on the current answer.
        revise_prompt: Asks for a new answer given that feedback.
        name: The graph's name, used as its node name in a parent graph.

    Returns:
        The compiled graph.

    Raises:
        ConfigurationError: An option is out of range (raised here, not at run
            time).
    """
    engine = SelfRefine(
        model,
        max_rounds=max_rounds,
        mode=mode,
        scorer=scorer,
        threshold=threshold,
        system_prompt=system_prompt,
        critique_prompt=critique_prompt,
        revise_prompt=revise_prompt,
    )
    return engine.as_graph(name=name)
