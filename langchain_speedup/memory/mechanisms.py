"""Memory mechanisms: how retrieved episodes become the memory a method sees."""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from langchain_speedup._internal import Call, adrive, check_count, drive
from langchain_speedup.answers import same_problem
from langchain_speedup.budget import Ledger
from langchain_speedup.errors import SpeedupError
from langchain_speedup.memory.reflection import (
    _LESSONS_CHARS,
    _reflection_call,
    _store_for,
    _trim_to_sentence,
)
from langchain_speedup.memory.store import EpisodicStore
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


@runtime_checkable
class MemoryMechanism(Protocol):
    """Builds the memory a scaling method sees for one question.

    Every mechanism fills `precedents` (the verified final answers of the
    same problem reworded, which only the scorer reads); what else it shows
    (exemplars, or lessons in the system message) is its own.
    """

    def build(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: EpisodicStore,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """Build the memory for `question`.

        Args:
            question: The question being answered.
            matches: Verified episodes similar to it, in any order.
            store: The episodic store they came from.
            namespace: The tenant whose memory is read.
            config: Passed to any model call the mechanism makes.

        Returns:
            The memory to solve with.
        """
        ...

    async def abuild(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: EpisodicStore,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """Async form of `build`."""
        ...


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
    precedents = {
        m["episode"]["final_answer"]
        for m in matches
        if m["episode"].get("verified")
        and m["episode"]["final_answer"] is not None
        and same_problem(question, m["episode"]["question"])
    }
    memory = MemoryContext(exemplars=exemplars, precedents=sorted(precedents))
    if lessons:
        memory["lessons"] = lessons
    return memory


class _Query(NamedTuple):
    """The arguments of `MemoryMechanism.build`."""

    question: str
    matches: Sequence[EpisodeMatch]
    store: EpisodicStore
    namespace: str
    config: RunnableConfig | None


class _Mechanism:
    """`build` and `abuild` run the mechanism's one `_step`."""

    def _step(self, q: _Query) -> Generator[Call, Any, MemoryContext]:
        raise NotImplementedError

    def build(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: EpisodicStore,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """Build the memory for `question` (see `MemoryMechanism.build`)."""
        return drive(self._step(_Query(question, matches, store, namespace, config)))

    async def abuild(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: EpisodicStore,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """Async form of `build`."""
        step = self._step(_Query(question, matches, store, namespace, config))
        return await adrive(step)


class InContextMemory(_Mechanism):
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

    def select(self, matches: Sequence[EpisodeMatch]) -> list[EpisodeMatch]:
        """The matches shown, most similar last.

        Args:
            matches: The retrieved episodes.

        Returns:
            The chosen matches, in prompt order.
        """
        chosen: list[EpisodeMatch] = []
        spent = 0
        for match in _by_similarity(matches):
            if len(chosen) == self.max_exemplars:
                break
            episode = match["episode"]
            cost = count_tokens(episode["question"]) + count_tokens(episode["answer"])
            if spent + cost <= self.max_tokens:
                chosen.append(match)
                spent += cost
        return chosen[::-1]

    def _step(self, q: _Query) -> Generator[Call, Any, MemoryContext]:
        yield from ()
        exemplars = [
            Exemplar(question=m["episode"]["question"], solution=m["episode"]["answer"])
            for m in self.select(q.matches)
        ]
        return _context(q.question, q.matches, exemplars, None)


class ReflectMemory(_Mechanism):
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

    def lessons(self, matches: Sequence[EpisodeMatch]) -> str | None:
        """The lessons note for these matches, or `None` when none has a reflection.

        Args:
            matches: The retrieved episodes.

        Returns:
            One reflection per line, most similar first, within `max_chars`.
        """
        lines: list[str] = []
        size = 0
        for match in _by_similarity(matches):
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
        return "\n".join(lines) or None

    def _step(self, q: _Query) -> Generator[Call, Any, MemoryContext]:
        yield from ()
        return _context(q.question, q.matches, [], self.lessons(q.matches))


class MultiCaseReflectMemory(_Mechanism):
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
        self.model = model
        self.max_cases = check_count("max_cases", max_cases)
        self.max_chars = check_count("max_chars", max_chars)
        self.ledger = ledger
        self.strict = bool(strict)

    def prompt(
        self, question: str, matches: Sequence[EpisodeMatch]
    ) -> list[AnyMessage] | None:
        """The distilling prompt, or `None` when no verified match is given.

        Args:
            question: The new question (shown so lessons fit it).
            matches: The retrieved episodes.

        Returns:
            The messages of the one reflection call.
        """
        cases = _by_similarity(matches)[: self.max_cases]
        if not cases:
            return None
        shown = "\n\n".join(
            f"Case {i}:\nQuestion:\n{m['episode']['question']}\n"
            f"Verified solution:\n{m['episode']['answer']}"
            for i, m in enumerate(cases, start=1)
        )
        return [
            SystemMessage(_DISTILL_SYSTEM),
            HumanMessage(
                f"{shown}\n\nA new problem of this kind:\n{question}\n\n"
                "Write the lessons these cases teach for it, in at most "
                f"{self.max_chars} characters. Reply with the lessons only."
            ),
        ]

    def _step(self, q: _Query) -> Generator[Call, Any, MemoryContext]:
        prompt = self.prompt(q.question, q.matches)
        lessons = None
        if prompt is not None:
            try:
                reply: BaseMessage = yield _reflection_call(
                    self.model, prompt, q.config, self.ledger
                )
            except SpeedupError as e:
                if self.strict:
                    raise
                logger.warning("multi-case reflection failed, no lessons: %s", e)
            else:
                lessons = _trim_to_sentence(reply.text, self.max_chars) or None
                if lessons is None:
                    logger.warning(
                        "the multi-case reflection returned no text; no lessons"
                    )
        return _context(q.question, q.matches, [], lessons)


class ReflectUpdateMemory(_Mechanism):
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

    def _step(self, q: _Query) -> Generator[Call, Any, MemoryContext]:
        lessons, ns = _store_for("reflect_update", q.store), q.namespace
        text = yield Call(
            lambda: lessons.get_lessons(ns), lambda: lessons.aget_lessons(ns)
        )
        shown = _trim_to_sentence(text, self.max_chars) if text else None
        return _context(q.question, q.matches, [], shown or None)
