"""Scorers: how good a candidate answer is, without knowing the right one.

A scorer rates one candidate for a question in its range `[lower, upper]`,
given its peers (the other candidates) and verified precedents from memory.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import (
    Any,
    NamedTuple,
    NoReturn,
    Protocol,
    TypeGuard,
    cast,
    runtime_checkable,
)

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.runnables.utils import is_async_callable
from langgraph.errors import GraphBubbleUp
from pydantic import BaseModel, Field

from langchain_speedup._internal import (
    DEFAULT_SYSTEM_PROMPT,
    Call,
    adrive,
    check_count,
    check_model,
    check_prompt,
    drive,
    model_call,
    raise_model_error,
)
from langchain_speedup.answers import (
    answers_equal,
    extract_answer,
    question_key,
    stated_answer_text,
    states_answer,
)
from langchain_speedup.errors import (
    ConfigurationError,
    InvalidInputError,
    ScoringError,
    SpeedupError,
)
from langchain_speedup.programs import (
    PROGRAM_PROMPT,
    extract_program,
    program_step,
    run_reply,
)
from langchain_speedup.sandbox import ProgramResult, Sandbox
from langchain_speedup.types import ChatRunnable

__all__ = [
    "ConsensusScorer",
    "FunctionScorer",
    "LLMJudgeScorer",
    "ProgramVerifiedScorer",
    "Scorer",
]

logger = logging.getLogger(__name__)

_Step = Generator[Call, Any, float]


class _Query(NamedTuple):
    question: str
    candidate: str
    peers: Sequence[str]
    precedents: Sequence[str]
    config: RunnableConfig | None


class _Stepped(Protocol):
    def _step(self, query: _Query) -> _Step: ...


def _checked_step(scorer: object, query: _Query) -> _Step:
    """The step of a scorer that inherits `score` and `ascore`, for a checked query."""
    lists = (query.peers, query.precedents)
    if not all(isinstance(x, Sequence) and not isinstance(x, str) for x in lists):
        msg = f"`peers` and `precedents` must be lists of strings, got {lists!r}"
        raise InvalidInputError(msg)
    if not all(isinstance(t, str) for t in (*query[:2], *lists[0], *lists[1])):
        msg = "the question, candidate, peers and precedents must be strings"
        raise InvalidInputError(msg)
    # Subclasses define `_step`; it is no protocol member, so that duck-typed
    # scorers need not have one.
    return cast(_Stepped, scorer)._step(query)


@runtime_checkable
class Scorer(Protocol):
    """Rates a candidate answer; higher is better, within `[lower, upper]`.

    Any object with `lower`, `upper`, `score` and `ascore` is a scorer. The
    package's scorers subclass this protocol and define one step that both
    `score` and `ascore` run.
    """

    lower: float = 0.0
    upper: float = 1.0

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

        Returns:
            The score, in `[lower, upper]`.

        Raises:
            InvalidInputError: An argument is not text.
        """
        query = _Query(question, candidate, peers, precedents, config)
        return drive(_checked_step(self, query))

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
        query = _Query(question, candidate, peers, precedents, config)
        return await adrive(_checked_step(self, query))


def _in_range(value: object, lower: float, upper: float) -> TypeGuard[float]:
    """Whether `value` is a finite number (not a bool) in `[lower, upper]`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and lower <= value <= upper


def check_threshold(
    scorer: Scorer, threshold: object, *, name: str = "threshold"
) -> float:
    """Return `threshold` (the option `name`) as a float if in the scorer's range.

    Raises:
        ConfigurationError: It is not a finite number in the range.
    """
    if not _in_range(threshold, scorer.lower, scorer.upper):
        msg = (
            f"`{name}` must be a number in the scorer's range "
            f"[{scorer.lower}, {scorer.upper}], got {threshold!r}"
        )
        raise ConfigurationError(msg)
    return float(threshold)


def check_score(scorer: Scorer, value: object) -> float:
    """Return a scorer's result as a float if it is a finite number in its range.

    Raises:
        ScoringError: It is not.
    """
    if not _in_range(value, scorer.lower, scorer.upper):
        msg = (
            f"scorer {type(scorer).__name__} returned {value!r}, not a finite "
            f"number in its range [{scorer.lower}, {scorer.upper}]"
        )
        raise ScoringError(msg)
    return float(value)


def _stated_answer(solution: str) -> str | None:
    return extract_answer(solution) if states_answer(solution) else None


class ConsensusScorer(Scorer):
    r"""Scores a candidate by how many others reach the same final answer.

    The score is `min(1, votes / quorum)`, where `votes` counts the candidate
    itself, every peer that states the same final answer, and
    `precedent_weight` more when the answer matches a verified precedent. With
    a threshold of 1.0 an adaptive method stops once `quorum` samples agree,
    or once one fresh sample confirms a verified precedent. Only a stated
    answer votes (`answers.states_answer`: a `\\boxed{...}` or a closing
    "final answer is N"), never a number read from a refusal, an error
    message or an echo of the question: a candidate that states none scores 0,
    however many others say the same. It makes no model calls.

    Example:
        ```python
        scorer = ConsensusScorer(quorum=2)
        scorer.score("2+2?", r"\\boxed{4}", peers=[r"\\boxed{4}"])  # 1.0
        ```

    Args:
        quorum: Agreeing votes that make a full score.
        precedent_weight: Votes a matching verified precedent adds; by default
            `quorum - 1`, so that precedent plus one agreeing sample is a quorum.
        extract: Maps a solution to the final answer it states (`None` when it
            states none); by default `extract_answer` of a solution that
            `states_answer`.

    Raises:
        ConfigurationError: `quorum` is not an integer >= 1, or
            `precedent_weight` not an integer >= 0.
    """

    def __init__(
        self,
        *,
        quorum: int = 3,
        precedent_weight: int | None = None,
        extract: Callable[[str], str | None] | None = None,
    ) -> None:
        self.quorum = check_count("quorum", quorum)
        weight = quorum - 1 if precedent_weight is None else precedent_weight
        self.precedent_weight = check_count("precedent_weight", weight, minimum=0)
        self.extract = _stated_answer if extract is None else extract

    def _step(self, query: _Query) -> _Step:
        yield from ()  # no I/O: `ascore` computes what `score` does
        answer = self.extract(query.candidate)
        if answer is None:
            return 0.0
        votes = 1 + sum(self.extract(peer) == answer for peer in query.peers)
        if answer in query.precedents:
            votes += self.precedent_weight
        return min(1.0, votes / self.quorum)


_SCALE = "how likely the final answer is correct, from 0 (certainly wrong) to 10 (certainly right)"
_JUDGE_PROMPT = (
    "You grade solutions to math word problems. Read the problem and the "
    f"proposed solution, check every step, and rate {_SCALE}. "
    "End your reply with the line 'Rating: N'."
)
# A "Rating: N" that ends the reply's last line ("Rating: 7", "**Rating:** 7/10."),
# so that other numbers in the text, "10/10" or a rating quoted from the
# solution included, are never read as the rating.
_RATING_LINE = re.compile(
    r"\brating\W{0,3}[:=][\s*]*(\d+(?:\.\d+)?)(?:\s*/\s*10)?[\s*.]*$",
    re.IGNORECASE,
)


class _Rating(BaseModel):
    """The judge's verdict on a proposed solution."""

    rating: float = Field(ge=0, le=10, description=f"{_SCALE.capitalize()}.")


class LLMJudgeScorer(Scorer):
    """Asks a chat model to rate a solution from 0 to 10; scores in [0, 1].

    The rating is read with the model's structured output; from a model
    without it (`with_structured_output` raises `NotImplementedError`), or
    when that holds no valid rating, from the reply's text, whose last line
    must end with `Rating: N` (N from 0 to 10). Numbers elsewhere in the
    reply ("10/10", a rating quoted from the solution) are never read. A
    reply with no rating scores `fallback` and logs a warning. Calls use the
    `config` the scorer is given, so a `Ledger` counts them under the `scorer`
    role.

    Example:
        ```python
        judge = LLMJudgeScorer(ChatOpenAI(model="gpt-4o-mini"))
        judge.score("2 + 2?", "2 + 2 = 4. The final answer is 4.")  # 1.0
        ```

    Args:
        model: The judge; any chat model or runnable returning a message.
        prompt: The system prompt asking for the 0-10 rating.
        fallback: The score given when the reply holds no rating.

    Raises:
        ConfigurationError: An option is invalid.
        ModelError: A judge call failed (`role == "scorer"`).
    """

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        prompt: str = _JUDGE_PROMPT,
        fallback: float = 0.0,
    ) -> None:
        check_model(model)
        if not _in_range(fallback, 0.0, 1.0):
            msg = f"`fallback` must be a number in [0, 1], got {fallback!r}"
            raise ConfigurationError(msg)
        self.model = model
        self.prompt = check_prompt("prompt", prompt)
        self.fallback = float(fallback)
        self.malformed = 0
        """How many judge replies held no rating so far."""
        self._judge: Runnable[Any, Any] = model
        structured = getattr(model, "with_structured_output", None)
        if structured is not None:
            with contextlib.suppress(NotImplementedError):
                self._judge = structured(_Rating, include_raw=True)

    def _step(self, query: _Query) -> _Step:
        question, candidate, _, _, config = query
        prompt = [
            SystemMessage(self.prompt),
            HumanMessage(f"Problem:\n{question}\n\nProposed solution:\n{candidate}"),
        ]
        try:
            reply = yield Call(
                lambda: self._judge.invoke(prompt, config),
                lambda: self._judge.ainvoke(prompt, config),
            )
        except Exception as e:  # noqa: BLE001
            raise_model_error(e, role="scorer")
        # Structured output gives {"raw": message, "parsed": _Rating | None, ...};
        # when it holds no valid rating, the message's text may still state one.
        structured = isinstance(reply, dict)
        raw, parsed = (
            (reply.get("raw"), reply.get("parsed")) if structured else (reply, None)
        )
        if isinstance(parsed, _Rating):
            return parsed.rating / 10
        text = raw.text if isinstance(raw, BaseMessage) else str(raw)
        last_line = text.strip().rpartition("\n")[2]
        stated = _RATING_LINE.search(last_line)
        if stated and float(stated.group(1)) <= 10:
            return float(stated.group(1)) / 10
        self.malformed += 1
        logger.warning(
            "judge reply held no 0-10 rating, scoring %s: %r", self.fallback, text[:200]
        )
        return self.fallback


def _async_only(_: object) -> NoReturn:
    msg = (
        "this FunctionScorer has only an async function: call `ascore` "
        "(run the graph with `ainvoke`), or give it a sync `fn`"
    )
    raise ConfigurationError(msg)


class FunctionScorer(Scorer):
    """Wraps a function `fn(question, candidate) -> float` as a scorer.

    The function runs as a `RunnableLambda`: a sync `fn` serves `score`, and
    `ascore` too (in an executor, so it never blocks the event loop); an async
    `fn` serves `ascore` only. Pass both forms as `fn` and `afn`.

    Example:
        ```python
        scorer = FunctionScorer(lambda q, c: 1.0 if "4" in c else 0.0)
        scorer.score("2 + 2?", "It makes 4.")  # 1.0
        ```

    Args:
        fn: The scoring function, sync or async.
        afn: An async form of a sync `fn`, for `ascore`.
        lower: The lowest score the function returns.
        upper: The highest score the function returns.

    Raises:
        ConfigurationError: An option is invalid, or `score` is called with
            only an async function.
        ScoringError: The function raised (the error is its `__cause__`), or
            returned no number in `[lower, upper]`.
    """

    def __init__(
        self,
        fn: Callable[[str, str], float] | Callable[[str, str], Awaitable[float]],
        /,
        *,
        afn: Callable[[str, str], Awaitable[float]] | None = None,
        lower: float = 0.0,
        upper: float = 1.0,
    ) -> None:
        if not callable(fn) or not (afn is None or callable(afn)):
            msg = f"`fn` and `afn` must be callable, got {fn!r}, {afn!r}"
            raise ConfigurationError(msg)
        if afn is not None and is_async_callable(fn):
            msg = "`fn` is async already; pass `afn` only with a sync `fn`"
            raise ConfigurationError(msg)
        numbers = all(_in_range(x, -math.inf, math.inf) for x in (lower, upper))
        if not numbers or not lower < upper:
            msg = f"need finite numbers `lower` < `upper`, got {lower!r}, {upper!r}"
            raise ConfigurationError(msg)
        self.fn, self.afn = fn, afn
        self.lower, self.upper = float(lower), float(upper)
        asyn = afn or (fn if is_async_callable(fn) else None)
        self._runnable = RunnableLambda(
            _async_only if asyn is fn else lambda pair: fn(*pair),
            afunc=None if asyn is None else lambda pair: asyn(*pair),
            name=getattr(fn, "__name__", type(self).__name__),
        )

    def _step(self, query: _Query) -> _Step:
        pair, config = (query.question, query.candidate), query.config
        try:
            value = yield Call(
                lambda: self._runnable.invoke(pair, config),
                lambda: self._runnable.ainvoke(pair, config),
            )
        except (GraphBubbleUp, SpeedupError):
            raise
        except Exception as e:
            name = self._runnable.name
            msg = f"scoring function {name} raised {type(e).__name__}: {e}"
            raise ScoringError(msg) from e
        return check_score(self, value)


class _Evidence(NamedTuple):
    """One sample's final answer and whether a program computed it."""

    answer: str | None
    executed: bool


_LRU_SIZE = 256


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def get_item(self, key: Any) -> Any:
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        if self.size == 0:
            return
        with self.lock:
            self[key] = value
            self.move_to_end(key)
            while len(self) > self.size:
                self.popitem(last=False)


class ProgramVerifiedScorer(Scorer):
    r"""Verifies an answer only when an executed program and a prose answer agree.

    Two kinds of evidence: a *prose* answer, stated by a solution in words,
    and an *executed* answer, computed by a program (a fenced code block, see
    `programs.extract_program`) run in the `Sandbox`. A candidate's answer is
    the one it states (`answers.states_answer`), which is what scaling
    methods report as its final answer; if it also holds a program that runs
    to a result, it is an executed sample, and that result must equal its
    stated answer. A peer's evidence is its program's result when its program
    runs to one, else its stated answer. The rule, with answers compared by
    `answers.answers_equal`:

    - **1.0, verified**: evidence of the *other* kind, from an independent
      sample, gives the same answer. For a prose candidate: a peer's program,
      or the scorer's own program for the question, ran and computed it. For
      an executed candidate: a peer states it in prose, a verified precedent
      from memory equals it, or the scorer's own prose sample states it. A
      sample never confirms itself, and answers of one kind never verify each
      other, however many agree.
    - **0.5, unconfirmed**: the other kind's evidence is missing (no program
      ran to a result, no prose stated an answer).
    - **0.25, contradicted**: the candidate's own program computes another
      answer than it states, or evidence of the other kind exists and all of
      it gives other answers.
    - **0.0**: the candidate states no answer. A bare program must state its
      result to count (`programs.program_solution` writes it so).

    When the candidates do not verify the candidate themselves, the scorer
    asks its model once per question for the missing kind of sample (a
    program with `program_prompt`, or a prose solution with `prose_prompt`),
    using the `config` it is given, so a `Ledger` counts the call under the
    `scorer` role. The reply and its run are kept (per question, for the
    last `cache_size` questions) and shared by every candidate of that
    question. Programs of peers run in the sandbox (no model call); their
    results are kept by program text. Gold answers are never seen.

    The threshold that means "verified" is 1.0, the scorer's upper bound,
    which is what scaling methods use by default.

    Example:
        ```python
        scorer = ProgramVerifiedScorer(model)
        scorer.score("What is 17 * 23?", r"17 * 23 = 391. \boxed{391}")
        # 1.0 once the model's program prints 391
        ```

    Args:
        model: The model asked for the missing sample.
        sandbox: Where programs run; a `Sandbox()` of its own when `None`.
        program_prompt: The system prompt asking for a program.
        prose_prompt: The system prompt asking for a prose solution.
        cache_size: How many questions' own samples to keep; 0 asks anew for
            every candidate.

    Raises:
        ConfigurationError: An option is invalid.
        ModelError: The scorer's model call failed (`role == "scorer"`).
        SandboxError: The sandbox could not run at all.
    """

    VERIFIED = 1.0
    UNCONFIRMED = 0.5
    CONTRADICTED = 0.25

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        sandbox: Sandbox | None = None,
        program_prompt: str = PROGRAM_PROMPT,
        prose_prompt: str = DEFAULT_SYSTEM_PROMPT,
        cache_size: int = _LRU_SIZE,
    ) -> None:
        check_model(model)
        self.model = model
        self.sandbox = Sandbox.checked(sandbox) or Sandbox()
        self.program_prompt = check_prompt("program_prompt", program_prompt)
        self.prose_prompt = check_prompt("prose_prompt", prose_prompt)
        self.cache_size = check_count("cache_size", cache_size, minimum=0)
        self.own_samples = 0
        """How many samples the scorer has asked its model for so far."""
        self._samples = _Lru(self.cache_size)
        self._runs = _Lru(_LRU_SIZE)

    def program_for(self, question: str) -> str | None:
        """The program the scorer wrote for `question`, if it wrote one and it ran.

        Kept for the last `cache_size` questions; procedure memory
        (`ProcedureMemory`) learns from it.
        """
        cached = self._samples.get_item((True, question_key(question)))
        if cached is None or cached[0] is None:
            return None
        return cached[1]  # type: ignore[no-any-return]

    def _run(self, text: str) -> Generator[Call, Any, str | None]:
        """A step: the normalised executed answer of the program in `text`."""
        program = extract_program(text)
        if program is None:
            return None
        cached: ProgramResult | None = self._runs.get_item(program)
        if cached is None:
            found = yield from run_reply(text, self.sandbox)
            cached = found["result"]
            assert cached is not None  # a program was found
            self._runs.put(program, cached)
        return cached["answer"]

    def _evidence(self, text: str) -> Generator[Call, Any, _Evidence]:
        """A peer's evidence: its program's result if one ran, else its prose."""
        executed = yield from self._run(text)
        if executed is not None:
            return _Evidence(executed, executed=True)
        return _Evidence(stated_answer_text(text), executed=False)

    def _own_sample(
        self, query: _Query, *, executed: bool
    ) -> Generator[Call, Any, str | None]:
        """A step: the scorer's own sample of one kind for the question."""
        key = (executed, question_key(query.question))
        cached = self._samples.get_item(key)
        if cached is not None:
            return cached[0]  # type: ignore[no-any-return]
        program = None
        self.own_samples += 1
        if executed:
            found = yield from program_step(
                self.model,
                query.question,
                sandbox=self.sandbox,
                prompt=self.program_prompt,
                config=query.config,
                role="scorer",
            )
            answer, program = found["answer"], found["program"]
        else:
            messages = [SystemMessage(self.prose_prompt), HumanMessage(query.question)]
            config = query.config
            message = yield model_call(
                lambda: self.model.invoke(messages, config),
                lambda: self.model.ainvoke(messages, config),
                role="scorer",
            )
            answer = stated_answer_text(message.text)
        self._samples.put(key, (answer, program))
        return answer

    def _step(self, query: _Query) -> _Step:
        stated = stated_answer_text(query.candidate)
        if stated is None:
            return 0.0
        executed = yield from self._run(query.candidate)
        if executed is not None and not answers_equal(stated, executed):
            return self.CONTRADICTED  # its own program computes another answer
        mine = _Evidence(stated, executed=executed is not None)
        others = []
        for peer in query.peers:
            others.append((yield from self._evidence(peer)))
        confirming = [e.answer for e in others if e.executed != mine.executed]
        if mine.executed:
            confirming += query.precedents
        confirming = [a for a in confirming if a is not None]
        if any(answers_equal(mine.answer, a) for a in confirming):
            return self.VERIFIED
        own = yield from self._own_sample(query, executed=not mine.executed)
        if own is not None:
            if answers_equal(mine.answer, own):
                return self.VERIFIED
            confirming.append(own)
        return self.CONTRADICTED if confirming else self.UNCONFIRMED
