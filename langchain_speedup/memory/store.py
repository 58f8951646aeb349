"""The episodic store: episodes on Qdrant, every read and write in one namespace.

The collection also holds one lessons point per namespace (payload
`kind: "lessons"`), which every episode read leaves out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar, cast, runtime_checkable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from qdrant_client import QdrantClient, models

from langchain_speedup._internal import (
    MAX_QUESTION_CHARS,
    as_vector,
    check_namespace,
    check_prompt,
    check_uuid,
)
from langchain_speedup.errors import (
    ConfigurationError,
    EmbeddingSizeError,
    InvalidInputError,
    MemoryStoreError,
)
from langchain_speedup.types import Episode, EpisodeMatch

__all__ = [
    "DEFAULT_COLLECTION",
    "MAX_QUESTION_BYTES",
    "MAX_TEXT_BYTES",
    "EpisodicStore",
    "LessonsStore",
    "QdrantEpisodicStore",
    "ReflectionStore",
]

logger = logging.getLogger(__name__)

DEFAULT_COLLECTION = "speedup_episodes"

MAX_TEXT_BYTES = 64 * 1024
"""The most UTF-8 bytes of an answer, reflection, lessons text or any other
stored text field but the question."""

MAX_QUESTION_BYTES = 4 * MAX_QUESTION_CHARS
"""The most UTF-8 bytes of a stored question or question key: room for any
question the router accepts."""

_LESSONS_KIND = "lessons"
_LESSONS_IDS = uuid.UUID("0b6c2f53-7d7e-4f0e-a6a4-9a1c3f8e5d21")
_EPISODE_IDS = uuid.UUID("5e0d7c1a-3f29-4b8e-9d61-2c7a4f0b8e13")

_T = TypeVar("_T")


@with_config(ConfigDict(strict=True, extra="forbid", allow_inf_nan=False))
class _NewEpisode(Episode):
    """An episode as `put` accepts it: every field typed, nothing extra."""


_NEW_EPISODE = TypeAdapter(_NewEpisode)
_STORED_EPISODE = TypeAdapter(Episode)


def _lessons_point_id(namespace: str) -> str:
    """The deterministic point id of a namespace's lessons text."""
    return str(uuid.uuid5(_LESSONS_IDS, namespace))


def _episode_point_id(namespace: str, episode_id: object) -> str:
    """The point id of an episode: derived from its namespace and its own id.

    A namespace can only ever address its own points, whatever id it passes.
    The canonical UUID has a fixed length, so no two (id, namespace) pairs
    give the same name.
    """
    return str(uuid.uuid5(_EPISODE_IDS, f"{_check_id(episode_id)}{namespace}"))


def _check_id(episode_id: object) -> str:
    return check_uuid(episode_id, "episode ids")


def _check_namespace(namespace: object) -> str:
    """`check_namespace` for a call's input: raises `InvalidInputError`."""
    return _as_input(check_namespace, namespace)


def _as_input(check: Callable[..., str], *args: object) -> str:
    """Run an option check on a call's input: its error is `InvalidInputError`."""
    try:
        return check(*args)
    except ConfigurationError as e:
        raise InvalidInputError(str(e)) from None


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


def _check_episode(episode: object) -> Episode:
    """`episode` if it is a complete, storable episode, else raise.

    Raises:
        InvalidInputError: A field is missing, extra or mistyped, a text is
            not valid Unicode or over its size cap, the namespace or id is
            invalid, or the id is the namespace's reserved lessons id.
    """
    if not isinstance(episode, dict):
        msg = f"an episode must be a dict, got {type(episode).__name__}"
        raise InvalidInputError(msg)
    namespace = _check_namespace(episode.get("namespace"))
    if _check_id(episode.get("id")) == _lessons_point_id(namespace):
        msg = f"the id {episode['id']!r} is reserved for the lessons of {namespace!r}"
        raise InvalidInputError(msg)
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
    return cast(Episode, episode)


def _faults(error: ValidationError) -> str:
    """The fields and their faults, without the values (they may be huge or private)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
    )


def _is_episode(payload: object) -> bool:
    """Whether a stored payload is an episode.

    Points written past `put` (by another program) that are not are skipped
    with a warning rather than failing every read.
    """
    try:
        _STORED_EPISODE.validate_python(payload, strict=True)
    except ValidationError as e:
        logger.warning("skipped a stored point that is no episode: %s", _faults(e))
        return False
    return True


def _check_vector(vector: object) -> list[float]:
    """`vector` as a list of finite floats, else raise `InvalidInputError`."""
    try:
        return as_vector(vector)
    except ValueError as e:
        msg = f"a vector must be a non-empty list of finite numbers, got {e}"
        raise InvalidInputError(msg) from None


def _check_storage(root: Path) -> None:
    """Refuse an on-disk store whose files are missing, empty or unreadable.

    Qdrant would open such a directory as an empty store and then overwrite
    (or later resurrect) the episodes it could not see.
    """
    meta, data = root / "meta.json", root / "collection"
    held = {p.name for p in data.iterdir()} if data.is_dir() else set()
    damaged = (
        f"the memory path {str(root)!r} is damaged: restore it from a backup, "
        "or move it away to start an empty store"
    )
    if not meta.exists():
        if held:
            msg = f"{damaged} (collections {sorted(held)} but no meta.json)"
            raise MemoryStoreError(msg)
        return
    try:
        listed = set(json.loads(meta.read_text(encoding="utf-8"))["collections"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        msg = f"{damaged} (meta.json is unreadable: {e!r})"
        raise MemoryStoreError(msg) from e
    for name in sorted(listed | held):
        storage = data / name / "storage.sqlite"
        if name not in listed or not storage.is_file() or not storage.stat().st_size:
            msg = f"{damaged} (collection {name!r} is missing, empty or unlisted)"
            raise MemoryStoreError(msg)


def _redact_url(url: str) -> tuple[str, list[str]]:
    """`url` without credentials or query, and the secrets it held."""
    parts = urlsplit(url)
    secrets = [s for s in (parts.password, *dict(parse_qsl(parts.query)).values()) if s]
    if "@" in parts.netloc:
        parts = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2])
    if parts.query:
        parts = parts._replace(query="***")
    return urlunsplit(parts), secrets


@runtime_checkable
class EpisodicStore(Protocol):
    """Where episodes live. Every call is confined to one namespace.

    A subclass may leave out the async forms: by default they run the sync
    ones in a worker thread.
    """

    def put(self, episode: Episode, vector: Sequence[float]) -> None:
        """Store (or overwrite, by id) one episode with its question's embedding."""
        ...

    def find(self, namespace: str, question_key: str) -> Episode | None:
        """The newest verified episode of exactly this question, if any."""
        ...

    def search(
        self, namespace: str, vector: Sequence[float], *, limit: int = 3
    ) -> list[EpisodeMatch]:
        """The verified episodes most similar to `vector`, most similar first."""
        ...

    def count(self, namespace: str) -> int:
        """How many episodes (verified or not) the namespace holds."""
        ...

    async def aput(self, episode: Episode, vector: Sequence[float]) -> None:
        """Async form of `put`."""
        await asyncio.to_thread(self.put, episode, vector)

    async def afind(self, namespace: str, question_key: str) -> Episode | None:
        """Async form of `find`."""
        return await asyncio.to_thread(self.find, namespace, question_key)

    async def asearch(
        self, namespace: str, vector: Sequence[float], *, limit: int = 3
    ) -> list[EpisodeMatch]:
        """Async form of `search`."""
        return await asyncio.to_thread(self.search, namespace, vector, limit=limit)


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
        """Async form of `get_lessons` (by default in a worker thread)."""
        return await asyncio.to_thread(self.get_lessons, namespace)

    async def aput_lessons(self, namespace: str, text: str) -> None:
        """Async form of `put_lessons` (by default in a worker thread)."""
        await asyncio.to_thread(self.put_lessons, namespace, text)


@runtime_checkable
class ReflectionStore(Protocol):
    """Attaches per-case reflections to stored episodes (`QdrantEpisodicStore` does)."""

    def set_reflection(self, namespace: str, episode_id: str, text: str) -> None:
        """Store `text` as the episode's `reflection` field."""
        ...

    async def aset_reflection(self, namespace: str, episode_id: str, text: str) -> None:
        """Async form of `set_reflection` (by default in a worker thread)."""
        await asyncio.to_thread(self.set_reflection, namespace, episode_id, text)


def _match(key: str, value: str | bool) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _episodes_in(namespace: str, **fields: str | bool) -> models.Filter:
    # Points without `kind` are episodes (collections written before lessons).
    must: list[models.Condition] = [_match("namespace", _check_namespace(namespace))]
    must += [_match(key, value) for key, value in fields.items()]
    return models.Filter(must=must, must_not=[_match("kind", _LESSONS_KIND)])


class QdrantEpisodicStore(EpisodicStore, LessonsStore, ReflectionStore):
    """Episodes in a Qdrant collection, one point per episode, upserted by id.

    Setup:
        Embedded (default): nothing to run; `path=` keeps episodes on disk
        across runs (one process per path). Server or cluster: pass `url=` and
        `api_key=`, or set `QDRANT_URL` / `QDRANT_API_KEY` and use `from_env`.

    Instantiate:
        ```python
        store = QdrantEpisodicStore(path="./speedup-memory")
        store = QdrantEpisodicStore.from_env(path="./speedup-memory")  # URL wins
        ```

    Guarantees:
        Isolation: a point's id is derived from its namespace and the
        episode's id, so no call in one namespace can read, overwrite or
        annotate another namespace's points, whatever id it passes; the
        lessons id of a namespace is never accepted as an episode id.
        Content: `put` writes only complete episodes of valid Unicode, with
        the answer and other texts at most `MAX_TEXT_BYTES` (64 KiB) of UTF-8
        and the question at most `MAX_QUESTION_BYTES`, and only finite
        vectors of the collection's size. Storage: an on-disk store whose
        files are missing, empty or unreadable is refused, not reopened empty.
        Credentials in `url` and `api_key` never appear in messages.

    Args:
        path: Directory for embedded on-disk mode.
        url: A Qdrant server or cluster URL.
        api_key: The server's API key.
        client: An existing `QdrantClient`; the store does not close it.
        collection: The collection name.
        vector_size: The embeddings' size, when known: a collection built
            with another size is refused at once rather than at the first
            write or search.

    Raises:
        MemoryStoreError: The store cannot be opened (for example a `path`
            that is empty, a file, damaged, or locked by another process).
        EmbeddingSizeError: The collection holds vectors of another size
            than `vector_size`.
    """

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        collection: str = DEFAULT_COLLECTION,
        vector_size: int | None = None,
    ) -> None:
        if sum(x is not None for x in (path, url, client)) > 1:
            msg = "give at most one of `path`, `url` and `client`"
            raise MemoryStoreError(msg)
        if not collection or not isinstance(collection, str):
            msg = f"`collection` must be a non-empty string, got {collection!r}"
            raise MemoryStoreError(msg)
        for name, value in (("path", path), ("url", url)):
            if value is not None and not str(value).strip():
                msg = f"`{name}` must not be empty (leave it out for a store in memory)"
                raise MemoryStoreError(msg)
        self.collection = collection
        self._secrets = [api_key] if api_key else []
        if url is not None:
            self.location, secrets = _redact_url(url)
            self._secrets += secrets
        else:
            self.location = str(path or ("client" if client else ":memory:"))
        self._owns_client = client is None
        self._remote = url is not None
        self._lock = threading.RLock()
        self._size: int | None = None

        def connect() -> QdrantClient:
            if client is not None:
                return client
            if url is not None:
                return QdrantClient(url=url, api_key=api_key)
            if path is not None:
                return QdrantClient(path=str(self._directory(Path(path))))
            return QdrantClient(":memory:")

        self._client = self._call("open", connect)
        self._ready = self._call(
            "open", lambda: self._client.collection_exists(collection)
        )
        if vector_size is not None and self._ready:
            self._call("open", lambda: self._check_size(vector_size))

    @staticmethod
    def _directory(target: Path) -> Path:
        if target.exists() and not target.is_dir():
            msg = f"the memory path {str(target)!r} exists and is not a directory"
            raise MemoryStoreError(msg)
        target.mkdir(parents=True, exist_ok=True)
        _check_storage(target)
        return target

    @classmethod
    def from_env(
        cls,
        *,
        path: str | os.PathLike[str] | None = None,
        collection: str = DEFAULT_COLLECTION,
    ) -> Self:
        """A store on `QDRANT_URL` when set, else embedded (on `path` if given)."""
        url = os.environ.get("QDRANT_URL")
        if url:
            api_key = os.environ.get("QDRANT_API_KEY")
            return cls(url=url, api_key=api_key, collection=collection)
        return cls(path=path, collection=collection)

    @property
    def vector_size(self) -> int | None:
        """The collection's vector size; `None` before its first episode.

        Raises:
            MemoryStoreError: The store could not be read.
        """
        if self._size is None and self._exists():
            self._call("read", self._read_size)
        return self._size

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        """`fn()` under the store's lock, its failures as `MemoryStoreError`."""
        try:
            with self._lock:
                return fn()
        except (MemoryStoreError, InvalidInputError):
            raise
        except Exception as e:
            text = str(e)
            for secret in self._secrets:
                text = text.replace(secret, "***")
            msg = f"the episodic store at {self.location!r} failed to {what}: {text}"
            if text != str(e):  # the cause would print the credential
                raise MemoryStoreError(msg) from None
            raise MemoryStoreError(msg) from e

    def _exists(self) -> bool:
        # Another client (store, process or worker on the same server) may
        # create the collection after this store opened: look again until it
        # exists rather than trusting the answer read at construction.
        if not self._ready:
            exists = self._call(
                "read", lambda: self._client.collection_exists(self.collection)
            )
            self._ready = bool(exists)
        return self._ready

    def _read_size(self) -> int:
        vectors = self._client.get_collection(self.collection).config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            msg = f"collection {self.collection!r} does not hold one unnamed vector"
            raise MemoryStoreError(msg)
        self._size = int(vectors.size)
        return self._size

    def _check_size(self, size: int) -> None:
        """Raise `EmbeddingSizeError` unless the collection's vectors have `size`."""
        expected = self._size if self._size is not None else self._read_size()
        if size != expected:
            msg = (
                f"the embeddings give vectors of size {size}, but the collection "
                f"{self.collection!r} at {self.location!r} holds vectors of size "
                f"{expected}: use the embeddings it was filled with, or another "
                "`path` or `collection` for these embeddings"
            )
            raise EmbeddingSizeError(msg, expected=expected, got=size)

    def _ensure_collection(self, size: int) -> None:
        if self._ready or self._client.collection_exists(self.collection):
            self._ready = True
            self._check_size(size)
            return
        self._client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(
                size=size, distance=models.Distance.COSINE
            ),
        )
        if self._remote:
            keyword, boolean = (
                models.PayloadSchemaType.KEYWORD,
                models.PayloadSchemaType.BOOL,
            )
            for field in ("namespace", "question_key", "kind"):
                self._client.create_payload_index(self.collection, field, keyword)
            self._client.create_payload_index(self.collection, "verified", boolean)
        self._ready, self._size = True, size

    def _upsert(
        self, point_id: str, vector: list[float], payload: dict[str, Any]
    ) -> None:
        point = models.PointStruct(id=point_id, vector=vector, payload=payload)
        self._client.upsert(self.collection, points=[point], wait=True)

    def _scroll(self, flt: models.Filter, *, limit: int, offset: Any = None) -> Any:
        return self._call(
            "read",
            lambda: self._client.scroll(
                self.collection,
                scroll_filter=flt,
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=False,
            ),
        )

    def _payload(self, point_id: str) -> dict[str, Any] | None:
        points = self._call(
            "read",
            lambda: self._client.retrieve(
                self.collection, ids=[point_id], with_payload=True, with_vectors=False
            ),
        )
        return dict(points[0].payload or {}) if points else None

    def put(self, episode: Episode, vector: Sequence[float]) -> None:
        """Store one episode, replacing the namespace's episode of the same id.

        Raises:
            InvalidInputError: The episode is incomplete or mistyped, holds
                invalid Unicode or a text over its size cap, its id is
                reserved, or the vector is empty or not finite.
            EmbeddingSizeError: The vector's size differs from the collection's.
            MemoryStoreError: The store could not be written.
        """
        stored = _check_episode(episode)
        values = _check_vector(vector)
        point_id = _episode_point_id(stored["namespace"], stored["id"])

        def write() -> None:
            self._ensure_collection(len(values))
            self._upsert(point_id, values, dict(stored))

        self._call("write", write)

    def find(self, namespace: str, question_key: str) -> Episode | None:
        """The newest verified episode of exactly this question, if any."""
        flt = _episodes_in(namespace, question_key=question_key, verified=True)
        if not self._exists():
            return None
        points, _ = self._scroll(flt, limit=64)
        episodes = [cast(Episode, p.payload) for p in points if _is_episode(p.payload)]
        return max(episodes, key=lambda e: e["created_at"], default=None)

    def search(
        self, namespace: str, vector: Sequence[float], *, limit: int = 3
    ) -> list[EpisodeMatch]:
        """The verified episodes most similar to `vector`, most similar first.

        Raises:
            InvalidInputError: The namespace is invalid, or the vector is
                empty or not finite.
            EmbeddingSizeError: The vector's size differs from the collection's.
            MemoryStoreError: The store could not be read.
        """
        flt = _episodes_in(namespace, verified=True)
        values = _check_vector(vector)
        if not self._exists():
            return []

        def query() -> Any:
            self._check_size(len(values))
            return self._client.query_points(
                self.collection, query=values, query_filter=flt, limit=limit
            )

        response = self._call("search", query)
        return [
            EpisodeMatch(episode=cast(Episode, p.payload), similarity=float(p.score))
            for p in response.points
            if _is_episode(p.payload)
        ]

    def count(self, namespace: str) -> int:
        """How many episodes the namespace holds."""
        flt = _episodes_in(namespace)
        if not self._exists():
            return 0
        result = self._call(
            "count", lambda: self._client.count(self.collection, count_filter=flt)
        )
        return int(result.count)

    def episodes(self, namespace: str) -> list[Episode]:
        """Every episode of a namespace, oldest first."""
        flt = _episodes_in(namespace)
        if not self._exists():
            return []
        found: list[Episode] = []
        offset: Any = None
        while True:
            points, offset = self._scroll(flt, limit=256, offset=offset)
            found += [
                cast(Episode, p.payload) for p in points if _is_episode(p.payload)
            ]
            if offset is None:
                return sorted(found, key=lambda e: e["created_at"])

    def set_reflection(self, namespace: str, episode_id: str, text: str) -> None:
        """Attach a per-case reflection to a stored episode (its `reflection` field).

        Args:
            namespace: The episode's namespace.
            episode_id: The episode's id.
            text: The reflection; replaces any earlier one.

        Raises:
            InvalidInputError: The text is empty, invalid Unicode or over
                `MAX_TEXT_BYTES`, or no episode with this id is stored in
                this namespace.
            MemoryStoreError: The store could not be read or written.
        """
        _check_namespace(namespace)
        text = _check_text(text, "reflection")
        point_id = _episode_point_id(namespace, episode_id)
        payload = self._payload(point_id) if self._exists() else None
        if payload is None and self._ready:
            # Stores written before ids were derived from namespaces address
            # episodes by their own id; the namespace check below still holds.
            point_id = _check_id(episode_id)
            payload = self._payload(point_id)
        if (
            payload is None
            or payload.get("namespace") != namespace
            or payload.get("kind") == _LESSONS_KIND
        ):
            msg = f"no episode {episode_id!r} is stored in namespace {namespace!r}"
            raise InvalidInputError(msg)
        self._call(
            "write",
            lambda: self._client.set_payload(
                self.collection,
                payload={"reflection": text},
                points=[point_id],
                wait=True,
            ),
        )

    def get_lessons(self, namespace: str) -> str | None:
        """The namespace's lessons text, or `None` when none is stored.

        Raises:
            MemoryStoreError: The store could not be read.
        """
        _check_namespace(namespace)
        if not self._exists():
            return None
        payload = self._payload(_lessons_point_id(namespace))
        if payload is None or payload.get("kind") != _LESSONS_KIND:
            return None
        text = payload.get("lessons")
        return text if isinstance(text, str) and text else None

    def put_lessons(self, namespace: str, text: str) -> None:
        """Store (or replace) the namespace's lessons text.

        The lessons point needs a vector of the collection's size, so the
        collection must exist: store an episode first.

        Raises:
            InvalidInputError: The text is empty, invalid Unicode or over
                `MAX_TEXT_BYTES`.
            MemoryStoreError: The store could not be written, or holds no
                collection yet.
        """
        _check_namespace(namespace)
        text = _check_text(text, "lessons")
        if not self._exists():
            msg = (
                f"cannot store lessons at {self.location!r} before any episode: "
                "the collection's vector size is not known yet"
            )
            raise MemoryStoreError(msg)

        def write() -> None:
            size = self._size if self._size is not None else self._read_size()
            # A fixed unit vector: the point is never searched (every episode
            # read filters it out), and cosine distance rejects zero vectors.
            vector = [1.0] + [0.0] * (size - 1)
            payload = {
                "kind": _LESSONS_KIND,
                "namespace": namespace,
                "lessons": text,
                "updated_at": time.time(),
            }
            self._upsert(_lessons_point_id(namespace), vector, payload)

        self._call("write", write)

    def close(self) -> None:
        """Release the client (and the on-disk lock) if this store opened it."""
        if self._owns_client:
            with self._lock:
                self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
