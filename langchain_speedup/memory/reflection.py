"""Reflection memories: per-case reflections and the Reflect-Update lessons.

Two textual memories built from past episodes by the model itself:

- **Reflect** (`reflect` / `areflect`): one short lesson written from one
  episode and stored on it, as its `reflection` field. `ReflectMemory` shows
  the reflections of similar episodes.
- **Reflect-Update** (`reflect_update` / `areflect_update`): one bounded,
  generalised lessons text per namespace, rewritten after each new episode
  from the old lessons and that episode. `ReflectUpdateMemory` shows it.

The lessons text lives in the episodic store's own collection as one special
point per namespace (see `QdrantEpisodicStore.get_lessons`), so it persists
with the episodes and never appears among them.

A reflection is a bonus, never a condition of answering: every failure (the
model call, an empty reply, the store) is reported in a `ReflectionResult`
with `updated=False` and leaves the previous lessons and every episode
untouched. Updates of one namespace are read-modify-write, so run them one at
a time; `ReflectionQueue` does, off the answer's hot path.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, Self, runtime_checkable

from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.runnables.config import ensure_config
from typing_extensions import TypedDict

from langchain_speedup._internal import message_text, raise_model_error
from langchain_speedup.budget import ROLE_TAG_PREFIX, Ledger
from langchain_speedup.errors import (
    ConfigurationError,
    InvalidInputError,
    ModelError,
    SpeedupError,
)
from langchain_speedup.scaling._common import ChatRunnable

__all__ = [
    "DEFAULT_MAX_LESSONS_CHARS",
    "DEFAULT_MAX_REFLECTION_CHARS",
    "LessonsStore",
    "ReflectionQueue",
    "ReflectionResult",
    "ReflectionStore",
    "areflect",
    "areflect_update",
    "create_reflection_update_node",
    "reflect",
    "reflect_update",
    "reflection_config",
    "trim_to_sentence",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_LESSONS_CHARS = 1200
"""Default bound of a namespace's lessons text, in characters."""

DEFAULT_MAX_REFLECTION_CHARS = 400
"""Default bound of one episode's reflection, in characters."""

_REFLECTION_TAG = f"{ROLE_TAG_PREFIX}reflection"

_UPDATE_SYSTEM = (
    "You keep a short list of general lessons for solving problems of this "
    "kind. Lessons are strategies, checks and pitfalls that carry over to new "
    "problems; never copy a problem's numbers or its final answer into them."
)
_REFLECT_SYSTEM = (
    "You write one short lesson from a solved problem: a strategy, check or "
    "pitfall that would help with similar problems. Do not restate the "
    "problem's numbers or its final answer."
)


@runtime_checkable
class LessonsStore(Protocol):
    """Holds one lessons text per namespace (`QdrantEpisodicStore` does)."""

    def get_lessons(self, namespace: str) -> str | None:
        """The namespace's lessons text, or `None`."""
        ...

    def put_lessons(self, namespace: str, text: str) -> None:
        """Store (or replace) the namespace's lessons text."""
        ...

    async def aget_lessons(self, namespace: str) -> str | None:
        """Async form of `get_lessons`."""
        ...

    async def aput_lessons(self, namespace: str, text: str) -> None:
        """Async form of `put_lessons`."""
        ...


@runtime_checkable
class ReflectionStore(Protocol):
    """Attaches per-case reflections to stored episodes (`QdrantEpisodicStore` does)."""

    def set_reflection(self, namespace: str, episode_id: str, text: str) -> None:
        """Store `text` as the episode's `reflection` field."""
        ...

    async def aset_reflection(self, namespace: str, episode_id: str, text: str) -> None:
        """Async form of `set_reflection`."""
        ...


class ReflectionResult(TypedDict):
    """The outcome of one reflection; failures are reported, not raised."""

    kind: Literal["reflect", "reflect_update"]
    namespace: str
    episode_id: str | None
    """The episode reflected on, when it has an id."""
    updated: bool
    """Whether new text was stored."""
    text: str | None
    """The text now in force: the new text when `updated`, else the previous
    lessons (or `None`) for Reflect-Update and `None` for Reflect."""
    error: str | None
    """What failed, when `updated` is false."""


# -- validation and prompts ------------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
_LIST_NUMBER = re.compile(r"\d+\.")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?|\n?```\s*$")


def trim_to_sentence(text: str, max_chars: int) -> str:
    """Trim `text` to at most `max_chars`, at a sentence boundary when possible.

    Args:
        text: The text to trim.
        max_chars: The most characters to keep.

    Returns:
        `text` stripped when it fits; else the longest prefix ending a
        sentence (or a line), else the longest prefix ending a word, else a
        hard cut.
    """
    text = text.strip()
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    ends = [
        m.end()
        for m in _SENTENCE_END.finditer(head)
        # A list item's number ("2.") alone on its line ends no sentence.
        if not _LIST_NUMBER.fullmatch(
            head[head.rfind("\n", 0, m.end()) + 1 : m.end()].strip()
        )
    ]
    # A boundary in the first quarter would throw most of the text away.
    if ends and ends[-1] >= max_chars // 4:
        return head[: ends[-1]].strip()
    space = head.rfind(" ")
    if space >= max_chars // 4:
        return head[:space].strip()
    return head.strip()


def _clean_output(raw: str, max_chars: int) -> str:
    text = _FENCE.sub("", raw.strip()).strip()
    return trim_to_sentence(text, max_chars) if text else ""


def _check_max_chars(max_chars: object) -> int:
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 40:
        msg = f"`max_chars` must be an integer >= 40, got {max_chars!r}"
        raise ConfigurationError(msg)
    return max_chars


def _case(episode: Mapping[str, Any]) -> tuple[str, str, bool, str | None]:
    if not isinstance(episode, Mapping):
        msg = f"an episode must be a mapping, got {type(episode).__name__}"
        raise InvalidInputError(msg)
    question, answer = episode.get("question"), episode.get("answer")
    if not isinstance(question, str) or not question.strip():
        msg = "the episode has no `question` text"
        raise InvalidInputError(msg)
    if not isinstance(answer, str):
        msg = "the episode has no `answer` text"
        raise InvalidInputError(msg)
    raw_id = episode.get("id")
    return (
        question.strip(),
        answer.strip(),
        bool(episode.get("verified")),
        (str(raw_id) if raw_id is not None else None),
    )


def _describe_case(question: str, answer: str, verified: bool) -> str:
    outcome = (
        "verified (its answer was accepted)"
        if verified
        else "NOT verified (the answer may be wrong; learn what to check)"
    )
    return f"Question:\n{question}\n\nAnswer given:\n{answer}\n\nOutcome: {outcome}"


def _update_prompt(
    old: str | None, question: str, answer: str, verified: bool, max_chars: int
) -> list[AnyMessage]:
    current = old if old else "(none yet)"
    return [
        SystemMessage(_UPDATE_SYSTEM),
        HumanMessage(
            f"Current lessons:\n{current}\n\nNew case:\n"
            f"{_describe_case(question, answer, verified)}\n\n"
            "Rewrite the lessons so they also cover what this case teaches: "
            "merge, generalise and drop the least useful ones rather than "
            f"growing the list. At most {max_chars} characters. Reply with "
            "the lessons only."
        ),
    ]


def _reflect_prompt(
    question: str, answer: str, verified: bool, max_chars: int
) -> list[AnyMessage]:
    return [
        SystemMessage(_REFLECT_SYSTEM),
        HumanMessage(
            f"{_describe_case(question, answer, verified)}\n\n"
            f"Write the lesson in at most {max_chars} characters. Reply with "
            "the lesson only."
        ),
    ]


def reflection_config(
    config: RunnableConfig | None = None, *, ledger: Ledger | None = None
) -> RunnableConfig:
    """A copy of `config` whose model calls count under the `reflection` role.

    Args:
        config: The caller's config; its callbacks (a `Ledger` among them)
            still see the call.
        ledger: A ledger to report to as well.

    Returns:
        The tagged config.
    """
    if ledger is not None:
        return ledger.config(config, role="reflection")
    base = ensure_config(config)
    tagged = RunnableConfig(**base)
    tagged["tags"] = [t for t in base.get("tags", []) if t != _REFLECTION_TAG] + [
        _REFLECTION_TAG
    ]
    return tagged


def _failure(
    kind: Literal["reflect", "reflect_update"],
    namespace: str,
    episode_id: str | None,
    previous: str | None,
    error: str,
) -> ReflectionResult:
    logger.warning(
        "%s for episode %s in namespace %r failed: %s",
        kind,
        episode_id,
        namespace,
        error,
    )
    return ReflectionResult(
        kind=kind,
        namespace=namespace,
        episode_id=episode_id,
        updated=False,
        text=previous,
        error=error,
    )


def _lessons_store(store: object) -> LessonsStore:
    if not isinstance(store, LessonsStore):
        msg = (
            "`store` must hold lessons (`get_lessons`/`put_lessons`, as "
            f"QdrantEpisodicStore does), got {type(store).__name__}"
        )
        raise ConfigurationError(msg)
    return store


def _reflection_store(store: object) -> ReflectionStore:
    if not isinstance(store, ReflectionStore):
        msg = (
            "`store` must hold reflections (`set_reflection`, as "
            f"QdrantEpisodicStore does), got {type(store).__name__}"
        )
        raise ConfigurationError(msg)
    return store


def _model_error(error: Exception) -> str:
    # `raise_model_error` lets interrupts and cancellation through, so they are
    # never reported as a failed update.
    try:
        raise_model_error(error, role="reflection")
    except ModelError as e:
        return str(e)
    except SpeedupError as e:
        return f"the reflection model call failed: {e}"


# -- Reflect-Update ------------------------------------------------------------------


def _prepare_update(
    episode: Mapping[str, Any], namespace: str | None, max_chars: int
) -> tuple[str, str, bool, str | None, str, int]:
    max_chars = _check_max_chars(max_chars)
    question, answer, verified, episode_id = _case(episode)
    ns = namespace if namespace is not None else episode.get("namespace", "default")
    if not isinstance(ns, str) or not ns.strip():
        msg = f"the namespace must be a non-empty string, got {ns!r}"
        raise InvalidInputError(msg)
    return question, answer, verified, episode_id, ns, max_chars


def reflect_update(
    model: ChatRunnable,
    episode: Mapping[str, Any],
    *,
    store: LessonsStore,
    namespace: str | None = None,
    max_chars: int = DEFAULT_MAX_LESSONS_CHARS,
    config: RunnableConfig | None = None,
    ledger: Ledger | None = None,
) -> ReflectionResult:
    """Rewrite the namespace's lessons text with what one new episode teaches.

    One model call (role `reflection`) sees the old lessons and the episode
    (question, answer, whether it was verified) and returns the new lessons,
    which are stripped, trimmed to `max_chars` at a sentence boundary and
    stored in place of the old. On any failure the old lessons stay as they
    were, and the episode is never touched.

    Args:
        model: The chat model that rewrites the lessons.
        episode: The new episode: an `Episode`, or any mapping with
            `question`, `answer` and `verified` (and optionally `id`).
        store: Where the lessons live, e.g. a `QdrantEpisodicStore`.
        namespace: Whose lessons; the episode's `namespace` when `None`.
        max_chars: The lessons' bound, in characters (default 1200).
        config: Passed to the model call, tagged with the `reflection` role.
        ledger: A `Ledger` to count the call in, besides `config`'s callbacks.

    Returns:
        The outcome: `updated` and the new `text`, or `updated=False`, the
        previous lessons as `text` and the `error` that stopped the update.

    Raises:
        ConfigurationError: `max_chars` is below 40, or `store` holds no lessons.
        InvalidInputError: The episode has no question or answer text.
    """
    question, answer, verified, episode_id, ns, max_chars = _prepare_update(
        episode, namespace, max_chars
    )
    lessons = _lessons_store(store)
    try:
        old = lessons.get_lessons(ns)
    except SpeedupError as e:
        return _failure(
            "reflect_update", ns, episode_id, None, f"reading the lessons failed: {e}"
        )
    prompt = _update_prompt(old, question, answer, verified, max_chars)
    try:
        reply = model.invoke(prompt, reflection_config(config, ledger=ledger))
    except Exception as e:  # noqa: BLE001 - reported in the result
        return _failure("reflect_update", ns, episode_id, old, _model_error(e))
    return _store_update(lessons, ns, episode_id, old, message_text(reply), max_chars)


def _store_update(
    lessons: LessonsStore,
    ns: str,
    episode_id: str | None,
    old: str | None,
    raw: str,
    max_chars: int,
) -> ReflectionResult:
    text = _clean_output(raw, max_chars)
    if not text:
        return _failure(
            "reflect_update",
            ns,
            episode_id,
            old,
            "the reflection model returned no lessons text",
        )
    try:
        lessons.put_lessons(ns, text)
    except SpeedupError as e:
        return _failure(
            "reflect_update", ns, episode_id, old, f"writing the lessons failed: {e}"
        )
    return ReflectionResult(
        kind="reflect_update",
        namespace=ns,
        episode_id=episode_id,
        updated=True,
        text=text,
        error=None,
    )


async def areflect_update(
    model: ChatRunnable,
    episode: Mapping[str, Any],
    *,
    store: LessonsStore,
    namespace: str | None = None,
    max_chars: int = DEFAULT_MAX_LESSONS_CHARS,
    config: RunnableConfig | None = None,
    ledger: Ledger | None = None,
) -> ReflectionResult:
    """Async form of `reflect_update`."""
    question, answer, verified, episode_id, ns, max_chars = _prepare_update(
        episode, namespace, max_chars
    )
    lessons = _lessons_store(store)
    try:
        old = await lessons.aget_lessons(ns)
    except SpeedupError as e:
        return _failure(
            "reflect_update", ns, episode_id, None, f"reading the lessons failed: {e}"
        )
    prompt = _update_prompt(old, question, answer, verified, max_chars)
    try:
        reply = await model.ainvoke(prompt, reflection_config(config, ledger=ledger))
    except Exception as e:  # noqa: BLE001 - reported in the result
        return _failure("reflect_update", ns, episode_id, old, _model_error(e))
    text = _clean_output(message_text(reply), max_chars)
    if not text:
        return _failure(
            "reflect_update",
            ns,
            episode_id,
            old,
            "the reflection model returned no lessons text",
        )
    try:
        await lessons.aput_lessons(ns, text)
    except SpeedupError as e:
        return _failure(
            "reflect_update", ns, episode_id, old, f"writing the lessons failed: {e}"
        )
    return ReflectionResult(
        kind="reflect_update",
        namespace=ns,
        episode_id=episode_id,
        updated=True,
        text=text,
        error=None,
    )


# -- Reflect (per case) --------------------------------------------------------------


def _prepare_reflect(
    episode: Mapping[str, Any], namespace: str | None, max_chars: int, store: object
) -> tuple[str, str, bool, str, str, int, ReflectionStore]:
    question, answer, verified, episode_id, ns, max_chars = _prepare_update(
        episode, namespace, max_chars
    )
    if episode_id is None:
        msg = "the episode has no `id`, so its reflection cannot be stored"
        raise InvalidInputError(msg)
    return (
        question,
        answer,
        verified,
        episode_id,
        ns,
        max_chars,
        _reflection_store(store),
    )


def _reflected(ns: str, episode_id: str, text: str) -> ReflectionResult:
    return ReflectionResult(
        kind="reflect",
        namespace=ns,
        episode_id=episode_id,
        updated=True,
        text=text,
        error=None,
    )


def reflect(
    model: ChatRunnable,
    episode: Mapping[str, Any],
    *,
    store: ReflectionStore,
    namespace: str | None = None,
    max_chars: int = DEFAULT_MAX_REFLECTION_CHARS,
    config: RunnableConfig | None = None,
    ledger: Ledger | None = None,
) -> ReflectionResult:
    """Write one short reflection from one stored episode onto that episode.

    One model call (role `reflection`); the reply, trimmed to `max_chars`, is
    stored as the episode's `reflection` field, which `ReflectMemory` shows
    for similar questions later. On failure the episode stays as it was.

    Args:
        model: The chat model that writes the reflection.
        episode: The stored episode (`id`, `question`, `answer`, `verified`).
        store: The store holding the episode, e.g. a `QdrantEpisodicStore`.
        namespace: The episode's namespace; its `namespace` field when `None`.
        max_chars: The reflection's bound, in characters (default 400).
        config: Passed to the model call, tagged with the `reflection` role.
        ledger: A `Ledger` to count the call in, besides `config`'s callbacks.

    Returns:
        The outcome, with the reflection as `text` when `updated`.

    Raises:
        ConfigurationError: `max_chars` is below 40, or `store` cannot hold
            reflections.
        InvalidInputError: The episode has no id, question or answer.
    """
    question, answer, verified, episode_id, ns, max_chars, target = _prepare_reflect(
        episode, namespace, max_chars, store
    )
    prompt = _reflect_prompt(question, answer, verified, max_chars)
    try:
        reply = model.invoke(prompt, reflection_config(config, ledger=ledger))
    except Exception as e:  # noqa: BLE001 - reported in the result
        return _failure("reflect", ns, episode_id, None, _model_error(e))
    text = _clean_output(message_text(reply), max_chars)
    if not text:
        return _failure(
            "reflect", ns, episode_id, None, "the reflection model returned no text"
        )
    try:
        target.set_reflection(ns, episode_id, text)
    except SpeedupError as e:
        return _failure(
            "reflect", ns, episode_id, None, f"writing the reflection failed: {e}"
        )
    return _reflected(ns, episode_id, text)


async def areflect(
    model: ChatRunnable,
    episode: Mapping[str, Any],
    *,
    store: ReflectionStore,
    namespace: str | None = None,
    max_chars: int = DEFAULT_MAX_REFLECTION_CHARS,
    config: RunnableConfig | None = None,
    ledger: Ledger | None = None,
) -> ReflectionResult:
    """Async form of `reflect`."""
    question, answer, verified, episode_id, ns, max_chars, target = _prepare_reflect(
        episode, namespace, max_chars, store
    )
    prompt = _reflect_prompt(question, answer, verified, max_chars)
    try:
        reply = await model.ainvoke(prompt, reflection_config(config, ledger=ledger))
    except Exception as e:  # noqa: BLE001 - reported in the result
        return _failure("reflect", ns, episode_id, None, _model_error(e))
    text = _clean_output(message_text(reply), max_chars)
    if not text:
        return _failure(
            "reflect", ns, episode_id, None, "the reflection model returned no text"
        )
    try:
        await target.aset_reflection(ns, episode_id, text)
    except SpeedupError as e:
        return _failure(
            "reflect", ns, episode_id, None, f"writing the reflection failed: {e}"
        )
    return _reflected(ns, episode_id, text)


# -- background updates --------------------------------------------------------------


class ReflectionQueue:
    """Runs Reflect-Update (and Reflect) calls on a worker thread, in order.

    Submitting returns at once, so the answer goes back to the user before
    the lessons are rewritten. One worker runs the updates one at a time, so
    two updates of a namespace never interleave their read and write. A
    failed update is logged and counted in `failed`; the episode and the
    previous lessons stay as they were.

    Example:
        ```python
        with ReflectionQueue(model, store=store) as queue:
            answer = router.solve(question)
            queue.submit(store.episodes("default")[-1])
        # leaving the block flushes and stops the worker
        ```

    Args:
        model: The chat model that rewrites the lessons.
        store: Where the lessons (and reflections) live.
        namespace: Default namespace; each episode's own when `None`.
        max_chars: The lessons' bound, in characters (default 1200).
        config: Passed to every model call.
        ledger: A `Ledger` to count the calls in.
        mode: `"reflect_update"` (default) rewrites the namespace's lessons;
            `"reflect"` writes a per-case reflection onto each episode.
        max_results: How many recent results `results` keeps.

    Raises:
        ConfigurationError: `max_chars` or `mode` is invalid, or `store` cannot
            hold what `mode` writes.
    """

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        store: LessonsStore | ReflectionStore,
        namespace: str | None = None,
        max_chars: int = DEFAULT_MAX_LESSONS_CHARS,
        config: RunnableConfig | None = None,
        ledger: Ledger | None = None,
        mode: Literal["reflect_update", "reflect"] = "reflect_update",
        max_results: int = 100,
    ) -> None:
        self._max_chars = _check_max_chars(max_chars)
        if mode == "reflect_update":
            _lessons_store(store)
        elif mode == "reflect":
            _reflection_store(store)
        else:
            msg = f"`mode` must be 'reflect_update' or 'reflect', got {mode!r}"
            raise ConfigurationError(msg)
        self.model = model
        self.store = store
        self.namespace = namespace
        self.mode = mode
        self.config = config
        self.ledger = ledger
        self.completed = 0
        """Updates that stored new text."""
        self.failed = 0
        """Updates that failed (logged); nothing was lost."""
        self.results: deque[ReflectionResult] = deque(maxlen=max_results)
        """The most recent outcomes, oldest first."""
        self._jobs: deque[Callable[[], ReflectionResult]] = deque()
        self._pending = 0
        self._closed = False
        self._cond = threading.Condition()
        self._worker = threading.Thread(
            target=self._run, name="speedup-reflection", daemon=True
        )
        self._worker.start()

    @property
    def pending(self) -> int:
        """Submitted updates not finished yet."""
        with self._cond:
            return self._pending

    def submit(
        self, episode: Mapping[str, Any], *, namespace: str | None = None
    ) -> None:
        """Queue one update for `episode` and return at once.

        Args:
            episode: The new episode (see `reflect_update`).
            namespace: Whose lessons; the queue's, else the episode's, when
                `None`.

        Raises:
            InvalidInputError: The queue is closed, or the episode lacks a
                question or answer.
        """
        _case(episode)
        ns = namespace if namespace is not None else self.namespace
        episode = dict(episode)
        if self.mode == "reflect":

            def job() -> ReflectionResult:
                return reflect(
                    self.model,
                    episode,
                    store=self.store,  # type: ignore[arg-type]
                    namespace=ns,
                    max_chars=min(self._max_chars, DEFAULT_MAX_REFLECTION_CHARS),
                    config=self.config,
                    ledger=self.ledger,
                )

        else:

            def job() -> ReflectionResult:
                return reflect_update(
                    self.model,
                    episode,
                    store=self.store,  # type: ignore[arg-type]
                    namespace=ns,
                    max_chars=self._max_chars,
                    config=self.config,
                    ledger=self.ledger,
                )

        with self._cond:
            if self._closed:
                msg = "the reflection queue is closed"
                raise InvalidInputError(msg)
            self._jobs.append(job)
            self._pending += 1
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            try:
                result = job()
            except Exception as e:
                logger.warning("a background reflection failed: %s", e, exc_info=True)
                result = None
            with self._cond:
                if result is not None:
                    self.results.append(result)
                if result is not None and result["updated"]:
                    self.completed += 1
                else:
                    self.failed += 1
                self._pending -= 1
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted update has finished.

        Args:
            timeout: The most seconds to wait; no limit when `None`.

        Returns:
            Whether the queue drained within `timeout`.
        """
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout=timeout)

    async def aflush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Async form of `flush` (waits in a worker thread)."""
        return await asyncio.to_thread(self.flush, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Stop taking updates, finish the queued ones and stop the worker.

        Args:
            timeout: The most seconds to wait; no limit when `None`.

        Returns:
            Whether every queued update finished within `timeout`.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout)
        return not self._worker.is_alive()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the LangGraph node --------------------------------------------------------------


def _episode_of(state: Mapping[str, Any], namespace: str) -> dict[str, Any] | None:
    speedup = state.get("speedup") if isinstance(state, Mapping) else None
    if not speedup or not speedup.get("episode_id"):
        # Nothing to learn from: a reused answer, or an episode not stored.
        return None
    result = speedup.get("result")
    verified = bool(
        result and result.get("passed") and speedup.get("final_answer") is not None
    )
    return {
        "id": speedup["episode_id"],
        "namespace": namespace,
        "question": speedup["question"],
        "answer": speedup["answer"],
        "final_answer": speedup.get("final_answer"),
        "verified": verified,
    }


def create_reflection_update_node(
    model: ChatRunnable,
    /,
    *,
    store: LessonsStore,
    namespace: str = "default",
    max_chars: int = DEFAULT_MAX_LESSONS_CHARS,
    name: str = "reflect",
    queue: ReflectionQueue | None = None,
) -> RunnableLambda[Any, dict[str, Any]]:
    """A LangGraph node that updates the lessons after a speedup answer.

    Add it after the speedup graph in a parent graph whose state holds
    `speedup` (a `SpeedupResult`). When `speedup.episode_id` names a stored
    episode, one Reflect-Update call rewrites the namespace's lessons and the
    node returns `{"reflection": ReflectionResult}`; declare
    `reflection: NotRequired[ReflectionResult]` in the parent state to keep
    it. A reused answer (no new episode) updates nothing and returns `{}`.
    With `queue`, the update is submitted there and the node returns `{}` at
    once, so the graph ends without waiting for the model.

    Example:
        ```python
        builder = StateGraph(State)
        builder.add_node("speedup", create_speedup_graph(model, store=store))
        builder.add_node("reflect", create_reflection_update_node(model, store=store))
        builder.add_edge(START, "speedup")
        builder.add_edge("speedup", "reflect")
        ```

    Args:
        model: The chat model that rewrites the lessons.
        store: Where the lessons live, e.g. the speedup graph's store.
        namespace: Whose lessons (the router's namespace).
        max_chars: The lessons' bound, in characters (default 1200).
        name: The node's run name.
        queue: Run updates in this background queue instead of in the node.

    Returns:
        A runnable with sync and async paths.

    Raises:
        ConfigurationError: `max_chars` is below 40 or `store` holds no lessons.
    """
    max_chars = _check_max_chars(max_chars)
    lessons = _lessons_store(store)
    if not isinstance(namespace, str) or not namespace.strip():
        msg = f"`namespace` must be a non-empty string, got {namespace!r}"
        raise ConfigurationError(msg)

    def node(state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        episode = _episode_of(state, namespace)
        if episode is None:
            return {}
        if queue is not None:
            queue.submit(episode, namespace=namespace)
            return {}
        result = reflect_update(
            model,
            episode,
            store=lessons,
            namespace=namespace,
            max_chars=max_chars,
            config=config,
        )
        return {"reflection": result}

    async def anode(state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        episode = _episode_of(state, namespace)
        if episode is None:
            return {}
        if queue is not None:
            queue.submit(episode, namespace=namespace)
            return {}
        result = await areflect_update(
            model,
            episode,
            store=lessons,
            namespace=namespace,
            max_chars=max_chars,
            config=config,
        )
        return {"reflection": result}

    return RunnableLambda(node, afunc=anode, name=name)
