"""Scorers: how good is a candidate answer, without knowing the right one.

A `Scorer` rates one candidate for a question, given its peers (the other
candidates of the same question) and any verified precedents (final answers
that memory holds for the same problem). Scores live in the scorer's declared
range `[lower, upper]`; adaptive methods stop once a score reaches their
threshold. Scorers never see gold answers.

Three scorers ship:

- `ConsensusScorer`: agreement of final answers among samples, plus agreement
  with a verified precedent. No model calls. On small local models this is the
  signal that discriminates (4 of 4 agreeing samples were always right when
  measured), so it is the default.
- `LLMJudgeScorer`: asks a chat model to grade the solution from 0 to 10.
  Malformed judge output falls back to a configurable score with a warning;
  it never crashes. Small models make poor judges of their own answers.
- `FunctionScorer`: wraps any `fn(question, candidate) -> float`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig

from langchain_speedup._internal import message_text, raise_model_error
from langchain_speedup.answers import extract_answer
from langchain_speedup.errors import ConfigurationError, ScoringError

__all__ = [
    "ConsensusScorer",
    "FunctionScorer",
    "LLMJudgeScorer",
    "Scorer",
    "check_score",
    "check_threshold",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class Scorer(Protocol):
    """Rates a candidate answer; higher is better, within `[lower, upper]`."""

    lower: float
    upper: float

    def score(
        self,
        question: str,
        candidate: str,
        *,
        peers: Sequence[str] = (),
        precedents: Sequence[str] = (),
        config: RunnableConfig | None = None,
    ) -> float:
        """Score `candidate`, given the other candidates and verified precedents.

        Args:
            question: The question being answered.
            candidate: The solution to score.
            peers: Other candidate solutions to the same question.
            precedents: Verified final answers memory holds for this problem.
            config: Pass it to any model call so the call is counted.
        """
        ...

    async def ascore(
        self,
        question: str,
        candidate: str,
        *,
        peers: Sequence[str] = (),
        precedents: Sequence[str] = (),
        config: RunnableConfig | None = None,
    ) -> float:
        """Async form of `score`."""
        ...


def check_threshold(scorer: Scorer, threshold: float) -> float:
    """Validate that `threshold` lies in the scorer's range.

    Raises:
        ConfigurationError: It does not, or it is not a finite number.
    """
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or not scorer.lower <= threshold <= scorer.upper
    ):
        msg = (
            f"`threshold` must be a number in the scorer's range "
            f"[{scorer.lower}, {scorer.upper}], got {threshold!r}"
        )
        raise ConfigurationError(msg)
    return float(threshold)


def check_score(scorer: Scorer, value: object) -> float:
    """Validate a score: a finite number in the scorer's range.

    Raises:
        ScoringError: It is not.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"scorer {type(scorer).__name__} returned {value!r}, not a number"
        raise ScoringError(msg)
    if not math.isfinite(value) or not scorer.lower <= value <= scorer.upper:
        msg = (
            f"scorer {type(scorer).__name__} returned {value!r}, outside its range "
            f"[{scorer.lower}, {scorer.upper}]"
        )
        raise ScoringError(msg)
    return float(value)


class ConsensusScorer:
    r"""Scores a candidate by how many others reach the same final answer.

    The score is `min(1, votes / quorum)`, where `votes` counts the candidate
    itself, every peer with the same final answer, and `precedent_weight` more
    when the answer matches a verified precedent. With the default threshold of
    1.0 an adaptive method stops once `quorum` samples agree, or once one fresh
    sample confirms a verified precedent. A candidate with no final answer
    scores 0.

    Example:
        ```python
        scorer = ConsensusScorer(quorum=2)
        scorer.score("2+2?", r"\\boxed{4}", peers=[r"\\boxed{4}"])  # 1.0
        ```

    Args:
        quorum: Agreeing votes that make a full score.
        precedent_weight: Votes a matching verified precedent adds; by default
            `quorum - 1`, so that precedent plus one agreeing sample is a quorum.
        extract: Maps a solution to its final answer (`None` when it has none).
    """

    lower = 0.0
    upper = 1.0

    def __init__(
        self,
        *,
        quorum: int = 3,
        precedent_weight: int | None = None,
        extract: Callable[[str], str | None] = extract_answer,
    ) -> None:
        if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
            msg = f"`quorum` must be an integer >= 1, got {quorum!r}"
            raise ConfigurationError(msg)
        weight = quorum - 1 if precedent_weight is None else precedent_weight
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            msg = f"`precedent_weight` must be an integer >= 0, got {weight!r}"
            raise ConfigurationError(msg)
        self.quorum = quorum
        self.precedent_weight = weight
        self.extract = extract

    def score(
        self,
        question: str,
        candidate: str,
        *,
        peers: Sequence[str] = (),
        precedents: Sequence[str] = (),
        config: RunnableConfig | None = None,
    ) -> float:
        """Agreement score of `candidate` (see the class docstring)."""
        answer = self.extract(candidate)
        if answer is None:
            return 0.0
        votes = 1 + sum(self.extract(peer) == answer for peer in peers)
        if answer in precedents:
            votes += self.precedent_weight
        return min(1.0, votes / self.quorum)

    async def ascore(
        self,
        question: str,
        candidate: str,
        *,
        peers: Sequence[str] = (),
        precedents: Sequence[str] = (),
        config: RunnableConfig | None = None,
    ) -> float:
        """Same as `score`: consensus makes no I/O."""
        return self.score(question, candidate, peers=peers, precedents=precedents)


_JUDGE_PROMPT = (
    "You grade solutions to math word problems. Read the problem and the "
    "proposed solution, check every step, and rate how likely the final answer "
    "is correct on a scale from 0 (certainly wrong) to 10 (certainly right). "
    "Reply with the number only."
)
# A rating may end a sentence ("8."), but not be part of a longer number.
_RATING = re.compile(r"(?<![\d.])(10(?:\.0+)?|\d(?:\.\d+)?)(?!\d|\.\d)")
# "7/10" or "7 out of 10" names the rating even when other numbers surround it.
_RATING_OUT_OF = re.compile(
    r"(?<![\d.])(10(?:\.0+)?|\d(?:\.\d+)?)\s*(?:/|out of)\s*10(?!\d)", re.IGNORECASE
)


class LLMJudgeScorer:
    """Asks a chat model to rate a solution from 0 to 10; scores in [0, 1].

    Each call is tagged `speedup:scorer`, so the ledger counts the judge's
    tokens apart from the solver's. When the judge's reply holds no rating,
    the score is `fallback` and a warning is logged: a malformed reply never
    crashes the method. A failing judge model raises `ModelError`.

    Args:
        model: The judge; any chat model or runnable returning a message.
        prompt: The system prompt asking for a bare 0-10 rating.
        fallback: The score given when the reply holds no rating.
    """

    lower = 0.0
    upper = 1.0

    def __init__(
        self,
        model: Runnable[LanguageModelInput, BaseMessage],
        /,
        *,
        prompt: str = _JUDGE_PROMPT,
        fallback: float = 0.0,
    ) -> None:
        if not isinstance(model, Runnable):
            msg = (
                f"`model` must be a chat model or runnable, got {type(model).__name__}"
            )
            raise ConfigurationError(msg)
        if isinstance(fallback, bool) or not 0.0 <= fallback <= 1.0:
            msg = f"`fallback` must be in [0, 1], got {fallback!r}"
            raise ConfigurationError(msg)
        self.model = model
        self.prompt = prompt
        self.fallback = fallback
        self.malformed = 0
        """How many judge replies held no rating so far."""

    def _messages(self, question: str, candidate: str) -> list[BaseMessage]:
        return [
            SystemMessage(self.prompt),
            HumanMessage(f"Problem:\n{question}\n\nProposed solution:\n{candidate}"),
        ]

    def _parse(self, reply: BaseMessage) -> float:
        text = message_text(reply)
        # A stated "N/10" wins; otherwise the last number in range, since
        # judges tend to restate the scale ("from 0 to 10") before rating.
        match = _RATING_OUT_OF.search(text) or next(
            reversed(list(_RATING.finditer(text))), None
        )
        if match is None:
            self.malformed += 1
            logger.warning(
                "judge reply held no 0-10 rating, scoring %s: %r",
                self.fallback,
                message_text(reply)[:200],
            )
            return self.fallback
        return float(match.group(1)) / 10

    def score(
        self,
        question: str,
        candidate: str,
        *,
        peers: Sequence[str] = (),
        precedents: Sequence[str] = (),
        config: RunnableConfig | None = None,
    ) -> float:
        """Ask the judge for a rating of `candidate`."""
        try:
            reply = self.model.invoke(self._messages(question, candidate), config)
        except Exception as e:  # noqa: BLE001
            raise_model_error(e, role="scorer")
        return self._parse(reply)

    async def ascore(
        self,
        question: str,
        candidate: str,
        *,
        peers: Sequence[str] = (),
        precedents: Sequence[str] = (),
        config: RunnableConfig | None = None,
    ) -> float:
        """Async form of `score`."""
        try:
            reply = await self.model.ainvoke(
                self._messages(question, candidate), config
            )
        except Exception as e:  # noqa: BLE001
            raise_model_error(e, role="scorer")
        return self._parse(reply)


class FunctionScorer:
    """Wraps a function `fn(question, candidate) -> float` as a scorer.

    The function may be sync or async; its result is checked against the
    declared range and a bad value raises `ScoringError`.

    Example:
        ```python
        scorer = FunctionScorer(lambda q, c: 1.0 if "boxed" in c else 0.0)
        ```

    Args:
        fn: The scoring function.
        lower: The lowest score `fn` returns.
        upper: The highest score `fn` returns.
    """

    def __init__(
        self,
        fn: Callable[[str, str], float] | Callable[[str, str], Awaitable[float]],
        /,
        *,
        lower: float = 0.0,
        upper: float = 1.0,
    ) -> None:
        if not callable(fn):
            msg = f"`fn` must be callable, got {type(fn).__name__}"
            raise ConfigurationError(msg)
        if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
            msg = f"need finite `lower` < `upper`, got {lower!r}, {upper!r}"
            raise ConfigurationError(msg)
        self.fn = fn
        self.lower = float(lower)
        self.upper = float(upper)
        self._is_async = inspect.iscoroutinefunction(fn)

    def score(
        self,
        question: str,
        candidate: str,
        *,
        peers: Sequence[str] = (),
        precedents: Sequence[str] = (),
        config: RunnableConfig | None = None,
    ) -> float:
        """Call the function and check its result."""
        value: Any = self.fn(question, candidate)
        if self._is_async:
            value = asyncio.run(value)
        return check_score(self, value)

    async def ascore(
        self,
        question: str,
        candidate: str,
        *,
        peers: Sequence[str] = (),
        precedents: Sequence[str] = (),
        config: RunnableConfig | None = None,
    ) -> float:
        """Call the function (awaiting it when async) and check its result."""
        value: Any = self.fn(question, candidate)
        if inspect.isawaitable(value):
            value = await value
        return check_score(self, value)
