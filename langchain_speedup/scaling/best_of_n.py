"""Best-of-N: sample candidates, score them, keep the best.

Static mode draws all `n` candidates and keeps the best (the paper's
baseline). Adaptive mode draws `parallelism` candidates per round, scores each
against the ones before it, and stops at the first whose score reaches the
threshold; if none does within `n`, it keeps the best of the `n`. Budget unit:
generated candidates.

Memory enters through a `MemoryContext`: its exemplars go into the prompt of
the first `samples` candidates, after which sampling falls back to the plain
prompt, and its precedents count as votes for the consensus scorer.

`best_of_n` / `abest_of_n` are the functional core; `create_best_of_n_graph`
wraps the same rounds in a compiled LangGraph subgraph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from langchain_speedup._internal import message_text, raise_model_error
from langchain_speedup.answers import extract_answer
from langchain_speedup.budget import Ledger, Usage, add_usage, empty_usage
from langchain_speedup.errors import ConfigurationError
from langchain_speedup.scaling import _common
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
from langchain_speedup.scoring import Scorer, check_score

__all__ = [
    "BestOfN",
    "BestOfNInput",
    "BestOfNOutput",
    "BestOfNState",
    "abest_of_n",
    "best_of_n",
    "create_best_of_n_graph",
]

ChatRunnable = Runnable[LanguageModelInput, BaseMessage]


class BestOfN:
    """Best-of-N over one chat model, with validated options.

    This is the shared engine behind `best_of_n`, `abest_of_n` and the graph;
    build it once and call `run` / `arun` for many questions.

    Args:
        model: Any chat model (or runnable returning a message).
        n: The most candidates to generate.
        mode: `"static"` or `"adaptive"`.
        scorer: Rates candidates; `ConsensusScorer()` when `None`.
        threshold: Score that stops an adaptive run; the scorer's upper bound
            when `None`.
        parallelism: Candidates generated per round in adaptive mode (static
            mode generates all `n` at once). Calls run through `batch`, which
            honours `max_concurrency` in the config.
        system_prompt: Instructions placed before the exemplars and question.

    Raises:
        ConfigurationError: An option is out of range.
    """

    method = "best_of_n"
    unit = "generations"

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        n: int = 8,
        mode: Mode = "adaptive",
        scorer: Scorer | None = None,
        threshold: float | None = None,
        parallelism: int = 1,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        if not isinstance(model, Runnable):
            msg = (
                f"`model` must be a chat model or runnable, got {type(model).__name__}"
            )
            raise ConfigurationError(msg)
        if (
            isinstance(parallelism, bool)
            or not isinstance(parallelism, int)
            or parallelism < 1
        ):
            msg = f"`parallelism` must be an integer >= 1, got {parallelism!r}"
            raise ConfigurationError(msg)
        self.model = model
        self.options = ScalingOptions(
            mode=mode,
            budget=n,
            scorer=scorer,
            threshold=threshold,
            system_prompt=system_prompt,
        )
        self.parallelism = parallelism

    @property
    def n(self) -> int:
        """The most candidates one run generates."""
        return self.options.budget

    # -- one round: plan prompts, generate, score --------------------------------

    def _round_prompts(
        self,
        conversation: Sequence[BaseMessage],
        memory: MemoryContext | None,
        done: int,
    ) -> list[tuple[list[AnyMessage], bool]]:
        size = self.n if self.options.mode == "static" else self.parallelism
        size = min(size, self.n - done)
        exemplars = memory["exemplars"] if memory else []
        with_memory = (
            len(exemplars) if memory is None else memory.get("samples", self.n)
        )
        prompts = []
        for i in range(done, done + size):
            use = bool(exemplars) and i < with_memory
            prompt = build_prompt(
                conversation,
                system_prompt=self.options.system_prompt,
                exemplars=exemplars if use else (),
                lessons=_common.lessons_of(memory),
            )
            prompts.append((prompt, use))
        return prompts

    def _peers(
        self, candidates: Sequence[Candidate], texts: Sequence[str], i: int
    ) -> list[str]:
        # Adaptive: a candidate is judged against those drawn before it.
        # Static: against all others, so selection is a plain vote.
        earlier = [c["text"] for c in candidates] + list(texts[:i])
        if self.options.mode == "static":
            return earlier + list(texts[i + 1 :])
        return earlier

    def _new_candidates(
        self, texts: Sequence[str], flags: Sequence[bool], scores: Sequence[float]
    ) -> list[Candidate]:
        scorer = self.options.active_scorer
        return [
            Candidate(
                text=text,
                answer=extract_answer(text),
                score=check_score(scorer, score),
                with_memory=flag,
            )
            for text, flag, score in zip(texts, flags, scores, strict=True)
        ]

    def round(
        self,
        question: str,
        conversation: Sequence[BaseMessage],
        candidates: Sequence[Candidate],
        *,
        memory: MemoryContext | None = None,
        config: RunnableConfig | None = None,
    ) -> tuple[list[Candidate], Usage]:
        """Generate and score one round of candidates."""
        ledger = Ledger()
        prompts = self._round_prompts(conversation, memory, len(candidates))
        try:
            replies = self.model.batch(
                [p for p, _ in prompts], ledger.config(config, role="solver")
            )
        except Exception as e:  # noqa: BLE001
            raise_model_error(e, role="solver")
        texts = [message_text(r) for r in replies]
        scorer_config = ledger.config(config, role="scorer")
        precedents = memory["precedents"] if memory else []
        scores = [
            self.options.active_scorer.score(
                question,
                text,
                peers=self._peers(candidates, texts, i),
                precedents=precedents,
                config=scorer_config,
            )
            for i, text in enumerate(texts)
        ]
        return self._new_candidates(
            texts, [u for _, u in prompts], scores
        ), ledger.usage()

    async def around(
        self,
        question: str,
        conversation: Sequence[BaseMessage],
        candidates: Sequence[Candidate],
        *,
        memory: MemoryContext | None = None,
        config: RunnableConfig | None = None,
    ) -> tuple[list[Candidate], Usage]:
        """Async form of `round`."""
        ledger = Ledger()
        prompts = self._round_prompts(conversation, memory, len(candidates))
        try:
            replies = await self.model.abatch(
                [p for p, _ in prompts], ledger.config(config, role="solver")
            )
        except Exception as e:  # noqa: BLE001
            raise_model_error(e, role="solver")
        texts = [message_text(r) for r in replies]
        scorer_config = ledger.config(config, role="scorer")
        precedents = memory["precedents"] if memory else []
        scores = [
            await self.options.active_scorer.ascore(
                question,
                text,
                peers=self._peers(candidates, texts, i),
                precedents=precedents,
                config=scorer_config,
            )
            for i, text in enumerate(texts)
        ]
        return self._new_candidates(
            texts, [u for _, u in prompts], scores
        ), ledger.usage()

    # -- stopping and selection ----------------------------------------------------

    def passed(self, candidate: Candidate) -> bool:
        """Whether a candidate's score reaches the threshold."""
        return candidate["score"] >= self.options.active_threshold

    def finished(self, candidates: Sequence[Candidate]) -> bool:
        """Whether the run should stop."""
        if len(candidates) >= self.n:
            return True
        return self.options.mode == "adaptive" and any(map(self.passed, candidates))

    def select(self, candidates: Sequence[Candidate], usage: Usage) -> ScalingResult:
        """The result: the first passing candidate, else the best-scored one."""
        assert candidates, "select needs at least one candidate"
        passing = [c for c in candidates if self.passed(c)]
        if self.options.mode == "adaptive" and passing:
            best, reason = passing[0], "threshold"
        else:
            # `max` keeps the earliest of equal scores.
            best = max(candidates, key=lambda c: c["score"])
            reason = (
                "threshold"
                if self.options.mode == "adaptive" and self.passed(best)
                else "budget"
            )
        return ScalingResult(
            method=self.method,
            mode=self.options.mode,
            answer=best["text"],
            final_answer=best["answer"],
            score=best["score"],
            passed=self.passed(best),
            stop_reason=reason,  # type: ignore[typeddict-item]
            budget_used=len(candidates),
            budget_unit=self.unit,
            candidates=list(candidates),
            usage=usage,
        )

    # -- whole runs ------------------------------------------------------------------

    def run(
        self,
        question: str | Sequence[BaseMessage],
        *,
        memory: MemoryContext | None = None,
        config: RunnableConfig | None = None,
    ) -> ScalingResult:
        """Answer one question (a string or a conversation).

        Raises:
            InvalidInputError: The question is empty or not text.
            ModelError: A model call failed; nothing partial is returned.
            ScoringError: The scorer returned an unusable score.
        """
        text, conversation = question_of(question)
        candidates: list[Candidate] = []
        usage = empty_usage()
        while not self.finished(candidates):
            new, spent = self.round(
                text, conversation, candidates, memory=memory, config=config
            )
            candidates += new
            usage = add_usage(usage, spent)
        return self.select(candidates, usage)

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
        usage = empty_usage()
        while not self.finished(candidates):
            new, spent = await self.around(
                text, conversation, candidates, memory=memory, config=config
            )
            candidates += new
            usage = add_usage(usage, spent)
        return self.select(candidates, usage)

    # -- as a graph ------------------------------------------------------------------

    def as_graph(
        self, *, name: str = "best_of_n"
    ) -> CompiledStateGraph[BestOfNState, None, BestOfNInput, BestOfNOutput]:
        """This engine as a compiled subgraph; see `create_best_of_n_graph`."""
        engine = self

        def _update(
            state: BestOfNState, new: list[Candidate], spent: Usage
        ) -> dict[str, Any]:
            first = len(state.get("candidates", []))
            for i, candidate in enumerate(new, start=first):
                _common.emit(
                    _common.candidate_event(engine.method, i, candidate["text"])
                )
                _common.emit(
                    _common.score_event(engine.method, i, candidate, engine.options)
                )
            return {
                "candidates": [*state.get("candidates", []), *new],
                "usage": add_usage(state.get("usage", empty_usage()), spent),
            }

        def sample(state: BestOfNState, config: RunnableConfig) -> dict[str, Any]:
            text, conversation = question_of(state["messages"])
            new, spent = engine.round(
                text,
                conversation,
                state.get("candidates", []),
                memory=state.get("memory"),
                config=config,
            )
            return _update(state, new, spent)

        async def asample(
            state: BestOfNState, config: RunnableConfig
        ) -> dict[str, Any]:
            text, conversation = question_of(state["messages"])
            new, spent = await engine.around(
                text,
                conversation,
                state.get("candidates", []),
                memory=state.get("memory"),
                config=config,
            )
            return _update(state, new, spent)

        def after_sample(state: BestOfNState) -> Literal["sample", "select"]:
            return (
                "select" if engine.finished(state.get("candidates", [])) else "sample"
            )

        def select(state: BestOfNState) -> dict[str, Any]:
            result = engine.select(
                state["candidates"], state.get("usage", empty_usage())
            )
            _common.emit(_common.stop_event(result))
            return {
                "best_of_n": result,
                "messages": [AIMessage(result["answer"], name=name)],
            }

        builder = StateGraph(
            BestOfNState, input_schema=BestOfNInput, output_schema=BestOfNOutput
        )
        builder.add_node("sample", RunnableLambda(sample, afunc=asample, name="sample"))
        builder.add_node("select", select)
        builder.add_edge(START, "sample")
        builder.add_conditional_edges("sample", after_sample)
        builder.add_edge("select", END)
        return builder.compile(name=name)


def best_of_n(
    model: ChatRunnable,
    question: str | Sequence[BaseMessage],
    *,
    memory: MemoryContext | None = None,
    config: RunnableConfig | None = None,
    **options: Any,
) -> ScalingResult:
    """Answer a question with Best-of-N.

    Example:
        ```python
        result = best_of_n(model, "What is 17 + 25?", n=4, mode="adaptive")
        print(result["final_answer"], result["budget_used"], result["stop_reason"])
        ```

    Args:
        model: Any chat model.
        question: The question, or a conversation ending in it.
        memory: Exemplars and precedents from memory, if any.
        config: Passed to every model call.
        **options: The keyword options of `BestOfN`.

    Returns:
        The selected answer with every candidate, score and the usage.
    """
    return BestOfN(model, **options).run(question, memory=memory, config=config)


async def abest_of_n(
    model: ChatRunnable,
    question: str | Sequence[BaseMessage],
    *,
    memory: MemoryContext | None = None,
    config: RunnableConfig | None = None,
    **options: Any,
) -> ScalingResult:
    """Async form of `best_of_n`."""
    return await BestOfN(model, **options).arun(question, memory=memory, config=config)


# -- the graph -----------------------------------------------------------------------


class BestOfNInput(TypedDict):
    """Input of the Best-of-N graph: a conversation ending in the question."""

    messages: Annotated[list[AnyMessage], add_messages]
    memory: NotRequired[MemoryContext]


class BestOfNOutput(TypedDict):
    """Output: the answer appended to `messages`, details under `best_of_n`."""

    messages: Annotated[list[AnyMessage], add_messages]
    best_of_n: ScalingResult


class BestOfNState(BestOfNInput):
    """Internal state; candidates and usage stay private to the subgraph."""

    candidates: NotRequired[list[Candidate]]
    usage: NotRequired[Usage]
    best_of_n: NotRequired[ScalingResult]


def create_best_of_n_graph(
    model: ChatRunnable,
    /,
    *,
    n: int = 8,
    mode: Mode = "adaptive",
    scorer: Scorer | None = None,
    threshold: float | None = None,
    parallelism: int = 1,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    name: str = "best_of_n",
) -> CompiledStateGraph[BestOfNState, None, BestOfNInput, BestOfNOutput]:
    """Build Best-of-N as a compiled subgraph (`sample` loop, then `select`).

    It runs standalone (`graph.invoke({"messages": [...]})`) and as a node of
    a parent graph with a `messages` key. Each `sample` step is one round of
    `parallelism` candidates (all `n` in static mode); the loop ends at the
    threshold or at `n`. The answer is appended to `messages` as an
    `AIMessage`, and the full `ScalingResult` is under the `best_of_n` key.

    Example:
        ```python
        graph = create_best_of_n_graph(model, n=4)
        out = graph.invoke({"messages": [("user", "What is 17 + 25?")]})
        print(out["messages"][-1].content, out["best_of_n"]["budget_used"])
        ```

    Args:
        model: Any chat model.
        n: The most candidates to generate.
        mode: `"static"` or `"adaptive"`.
        scorer: Rates candidates; `ConsensusScorer()` when `None`.
        threshold: Stop score for adaptive mode; the scorer's upper bound when
            `None`.
        parallelism: Candidates per adaptive round.
        system_prompt: Instructions placed before the question.
        name: The graph's name, used as its node name in a parent graph.

    Returns:
        The compiled graph.

    Raises:
        ConfigurationError: An option is out of range (raised here, not at run
            time).
    """
    engine = BestOfN(
        model,
        n=n,
        mode=mode,
        scorer=scorer,
        threshold=threshold,
        parallelism=parallelism,
        system_prompt=system_prompt,
    )
    return engine.as_graph(name=name)
