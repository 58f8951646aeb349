"""The package's memory in any LangGraph `BaseStore`: its layout and its guarantees.

Every record of a tenant `t` (the router's `namespace`) lives under
`("speedup", t, ...)`:

| namespace                       | key                     | value                       | indexed    |
|---------------------------------|-------------------------|-----------------------------|------------|
| `("speedup", t, "episodes")`    | the episode's id        | the episode                 | `question` |
| `("speedup", t, "reflections")` | the episode's id        | `{"reflection": text}`      | no         |
| `("speedup", t, "reuse")`       | SHA-256 of question key | `{"episode_id": id}`        | no         |
| `("speedup", t, "votes")`       | SHA-256 of question key | unverified attempts' votes  | no         |
| `("speedup", t, "lessons")`     | `"lessons"`             | `{"lessons": text, ...}`    | no         |
| `("speedup", t, "outcomes")`    | `"outcomes"`            | the gate's outcome totals   | no         |

Only the question is embedded, once, when its episode is written: a
reflection lives apart so that attaching one re-embeds nothing. Exact-repeat
reuse is two key lookups (the pointer, then the episode), whatever the
store's size; the pointer is written for verified episodes only, names the
newest, and its episode is checked again when read. The final answers that
unverified attempts at a question stated are kept under the same key
(`votes`, per episode, the newest `MAX_VOTED_ATTEMPTS`), so that asking it
again counts them as votes. The gate's outcomes are kept as running
totals, updated with each episode, so a new router calibrates from one read.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, NoReturn, cast

from langchain_core.embeddings import Embeddings
from langgraph.errors import GraphBubbleUp
from langgraph.store.base import BaseStore, GetOp, IndexConfig, Item, PutOp, SearchOp
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config

from langchain_speedup._internal import (
    MAX_QUESTION_CHARS,
    Call,
    adrive,
    as_vector,
    check_namespace,
    check_prompt,
    check_uuid,
    drive,
    guarded_call,
)
from langchain_speedup.errors import (
    ConfigurationError,
    EmbeddingError,
    InvalidInputError,
    MemoryStoreError,
    SpeedupError,
)
from langchain_speedup.memory.gating import saving_of
from langchain_speedup.types import Episode, EpisodeMatch

__all__ = [
    "MAX_QUESTION_BYTES",
    "MAX_TEXT_BYTES",
    "EpisodicMemory",
    "default_store",
    "memory_index",
]

logger = logging.getLogger(__name__)

MAX_TEXT_BYTES = 64 * 1024
"""The most UTF-8 bytes of an answer, reflection, lessons text or any other
stored text field but the question."""

MAX_QUESTION_BYTES = 4 * MAX_QUESTION_CHARS
"""The most UTF-8 bytes of a stored question or question key: room for any
question the router accepts."""

_ROOT = "speedup"
_LESSONS_KEY = "lessons"
_OUTCOMES_KEY = "outcomes"
MAX_VOTES = 16
"""The most votes one episode keeps (its candidates' stated answers)."""
MAX_VOTED_ATTEMPTS = 4
"""The most unverified attempts of one question whose votes are kept."""
_MAX_VOTE_CHARS = 256
_PAGE = 1000
"""Episodes per read when a whole tenant is listed (SFT export)."""


@with_config(ConfigDict(strict=True, extra="forbid", allow_inf_nan=False))
class _NewEpisode(Episode):
    """An episode as `put` accepts it: every field typed, nothing extra."""


_NEW_EPISODE = TypeAdapter(_NewEpisode)
_STORED_EPISODE = TypeAdapter(Episode)


# -- validation ------------------------------------------------------------------------


def _as_input(check: Callable[..., str], *args: object) -> str:
    """Run an option check on a call's input: its error is `InvalidInputError`."""
    try:
        return check(*args)
    except ConfigurationError as e:
        raise InvalidInputError(str(e)) from None


def _check_tenant(namespace: object) -> str:
    """`check_namespace` for a call's input: raises `InvalidInputError`."""
    return _as_input(check_namespace, namespace)


def _check_id(episode_id: object) -> str:
    return check_uuid(episode_id, "episode ids")


def _check_encodable(text: str, what: str, limit: int = MAX_TEXT_BYTES) -> str:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as e:
        msg = f"{what} holds text that is not valid Unicode ({e.reason})"
        raise InvalidInputError(msg) from None
    if size > limit:
        msg = f"{what} has {size} bytes of UTF-8, more than the {limit} stored"
        raise InvalidInputError(msg)
    return text


def _check_text(text: object, what: str) -> str:
    return _check_encodable(_as_input(check_prompt, what, text).strip(), what)


def _faults(error: ValidationError) -> str:
    """The fields and their faults, without the values (they may be huge or private)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
    )


def _check_episode(episode: object) -> Episode:
    """`episode` if it is a complete, storable episode, else raise.

    Raises:
        InvalidInputError: A field is missing, extra or mistyped, a text is
            not valid Unicode or over its size cap, or the namespace or id
            is invalid.
    """
    if not isinstance(episode, dict):
        msg = f"an episode must be a dict, got {type(episode).__name__}"
        raise InvalidInputError(msg)
    _check_tenant(episode.get("namespace"))
    _check_id(episode.get("id"))
    try:
        _NEW_EPISODE.validate_python(episode)
    except ValidationError as e:
        msg = f"not a complete episode ({_faults(e)})"
        raise InvalidInputError(msg) from None
    for key, value in episode.items():
        if isinstance(value, str):
            question = key in ("question", "question_key")
            limit = MAX_QUESTION_BYTES if question else MAX_TEXT_BYTES
            _check_encodable(value, f"the episode's {key}", limit)
    votes = episode.get("votes", [])
    if len(votes) > MAX_VOTES or any(len(v) > _MAX_VOTE_CHARS for v in votes):
        msg = (
            f"the episode's votes hold more than {MAX_VOTES} answers or an answer "
            f"over {_MAX_VOTE_CHARS} characters"
        )
        raise InvalidInputError(msg)
    for vote in votes:
        _check_encodable(vote, "the episode's votes", MAX_TEXT_BYTES)
    procedure = episode.get("procedure")
    if procedure is not None:
        texts = [procedure["program"], procedure["answer"]]
        texts += [v for p in procedure["parameters"] for v in p.values()]
        _check_encodable("\n".join(texts), "the episode's procedure", MAX_TEXT_BYTES)
    return cast(Episode, episode)


def _stored_episode(item: Item | None, tenant: str) -> Episode | None:
    """The episode an item holds, if it is one of `tenant`'s.

    Items written past `put` (by another program) that are no episode are
    skipped with a warning rather than failing every read.
    """
    if item is None:
        return None
    try:
        _STORED_EPISODE.validate_python(item.value, strict=True)
    except ValidationError as e:
        logger.warning("skipped a stored item that is no episode: %s", _faults(e))
        return None
    episode = cast(Episode, dict(item.value))
    if episode["namespace"] != tenant or episode["id"] != item.key:
        logger.warning("skipped episode %r stored under another key", item.key)
        return None
    return episode


# -- where things live -----------------------------------------------------------------


def _episodes(tenant: str) -> tuple[str, ...]:
    return (_ROOT, tenant, "episodes")


def _reflections(tenant: str) -> tuple[str, ...]:
    return (_ROOT, tenant, "reflections")


def _reuse(tenant: str) -> tuple[str, ...]:
    return (_ROOT, tenant, "reuse")


def _votes(tenant: str) -> tuple[str, ...]:
    return (_ROOT, tenant, "votes")


def _lessons(tenant: str) -> tuple[str, ...]:
    return (_ROOT, tenant, "lessons")


def _outcomes(tenant: str) -> tuple[str, ...]:
    return (_ROOT, tenant, "outcomes")


def _reuse_key(question_key: str) -> str:
    # Fixed length and free of the characters some stores reserve in keys.
    return hashlib.sha256(question_key.encode("utf-8", "surrogatepass")).hexdigest()


# -- the gate's outcome totals -----------------------------------------------------------

Outcomes = dict[str, list[float]]
"""Outcome totals: `"baseline"` (solved without memory) and, per similarity
percent (`"70"` holds [0.70, 0.71)), `[count, total saving]` of questions
solved with memory."""


def outcome_of(episode: Mapping[str, Any]) -> tuple[str, float] | None:
    """Where an episode's outcome counts and its saving; `None` for no outcome.

    Episodes without `budget` (written outside the router) and reused answers
    (no compute) teach the gate nothing.
    """
    budget, decision = episode.get("budget"), episode.get("decision")
    if not isinstance(budget, int) or decision not in ("exemplars", "scratch"):
        return None
    saving = saving_of(
        passed=bool(episode.get("verified")),
        budget_used=int(episode.get("budget_used", budget)),
        budget=budget,
    )
    if decision == "scratch":
        return "baseline", saving
    similarity = episode.get("similarity")
    if not isinstance(similarity, int | float) or not math.isfinite(similarity):
        return None
    # Rounded first, so that 0.7 lands in "70" despite binary floating point.
    return str(math.floor(round(float(similarity), 6) * 100 + 1e-9)), saving


def _updated(
    totals: Outcomes, old: Mapping[str, Any] | None, new: Mapping[str, Any]
) -> Outcomes | None:
    """`totals` with `old`'s outcome replaced by `new`'s; `None` when unchanged."""
    before = outcome_of(old) if old is not None else None
    after = outcome_of(new)
    if before == after:
        return None
    updated = {k: list(v) for k, v in totals.items()}
    for outcome, sign in ((before, -1), (after, 1)):
        if outcome is not None:
            count, total = updated.get(outcome[0], [0, 0.0])
            updated[outcome[0]] = [count + sign, round(total + sign * outcome[1], 9)]
    return {k: v for k, v in updated.items() if v[0] > 0}


def _is_newer(episode: Episode, pointer: Item | None) -> bool:
    """Whether `episode` should replace the reuse pointer (the newest wins)."""
    if pointer is None or pointer.value.get("episode_id") == episode["id"]:
        return True
    created = pointer.value.get("created_at")
    return not isinstance(created, int | float) or episode["created_at"] >= created


def _voted(item: Item | None, episode: Episode) -> dict[str, Any] | None:
    """The votes item with `episode`'s attempt in it; `None` when unchanged.

    Keyed by episode, so writing an episode again changes nothing; a verified
    episode drops its own attempt (reuse answers that question now).
    """
    attempts: dict[str, Any] = {}
    if item is not None and isinstance(item.value.get("attempts"), dict):
        attempts = dict(item.value["attempts"])
    entry = None
    if not episode["verified"] and episode.get("votes"):
        entry = {"votes": episode["votes"], "created_at": episode["created_at"]}
    if attempts.get(episode["id"]) == entry:
        return None
    attempts.pop(episode["id"], None)
    if entry is not None:
        attempts[episode["id"]] = entry
    newest = sorted(attempts.items(), key=lambda kv: _created(kv[1]), reverse=True)[
        :MAX_VOTED_ATTEMPTS
    ]
    return {"attempts": dict(newest)}


def _created(entry: object) -> float:
    created = entry.get("created_at") if isinstance(entry, dict) else None
    return float(created) if isinstance(created, int | float) else 0.0


def _votes_of(item: Item | None) -> list[str]:
    """Every vote an item holds, oldest attempt first; malformed entries skipped."""
    if item is None or not isinstance(item.value.get("attempts"), dict):
        return []
    votes: list[str] = []
    for entry in sorted(item.value["attempts"].values(), key=_created):
        listed = entry.get("votes") if isinstance(entry, dict) else None
        if isinstance(listed, list):
            votes += [v for v in listed if isinstance(v, str)][:MAX_VOTES]
    return votes


def _totals(item: Item | None) -> Outcomes:
    if item is None:
        return {}
    return {
        str(k): [int(v[0]), float(v[1])]
        for k, v in item.value.items()
        if isinstance(v, list) and len(v) == 2
    }


# -- errors ------------------------------------------------------------------------------

_URL_PASSWORD = re.compile(r"(://[^/\s:@]*:)[^@\s/]+@")
_SECRET_PARAMETER = re.compile(r"(?i)\b(password|api[_-]?key|token|secret)=[^\s&;,]+")


def _redacted(text: str) -> str:
    """`text` without the passwords, keys and tokens a connection string may hold."""
    return _SECRET_PARAMETER.sub(r"\1=***", _URL_PASSWORD.sub(r"\1***@", text))


def _failed(what: str, store: BaseStore) -> Callable[[Exception], NoReturn]:
    def fail(error: Exception) -> NoReturn:
        if isinstance(error, GraphBubbleUp | SpeedupError):
            raise error
        raw = f"{type(error).__name__}: {error}"
        text = _redacted(raw)
        msg = f"the memory store ({type(store).__name__}) failed to {what}: {text}"
        if text != raw:  # the cause would print the secret
            raise MemoryStoreError(msg) from None
        raise MemoryStoreError(msg) from error

    return fail


# -- the memory --------------------------------------------------------------------------


class EpisodicMemory:
    """The package's episodes, reflections and lessons in a LangGraph `BaseStore`.

    Any store with a vector index works: `InMemoryStore(index=memory_index(embeddings))`,
    a `PostgresStore` with an index, the store a LangGraph deployment
    provides. The store's index embeds each question once, when its episode
    is written, and each searched question; search scores are its cosine
    similarities. Every call reads and writes one tenant (`namespace`).

    Example:
        ```python
        memory = EpisodicMemory(InMemoryStore(index=memory_index(embeddings)))
        memory.put(episode)
        memory.find("default", episode["question_key"])  # the episode, if verified
        memory.search("default", "Maya buys 3 pens ...", limit=3)
        ```

    Guarantees:
        Isolation: a tenant's records live under `("speedup", namespace, ...)`,
        and a stored item is only read back as an episode of the tenant and
        key it names. Reuse: `find` returns verified episodes only, checked
        when read. Idempotence: writing an episode again (same id) replaces
        it, and its outcome counts once. Content: `put` writes only complete
        episodes of valid Unicode, texts at most `MAX_TEXT_BYTES` (64 KiB) of
        UTF-8 and the question at most `MAX_QUESTION_BYTES`; an invalid
        input writes nothing. Failures: the store's errors surface as
        `MemoryStoreError` with passwords, keys and tokens blanked.

    Args:
        store: The LangGraph store.

    Raises:
        ConfigurationError: `store` is not a LangGraph `BaseStore`.
    """

    def __init__(self, store: BaseStore) -> None:
        if not isinstance(store, BaseStore):
            msg = (
                "`store` must be a LangGraph BaseStore with a vector index, e.g. "
                "InMemoryStore(index=memory_index(embeddings)), got "
                f"{type(store).__name__}"
            )
            raise ConfigurationError(msg)
        self.store = store

    @classmethod
    def of(cls, store: BaseStore | EpisodicMemory) -> EpisodicMemory:
        """`store` as an `EpisodicMemory` (itself if it is one)."""
        return store if isinstance(store, EpisodicMemory) else cls(store)

    def _batch(self, what: str, ops: Sequence[Any]) -> Call:
        store, listed = self.store, list(ops)
        return guarded_call(
            lambda: store.batch(listed),
            lambda: store.abatch(listed),
            fail=_failed(what, store),
            check=lambda results: results,
        )

    # -- steps: each runs sync (`drive`) or async (`adrive`) -----------------------------

    def put_step(self, episode: Episode) -> Generator[Call, Any, None]:
        """Write one episode, its reuse pointer if verified, and its outcome."""
        checked = _check_episode(episode)
        # Keyed by the canonical UUID, so any spelling of an id is one episode.
        key = _check_id(checked["id"])
        stored = cast(Episode, {**checked, "id": key})
        tenant = stored["namespace"]
        reuse_at = (_reuse(tenant), _reuse_key(stored["question_key"]))
        votes_at = (_votes(tenant), _reuse_key(stored["question_key"]))
        old, totals, newest, voted = yield self._batch(
            "read",
            [
                GetOp(_episodes(tenant), key),
                GetOp(_outcomes(tenant), _OUTCOMES_KEY),
                GetOp(*reuse_at),
                GetOp(*votes_at),
            ],
        )
        ops: list[PutOp] = [
            PutOp(_episodes(tenant), key, dict(stored), index=["question"])
        ]
        if stored["verified"] and _is_newer(stored, newest):
            pointer = {"episode_id": key, "created_at": stored["created_at"]}
            ops.append(PutOp(*reuse_at, pointer, False))
        attempts = _voted(voted, stored)
        if attempts is not None:
            ops.append(PutOp(*votes_at, attempts, False))
        previous = _stored_episode(old, tenant)
        updated = _updated(_totals(totals), previous, stored)
        if updated is not None:
            # Written after the episode: a failure in between undercounts one
            # outcome rather than counting one that was never stored.
            ops.append(PutOp(_outcomes(tenant), _OUTCOMES_KEY, updated, False))
        yield self._batch("write", ops)

    def find_step(
        self, namespace: str, question_key: str
    ) -> Generator[Call, Any, Episode | None]:
        """The newest verified episode of exactly this question key, if any."""
        tenant = _check_tenant(namespace)
        (pointer,) = yield self._batch(
            "read", [GetOp(_reuse(tenant), _reuse_key(question_key))]
        )
        return (yield from self._pointed(tenant, pointer, question_key))

    def recall_step(
        self, namespace: str, question_key: str, *, reuse: bool = True
    ) -> Generator[Call, Any, tuple[Episode | None, list[str]]]:
        """`find` (when `reuse`) and `votes` of one question, in one read."""
        tenant = _check_tenant(namespace)
        at = _reuse_key(question_key)
        ops = [
            GetOp(_votes(tenant), at),
            *([GetOp(_reuse(tenant), at)] if reuse else []),
        ]
        items = yield self._batch("read", ops)
        episode = None
        if reuse:
            episode = yield from self._pointed(tenant, items[1], question_key)
        return episode, _votes_of(items[0])

    def _pointed(
        self, tenant: str, pointer: Item | None, question_key: str
    ) -> Generator[Call, Any, Episode | None]:
        # The verified episode a reuse pointer names, checked again.
        episode_id = pointer.value.get("episode_id") if pointer is not None else None
        if not isinstance(episode_id, str):
            return None
        (item,) = yield self._batch("read", [GetOp(_episodes(tenant), episode_id)])
        episode = _stored_episode(item, tenant)
        # Checked again: the episode may have been overwritten since.
        if (
            episode is None
            or episode.get("verified") is not True
            or episode["question_key"] != question_key
        ):
            return None
        return (yield from self._with_reflections(tenant, [episode]))[0]

    def search_step(
        self, namespace: str, question: str, *, limit: int = 3
    ) -> Generator[Call, Any, list[EpisodeMatch]]:
        """The verified episodes most similar to `question`, most similar first."""
        tenant = _check_tenant(namespace)
        question = _check_text(question, "the question")
        op = SearchOp(
            _episodes(tenant), filter={"verified": True}, limit=limit, query=question
        )
        (items,) = yield self._batch("search", [op])
        if any(item.score is None for item in items):
            msg = (
                f"the memory store ({type(self.store).__name__}) has no vector index, "
                "so it cannot find similar questions: give it one, e.g. "
                "InMemoryStore(index=memory_index(embeddings))"
            )
            raise ConfigurationError(msg)
        found = [
            (episode, float(item.score))
            for item in items
            if (episode := _stored_episode(item, tenant)) is not None
            and episode.get("verified") is True
        ]
        episodes = yield from self._with_reflections(tenant, [e for e, _ in found])
        return [
            EpisodeMatch(episode=e, similarity=s)
            for e, (_, s) in zip(episodes, found, strict=True)
        ]

    def episodes_step(self, namespace: str) -> Generator[Call, Any, list[Episode]]:
        """Every episode of a tenant, oldest first (for export, not routing)."""
        tenant = _check_tenant(namespace)
        found: list[Episode] = []
        offset = 0
        while True:
            op = SearchOp(_episodes(tenant), limit=_PAGE, offset=offset)
            (items,) = yield self._batch("read", [op])
            found += [e for item in items if (e := _stored_episode(item, tenant))]
            if len(items) < _PAGE:
                break
            offset += _PAGE
        found = yield from self._with_reflections(tenant, found)
        return sorted(found, key=lambda e: e["created_at"])

    def _with_reflections(
        self, tenant: str, episodes: list[Episode]
    ) -> Generator[Call, Any, list[Episode]]:
        if not episodes:
            return []
        ops = [GetOp(_reflections(tenant), e["id"]) for e in episodes]
        items = yield self._batch("read", ops)
        merged = []
        for episode, item in zip(episodes, items, strict=True):
            text = item.value.get("reflection") if item is not None else None
            merged.append(
                cast(Episode, {**episode, "reflection": text})
                if isinstance(text, str) and text
                else episode
            )
        return merged

    def set_reflection_step(
        self, namespace: str, episode_id: str, text: str
    ) -> Generator[Call, Any, None]:
        """Attach a per-case reflection to a stored episode."""
        tenant = _check_tenant(namespace)
        text = _check_text(text, "reflection")
        key = _check_id(episode_id)
        (item,) = yield self._batch("read", [GetOp(_episodes(tenant), key)])
        if _stored_episode(item, tenant) is None:
            msg = f"no episode {episode_id!r} is stored in namespace {tenant!r}"
            raise InvalidInputError(msg)
        value = {"reflection": text, "updated_at": time.time()}
        yield self._batch("write", [PutOp(_reflections(tenant), key, value, False)])

    def get_lessons_step(self, namespace: str) -> Generator[Call, Any, str | None]:
        """The tenant's lessons text, or `None`."""
        tenant = _check_tenant(namespace)
        (item,) = yield self._batch("read", [GetOp(_lessons(tenant), _LESSONS_KEY)])
        text = item.value.get("lessons") if item is not None else None
        return text if isinstance(text, str) and text else None

    def put_lessons_step(self, namespace: str, text: str) -> Generator[Call, Any, None]:
        """Store (or replace) the tenant's lessons text."""
        tenant = _check_tenant(namespace)
        value = {"lessons": _check_text(text, "lessons"), "updated_at": time.time()}
        yield self._batch(
            "write", [PutOp(_lessons(tenant), _LESSONS_KEY, value, False)]
        )

    def outcomes_step(self, namespace: str) -> Generator[Call, Any, Outcomes]:
        """The gate's outcome totals of a tenant (see `Outcomes`)."""
        tenant = _check_tenant(namespace)
        (item,) = yield self._batch("read", [GetOp(_outcomes(tenant), _OUTCOMES_KEY)])
        return _totals(item)

    # -- sync and async entry points ----------------------------------------------------

    def put(self, episode: Episode) -> None:
        """Store one episode, replacing the tenant's episode of the same id.

        The tenant is the episode's `namespace`; the store's index embeds its
        question.

        Raises:
            InvalidInputError: The episode is incomplete or mistyped, or holds
                invalid Unicode or a text over its size cap; nothing is written.
            MemoryStoreError: The store could not be read or written.
        """
        drive(self.put_step(episode))

    async def aput(self, episode: Episode) -> None:
        """Async form of `put`."""
        await adrive(self.put_step(episode))

    def find(self, namespace: str, question_key: str) -> Episode | None:
        """The newest verified episode of exactly this question key, if any.

        Raises:
            InvalidInputError: The namespace is invalid.
            MemoryStoreError: The store could not be read.
        """
        return drive(self.find_step(namespace, question_key))

    async def afind(self, namespace: str, question_key: str) -> Episode | None:
        """Async form of `find`."""
        return await adrive(self.find_step(namespace, question_key))

    def votes(self, namespace: str, question_key: str) -> list[str]:
        """The final answers unverified attempts at this question stated.

        Raises:
            InvalidInputError: `namespace` is invalid.
            MemoryStoreError: The store could not be read.
        """
        return drive(self.recall_step(namespace, question_key, reuse=False))[1]

    async def avotes(self, namespace: str, question_key: str) -> list[str]:
        """Async form of `votes`."""
        recalled = await adrive(self.recall_step(namespace, question_key, reuse=False))
        return recalled[1]

    def search(
        self, namespace: str, question: str, *, limit: int = 3
    ) -> list[EpisodeMatch]:
        """The verified episodes most similar to `question`, most similar first.

        Raises:
            InvalidInputError: The namespace or question is invalid.
            ConfigurationError: The store has no vector index.
            EmbeddingError: The index's `memory_index` embeddings failed.
            MemoryStoreError: The store could not be searched.
        """
        return drive(self.search_step(namespace, question, limit=limit))

    async def asearch(
        self, namespace: str, question: str, *, limit: int = 3
    ) -> list[EpisodeMatch]:
        """Async form of `search`."""
        return await adrive(self.search_step(namespace, question, limit=limit))

    def episodes(self, namespace: str) -> list[Episode]:
        """Every episode of a tenant, oldest first, reflections attached."""
        return drive(self.episodes_step(namespace))

    async def aepisodes(self, namespace: str) -> list[Episode]:
        """Async form of `episodes`."""
        return await adrive(self.episodes_step(namespace))

    def set_reflection(self, namespace: str, episode_id: str, text: str) -> None:
        """Attach a per-case reflection to a stored episode (read as its `reflection`).

        Raises:
            InvalidInputError: The text is empty, invalid Unicode or over
                `MAX_TEXT_BYTES`, or no episode with this id is stored in
                this tenant.
            MemoryStoreError: The store could not be read or written.
        """
        drive(self.set_reflection_step(namespace, episode_id, text))

    async def aset_reflection(self, namespace: str, episode_id: str, text: str) -> None:
        """Async form of `set_reflection`."""
        await adrive(self.set_reflection_step(namespace, episode_id, text))

    def get_lessons(self, namespace: str) -> str | None:
        """The tenant's lessons text, or `None` when none is stored."""
        return drive(self.get_lessons_step(namespace))

    async def aget_lessons(self, namespace: str) -> str | None:
        """Async form of `get_lessons`."""
        return await adrive(self.get_lessons_step(namespace))

    def put_lessons(self, namespace: str, text: str) -> None:
        """Store (or replace) the tenant's lessons text.

        Raises:
            InvalidInputError: The text is empty, invalid Unicode or over
                `MAX_TEXT_BYTES`.
            MemoryStoreError: The store could not be written.
        """
        drive(self.put_lessons_step(namespace, text))

    async def aput_lessons(self, namespace: str, text: str) -> None:
        """Async form of `put_lessons`."""
        await adrive(self.put_lessons_step(namespace, text))

    def outcomes(self, namespace: str) -> Outcomes:
        """The gate's outcome totals of a tenant, kept up to date by `put`."""
        return drive(self.outcomes_step(namespace))

    async def aoutcomes(self, namespace: str) -> Outcomes:
        """Async form of `outcomes`."""
        return await adrive(self.outcomes_step(namespace))


# -- the index and the default store -------------------------------------------------------


class _CheckedEmbeddings(Embeddings):
    """Embeddings whose failures and malformed vectors raise `EmbeddingError`.

    The last questions' vectors are kept: the router searches a question
    and then writes its episode, and the store's index embeds it both times.
    """

    _KEPT = 256

    def __init__(self, embeddings: Embeddings) -> None:
        self.inner = embeddings
        self._recent: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _cached(self, texts: list[str]) -> list[list[float]] | None:
        with self._lock:
            if not all(t in self._recent for t in texts):
                return None
            for text in texts:
                self._recent.move_to_end(text)
            return [self._recent[t] for t in texts]

    def _keep(self, texts: list[str], raw: object) -> list[list[float]]:
        try:
            vectors = [as_vector(v) for v in cast(Iterable[object], raw)]
        except (TypeError, ValueError) as e:
            msg = f"the embeddings returned {e}; nothing can be stored or found with it"
            raise EmbeddingError(msg) from e
        if len(vectors) != len(texts):
            msg = (
                f"the embeddings returned {len(vectors)} vectors for {len(texts)} texts"
            )
            raise EmbeddingError(msg)
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._recent[text] = vector
                self._recent.move_to_end(text)
            while len(self._recent) > self._KEPT:
                self._recent.popitem(last=False)
        return vectors

    @staticmethod
    def _failed(error: Exception) -> NoReturn:
        if isinstance(error, GraphBubbleUp | SpeedupError):
            raise error
        msg = f"the embeddings failed ({type(error).__name__}: {error})"
        raise EmbeddingError(msg) from error

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        cached = self._cached(texts)
        if cached is not None:
            return cached
        try:
            raw = self.inner.embed_documents(texts)
        except Exception as e:  # noqa: BLE001
            self._failed(e)
        return self._keep(texts, raw)

    def embed_query(self, text: str) -> list[float]:
        cached = self._cached([text])
        if cached is not None:
            return cached[0]
        try:
            raw = self.inner.embed_query(text)
        except Exception as e:  # noqa: BLE001
            self._failed(e)
        return self._keep([text], [raw])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        cached = self._cached(texts)
        if cached is not None:
            return cached
        try:
            raw = await self.inner.aembed_documents(texts)
        except Exception as e:  # noqa: BLE001
            self._failed(e)
        return self._keep(texts, raw)

    async def aembed_query(self, text: str) -> list[float]:
        cached = self._cached([text])
        if cached is not None:
            return cached[0]
        try:
            raw = await self.inner.aembed_query(text)
        except Exception as e:  # noqa: BLE001
            self._failed(e)
        return self._keep([text], [raw])[0]


def memory_index(embeddings: Embeddings, *, dims: int | None = None) -> IndexConfig:
    """A LangGraph store `index` configuration for the package's episodes.

    It embeds the `question` field, and the embeddings' failures and malformed
    vectors raise `EmbeddingError` (before anything is generated, when the
    router searches).

    Example:
        ```python
        store = InMemoryStore(index=memory_index(MiniLMEmbeddings()))
        ```

    Args:
        embeddings: Any LangChain `Embeddings`.
        dims: The vectors' size; measured with one embedding when `None`.

    Raises:
        ConfigurationError: `embeddings` is not a LangChain `Embeddings`, or
            `dims` is not a positive integer.
        EmbeddingError: Measuring the size failed.
    """
    if not isinstance(embeddings, Embeddings):
        msg = f"`embeddings` must be a LangChain Embeddings, got {type(embeddings).__name__}"
        raise ConfigurationError(msg)
    checked = _CheckedEmbeddings(embeddings)
    if dims is None:
        dims = len(checked.embed_query("How many pens does Maya buy?"))
    elif isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        msg = f"`dims` must be a positive integer, got {dims!r}"
        raise ConfigurationError(msg)
    return IndexConfig(dims=dims, embed=checked, fields=["question"])


def default_store(
    embeddings: Embeddings | None = None, *, path: str | os.PathLike[str] | None = None
) -> BaseStore:
    """The store used when none is given and the graph's runtime has none.

    A `QdrantStore` indexed with `embeddings` (the offline `MiniLMEmbeddings`
    when `None`, which needs the `local` extra): on the Qdrant server at
    `QDRANT_URL` (with `QDRANT_API_KEY`) when it is set, else embedded in
    this process, on `path` when given (memory kept across runs) or in
    memory. This is the one place that chooses the default; pass `store=`
    (or compile the graph with one) to choose another.

    Args:
        embeddings: The index's embeddings.
        path: Keep the embedded memory in this directory across runs.

    Raises:
        ConfigurationError: `embeddings` is not a LangChain `Embeddings`.
        EmbeddingError: The embeddings failed.
        MemoryStoreError: The store at `path` or `QDRANT_URL` cannot be opened.
    """
    from langchain_speedup.memory.qdrant import QdrantStore

    if embeddings is None:
        from langchain_speedup.local.embeddings import MiniLMEmbeddings

        embeddings = MiniLMEmbeddings()
    return QdrantStore.from_env(index=memory_index(embeddings), path=path)
