"""The contract every scaling method shares: options, memory, candidates, result.

All values here are plain data (`TypedDict`s), so they travel through LangGraph
state and checkpoints unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NotRequired

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from typing_extensions import TypedDict

from langchain_speedup._internal import message_text, validate_question
from langchain_speedup.budget import Usage
from langchain_speedup.errors import ConfigurationError, InvalidInputError
from langchain_speedup.scoring import ConsensusScorer, Scorer, check_threshold

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "LESSONS_HEADER",
    "Candidate",
    "Exemplar",
    "MemoryContext",
    "Mode",
    "ScalingEvent",
    "ScalingOptions",
    "ScalingResult",
    "StopReason",
    "build_prompt",
    "question_of",
]

Mode = Literal["static", "adaptive"]
"""`static` spends the whole budget; `adaptive` stops once a score passes."""

StopReason = Literal["threshold", "budget"]
"""Why a method stopped: a candidate's score reached the threshold, or the
budget was spent without one doing so."""

LESSONS_HEADER = "Lessons from similar problems solved before:"
"""Opens the lessons note in the system message."""

DEFAULT_SYSTEM_PROMPT = (
    "Solve the problem. Reason briefly, step by step, and end with the line "
    "'The final answer is \\boxed{ANSWER}.'"
)


class Exemplar(TypedDict):
    """A solved question shown to the model before the new one."""

    question: str
    solution: str


class MemoryContext(TypedDict):
    """What memory contributes to one question (built by the router)."""

    exemplars: list[Exemplar]
    """Solved examples, most similar last."""
    precedents: list[str]
    """Verified final answers held for the same problem (reworded at most)."""
    samples: NotRequired[int]
    """How many budget units see the exemplars before the run escalates to the
    plain prompt; memory makes wrong answers agree, so it gets a small start.
    Best-of-N samples its later candidates without them, Self-Refine drafts
    afresh and Tree-of-Thoughts searches on from a fresh root; long
    chain-of-thought keeps one line of thought, so any value above 0 shows
    them throughout. All units see them when absent, none when 0."""
    lessons: NotRequired[str]
    """General lessons drawn from past episodes (a reflection memory), shown
    in the system message. They carry no final answer, so unlike exemplars
    they are not limited to memory's start: every prompt of the run sees
    them, unless `samples` is 0."""


class Candidate(TypedDict):
    """One generated solution and its score."""

    text: str
    answer: str | None
    """The extracted final answer, if any."""
    score: float
    with_memory: bool
    """Whether the prompt held exemplars."""


class ScalingResult(TypedDict):
    """What a scaling method returns, whichever method it is."""

    method: str
    mode: Mode
    answer: str
    """The selected solution's text."""
    final_answer: str | None
    score: float
    passed: bool
    """Whether `score` reached the threshold."""
    stop_reason: StopReason
    budget_used: int
    """Compute spent, in `budget_unit`."""
    budget_unit: str
    candidates: list[Candidate]
    usage: Usage


class ScalingEvent(TypedDict):
    """A progress event a scaling subgraph writes to LangGraph's custom stream.

    Read them with `graph.stream(..., stream_mode="custom")`. A `candidate`
    event carries a new solution (or, for Tree-of-Thoughts, a partial path), a
    `score` event its score once rated, and one `stop` event closes the run.
    `index` is the candidate's position in `ScalingResult.candidates`.
    """

    method: str
    """The emitting method, e.g. `"self_refine"`: subgraphs can share a stream."""
    event: Literal["candidate", "score", "stop"]
    index: NotRequired[int]
    text: NotRequired[str]
    """`candidate` only."""
    answer: NotRequired[str | None]
    """`score` and `stop`: the extracted final answer."""
    score: NotRequired[float]
    passed: NotRequired[bool]
    stop_reason: NotRequired[StopReason]
    """`stop` only, like the remaining keys."""
    budget_used: NotRequired[int]
    budget_unit: NotRequired[str]


@dataclass(frozen=True, kw_only=True)
class ScalingOptions:
    """Options common to the scaling methods, validated on construction.

    Raises:
        ConfigurationError: An option is out of range.
    """

    mode: Mode = "adaptive"
    """`static` (the paper's baseline) or `adaptive` (stop at the threshold)."""
    budget: int = 8
    """The most compute to spend, in the method's unit."""
    scorer: Scorer | None = None
    """Rates candidates; a `ConsensusScorer` when `None`."""
    threshold: float | None = None
    """Score that stops an adaptive run; the scorer's upper bound when `None`."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT

    def __post_init__(self) -> None:
        if self.mode not in ("static", "adaptive"):
            msg = f"`mode` must be 'static' or 'adaptive', got {self.mode!r}"
            raise ConfigurationError(msg)
        if (
            isinstance(self.budget, bool)
            or not isinstance(self.budget, int)
            or self.budget < 1
        ):
            msg = f"the budget must be an integer >= 1, got {self.budget!r}"
            raise ConfigurationError(msg)
        if self.scorer is not None and not isinstance(self.scorer, Scorer):
            msg = f"`scorer` must implement the Scorer protocol, got {self.scorer!r}"
            raise ConfigurationError(msg)
        if not isinstance(self.system_prompt, str):
            msg = "`system_prompt` must be a string"
            raise ConfigurationError(msg)
        scorer = self.active_scorer
        if self.threshold is not None:
            check_threshold(scorer, self.threshold)
        elif not math.isfinite(scorer.upper):
            msg = "a scorer without a finite upper bound needs an explicit `threshold`"
            raise ConfigurationError(msg)

    @property
    def active_scorer(self) -> Scorer:
        """The scorer in use."""
        return self.scorer if self.scorer is not None else _DEFAULT_SCORER

    @property
    def active_threshold(self) -> float:
        """The threshold in use."""
        return (
            self.threshold if self.threshold is not None else self.active_scorer.upper
        )


_DEFAULT_SCORER = ConsensusScorer()


def question_of(question: str | Sequence[BaseMessage]) -> tuple[str, list[BaseMessage]]:
    """Split input into the question text and the conversation to answer.

    A string is a one-turn conversation; for messages, the question is the
    last human message.

    Raises:
        InvalidInputError: No usable question.
    """
    if isinstance(question, str):
        text = validate_question(question)
        return text, [HumanMessage(text)]
    if not isinstance(question, Sequence) or not all(
        isinstance(m, BaseMessage) for m in question
    ):
        msg = "the input must be a question string or a list of messages"
        raise InvalidInputError(msg)
    humans = [m for m in question if isinstance(m, HumanMessage)]
    if not humans:
        msg = "the messages hold no human message to answer"
        raise InvalidInputError(msg)
    return validate_question(message_text(humans[-1])), [*question]


def build_prompt(
    conversation: Sequence[BaseMessage],
    *,
    system_prompt: str,
    exemplars: Sequence[Exemplar] = (),
    lessons: str | None = None,
) -> list[AnyMessage]:
    """System prompt, then exemplars as earlier turns, then the conversation.

    Args:
        conversation: The conversation ending in the question.
        system_prompt: The method's instructions.
        exemplars: Solved examples, shown as earlier turns.
        lessons: Lessons from past episodes, added to the system message
            after `system_prompt` when given.

    Returns:
        The prompt's messages.
    """
    messages: list[AnyMessage] = []
    # One system message: ours first, then lessons, then the caller's own
    # instructions.
    system = [system_prompt] if system_prompt else []
    if lessons and lessons.strip():
        system.append(f"{LESSONS_HEADER}\n{lessons.strip()}")
    system += [message_text(m) for m in conversation if isinstance(m, SystemMessage)]
    if system:
        messages.append(SystemMessage("\n\n".join(system)))
    for exemplar in exemplars:
        messages.append(HumanMessage(exemplar["question"]))
        messages.append(AIMessage(exemplar["solution"]))
    messages.extend(m for m in conversation if not isinstance(m, SystemMessage))  # type: ignore[misc]
    return messages
