r"""Long chain-of-thought: reasoning under a token budget, probed for answers.

The model thinks in segments of at most `segment_tokens` tokens (bound as
`max_tokens` on chat models), each continuing the thinking so far, until
`max_tokens` reasoning tokens are spent. After thinking, a probe ("Stop
thinking; give the final answer now as \boxed{...}") forces an answer, which
is scored. A segment that already states its answer (a `\boxed{...}`, or a
sentence ending in "final answer is <number>": `answers.states_answer`) is
its own probe: the answer is read from it and no probe call is made. Static mode
spends the whole budget, forcing the model to keep thinking even when it
would stop (budget forcing, as in s1), and probes once at the end; adaptive
mode probes after every segment and stops once a probed answer scores at or
above the threshold. Budget unit: reasoning tokens, the output tokens of the
thinking segments (from `usage_metadata`, else counted offline); probes are
solver calls too and show in `usage`.

Where a chat model has a native thinking budget (OpenAI `reasoning_effort`,
Anthropic extended thinking `budget_tokens`, Gemini `thinking_budget`), each
segment's allowance is mapped onto it as well; see `native_thinking_kwargs`.

Memory enters through a `MemoryContext`: its exemplars go into the prompt all
segments share, and its precedents go to the scorer. Each probed answer is
scored against the earlier ones, so a `ConsensusScorer` rewards an answer
that further thinking does not change.

`long_cot` / `along_cot` are the functional core; `create_long_cot_graph`
wraps the same steps in a compiled LangGraph subgraph.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableBinding, RunnableConfig, RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps
from typing_extensions import TypedDict

from langchain_speedup._internal import message_text
from langchain_speedup.answers import states_answer
from langchain_speedup.budget import Ledger, Usage, add_usage, empty_usage
from langchain_speedup.errors import ConfigurationError
from langchain_speedup.scaling import _common
from langchain_speedup.scaling._common import ChatRunnable
from langchain_speedup.scaling.base import (
    Candidate,
    MemoryContext,
    Mode,
    ScalingOptions,
    ScalingResult,
    build_prompt,
    question_of,
)
from langchain_speedup.scoring import Scorer
from langchain_speedup.tokens import count_tokens

__all__ = [
    "CONTINUE_PROMPT",
    "LONG_COT_SYSTEM_PROMPT",
    "PROBE_PROMPT",
    "LongCoT",
    "LongCoTInput",
    "LongCoTOutput",
    "LongCoTState",
    "along_cot",
    "create_long_cot_graph",
    "long_cot",
    "native_thinking_kwargs",
]

LONG_COT_SYSTEM_PROMPT = (
    "Think the problem through at length before answering: work step by step, "
    "check every step, and try another approach when unsure. When you are "
    "confident, end with the line 'The final answer is \\boxed{ANSWER}.'"
)
CONTINUE_PROMPT = (
    "Continue your reasoning from where it stopped. Do not repeat what you "
    "already wrote: check it and go further."
)
PROBE_PROMPT = "Stop thinking; give the final answer now as \\boxed{...}."

# -- native thinking budgets ---------------------------------------------------------

# Room for the visible reply on top of a native thinking budget: providers
# count hidden thinking inside `max_tokens`, which must exceed the budget.
_VISIBLE_TOKENS = 1024
_ANTHROPIC_MIN_BUDGET = 1024
_GEMINI_PRO_MIN_BUDGET = 128
_OPENAI_REASONING = re.compile(r"(?:^|/)(?:o\d|gpt-5)")
_ANTHROPIC_NO_THINKING = re.compile(r"^claude-(?:instant|2|3-(?!7))")
_GEMINI_THINKING = re.compile(r"gemini-(?:2\.5|[3-9])")


def _unwrap(model: object) -> object:
    # `model.bind(...)` and `model.with_config(...)` wrap the chat model.
    while isinstance(model, RunnableBinding):
        model = model.bound
    return model


def _llm_type(model: object) -> str:
    try:
        value = getattr(model, "_llm_type", "")
    except NotImplementedError:
        return ""
    return value if isinstance(value, str) else ""


def _model_name(model: object) -> str:
    for attribute in ("model_name", "model"):
        value = getattr(model, attribute, None)
        if isinstance(value, str) and value:
            return value.lower()
    return ""


def _effort(budget_tokens: int) -> str:
    if budget_tokens <= 1024:
        return "low"
    return "medium" if budget_tokens <= 8192 else "high"


def native_thinking_kwargs(model: object, budget_tokens: int) -> dict[str, Any]:
    """Invocation kwargs that map a thinking budget onto a model's native one.

    The provider is detected from the class name or `_llm_type` (through any
    `bind` / `with_config` wrappers) and the model name:

    - OpenAI reasoning models (`o1`, `o3`, `o4-mini`, `gpt-5`...):
      `reasoning_effort` `"low"` up to 1024 tokens, `"medium"` up to 8192,
      `"high"` above;
    - Anthropic models with extended thinking, for budgets of at least 1024
      (the API's minimum): `thinking={"type": "enabled", "budget_tokens": ...}`;
    - Gemini 2.5 and later: `thinking_budget` (at least 128 on Pro models).

    Each also sets `max_tokens` to the budget plus room for the visible reply,
    since these providers count thinking inside `max_tokens`. Any other model
    (including OpenAI-compatible local servers) gets `{}`: it thinks in plain
    text, bounded by `max_tokens` alone.

    Example:
        ```python
        kwargs = native_thinking_kwargs(chat_model, 2048)
        bounded = chat_model.bind(max_tokens=2048, **kwargs)
        ```

    Args:
        model: A chat model, possibly wrapped by `bind` or `with_config`.
        budget_tokens: The thinking budget in tokens; 0 asks for as little
            thinking as the provider allows.

    Returns:
        The kwargs to bind, or `{}` when the model has no known native budget.

    Raises:
        ConfigurationError: `budget_tokens` is not an integer >= 0.
    """
    _common.check_count("budget_tokens", budget_tokens, minimum=0)
    target = _unwrap(model)
    kind = f"{type(target).__name__} {_llm_type(target)}".lower()
    name = _model_name(target)
    room = budget_tokens + _VISIBLE_TOKENS
    if "anthropic" in kind:
        if _ANTHROPIC_NO_THINKING.match(name) or budget_tokens < _ANTHROPIC_MIN_BUDGET:
            return {}
        thinking = {"type": "enabled", "budget_tokens": budget_tokens}
        return {"thinking": thinking, "max_tokens": room}
    if any(word in kind for word in ("google", "gemini", "vertex")):
        if not _GEMINI_THINKING.search(name):
            return {}
        if "pro" in name:
            budget_tokens = max(budget_tokens, _GEMINI_PRO_MIN_BUDGET)
        return {"thinking_budget": budget_tokens, "max_tokens": room}
    if "openai" in kind and _OPENAI_REASONING.search(name):
        return {"reasoning_effort": _effort(budget_tokens), "max_tokens": room}
    return {}


def _reasoning_tokens(reply: BaseMessage, text: str) -> int:
    usage = getattr(reply, "usage_metadata", None)
    if usage:
        return int(usage["output_tokens"])
    return count_tokens(text)


class LongCoT:
    """Long chain-of-thought under a token budget, with validated options.

    The shared engine behind `long_cot`, `along_cot` and the graph; build it
    once and call `run` / `arun` for many questions. A run makes at most
    `ceil(max_tokens / segment_tokens)` thinking calls, and one probe (unless
    the segment states its answer) and one scorer call after every segment
    in adaptive mode, once at the end in static mode.

    Args:
        model: Any chat model (or runnable returning a message). Chat models
            get `max_tokens` (and any native thinking budget) bound per call;
            other runnables are called as they are and their output is
            measured.
        max_tokens: The most reasoning tokens to spend (the budget); default
            4096.
        segment_tokens: Reasoning tokens per segment, that is between probes
            in adaptive mode; default 512, capped at `max_tokens`.
        probe_tokens: The most tokens a probed answer may take; default 256.
        mode: `"static"` or `"adaptive"` (default).
        scorer: Rates probed answers; `ConsensusScorer()` when `None`.
        threshold: Score that stops an adaptive run; the scorer's upper bound
            when `None`.
        system_prompt: Instructions placed before the exemplars and question;
            the default asks for long, careful thinking.
        probe_prompt: Asks for the final answer now.
        native_thinking: Map each segment's allowance onto the model's native
            thinking budget where there is one (`native_thinking_kwargs`).

    Raises:
        ConfigurationError: An option is out of range.
    """

    method = "long_cot"
    unit = "reasoning_tokens"

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        max_tokens: int = 4096,
        segment_tokens: int = 512,
        probe_tokens: int = 256,
        mode: Mode = "adaptive",
        scorer: Scorer | None = None,
        threshold: float | None = None,
        system_prompt: str = LONG_COT_SYSTEM_PROMPT,
        probe_prompt: str = PROBE_PROMPT,
        native_thinking: bool = True,
    ) -> None:
        _common.check_model(model)
        _common.check_count("max_tokens", max_tokens)
        _common.check_count("segment_tokens", segment_tokens)
        self.probe_tokens = _common.check_count("probe_tokens", probe_tokens)
        if not isinstance(native_thinking, bool):
            msg = f"`native_thinking` must be a bool, got {native_thinking!r}"
            raise ConfigurationError(msg)
        self.model = model
        self.options = ScalingOptions(
            mode=mode,
            budget=max_tokens,
            scorer=scorer,
            threshold=threshold,
            system_prompt=system_prompt,
        )
        self.segment_tokens = min(segment_tokens, max_tokens)
        self.probe_prompt = _common.check_prompt("probe_prompt", probe_prompt)
        self.native_thinking = native_thinking
        # Also bounds models that ignore `max_tokens` and reply short or empty.
        self.max_segments = math.ceil(max_tokens / self.segment_tokens)

    @property
    def max_tokens(self) -> int:
        """The most reasoning tokens one run spends."""
        return self.options.budget

    # -- calls -------------------------------------------------------------------------

    def _bound(self, max_tokens: int, thinking: int) -> ChatRunnable:
        # Only chat models accept `max_tokens` as a call kwarg; binding it on
        # an arbitrary runnable would hand it to a function that rejects it.
        if not isinstance(_unwrap(self.model), BaseChatModel):
            return self.model
        kwargs: dict[str, Any] = {"max_tokens": max_tokens}
        if self.native_thinking:
            kwargs.update(native_thinking_kwargs(self.model, thinking))
        return self.model.bind(**kwargs)

    def _prompt(
        self,
        conversation: Sequence[BaseMessage],
        thoughts: Sequence[str],
        memory: MemoryContext | None,
        ask: str | None,
    ) -> list[AnyMessage]:
        exemplars, _ = _common.chain_exemplars(memory)
        prompt = build_prompt(
            conversation,
            system_prompt=self.options.system_prompt,
            exemplars=exemplars,
            lessons=_common.lessons_of(memory),
        )
        thinking = "\n".join(thoughts).strip()
        if thinking:
            prompt.append(AIMessage(thinking))
        if ask is not None:
            prompt.append(HumanMessage(ask))
        return prompt

    def _allowance(self, spent: int) -> int:
        return max(1, min(self.segment_tokens, self.max_tokens - spent))

    def _thinking_done(self, spent: int, segments: int) -> bool:
        return spent >= self.max_tokens or segments >= self.max_segments

    def _think(
        self,
        conversation: Sequence[BaseMessage],
        thoughts: Sequence[str],
        spent: int,
        memory: MemoryContext | None,
        config: RunnableConfig | None,
    ) -> tuple[str, int, Usage]:
        ledger = Ledger()
        allowance = self._allowance(spent)
        ask = CONTINUE_PROMPT if thoughts else None
        reply = _common.invoke(
            self._bound(allowance, allowance),
            self._prompt(conversation, thoughts, memory, ask),
            ledger.config(config, role="solver"),
            role="solver",
        )
        text = message_text(reply)
        return text, _reasoning_tokens(reply, text), ledger.usage()

    async def _athink(
        self,
        conversation: Sequence[BaseMessage],
        thoughts: Sequence[str],
        spent: int,
        memory: MemoryContext | None,
        config: RunnableConfig | None,
    ) -> tuple[str, int, Usage]:
        ledger = Ledger()
        allowance = self._allowance(spent)
        ask = CONTINUE_PROMPT if thoughts else None
        reply = await _common.ainvoke(
            self._bound(allowance, allowance),
            self._prompt(conversation, thoughts, memory, ask),
            ledger.config(config, role="solver"),
            role="solver",
        )
        text = message_text(reply)
        return text, _reasoning_tokens(reply, text), ledger.usage()

    def _probe(
        self,
        conversation: Sequence[BaseMessage],
        thoughts: Sequence[str],
        memory: MemoryContext | None,
        config: RunnableConfig | None,
    ) -> tuple[str, Usage]:
        if states_answer(thoughts[-1]):
            return thoughts[-1], empty_usage()
        ledger = Ledger()
        reply = _common.invoke(
            self._bound(self.probe_tokens, 0),
            self._prompt(conversation, thoughts, memory, self.probe_prompt),
            ledger.config(config, role="solver"),
            role="solver",
        )
        return message_text(reply), ledger.usage()

    async def _aprobe(
        self,
        conversation: Sequence[BaseMessage],
        thoughts: Sequence[str],
        memory: MemoryContext | None,
        config: RunnableConfig | None,
    ) -> tuple[str, Usage]:
        if states_answer(thoughts[-1]):
            return thoughts[-1], empty_usage()
        ledger = Ledger()
        reply = await _common.ainvoke(
            self._bound(self.probe_tokens, 0),
            self._prompt(conversation, thoughts, memory, self.probe_prompt),
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
            self.options.active_scorer, question, text, candidates, memory, config
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
            self.options.active_scorer, question, text, candidates, memory, config
        )

    # -- stopping and selection ----------------------------------------------------------

    def passed(self, candidate: Candidate) -> bool:
        """Whether a probed answer's score reaches the threshold."""
        return candidate["score"] >= self.options.active_threshold

    def _probe_now(self, spent: int, segments: int) -> bool:
        return self.options.mode == "adaptive" or self._thinking_done(spent, segments)

    def _finished(
        self, spent: int, segments: int, candidates: Sequence[Candidate]
    ) -> bool:
        if self._thinking_done(spent, segments):
            return True
        return self.options.mode == "adaptive" and any(map(self.passed, candidates))

    def _select(
        self, candidates: Sequence[Candidate], spent: int, usage: Usage
    ) -> ScalingResult:
        return _common.build_result(
            method=self.method,
            unit=self.unit,
            options=self.options,
            best=_common.pick_latest_best(candidates, self.options),
            candidates=candidates,
            budget_used=spent,
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
            The selected answer with every probed answer, its score, the
            reasoning tokens spent and the usage.

        Raises:
            InvalidInputError: The question is empty or not text.
            ModelError: A model call failed; nothing partial is returned.
            ScoringError: The scorer returned an unusable score.
        """
        text, conversation = question_of(question)
        thoughts: list[str] = []
        candidates: list[Candidate] = []
        spent = 0
        usage = empty_usage()
        # Bounded: every pass adds a segment and `_finished` caps their number.
        while True:
            thought, tokens, used = self._think(
                conversation, thoughts, spent, memory, config
            )
            thoughts.append(thought)
            spent += tokens
            usage = add_usage(usage, used)
            if not self._probe_now(spent, len(thoughts)):
                continue
            answer, used = self._probe(conversation, thoughts, memory, config)
            candidate, scored = self._score(text, answer, candidates, memory, config)
            candidates.append(candidate)
            usage = add_usage(usage, used, scored)
            if self._finished(spent, len(thoughts), candidates):
                return self._select(candidates, spent, usage)

    async def arun(
        self,
        question: str | Sequence[BaseMessage],
        *,
        memory: MemoryContext | None = None,
        config: RunnableConfig | None = None,
    ) -> ScalingResult:
        """Async form of `run`."""
        text, conversation = question_of(question)
        thoughts: list[str] = []
        candidates: list[Candidate] = []
        spent = 0
        usage = empty_usage()
        while True:
            thought, tokens, used = await self._athink(
                conversation, thoughts, spent, memory, config
            )
            thoughts.append(thought)
            spent += tokens
            usage = add_usage(usage, used)
            if not self._probe_now(spent, len(thoughts)):
                continue
            answer, used = await self._aprobe(conversation, thoughts, memory, config)
            candidate, scored = await self._ascore(
                text, answer, candidates, memory, config
            )
            candidates.append(candidate)
            usage = add_usage(usage, used, scored)
            if self._finished(spent, len(thoughts), candidates):
                return self._select(candidates, spent, usage)

    # -- as a graph ----------------------------------------------------------------------

    def as_graph(
        self, *, name: str = "long_cot"
    ) -> CompiledStateGraph[LongCoTState, None, LongCoTInput, LongCoTOutput]:
        """This engine as a compiled subgraph; see `create_long_cot_graph`.

        Args:
            name: The graph's name, used as its node name in a parent graph.

        Returns:
            The compiled graph, with `messages` in and out and the result
            under `long_cot`.
        """
        engine = self
        method = self.method

        def _spent(state: LongCoTState, spent: Usage) -> Usage:
            return add_usage(state.get("usage", empty_usage()), spent)

        def _thought(
            state: LongCoTState, thought: str, tokens: int, used: Usage
        ) -> dict[str, Any]:
            return {
                "thoughts": [*state.get("thoughts", []), thought],
                "spent": state.get("spent", 0) + tokens,
                "usage": _spent(state, used),
            }

        def think(state: LongCoTState, config: RunnableConfig) -> dict[str, Any]:
            _, conversation = question_of(state["messages"])
            thought, tokens, used = engine._think(
                conversation,
                state.get("thoughts", []),
                state.get("spent", 0),
                state.get("memory"),
                config,
            )
            return _thought(state, thought, tokens, used)

        async def athink(state: LongCoTState, config: RunnableConfig) -> dict[str, Any]:
            _, conversation = question_of(state["messages"])
            thought, tokens, used = await engine._athink(
                conversation,
                state.get("thoughts", []),
                state.get("spent", 0),
                state.get("memory"),
                config,
            )
            return _thought(state, thought, tokens, used)

        def after_think(state: LongCoTState) -> Literal["think", "probe"]:
            # Thinking on needs think, probe and score before `select`.
            if engine._probe_now(
                state["spent"], len(state["thoughts"])
            ) or not _common.steps_left(state, 3):
                return "probe"
            return "think"

        def _probed(state: LongCoTState, answer: str, used: Usage) -> dict[str, Any]:
            index = len(state.get("candidates", []))
            _common.emit(_common.candidate_event(method, index, answer))
            return {"pending": answer, "usage": _spent(state, used)}

        def probe(state: LongCoTState, config: RunnableConfig) -> dict[str, Any]:
            _, conversation = question_of(state["messages"])
            answer, used = engine._probe(
                conversation, state["thoughts"], state.get("memory"), config
            )
            return _probed(state, answer, used)

        async def aprobe(state: LongCoTState, config: RunnableConfig) -> dict[str, Any]:
            _, conversation = question_of(state["messages"])
            answer, used = await engine._aprobe(
                conversation, state["thoughts"], state.get("memory"), config
            )
            return _probed(state, answer, used)

        def _scored(
            state: LongCoTState, candidate: Candidate, used: Usage
        ) -> dict[str, Any]:
            candidates = [*state.get("candidates", []), candidate]
            event = _common.score_event(
                method, len(candidates) - 1, candidate, engine.options
            )
            _common.emit(event)
            return {"candidates": candidates, "usage": _spent(state, used)}

        def score(state: LongCoTState, config: RunnableConfig) -> dict[str, Any]:
            text, _ = question_of(state["messages"])
            candidate, used = engine._score(
                text,
                state["pending"],
                state.get("candidates", []),
                state.get("memory"),
                config,
            )
            return _scored(state, candidate, used)

        async def ascore(state: LongCoTState, config: RunnableConfig) -> dict[str, Any]:
            text, _ = question_of(state["messages"])
            candidate, used = await engine._ascore(
                text,
                state["pending"],
                state.get("candidates", []),
                state.get("memory"),
                config,
            )
            return _scored(state, candidate, used)

        def after_score(state: LongCoTState) -> Literal["think", "select"]:
            finished = engine._finished(
                state["spent"], len(state["thoughts"]), state["candidates"]
            )
            # Another segment is think, probe, score: three supersteps.
            if finished or not _common.steps_left(state, 3):
                return "select"
            return "think"

        def select(state: LongCoTState) -> dict[str, Any]:
            result = engine._select(
                state["candidates"],
                state.get("spent", 0),
                state.get("usage", empty_usage()),
            )
            _common.emit(_common.stop_event(result))
            return {
                "long_cot": result,
                "messages": [AIMessage(result["answer"], name=name)],
            }

        builder = StateGraph(
            LongCoTState, input_schema=LongCoTInput, output_schema=LongCoTOutput
        )
        builder.add_node("think", RunnableLambda(think, afunc=athink, name="think"))
        builder.add_node("probe", RunnableLambda(probe, afunc=aprobe, name="probe"))
        builder.add_node("score", RunnableLambda(score, afunc=ascore, name="score"))
        builder.add_node("select", select)
        builder.add_edge(START, "think")
        builder.add_conditional_edges("think", after_think)
        builder.add_edge("probe", "score")
        builder.add_conditional_edges("score", after_score)
        builder.add_edge("select", END)
        return builder.compile(name=name)


def long_cot(
    model: ChatRunnable,
    question: str | Sequence[BaseMessage],
    *,
    memory: MemoryContext | None = None,
    config: RunnableConfig | None = None,
    **options: Any,
) -> ScalingResult:
    """Answer a question with long chain-of-thought under a token budget.

    Example:
        ```python
        result = long_cot(model, "What is 17 + 25?", max_tokens=2048)
        print(result["final_answer"], result["budget_used"], result["stop_reason"])
        ```

    Args:
        model: Any chat model.
        question: The question, or a conversation ending in it.
        memory: Exemplars and precedents from memory, if any.
        config: Passed to every model call.
        **options: The keyword options of `LongCoT`.

    Returns:
        The selected answer with every probed answer, its score, the
        reasoning tokens spent and the usage.

    Raises:
        ConfigurationError: An option is out of range.
        InvalidInputError: The question is empty or not text.
        ModelError: A model call failed.
        ScoringError: The scorer returned an unusable score.
    """
    return LongCoT(model, **options).run(question, memory=memory, config=config)


async def along_cot(
    model: ChatRunnable,
    question: str | Sequence[BaseMessage],
    *,
    memory: MemoryContext | None = None,
    config: RunnableConfig | None = None,
    **options: Any,
) -> ScalingResult:
    """Async form of `long_cot`."""
    return await LongCoT(model, **options).arun(question, memory=memory, config=config)


# -- the graph -----------------------------------------------------------------------


class LongCoTInput(TypedDict):
    """Input of the long chain-of-thought graph: a conversation ending in the question."""

    messages: Annotated[list[AnyMessage], add_messages]
    memory: NotRequired[MemoryContext]


class LongCoTOutput(TypedDict):
    """Output: the answer appended to `messages`, details under `long_cot`."""

    messages: Annotated[list[AnyMessage], add_messages]
    long_cot: ScalingResult


class LongCoTState(LongCoTInput):
    """Internal state; the thinking stays private to the subgraph."""

    thoughts: NotRequired[list[str]]
    """The thinking segments so far."""
    spent: NotRequired[int]
    """Reasoning tokens spent so far."""
    pending: NotRequired[str]
    """The newest probed answer, not yet scored."""
    candidates: NotRequired[list[Candidate]]
    usage: NotRequired[Usage]
    long_cot: NotRequired[ScalingResult]
    remaining_steps: RemainingSteps


def create_long_cot_graph(
    model: ChatRunnable,
    /,
    *,
    max_tokens: int = 4096,
    segment_tokens: int = 512,
    probe_tokens: int = 256,
    mode: Mode = "adaptive",
    scorer: Scorer | None = None,
    threshold: float | None = None,
    system_prompt: str = LONG_COT_SYSTEM_PROMPT,
    probe_prompt: str = PROBE_PROMPT,
    native_thinking: bool = True,
    name: str = "long_cot",
) -> CompiledStateGraph[LongCoTState, None, LongCoTInput, LongCoTOutput]:
    r"""Build long chain-of-thought under a token budget as a compiled subgraph.

    `think` adds one segment of at most `segment_tokens` reasoning tokens.
    Adaptive mode then runs `probe` (asks for the final answer as
    `\boxed{}`) and `score`, and thinks on until a probed answer reaches the
    threshold; static mode thinks until `max_tokens` are spent, then probes
    once. The loop also ends after `ceil(max_tokens / segment_tokens)`
    segments, or early when the caller's recursion limit is near.

    It runs standalone and as a node of a parent graph with a `messages` key.
    The answer is appended to `messages` and the `ScalingResult` is under
    `long_cot`. With `stream_mode="custom"` each probed answer, its score and
    the stop decision arrive as `ScalingEvent`s.

    Example:
        ```python
        graph = create_long_cot_graph(model, max_tokens=2048, segment_tokens=256)
        out = graph.invoke({"messages": [("user", "What is 17 + 25?")]})
        print(out["messages"][-1].content, out["long_cot"]["budget_used"])
        ```

    Args:
        model: Any chat model.
        max_tokens: The most reasoning tokens to spend; default 4096.
        segment_tokens: Reasoning tokens per segment; default 512.
        probe_tokens: The most tokens a probed answer may take; default 256.
        mode: `"static"` or `"adaptive"` (default).
        scorer: Rates probed answers; `ConsensusScorer()` when `None`.
        threshold: Stop score for adaptive mode; the scorer's upper bound when
            `None`.
        system_prompt: Instructions placed before the question.
        probe_prompt: Asks for the final answer now.
        native_thinking: Map segment allowances onto native thinking budgets.
        name: The graph's name, used as its node name in a parent graph.

    Returns:
        The compiled graph.

    Raises:
        ConfigurationError: An option is out of range (raised here, not at run
            time).
    """
    engine = LongCoT(
        model,
        max_tokens=max_tokens,
        segment_tokens=segment_tokens,
        probe_tokens=probe_tokens,
        mode=mode,
        scorer=scorer,
        threshold=threshold,
        system_prompt=system_prompt,
        probe_prompt=probe_prompt,
        native_thinking=native_thinking,
    )
    return engine.as_graph(name=name)
