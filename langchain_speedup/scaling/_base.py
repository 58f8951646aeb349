"""What every scaling method shares: options, the graph around its steps, runs.

A method is written once, as the steps of its LangGraph graph. A step is a
generator: it yields the model or scorer calls it needs (`Generate`,
`Score`), receives their replies, and returns the state update. The engine
drives it with blocking calls when the graph runs sync and with awaited ones
when it runs async, so the only code that differs between the two is the
call itself. `run` / `arun` invoke the same graph.

Every graph starts each invocation afresh (`prepare` resets the working
state), so it can run many questions on one checkpointed thread, and keeps
only plain data in its state.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, ClassVar, NotRequired, Self, cast

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps
from typing_extensions import TypedDict

from langchain_speedup._internal import (
    DEFAULT_SYSTEM_PROMPT,
    Call,
    GraphOptions,
    Messages,
    build_prompt,
    check_count,
    check_model,
    compile_options,
    emit,
    graph_config,
    model_call,
    question_of,
    result_of,
    run_option,
    step_node,
    with_fields,
)
from langchain_speedup.answers import extract_answer
from langchain_speedup.budget import Ledger
from langchain_speedup.errors import (
    ConfigurationError,
    ModelError,
    ScoringError,
    SpeedupError,
)
from langchain_speedup.programs import program_solution, run_reply
from langchain_speedup.sandbox import Sandbox
from langchain_speedup.scoring import (
    ConsensusScorer,
    Scorer,
    check_score,
    check_threshold,
)
from langchain_speedup.tokens import usage_metadata
from langchain_speedup.types import (
    Candidate,
    ChatRunnable,
    Exemplar,
    MemoryContext,
    Method,
    Mode,
    Role,
    ScalingEvent,
    ScalingResult,
    StopReason,
    Usage,
    add_usage,
    empty_usage,
)

__all__ = ["RunContext", "ScalingEngine", "ScalingInput"]

# -- graph state ---------------------------------------------------------------------


class ScalingInput(TypedDict):
    """Input of every method's graph: a conversation ending in the question."""

    messages: Messages
    memory: NotRequired[MemoryContext | None]
    """Memory for this invocation only; the router fills it."""


class ScalingState(ScalingInput):
    """Working state every method keeps; `prepare` resets it per invocation."""

    candidates: NotRequired[list[Candidate]]
    usage: NotRequired[Usage]
    remaining_steps: RemainingSteps


class RunContext(TypedDict, total=False):
    """Per-run settings, from LangGraph's run context.

    `graph.invoke(inputs, context={"budget": 2, "threshold": 0.5})` overrides
    the engine's options for that run (and its subgraphs); the graphs declare
    this as their `context_schema`, so LangGraph assistants can set them.
    """

    budget: int
    """The most compute to spend, in the method's unit."""
    threshold: float
    """The score that stops an adaptive run."""


class ScalingOptions(TypedDict, total=False):
    """The options every method takes (see `ScalingEngine`)."""

    budget: int | None
    mode: Mode
    scorer: Scorer | None
    threshold: float | None
    system_prompt: str | None


_GRAPH_OPTIONS = frozenset(GraphOptions.__annotations__)


# -- the calls a step asks for -------------------------------------------------------


@dataclass(frozen=True)
class Generate:
    """Model calls, one per prompt, sent together (`batch` honours `max_concurrency`)."""

    prompts: Sequence[Sequence[AnyMessage]]
    role: Role = "solver"
    model: ChatRunnable | None = None
    """A bound form of the engine's model, such as one with `max_tokens` set."""


@dataclass(frozen=True)
class Score:
    """Scorer calls, one per text, in order; each text is judged with its peers."""

    question: str
    texts: Sequence[str]
    peers: Sequence[Sequence[str]]
    precedents: Sequence[str]


@dataclass(frozen=True)
class Execute:
    """Sandboxed runs of the program each text holds, in order.

    Each text comes back as `programs.program_solution` writes it (the reply,
    then the answer the program computed), or as `None` when it holds no
    program that ran to an answer.
    """

    texts: Sequence[str]
    sandbox: Sandbox


Step = Generator[Generate | Score | Execute, Any, dict[str, Any]]
"""A graph step: yields calls, receives their replies, returns the update."""


# -- memory --------------------------------------------------------------------------


def chain_exemplars(memory: MemoryContext | None) -> list[Exemplar]:
    """Exemplars for a method that grows one chain of prompts.

    A chain shares one prompt prefix, so it sees the exemplars unless memory
    allows none (`samples == 0`).
    """
    if not memory or not memory["exemplars"] or memory.get("samples", 1) < 1:
        return []
    return list(memory["exemplars"])


def exemplars_at(memory: MemoryContext | None, unit: int) -> list[Exemplar]:
    """Exemplars for the `unit`-th budget unit of a run (0-based).

    The first `samples` units see them, the rest of the run does not; every
    unit sees them when `samples` is absent.
    """
    samples = memory.get("samples") if memory else None
    if samples is not None and unit >= samples:
        return []
    return chain_exemplars(memory)


def escalates_at(memory: MemoryContext | None, unit: int) -> bool:
    """Whether `unit` is the first past memory's start: the run starts afresh."""
    return (
        unit >= 1
        and bool(exemplars_at(memory, unit - 1))
        and not exemplars_at(memory, unit)
    )


def lessons_of(memory: MemoryContext | None) -> str | None:
    """The lessons every prompt of the run sees; none when `samples == 0`."""
    if not memory or memory.get("samples", 1) < 1:
        return None
    return memory.get("lessons") or None


# -- the engine ----------------------------------------------------------------------


class ScalingEngine(ABC):
    """A test-time scaling method over one chat model, with validated options.

    Subclasses write the method once, as graph steps; this base owns the
    shared options, the graph around the steps, selection and `run` / `arun`.
    Build an engine once and call `run` / `arun` for many questions, or embed
    `as_graph()` in a graph of your own.

    Args:
        model: Any chat model (or runnable returning a message).
        budget: The most compute to spend, in the method's unit (`unit`);
            the method's `default_budget` when `None`.
        mode: `"static"` (spend the whole budget, the paper's baseline) or
            `"adaptive"` (stop once a candidate's score reaches `threshold`).
        scorer: Rates candidates; `ConsensusScorer()` when `None`.
        threshold: Score that stops an adaptive run; the scorer's upper bound
            when `None`.
        system_prompt: Instructions placed after the conversation's own system
            messages, before the exemplars and question; when `None`, the
            method's `default_system_prompt`, used only if the conversation
            has no system message of its own (whose instructions then take
            precedence, answer format included).

    Raises:
        ConfigurationError: An option is out of range.
    """

    method: ClassVar[Method]
    unit: ClassVar[str]
    """The budget unit, e.g. `"generations"`."""
    State: ClassVar[type] = ScalingState
    """The graph's working state; a subclass extends `ScalingState`."""
    default_budget: ClassVar[int]
    default_system_prompt: ClassVar[str] = DEFAULT_SYSTEM_PROMPT

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        budget: int | None = None,
        mode: Mode = "adaptive",
        scorer: Scorer | None = None,
        threshold: float | None = None,
        system_prompt: str | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            accepted = self.option_names()
            msg = (
                f"{type(self).__name__} has no option "
                f"{', '.join(f'`{u}`' for u in sorted(unknown))} "
                f"(its options: {', '.join(sorted(accepted))})"
            )
            raise ConfigurationError(msg)
        check_model(model)
        if mode not in ("static", "adaptive"):
            msg = f"`mode` must be 'static' or 'adaptive', got {mode!r}"
            raise ConfigurationError(msg)
        if scorer is not None and not isinstance(scorer, Scorer):
            msg = f"`scorer` must implement the Scorer protocol, got {scorer!r}"
            raise ConfigurationError(msg)
        # A caller's system message replaces the default, never an explicit one.
        self.system_prompt_is_default = system_prompt is None
        if system_prompt is None:
            system_prompt = self.default_system_prompt
        if not isinstance(system_prompt, str):
            msg = "`system_prompt` must be a string"
            raise ConfigurationError(msg)
        self.model = model
        self._budget = check_count(
            "budget", self.default_budget if budget is None else budget
        )
        self.mode: Mode = mode
        self.scorer: Scorer = scorer if scorer is not None else ConsensusScorer()
        if threshold is not None:
            self._threshold = check_threshold(self.scorer, threshold)
        elif math.isfinite(self.scorer.upper):
            self._threshold = float(self.scorer.upper)
        else:
            msg = "a scorer without a finite upper bound needs an explicit `threshold`"
            raise ConfigurationError(msg)
        self.system_prompt = system_prompt

    @classmethod
    def from_options(cls, model: ChatRunnable, options: Mapping[str, Any]) -> Self:
        """Build the engine from keyword options (a factory's, or `create_engine`'s).

        Raises:
            ConfigurationError: An unknown option, or one out of range.
        """
        return cls(model, **options)

    @classmethod
    def graph_of(
        cls, model: ChatRunnable, name: str, options: Mapping[str, Any]
    ) -> CompiledStateGraph[Any, None, ScalingInput, Any]:
        """Build the engine and its compiled graph from a factory's options.

        Raises:
            ConfigurationError: An unknown option, or one out of range.
        """
        graph = {k: v for k, v in options.items() if k in _GRAPH_OPTIONS}
        engine = cls.from_options(
            model, {k: v for k, v in options.items() if k not in _GRAPH_OPTIONS}
        )
        return engine.as_graph(name=name, **graph)

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """The keyword options the engine takes."""
        parameters = inspect.signature(cls).parameters.values()
        own = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
        return frozenset(own | set(ScalingOptions.__annotations__))

    @property
    def budget(self) -> int:
        """The budget, in `unit`: the run context's `budget`, else the engine's."""
        value = run_option("budget")
        return self._budget if value is None else check_count("budget", value)

    @property
    def threshold(self) -> float:
        """The adaptive stop: the run context's `threshold`, else the engine's."""
        value = run_option("threshold")
        return self._threshold if value is None else check_threshold(self.scorer, value)

    # -- the method: subclasses --------------------------------------------------------

    @abstractmethod
    def _fresh(self) -> dict[str, Any]:
        """The method's own working state at the start of an invocation."""

    @abstractmethod
    def _add_steps(self, builder: StateGraph[Any, Any, Any, Any]) -> None:
        """Add the method's nodes, from `prepare` to `select`."""

    @abstractmethod
    def _select(self, state: Mapping[str, Any]) -> ScalingResult:
        """The result of a finished run."""

    # -- helpers for the steps --------------------------------------------------------

    def passed(self, candidate: Candidate) -> bool:
        """Whether a candidate's score reaches the threshold."""
        return candidate["score"] >= self.threshold

    def stops(self, candidates: Iterable[Candidate]) -> bool:
        """Whether an adaptive run stops here: one of `candidates` passed."""
        return self.mode == "adaptive" and any(map(self.passed, candidates))

    def prompt(
        self,
        conversation: Sequence[BaseMessage],
        memory: MemoryContext | None,
        exemplars: Sequence[Exemplar] = (),
    ) -> list[AnyMessage]:
        """The method's prompt for the conversation, with exemplars and lessons."""
        return build_prompt(
            conversation,
            system_prompt=self.system_prompt,
            exemplars=exemplars,
            lessons=lessons_of(memory),
            default=self.system_prompt_is_default,
        )

    @staticmethod
    def candidate(
        text: str, score: float, *, with_memory: bool, complete: bool = True
    ) -> Candidate:
        """A scored candidate; a partial one (`complete=False`) has no answer."""
        return Candidate(
            text=text,
            answer=extract_answer(text) if complete else None,
            score=score,
            with_memory=with_memory,
        )

    def score_event(
        self, index: int, candidate: Candidate, *, complete: bool = True
    ) -> None:
        """Emit a candidate's score; a partial candidate never passes."""
        emit(
            ScalingEvent(
                method=self.method,
                event="score",
                index=index,
                answer=candidate["answer"],
                score=candidate["score"],
                passed=complete and self.passed(candidate),
            )
        )

    def candidate_event(self, index: int, text: str) -> None:
        """Emit a new, not yet scored candidate."""
        emit(
            ScalingEvent(method=self.method, event="candidate", index=index, text=text)
        )

    def score_next(
        self, state: Mapping[str, Any], text: str, *, with_memory: bool
    ) -> Step:
        """A sequential method's step: score `text` against the earlier candidates."""
        question, _ = question_of(state["messages"])
        memory: MemoryContext | None = state.get("memory")
        done = state["candidates"]
        precedents = memory["precedents"] if memory else []
        [score] = yield Score(question, [text], [[c["text"] for c in done]], precedents)
        candidate = self.candidate(text, score, with_memory=with_memory)
        self.score_event(len(done), candidate)
        return {"candidates": [*done, candidate]}

    def latest_best(self, candidates: Sequence[Candidate]) -> Candidate:
        """The pick of a sequential method (Self-Refine, long chain-of-thought).

        Adaptive runs take the first passing candidate; otherwise the best
        score wins and, among equals, the latest, which had the most work.
        """
        if self.mode == "adaptive":
            for candidate in candidates:
                if self.passed(candidate):
                    return candidate
        best = candidates[0]
        for candidate in candidates[1:]:
            if candidate["score"] >= best["score"]:
                best = candidate
        return best

    def result(
        self,
        state: Mapping[str, Any],
        best: Candidate,
        budget_used: int,
        *,
        complete: bool = True,
    ) -> ScalingResult:
        """The `ScalingResult` for a selected candidate; a partial one never passes."""
        passed = complete and self.passed(best)
        reason: StopReason = (
            "threshold" if self.mode == "adaptive" and passed else "budget"
        )
        return ScalingResult(
            method=self.method,
            mode=self.mode,
            answer=best["text"],
            final_answer=best["answer"],
            score=best["score"],
            passed=passed,
            stop_reason=reason,
            budget_used=budget_used,
            budget_unit=self.unit,
            candidates=list(state["candidates"]),
            usage=state["usage"],
        )

    @staticmethod
    def steps_left(state: Mapping[str, Any], needed: int) -> bool:
        """Whether `needed` more supersteps, then `select`, fit the recursion limit."""
        remaining = state.get("remaining_steps")
        return remaining is None or remaining > needed + 1

    # -- calls -------------------------------------------------------------------------

    def _generate(
        self, request: Generate, config: RunnableConfig, ledger: Ledger
    ) -> Call:
        model = request.model or self.model
        prompts: list[LanguageModelInput] = [list(p) for p in request.prompts]
        solver_config = ledger.config(config, role=request.role)
        return model_call(
            partial(model.batch, prompts, solver_config),
            partial(model.abatch, prompts, solver_config),
            role=request.role,
        )

    @staticmethod
    def _executed(request: Execute) -> Generator[Call, Any, list[str | None]]:
        solutions = []
        for text in request.texts:
            found = yield from run_reply(text, request.sandbox)
            solutions.append(program_solution(found))
        return solutions

    def _scores(
        self,
        request: Score,
        config: RunnableConfig,
        ledger: Ledger,
        memory: MemoryContext | None,
    ) -> Generator[Call, Any, list[float]]:
        scorer, scores = self.scorer, []
        options: dict[str, Any] = {
            "precedents": request.precedents,
            "config": ledger.config(config, role="scorer"),
        }
        # Earlier unverified attempts' answers count as more peers' votes,
        # and what memory computed for the question as more peers' solutions.
        earlier = memory.get("votes", []) if memory else []
        votes = [f"\\boxed{{{v}}}" for v in earlier]
        evidence = memory.get("evidence", []) if memory else []
        for text, own_peers in zip(request.texts, request.peers, strict=True):
            peers = [*own_peers, *votes, *evidence]
            try:
                score = yield Call(
                    partial(
                        scorer.score, request.question, text, peers=peers, **options
                    ),
                    partial(
                        scorer.ascore, request.question, text, peers=peers, **options
                    ),
                )
            except (GraphBubbleUp, SpeedupError):
                raise
            except Exception as e:
                msg = f"scorer {type(scorer).__name__} failed ({type(e).__name__}: {e})"
                raise ScoringError(msg) from e
            scores.append(check_score(scorer, score))
        return scores

    def node(
        self, name: str, step: Callable[[Mapping[str, Any]], Step]
    ) -> RunnableLambda[Any, dict[str, Any]]:
        """A graph node that runs `step`, sync or async, and counts its calls."""

        def counted(
            state: Mapping[str, Any], config: RunnableConfig
        ) -> Generator[Call, Any, dict[str, Any]]:
            ledger = Ledger()
            requests = step(state)
            reply: Any = None
            try:
                while True:
                    try:
                        request = requests.send(reply)
                    except StopIteration as done:
                        update: dict[str, Any] = done.value
                        return {
                            **update,
                            "usage": add_usage(state["usage"], ledger.usage()),
                        }
                    if isinstance(request, Generate):
                        reply = yield self._generate(request, config, ledger)
                    elif isinstance(request, Execute):
                        reply = yield from self._executed(request)
                    else:
                        reply = yield from self._scores(
                            request, config, ledger, state.get("memory")
                        )
            except ModelError as e:  # what the run had spent, for the caller
                e.usage = add_usage(state["usage"], ledger.usage())
                raise

        return step_node(name, counted)

    # -- the graph ---------------------------------------------------------------------

    def as_graph(
        self, *, name: str | None = None, **options: Any
    ) -> CompiledStateGraph[Any, None, ScalingInput, Any]:
        """This engine as a compiled graph: `prepare`, the method's steps, `select`.

        It runs standalone and as a node of a parent graph with a `messages`
        key. The answer is appended to `messages` as an `AIMessage` named
        `name`, with the `usage_metadata` of every call the run made, and the
        `ScalingResult` is under the key `name` (the method's name by default).
        With `stream_mode="custom"` each candidate, score and the stop
        decision arrive as `ScalingEvent`s.

        Args:
            name: The graph's name, its node name in a parent graph and the
                key of its result.
            **options: `checkpointer`, `store`, `interrupt_before`,
                `interrupt_after` and `debug`, as LangGraph's `compile` takes.

        Raises:
            ConfigurationError: An unknown option.
        """
        name, compiled = name or self.method, compile_options(options)
        state = with_fields(
            self.State,
            f"{type(self).__name__}State",
            {name: NotRequired[ScalingResult]},
        )
        output = with_fields(
            TypedDict,
            f"{type(self).__name__}Output",
            {"messages": Messages, name: ScalingResult},
        )

        def prepare(state: Any) -> dict[str, Any]:
            # A bad question or per-run setting fails before any call.
            question_of(state["messages"])
            _ = self.budget, self.threshold
            return {"candidates": [], "usage": empty_usage(), **self._fresh()}

        def select(state: Any) -> dict[str, Any]:
            result = self._select(state)
            emit(
                ScalingEvent(
                    method=self.method,
                    event="stop",
                    answer=result["final_answer"],
                    score=result["score"],
                    passed=result["passed"],
                    stop_reason=result["stop_reason"],
                    budget_used=result["budget_used"],
                    budget_unit=result["budget_unit"],
                )
            )
            # Memory serves one invocation; the next question on a thread
            # brings its own.
            return {
                name: result,
                "messages": [
                    AIMessage(
                        result["answer"],
                        name=name,
                        usage_metadata=usage_metadata(result["usage"]),
                    )
                ],
                "memory": None,
            }

        builder: StateGraph[Any, Any, Any, Any] = StateGraph(
            state,
            context_schema=RunContext,
            input_schema=ScalingInput,
            output_schema=output,
        )
        builder.add_node("prepare", prepare)
        builder.add_node("select", select)
        builder.add_edge(START, "prepare")
        self._add_steps(builder)
        builder.add_edge("select", END)
        return builder.compile(name=name, **compiled)

    @cached_property
    def _graph(self) -> CompiledStateGraph[Any, None, ScalingInput, Any]:
        return self.as_graph()

    def _input(
        self, question: str | Sequence[BaseMessage], memory: MemoryContext | None
    ) -> ScalingInput:
        _, conversation = question_of(question)
        return ScalingInput(
            messages=cast(list[AnyMessage], conversation), memory=memory
        )

    def _config(self, config: RunnableConfig | None) -> RunnableConfig:
        # Room for the longest run: no method takes more than 3 steps a unit.
        return graph_config(config, 4 * self.budget + 8)

    def run(
        self,
        question: str | Sequence[BaseMessage],
        *,
        memory: MemoryContext | None = None,
        config: RunnableConfig | None = None,
    ) -> ScalingResult:
        """Answer one question (a string or a conversation) with the graph.

        Args:
            question: The question, or a conversation ending in it.
            memory: Exemplars, precedents and lessons from memory, if any.
            config: Passed to every model and scorer call.

        Returns:
            The selected answer with every candidate, its score and the usage.

        Raises:
            InvalidInputError: The question is empty or not text.
            ModelError: A model call failed or returned no message; nothing
                partial is returned, and its `usage` holds what the run spent.
            ScoringError: The scorer failed or returned an unusable score.
        """
        output = self._graph.invoke(self._input(question, memory), self._config(config))
        return result_of(output, self.method)  # type: ignore[no-any-return]

    async def arun(
        self,
        question: str | Sequence[BaseMessage],
        *,
        memory: MemoryContext | None = None,
        config: RunnableConfig | None = None,
    ) -> ScalingResult:
        """Async form of `run`."""
        inputs, config = self._input(question, memory), self._config(config)
        return result_of(await self._graph.ainvoke(inputs, config), self.method)  # type: ignore[no-any-return]
