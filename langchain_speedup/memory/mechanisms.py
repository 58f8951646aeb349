"""Memory mechanisms: how retrieved episodes become the memory a method sees.

A `MemoryMechanism` takes the question, the verified episodes retrieved as
similar to it, and the store, and builds the `MemoryContext` given to the
scaling method. The paper's memory methods, as textual memories:

| mechanism | what the method sees | extra model calls |
|---|---|---|
| `InContextMemory` | similar episodes as solved exemplars, under a token budget | 0 |
| `ReflectMemory` | the stored per-case reflections of similar episodes, as lessons | 0 (reflections are written by `reflect`) |
| `MultiCaseReflectMemory` | one reflection distilled from several similar episodes, as lessons | 1 per question (role `reflection`) |
| `ReflectUpdateMemory` | the namespace's single lessons text | 0 (the text is rewritten by `reflect_update`) |

Every mechanism also fills `precedents` (the verified final answers of the
same problem reworded), which only the scorer reads. Lessons go into the
system message (`build_prompt`'s `lessons`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from langchain_speedup._internal import message_text, raise_model_error
from langchain_speedup.answers import same_problem
from langchain_speedup.budget import Ledger
from langchain_speedup.errors import ConfigurationError, SpeedupError
from langchain_speedup.memory.episodes import EpisodeMatch
from langchain_speedup.memory.reflection import (
    DEFAULT_MAX_LESSONS_CHARS,
    LessonsStore,
    reflection_config,
    trim_to_sentence,
)
from langchain_speedup.memory.store import EpisodicStore
from langchain_speedup.scaling._common import ChatRunnable
from langchain_speedup.scaling.base import Exemplar, MemoryContext
from langchain_speedup.tokens import count_tokens

__all__ = [
    "InContextMemory",
    "MemoryMechanism",
    "MultiCaseReflectMemory",
    "ReflectMemory",
    "ReflectUpdateMemory",
    "precedents_of_matches",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class MemoryMechanism(Protocol):
    """Builds the memory a scaling method sees for one question."""

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


def precedents_of_matches(question: str, matches: Sequence[EpisodeMatch]) -> list[str]:
    """The verified final answers of matches that are the same problem reworded.

    Args:
        question: The question being answered.
        matches: The retrieved episodes.

    Returns:
        The distinct final answers, sorted.
    """
    return sorted(
        {
            m["episode"]["final_answer"]
            for m in matches
            if m["episode"].get("verified")
            and m["episode"]["final_answer"] is not None
            and same_problem(question, m["episode"]["question"])
        }
    )


def _verified_by_similarity(matches: Sequence[EpisodeMatch]) -> list[EpisodeMatch]:
    # Most similar first; search returns only verified episodes, but a custom
    # store or caller may not.
    return sorted(
        (m for m in matches if m["episode"].get("verified")),
        key=lambda m: m["similarity"],
        reverse=True,
    )


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"`{name}` must be an integer >= 1, got {value!r}"
        raise ConfigurationError(msg)
    return value


def _context(
    question: str,
    matches: Sequence[EpisodeMatch],
    exemplars: list[Exemplar],
    lessons: str | None,
) -> MemoryContext:
    memory = MemoryContext(
        exemplars=exemplars, precedents=precedents_of_matches(question, matches)
    )
    if lessons:
        memory["lessons"] = lessons
    return memory


class InContextMemory:
    """Similar verified episodes as exemplars, under a token budget.

    The paper's strongest memory. The most similar episodes are taken first,
    at most `max_exemplars`, while their questions and solutions fit in
    `max_tokens` (an episode that does not fit is skipped for a smaller one);
    they are shown most similar last, nearest the question.

    Args:
        max_exemplars: Most exemplars per question (default 2).
        max_tokens: Most tokens the exemplars' questions and solutions may
            take together, counted with `langchain_speedup.tokens.count_tokens`
            (default 600).

    Raises:
        ConfigurationError: A bound is not a positive integer.
    """

    def __init__(self, *, max_exemplars: int = 2, max_tokens: int = 600) -> None:
        self.max_exemplars = _positive("max_exemplars", max_exemplars)
        self.max_tokens = _positive("max_tokens", max_tokens)

    def select(self, matches: Sequence[EpisodeMatch]) -> list[EpisodeMatch]:
        """The matches shown, most similar last.

        Args:
            matches: The retrieved episodes.

        Returns:
            The chosen matches, in prompt order.
        """
        chosen: list[EpisodeMatch] = []
        spent = 0
        for match in _verified_by_similarity(matches):
            if len(chosen) == self.max_exemplars:
                break
            episode = match["episode"]
            cost = count_tokens(episode["question"]) + count_tokens(episode["answer"])
            if spent + cost > self.max_tokens:
                continue
            chosen.append(match)
            spent += cost
        return chosen[::-1]

    def build(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: EpisodicStore,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """Exemplars from the most similar verified episodes (no model call)."""
        exemplars = [
            Exemplar(question=m["episode"]["question"], solution=m["episode"]["answer"])
            for m in self.select(matches)
        ]
        return _context(question, matches, exemplars, None)

    async def abuild(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: EpisodicStore,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """Async form of `build` (no I/O)."""
        return self.build(
            question, matches, store=store, namespace=namespace, config=config
        )


class ReflectMemory:
    """The stored reflections of similar episodes, as a lessons note.

    Each episode's `reflection` is written by `reflect` (or a
    `ReflectionQueue` in `"reflect"` mode). The reflections of the most
    similar verified episodes that have one are joined, most similar first,
    within `max_chars`. No exemplars are shown.

    Args:
        max_cases: Most reflections per question (default 3).
        max_chars: The lessons note's bound, in characters (default 1200).

    Raises:
        ConfigurationError: A bound is not a positive integer.
    """

    def __init__(
        self, *, max_cases: int = 3, max_chars: int = DEFAULT_MAX_LESSONS_CHARS
    ) -> None:
        self.max_cases = _positive("max_cases", max_cases)
        self.max_chars = _positive("max_chars", max_chars)

    def lessons(self, matches: Sequence[EpisodeMatch]) -> str | None:
        """The lessons note for these matches, or `None` when none has a reflection.

        Args:
            matches: The retrieved episodes.

        Returns:
            One reflection per line, most similar first, within `max_chars`.
        """
        lines: list[str] = []
        size = 0
        for match in _verified_by_similarity(matches):
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

    def build(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: EpisodicStore,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """Lessons from the similar episodes' reflections (no model call)."""
        return _context(question, matches, [], self.lessons(matches))

    async def abuild(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: EpisodicStore,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """Async form of `build` (no I/O)."""
        return self.build(
            question, matches, store=store, namespace=namespace, config=config
        )


_DISTILL_SYSTEM = (
    "You distil general lessons from several solved problems: strategies, "
    "checks and pitfalls that would help with a new, similar problem. Never "
    "copy a problem's numbers or final answer into the lessons."
)


class MultiCaseReflectMemory:
    """One reflection distilled from several similar episodes at once.

    For each question with similar verified episodes, one model call (tagged
    role `reflection`, so a `Ledger` counts it apart from the solver) reads
    up to `max_cases` of them and writes the lessons note, trimmed to
    `max_chars` at a sentence boundary. Costs one call per question that has
    matches. If the call fails or returns nothing, the question is solved
    without lessons and the failure is logged, unless `strict`.

    Args:
        model: The chat model that distils the lessons.
        max_cases: Most episodes per reflection (default 3).
        max_chars: The note's bound, in characters (default 1200).
        ledger: A `Ledger` to count the reflection calls in.
        strict: Raise `ModelError` when the call fails instead of going on
            without lessons.

    Raises:
        ConfigurationError: A bound is not a positive integer.
    """

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        max_cases: int = 3,
        max_chars: int = DEFAULT_MAX_LESSONS_CHARS,
        ledger: Ledger | None = None,
        strict: bool = False,
    ) -> None:
        self.model = model
        self.max_cases = _positive("max_cases", max_cases)
        self.max_chars = _positive("max_chars", max_chars)
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
        cases = _verified_by_similarity(matches)[: self.max_cases]
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

    def _lessons(self, raw: str) -> str | None:
        text = trim_to_sentence(raw, self.max_chars)
        if not text:
            logger.warning("the multi-case reflection returned no text; no lessons")
        return text or None

    def _failed(self, error: Exception) -> None:
        try:
            raise_model_error(error, role="reflection")
        except SpeedupError as e:
            if self.strict:
                raise
            logger.warning("multi-case reflection failed, no lessons: %s", e)

    def build(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: EpisodicStore,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """Lessons distilled from the similar episodes by one model call.

        Raises:
            ModelError: The call failed and `strict` is set.
        """
        prompt = self.prompt(question, matches)
        lessons = None
        if prompt is not None:
            try:
                reply = self.model.invoke(
                    prompt, reflection_config(config, ledger=self.ledger)
                )
                lessons = self._lessons(message_text(reply))
            except Exception as e:  # noqa: BLE001 - `_failed` re-raises what must pass
                self._failed(e)
        return _context(question, matches, [], lessons)

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
        prompt = self.prompt(question, matches)
        lessons = None
        if prompt is not None:
            try:
                reply = await self.model.ainvoke(
                    prompt, reflection_config(config, ledger=self.ledger)
                )
                lessons = self._lessons(message_text(reply))
            except Exception as e:  # noqa: BLE001 - `_failed` re-raises what must pass
                self._failed(e)
        return _context(question, matches, [], lessons)


class ReflectUpdateMemory:
    """The namespace's single, generalised lessons text (Reflect-Update).

    The paper's best reflection memory. The text is rewritten after each
    episode by `reflect_update` (or `create_reflection_update_node`, or a
    `ReflectionQueue`) and read here with one store read; no model call.

    Args:
        max_chars: Trim the text to this many characters when showing it
            (default 1200, the update's own bound).

    Raises:
        ConfigurationError: `max_chars` is not a positive integer.
    """

    def __init__(self, *, max_chars: int = DEFAULT_MAX_LESSONS_CHARS) -> None:
        self.max_chars = _positive("max_chars", max_chars)

    @staticmethod
    def _store(store: EpisodicStore) -> LessonsStore:
        if not isinstance(store, LessonsStore):
            msg = (
                "ReflectUpdateMemory needs a store that holds lessons "
                f"(`get_lessons`), got {type(store).__name__}"
            )
            raise ConfigurationError(msg)
        return store

    def _lessons(self, text: str | None) -> str | None:
        return trim_to_sentence(text, self.max_chars) or None if text else None

    def build(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        store: EpisodicStore,
        namespace: str,
        config: RunnableConfig | None = None,
    ) -> MemoryContext:
        """The stored lessons text as the lessons note.

        Raises:
            ConfigurationError: The store holds no lessons.
            MemoryStoreError: The store could not be read.
        """
        text = self._store(store).get_lessons(namespace)
        return _context(question, matches, [], self._lessons(text))

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
        text = await self._store(store).aget_lessons(namespace)
        return _context(question, matches, [], self._lessons(text))
