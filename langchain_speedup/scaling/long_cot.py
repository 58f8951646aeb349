r"""Long chain-of-thought: reasoning under a token budget, probed for answers.

The model thinks in segments of at most `segment_tokens` tokens, each
continuing the thinking so far; a probe then forces an answer as
`\boxed{...}`, which is scored. Static mode thinks until the budget is spent
(budget forcing, as in s1) and probes once; adaptive mode probes after every
segment and stops once an answer passes. Budget unit: reasoning tokens, the
output tokens of the thinking segments.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, Unpack

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableBinding
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from langchain_speedup._internal import (
    GraphOptions,
    check_count,
    check_prompt,
    question_of,
)
from langchain_speedup.answers import states_answer
from langchain_speedup.errors import ConfigurationError
from langchain_speedup.scaling._base import (
    Generate,
    ScalingEngine,
    ScalingInput,
    ScalingOptions,
    ScalingState,
    Step,
    chain_exemplars,
)
from langchain_speedup.tokens import count_tokens
from langchain_speedup.types import ChatRunnable, MemoryContext, ScalingResult

__all__ = [
    "CONTINUE_PROMPT",
    "LONG_COT_SYSTEM_PROMPT",
    "PROBE_PROMPT",
    "LongCoT",
    "LongCoTOptions",
    "create_long_cot_graph",
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


def _kind_and_name(model: object) -> tuple[str, str]:
    """Provider hints (class name and `_llm_type`) and the model name, lowered."""
    try:
        llm_type = getattr(model, "_llm_type", "")
    except NotImplementedError:
        llm_type = ""
    kind = f"{type(model).__name__} {llm_type if isinstance(llm_type, str) else ''}"
    names = (getattr(model, a, None) for a in ("model_name", "model"))
    name = next((n for n in names if isinstance(n, str) and n), "")
    return kind.lower(), name.lower()


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
    check_count("budget_tokens", budget_tokens, minimum=0)
    kind, name = _kind_and_name(_unwrap(model))
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
        effort = "low" if budget_tokens <= 1024 else "medium"
        effort = "high" if budget_tokens > 8192 else effort
        return {"reasoning_effort": effort, "max_tokens": room}
    return {}


# -- the method ----------------------------------------------------------------------


class LongCoTOptions(ScalingOptions, total=False):
    """The keyword options of `LongCoT`."""

    segment_tokens: int
    probe_tokens: int
    probe_prompt: str
    native_thinking: bool


class LongCoTGraphOptions(LongCoTOptions, GraphOptions, total=False):
    """The keyword options of `create_long_cot_graph`."""


class LongCoTState(ScalingState):
    """Long chain-of-thought's working state."""

    thoughts: NotRequired[list[str]]
    """The thinking segments so far."""
    spent: NotRequired[int]
    """Reasoning tokens spent so far."""
    pending: NotRequired[str]
    """The newest probed answer, not yet scored."""


class LongCoT(ScalingEngine):
    """Long chain-of-thought under a token budget, over one chat model.

    A run makes at most `ceil(budget / segment_tokens)` thinking calls, and
    one probe (unless the segment states its answer, `answers.states_answer`)
    and one scorer call after every segment in adaptive mode, once at the
    end in static mode. Probes are solver calls too and show in `usage`.

    Args:
        model: Any chat model (or runnable returning a message). Chat models
            get `max_tokens` (and any native thinking budget) bound per call;
            other runnables are called as they are and their output is
            measured (`usage_metadata`, else counted offline).
        segment_tokens: Reasoning tokens per segment, that is between probes
            in adaptive mode; default 512, capped at `budget`.
        probe_tokens: The most tokens a probed answer may take; default 256.
        probe_prompt: Asks for the final answer now.
        native_thinking: Map each segment's allowance onto the model's native
            thinking budget where there is one (`native_thinking_kwargs`).
        **options: The options every engine takes (see `ScalingEngine`):
            `budget` in reasoning tokens, default 4096; `mode`, `scorer`,
            `threshold` and `system_prompt` (by default it asks for
            long, careful thinking).

    Raises:
        ConfigurationError: An option is out of range.
    """

    method = "long_cot"
    unit = "reasoning_tokens"
    default_budget = 4096
    default_system_prompt = LONG_COT_SYSTEM_PROMPT
    State = LongCoTState

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        segment_tokens: int = 512,
        probe_tokens: int = 256,
        probe_prompt: str = PROBE_PROMPT,
        native_thinking: bool = True,
        **options: Unpack[ScalingOptions],
    ) -> None:
        super().__init__(model, **options)
        self.segment_tokens = min(
            check_count("segment_tokens", segment_tokens), self.budget
        )
        self.probe_tokens = check_count("probe_tokens", probe_tokens)
        self.probe_prompt = check_prompt("probe_prompt", probe_prompt)
        if not isinstance(native_thinking, bool):
            msg = f"`native_thinking` must be a bool, got {native_thinking!r}"
            raise ConfigurationError(msg)
        self.native_thinking = native_thinking

    @property
    def max_segments(self) -> int:
        """The most thinking calls of a run (the budget may be set per run).

        Also bounds models that ignore `max_tokens` and reply short or empty.
        """
        return math.ceil(self.budget / self.segment_tokens)

    def _fresh(self) -> dict[str, Any]:
        return {"thoughts": [], "spent": 0, "pending": ""}

    def _bound(self, max_tokens: int, thinking: int) -> ChatRunnable:
        # Only chat models accept `max_tokens` as a call kwarg; binding it on
        # an arbitrary runnable would hand it to a function that rejects it.
        if not isinstance(_unwrap(self.model), BaseChatModel):
            return self.model
        kwargs: dict[str, Any] = {"max_tokens": max_tokens}
        if self.native_thinking:
            kwargs.update(native_thinking_kwargs(self.model, thinking))
        return self.model.bind(**kwargs)

    def _prompt(self, state: Mapping[str, Any], ask: str | None) -> list[AnyMessage]:
        _, conversation = question_of(state["messages"])
        memory: MemoryContext | None = state.get("memory")
        prompt = self.prompt(conversation, memory, chain_exemplars(memory))
        thinking = "\n".join(state["thoughts"]).strip()
        if thinking:
            prompt.append(AIMessage(thinking))
        if ask is not None:
            prompt.append(HumanMessage(ask))
        return prompt

    def _think(self, state: Mapping[str, Any]) -> Step:
        thoughts, spent = state["thoughts"], state["spent"]
        allowance = max(1, min(self.segment_tokens, self.budget - spent))
        prompt = self._prompt(state, CONTINUE_PROMPT if thoughts else None)
        [reply] = yield Generate([prompt], model=self._bound(allowance, allowance))
        text = reply.text
        usage = getattr(reply, "usage_metadata", None)
        tokens = int(usage["output_tokens"]) if usage else count_tokens(text)
        return {"thoughts": [*thoughts, text], "spent": spent + tokens}

    def _thinking_done(self, state: Mapping[str, Any]) -> bool:
        spent, segments = state["spent"], len(state["thoughts"])
        return spent >= self.budget or segments >= self.max_segments

    def _after_think(self, state: Mapping[str, Any]) -> Literal["think", "probe"]:
        probe = self.mode == "adaptive" or self._thinking_done(state)
        # Thinking on needs think, probe and score before `select`.
        return "probe" if probe or not self.steps_left(state, 3) else "think"

    def _probe(self, state: Mapping[str, Any]) -> Step:
        answer = state["thoughts"][-1]
        if not states_answer(answer):  # else the segment is its own probe
            prompt = self._prompt(state, self.probe_prompt)
            [reply] = yield Generate([prompt], model=self._bound(self.probe_tokens, 0))
            answer = reply.text
        self.candidate_event(len(state["candidates"]), answer)
        return {"pending": answer}

    def _score(self, state: Mapping[str, Any]) -> Step:
        with_memory = bool(chain_exemplars(state.get("memory")))
        return self.score_next(state, state["pending"], with_memory=with_memory)

    def _after_score(self, state: Mapping[str, Any]) -> Literal["think", "select"]:
        finished = self._thinking_done(state) or self.stops(state["candidates"])
        # Another segment is think, probe, score: three supersteps.
        return "select" if finished or not self.steps_left(state, 3) else "think"

    def _add_steps(self, builder: StateGraph[Any, Any, Any, Any]) -> None:
        builder.add_node("think", self.node("think", self._think))
        builder.add_node("probe", self.node("probe", self._probe))
        builder.add_node("score", self.node("score", self._score))
        builder.add_edge("prepare", "think")
        builder.add_conditional_edges("think", self._after_think)
        builder.add_edge("probe", "score")
        builder.add_conditional_edges("score", self._after_score)

    def _select(self, state: Mapping[str, Any]) -> ScalingResult:
        best = self.latest_best(state["candidates"])
        return self.result(state, best, state["spent"])


def create_long_cot_graph(
    model: ChatRunnable,
    /,
    *,
    name: str = "long_cot",
    **options: Unpack[LongCoTGraphOptions],
) -> CompiledStateGraph[Any, None, ScalingInput, Any]:
    r"""Build long chain-of-thought under a token budget as a compiled graph.

    `think` adds one segment of at most `segment_tokens` reasoning tokens.
    Adaptive mode then runs `probe` (asks for the final answer as `\boxed{}`)
    and `score`, and thinks on until a probed answer reaches the threshold;
    static mode thinks until `budget` tokens are spent, then probes once. The
    loop also ends after `ceil(budget / segment_tokens)` segments, or early
    when the caller's recursion limit is near. The answer is appended to
    `messages` and the `ScalingResult` is under the key `name`.

    Example:
        ```python
        graph = create_long_cot_graph(model, budget=2048, checkpointer=InMemorySaver())
        thread = {"configurable": {"thread_id": "1"}}
        graph.invoke({"messages": [("user", "What is 17 + 25?")]}, thread)
        graph.invoke({"messages": [("user", "And 17 * 25?")]}, thread)  # afresh
        ```

    Options are those of `LongCoT` and LangGraph's `compile` (`checkpointer`,
    `store`, `interrupt_before`, `interrupt_after`, `debug`); an unknown or
    out-of-range one raises `ConfigurationError` here, not at run time.
    """
    return LongCoT.graph_of(model, name, options)
