"""Reflections written by the model: a lesson per episode, or lessons per namespace.

A failed reflection is reported in its `ReflectionResult`, never raised, and
leaves the stored lessons and episodes as they were.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import deque
from collections.abc import Generator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Literal, NamedTuple, Self, Unpack

from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.config import get_store
from langgraph.store.base import BaseStore
from typing_extensions import TypedDict

from langchain_speedup._internal import (
    Call,
    adrive,
    check_count,
    check_model,
    check_namespace,
    drive,
    model_call,
    step_node,
)
from langchain_speedup.budget import Ledger
from langchain_speedup.errors import (
    ConfigurationError,
    InvalidInputError,
    ModelError,
    SpeedupError,
)
from langchain_speedup.memory.store import EpisodicMemory, _check_tenant
from langchain_speedup.types import ChatRunnable

__all__ = [
    "ReflectionOptions",
    "ReflectionQueue",
    "ReflectionResult",
    "areflect",
    "areflect_update",
    "create_reflection_update_node",
    "reflect",
    "reflect_update",
]

logger = logging.getLogger(__name__)

Kind = Literal["reflect", "reflect_update"]

_LESSONS_CHARS = 1200
"""Default bound of a namespace's lessons text, in characters."""
_REFLECTION_CHARS = 400
"""Default bound of one episode's reflection, in characters."""

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


class ReflectionResult(TypedDict):
    """The outcome of one reflection; failures are reported, not raised."""

    kind: Kind
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


class ReflectionOptions(TypedDict, total=False):
    """The keyword options of `reflect` and `reflect_update` (and their async forms)."""

    namespace: str | None
    """The namespace written to; the episode's own `namespace` field when
    `None` (the default)."""
    max_chars: int
    """The text's bound, in characters, at least 40: by default 1200 for the
    lessons, 400 for a per-case reflection."""
    config: RunnableConfig | None
    """Passed to the model call, tagged with the `reflection` role."""
    ledger: Ledger | None
    """A `Ledger` to count the call in, besides `config`'s callbacks."""


# -- text ------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
_LIST_NUMBER = re.compile(r"\d+\.")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?|\n?```\s*$")


def _trim_to_sentence(text: str, max_chars: int) -> str:
    """`text` stripped, cut to `max_chars` at a sentence (else word) boundary."""
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


def _reflection_call(
    model: ChatRunnable,
    prompt: list[AnyMessage],
    config: RunnableConfig | None,
    ledger: Ledger | None,
) -> Call:
    """The model call, tagged with the `reflection` role any ledger reads."""
    # Without a ledger to count in, a throwaway one still adds the role tag.
    tagged = (ledger or Ledger()).config(config, role="reflection")
    return model_call(
        lambda: model.invoke(prompt, tagged),
        lambda: model.ainvoke(prompt, tagged),
        role="reflection",
    )


# -- one reflection ------------------------------------------------------------------


class _Job(NamedTuple):
    """A validated reflection, ready to run."""

    kind: Kind
    model: ChatRunnable
    memory: EpisodicMemory
    namespace: str
    episode_id: str | None
    case: str
    """The episode as the prompt shows it."""
    max_chars: int
    config: RunnableConfig | None
    ledger: Ledger | None


def _max_chars(kind: Kind, options: ReflectionOptions) -> int:
    """Check the options' names and return `max_chars`."""
    unknown = sorted(set(options) - set(ReflectionOptions.__annotations__))
    if unknown:
        msg = f"{kind} has no option {', '.join(f'`{u}`' for u in unknown)}"
        raise ConfigurationError(msg)
    default = _LESSONS_CHARS if kind == "reflect_update" else _REFLECTION_CHARS
    return check_count("max_chars", options.get("max_chars", default), minimum=40)


def _job(
    kind: Kind,
    model: ChatRunnable,
    episode: Mapping[str, Any],
    store: BaseStore | EpisodicMemory,
    options: ReflectionOptions,
) -> _Job:
    check_model(model)
    max_chars = _max_chars(kind, options)
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
    episode_id = str(raw_id) if raw_id is not None else None
    namespace = options.get("namespace")
    ns = _check_tenant(
        namespace if namespace is not None else episode.get("namespace", "default")
    )
    if kind == "reflect" and episode_id is None:
        msg = "the episode has no `id`, so its reflection cannot be stored"
        raise InvalidInputError(msg)
    outcome = (
        "verified (its answer was accepted)"
        if episode.get("verified")
        else "NOT verified (the answer may be wrong; learn what to check)"
    )
    case = (
        f"Question:\n{question.strip()}\n\nAnswer given:\n{answer.strip()}\n\n"
        f"Outcome: {outcome}"
    )
    config, ledger = options.get("config"), options.get("ledger")
    memory = EpisodicMemory.of(store)
    return _Job(kind, model, memory, ns, episode_id, case, max_chars, config, ledger)


def _prompt(job: _Job, old: str | None) -> list[AnyMessage]:
    if job.kind == "reflect":
        return [
            SystemMessage(_REFLECT_SYSTEM),
            HumanMessage(
                f"{job.case}\n\nWrite the lesson in at most {job.max_chars} "
                "characters. Reply with the lesson only."
            ),
        ]
    return [
        SystemMessage(_UPDATE_SYSTEM),
        HumanMessage(
            f"Current lessons:\n{old or '(none yet)'}\n\nNew case:\n{job.case}\n\n"
            "Rewrite the lessons so they also cover what this case teaches: "
            "merge, generalise and drop the least useful ones rather than "
            f"growing the list. At most {job.max_chars} characters. Reply with "
            "the lessons only."
        ),
    ]


def _result(job: _Job, text: str | None, error: str | None = None) -> ReflectionResult:
    """The outcome: `text` stored, or (with `error`, logged) the text still in force."""
    if error is not None:
        logger.warning(
            "%s for episode %s in namespace %r failed: %s",
            job.kind,
            job.episode_id,
            job.namespace,
            error,
        )
    return ReflectionResult(
        kind=job.kind,
        namespace=job.namespace,
        episode_id=job.episode_id,
        updated=error is None,
        text=text,
        error=error,
    )


def _step(job: _Job) -> Generator[Call, Any, ReflectionResult]:
    """Read the old lessons (Reflect-Update), ask the model, store its text."""
    memory, ns, update = job.memory, job.namespace, job.kind == "reflect_update"
    old: str | None = None
    if update:
        try:
            old = yield from memory.get_lessons_step(ns)
        except SpeedupError as e:
            return _result(job, None, f"reading the lessons failed: {e}")
    try:
        reply: BaseMessage = yield _reflection_call(
            job.model, _prompt(job, old), job.config, job.ledger
        )
    except SpeedupError as e:
        failed = f"the reflection model call failed: {e}"
        return _result(job, old, str(e) if isinstance(e, ModelError) else failed)
    text = _trim_to_sentence(_FENCE.sub("", reply.text.strip()), job.max_chars)
    if not text:
        what = "lessons text" if update else "text"
        return _result(job, old, f"the reflection model returned no {what}")
    try:
        if update:
            yield from memory.put_lessons_step(ns, text)
        else:
            yield from memory.set_reflection_step(ns, str(job.episode_id), text)
    except SpeedupError as e:
        what = "lessons" if update else "reflection"
        return _result(job, old, f"writing the {what} failed: {e}")
    return _result(job, text)


def reflect_update(
    model: ChatRunnable,
    episode: Mapping[str, Any],
    *,
    store: BaseStore | EpisodicMemory,
    **options: Unpack[ReflectionOptions],
) -> ReflectionResult:
    """Rewrite the namespace's lessons text with what one new episode teaches.

    One model call (role `reflection`) sees the old lessons and the episode
    (question, answer, whether it was verified) and returns the new lessons,
    which are stripped, trimmed to `max_chars` at a sentence boundary and
    stored in place of the old. `ReflectUpdateMemory` shows them. On any
    failure the old lessons stay as they were; the episode is never touched.
    Updates of one namespace read, then write: run them one at a time (a
    `ReflectionQueue` does).

    Example:
        ```python
        episode = EpisodicMemory(store).episodes("default")[-1]
        result = reflect_update(model, episode, store=store)
        print(result["updated"], result["text"])
        ```

    Args:
        model: The chat model that rewrites the lessons.
        episode: The new episode: an `Episode`, or any mapping with
            `question`, `answer` and `verified` (and optionally `id`).
        store: The LangGraph store the lessons live in (or its `EpisodicMemory`).
        **options: See `ReflectionOptions`; `max_chars` defaults to 1200.

    Returns:
        The outcome: `updated` and the new `text`, or `updated=False`, the
        previous lessons as `text` and the `error` that stopped the update.

    Raises:
        ConfigurationError: `model` is not a runnable, an option is unknown,
            `max_chars` is below 40, or `store` is no LangGraph store.
        InvalidInputError: The episode has no question or answer text, or the
            namespace is not a non-empty string.
    """
    return drive(_step(_job("reflect_update", model, episode, store, options)))


async def areflect_update(
    model: ChatRunnable,
    episode: Mapping[str, Any],
    *,
    store: BaseStore | EpisodicMemory,
    **options: Unpack[ReflectionOptions],
) -> ReflectionResult:
    """Async form of `reflect_update`."""
    return await adrive(_step(_job("reflect_update", model, episode, store, options)))


def reflect(
    model: ChatRunnable,
    episode: Mapping[str, Any],
    *,
    store: BaseStore | EpisodicMemory,
    **options: Unpack[ReflectionOptions],
) -> ReflectionResult:
    """Write one short reflection from one stored episode onto that episode.

    One model call (role `reflection`); the reply, trimmed to `max_chars`, is
    stored as the episode's `reflection` field, which `ReflectMemory` shows
    for similar questions later. On failure the episode stays as it was.

    Args:
        model: The chat model that writes the reflection.
        episode: The stored episode (`id`, `question`, `answer`, `verified`).
        store: The LangGraph store holding the episode (or its `EpisodicMemory`).
        **options: See `ReflectionOptions`; `max_chars` defaults to 400.

    Returns:
        The outcome, with the reflection as `text` when `updated`.

    Raises:
        ConfigurationError: `model` is not a runnable, an option is unknown,
            `max_chars` is below 40, or `store` is no LangGraph store.
        InvalidInputError: The episode has no id, question or answer, or the
            namespace is not a non-empty string.
    """
    return drive(_step(_job("reflect", model, episode, store, options)))


async def areflect(
    model: ChatRunnable,
    episode: Mapping[str, Any],
    *,
    store: BaseStore | EpisodicMemory,
    **options: Unpack[ReflectionOptions],
) -> ReflectionResult:
    """Async form of `reflect`."""
    return await adrive(_step(_job("reflect", model, episode, store, options)))


# -- in the background ---------------------------------------------------------------


class ReflectionQueue:
    """Runs reflections on one worker thread, one at a time, in order.

    Submitting returns at once, so the answer goes back to the user before
    the lessons are rewritten; two updates of a namespace never interleave
    their read and write. A failed update is logged and counted in `failed`;
    the episode and the previous lessons stay as they were. Close the queue
    (or use it as a context manager) to finish the queued updates.

    Example:
        ```python
        with ReflectionQueue(model, store=store) as queue:
            answer = router.solve(question)
            queue.submit(EpisodicMemory(store).episodes("default")[-1])
        # leaving the block finishes the queued updates
        ```

    Args:
        model: The chat model that writes the reflections.
        store: Where the lessons (and reflections) live.
        mode: `"reflect_update"` (default) rewrites the namespace's lessons;
            `"reflect"` writes a per-case reflection onto each episode.
        max_results: How many recent results `results` keeps.
        **options: Passed to each reflection (see `ReflectionOptions`).

    Raises:
        ConfigurationError: `model` is not a runnable, an option is unknown
            or invalid, or `store` is no LangGraph store.
    """

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        store: BaseStore | EpisodicMemory,
        mode: Kind = "reflect_update",
        max_results: int = 100,
        **options: Unpack[ReflectionOptions],
    ) -> None:
        if mode not in ("reflect_update", "reflect"):
            msg = f"`mode` must be 'reflect_update' or 'reflect', got {mode!r}"
            raise ConfigurationError(msg)
        check_model(model)
        _max_chars(mode, options)
        self.model = model
        self.memory = EpisodicMemory.of(store)
        self.mode = mode
        self.options = options
        self.completed = 0
        """Updates that stored new text."""
        self.failed = 0
        """Updates that failed (logged); nothing was lost."""
        self.results: deque[ReflectionResult] = deque(
            maxlen=check_count("max_results", max_results)
        )
        """The most recent outcomes, oldest first."""
        self._pending = 0
        self._closed = False
        self._last: Future[None] | None = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="speedup-reflection")

    @property
    def pending(self) -> int:
        """Submitted updates not finished yet."""
        with self._lock:
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
                question or answer (or, in `"reflect"` mode, an id).
        """
        options: ReflectionOptions = {**self.options}
        if namespace is not None:
            options["namespace"] = namespace
        job = _job(self.mode, self.model, episode, self.memory, options)
        with self._lock:
            if self._closed:
                msg = "the reflection queue is closed"
                raise InvalidInputError(msg)
            self._pending += 1
            self._last = self._executor.submit(self._run, job)

    def _run(self, job: _Job) -> None:
        try:
            result: ReflectionResult | None = drive(_step(job))
        except Exception as e:
            logger.warning("a background reflection failed: %s", e, exc_info=True)
            result = None
        # Counted before the job's future completes, so `flush` sees the counts.
        with self._lock:
            if result is not None:
                self.results.append(result)
            if result is not None and result["updated"]:
                self.completed += 1
            else:
                self.failed += 1
            self._pending -= 1

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted update has finished.

        Args:
            timeout: The most seconds to wait; no limit when `None`.

        Returns:
            Whether the queue drained within `timeout`.
        """
        with self._lock:
            last = self._last
        # One worker runs jobs in order: the last one done means all are.
        return last is None or not wait([last], timeout).not_done

    async def aflush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Async form of `flush` (waits in a worker thread)."""
        return await asyncio.to_thread(self.flush, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Stop taking updates, finish the queued ones and stop the worker.

        Args:
            timeout: The most seconds to wait; no limit when `None`.

        Returns:
            Whether every queued update finished within `timeout`; the ones
            left still run.
        """
        with self._lock:
            self._closed = True
        drained = self.flush(timeout)
        self._executor.shutdown(wait=drained)
        return drained

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the LangGraph node --------------------------------------------------------------


def _episode_of(state: Mapping[str, Any]) -> dict[str, Any] | None:
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
        "question": speedup["question"],
        "answer": speedup["answer"],
        "verified": verified,
    }


def create_reflection_update_node(
    model: ChatRunnable,
    /,
    *,
    store: BaseStore | EpisodicMemory | None = None,
    namespace: str = "default",
    max_chars: int = _LESSONS_CHARS,
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
        store: The LangGraph store the lessons live in; the graph's runtime
            store (`compile(store=...)`, a deployment's store) when `None`.
        namespace: Whose lessons (the router's namespace).
        max_chars: The lessons' bound, in characters (default 1200).
        name: The node's run name.
        queue: Run updates in this background queue instead of in the node.

    Returns:
        A runnable with sync and async paths.

    Raises:
        ConfigurationError: `model` is not a runnable, `max_chars` is below
            40, `store` is no LangGraph store, or `namespace` is invalid.
    """
    check_model(model)
    max_chars = check_count("max_chars", max_chars, minimum=40)
    memory = None if store is None else EpisodicMemory.of(store)
    check_namespace(namespace)

    def update(
        state: Mapping[str, Any], config: RunnableConfig
    ) -> Generator[Call, Any, dict[str, Any]]:
        episode = _episode_of(state)
        if episode is None:
            return {}
        if queue is not None:
            queue.submit(episode, namespace=namespace)
            return {}
        options = ReflectionOptions(
            namespace=namespace, max_chars=max_chars, config=config
        )
        runtime = get_store() if memory is None else None
        if memory is None and runtime is None:
            msg = (
                "the reflection node has no store: give it `store=`, or compile "
                "its graph with one (`compile(store=...)`)"
            )
            raise ConfigurationError(msg)
        job = _job("reflect_update", model, episode, memory or runtime, options)  # type: ignore[arg-type]
        return {"reflection": (yield from _step(job))}

    return step_node(name, update)
