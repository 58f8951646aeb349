"""Memory mechanisms: how retrieved episodes become the memory a method sees."""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from typing import Any, NamedTuple, Protocol, cast, runtime_checkable

from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.store.base import BaseStore

from langchain_speedup._internal import Call, adrive, check_count, check_model, drive
from langchain_speedup.budget import Ledger
from langchain_speedup.errors import SpeedupError
from langchain_speedup.memory.reflection import (
    _LESSONS_CHARS,
    _reflection_call,
    _trim_to_sentence,
)
from langchain_speedup.memory.store import EpisodicMemory
from langchain_speedup.tokens import count_tokens
from langchain_speedup.types import ChatRunnable, EpisodeMatch, Exemplar, MemoryContext

__all__ = [
    "InContextMemory",
    "MemoryMechanism",
    "MultiCaseReflectMemory",
    "ReflectMemory",
    "ReflectUpdateMemory",
]

logger = logging.getLogger(__name__)

_DISTILL_SYSTEM = (
    "You distil general lessons from several solved problems: strategies, "
    "checks and pitfalls that would help with a new, similar problem. Never "
    "copy a problem's numbers or final answer into the lessons."
)


_Step = Generator[Call, Any, MemoryContext]


class _Query(NamedTuple):
    """The arguments of `MemoryMechanism.build`."""

    question: str
    matches: Sequence[EpisodeMatch]
    store: BaseStore | EpisodicMemory
    namespace: str
    config: RunnableConfig | None


class _Stepped(Protocol):
    def _step(self, q: _Query) -> _Step: ...


def _step_of(mechanism: object, query: _Query) -> _Step:
    # Subclasses define `_step`; it is no protocol member, so that duck-typed
    # mechanisms need not have one.
    return cast(_Stepped, mechanism)._step(query)


@runtime_checkable
class MemoryMechanism(Protocol):
    """Builds the memory a scaling method sees for one question.

    A mechanism decides what the method is shown (exemplars, or lessons in
    the system message); the precedents the scorer counts as votes are the
    router's, from `precedents_of`, and a mechanism leaves them empty. Any object with
    `build` and `abuild` is a mechanism; the package's mechanisms subclass
    this protocol and define one step that both run.
    """

    def build(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: BaseStore | EpisodicMemory,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """Build the memory for `question`.

        Args:
            question: The question being answered.
            matches: Verified episodes similar to it, in any order.
            store: The LangGraph store they came from (or its `EpisodicMemory`).
            namespace: The tenant whose memory is read.
            config: Passed to any model call the mechanism makes.

        Returns:
            The memory to solve with.
        """
        query = _Query(question, matches, store, namespace, config)
        return drive(_step_of(self, query))

    async def abuild(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: BaseStore | EpisodicMemory,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """Async form of `build`."""
        query = _Query(question, matches, store, namespace, config)
        return await adrive(_step_of(self, query))


def _by_similarity(matches: Sequence[EpisodeMatch]) -> list[EpisodeMatch]:
    # Most similar first; search returns only verified episodes, but a custom
    # store or caller may not.
    return sorted(
        (m for m in matches if m["episode"].get("verified")),
        key=lambda m: m["similarity"],
        reverse=True,
    )


def _context(
    question: str,
    matches: Sequence[EpisodeMatch],
    exemplars: list[Exemplar],
    lessons: str | None,
) -> MemoryContext:
    memory = MemoryContext(exemplars=exemplars, precedents=[])
    if lessons:
        memory["lessons"] = lessons
    return memory


class InContextMemory(MemoryMechanism):
    """Similar verified episodes as exemplars, under a token budget.

    The most similar episodes are taken first, at most `max_exemplars`, while
    their questions and solutions fit in `max_tokens` (an episode that does
    not fit is skipped for a smaller one); they are shown most similar last,
    nearest the question. No model call.

    Args:
        max_exemplars: Most exemplars per question (default 2).
        max_tokens: Most tokens the exemplars' questions and solutions may
            take together, counted with `langchain_speedup.tokens.count_tokens`
            (default 600).

    Raises:
        ConfigurationError: A bound is not a positive integer.
    """

    def __init__(self, *, max_exemplars: int = 2, max_tokens: int = 600) -> None:
        self.max_exemplars = check_count("max_exemplars", max_exemplars)
        self.max_tokens = check_count("max_tokens", max_tokens)

    def _step(self, q: _Query) -> _Step:
        yield from ()
        exemplars: list[Exemplar] = []
        spent = 0
        for match in _by_similarity(q.matches):
            if len(exemplars) == self.max_exemplars:
                break
            question, answer = match["episode"]["question"], match["episode"]["answer"]
            cost = count_tokens(question) + count_tokens(answer)
            if spent + cost <= self.max_tokens:
                exemplars.append(Exemplar(question=question, solution=answer))
                spent += cost
        # Most similar last, nearest the question.
        return _context(q.question, q.matches, exemplars[::-1], None)


class ReflectMemory(MemoryMechanism):
    """The stored reflections of similar episodes, as a lessons note.

    Each episode's `reflection` is written by `reflect` (or a
    `ReflectionQueue` in `"reflect"` mode). The reflections of the most
    similar verified episodes that have one are joined, most similar first,
    within `max_chars`. No exemplars are shown, and no model call is made.

    Args:
        max_cases: Most reflections per question (default 3).
        max_chars: The lessons note's bound, in characters (default 1200).

    Raises:
        ConfigurationError: A bound is not a positive integer.
    """

    def __init__(self, *, max_cases: int = 3, max_chars: int = _LESSONS_CHARS) -> None:
        self.max_cases = check_count("max_cases", max_cases)
        self.max_chars = check_count("max_chars", max_chars)

    def _step(self, q: _Query) -> _Step:
        yield from ()
        lines: list[str] = []
        size = 0
        for match in _by_similarity(q.matches):
            text = (match["episode"].get("reflection") or "").strip()
            if not text or text in lines:
                continue
            line = f"- {' '.join(text.split())}"
            if size + len(line) + 1 > self.max_chars:
                break
            lines.append(line)
            size += len(line) + 1
            if len(lines) == self.max_cases:
                break
        return _context(q.question, q.matches, [], "\n".join(lines))


class MultiCaseReflectMemory(MemoryMechanism):
    """One reflection distilled from several similar episodes at once.

    For each question with similar verified episodes, one model call (tagged
    role `reflection`, so a `Ledger` counts it apart from the solver) reads
    up to `max_cases` of them and writes the lessons note, trimmed to
    `max_chars` at a sentence boundary. If the call fails or returns nothing,
    the question is solved without lessons and the failure is logged, unless
    `strict`.

    Args:
        model: The chat model that distils the lessons.
        max_cases: Most episodes per reflection (default 3).
        max_chars: The note's bound, in characters (default 1200).
        ledger: A `Ledger` to count the reflection calls in.
        strict: Raise `ModelError` from `build` when the call fails instead
            of going on without lessons.

    Raises:
        ConfigurationError: A bound is not a positive integer.
    """

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        max_cases: int = 3,
        max_chars: int = _LESSONS_CHARS,
        ledger: Ledger | None = None,
        strict: bool = False,
    ) -> None:
        check_model(model)
        self.model = model
        self.max_cases = check_count("max_cases", max_cases)
        self.max_chars = check_count("max_chars", max_chars)
        self.ledger = ledger
        self.strict = bool(strict)

    def _step(self, q: _Query) -> _Step:
        cases = _by_similarity(q.matches)[: self.max_cases]
        lessons = None
        if cases:
            shown = "\n\n".join(
                f"Case {i}:\nQuestion:\n{m['episode']['question']}\n"
                f"Verified solution:\n{m['episode']['answer']}"
                for i, m in enumerate(cases, start=1)
            )
            prompt: list[AnyMessage] = [
                SystemMessage(_DISTILL_SYSTEM),
                HumanMessage(
                    f"{shown}\n\nA new problem of this kind:\n{q.question}\n\n"
                    "Write the lessons these cases teach for it, in at most "
                    f"{self.max_chars} characters. Reply with the lessons only."
                ),
            ]
            try:
                reply: BaseMessage = yield _reflection_call(
                    self.model, prompt, q.config, self.ledger
                )
            except SpeedupError as e:
                if self.strict:
                    raise
                logger.warning("multi-case reflection failed, no lessons: %s", e)
            else:
                lessons = _trim_to_sentence(reply.text, self.max_chars)
                if not lessons:
                    logger.warning(
                        "the multi-case reflection returned no text; no lessons"
                    )
        return _context(q.question, q.matches, [], lessons)


class ReflectUpdateMemory(MemoryMechanism):
    """The namespace's single, generalised lessons text (Reflect-Update).

    The text is rewritten after each episode by `reflect_update` (or
    `create_reflection_update_node`, or a `ReflectionQueue`) and read here
    with one store read; no model call. `build` raises `ConfigurationError`
    when the store holds no lessons and `MemoryStoreError` when it cannot be
    read.

    Args:
        max_chars: Trim the text to this many characters when showing it
            (default 1200, the update's own bound).

    Raises:
        ConfigurationError: `max_chars` is not a positive integer.
    """

    def __init__(self, *, max_chars: int = _LESSONS_CHARS) -> None:
        self.max_chars = check_count("max_chars", max_chars)

    def _step(self, q: _Query) -> _Step:
        text = yield from EpisodicMemory.of(q.store).get_lessons_step(q.namespace)
        shown = _trim_to_sentence(text, self.max_chars) if text else None
        return _context(q.question, q.matches, [], shown)
