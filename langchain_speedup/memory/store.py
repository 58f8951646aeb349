"""The episodic store: episodes on Qdrant, every read and write in one namespace.

The collection also holds one lessons point per namespace (payload
`kind: "lessons"`), which every episode read leaves out.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar, cast, runtime_checkable

from qdrant_client import QdrantClient, models

from langchain_speedup._internal import check_namespace
from langchain_speedup.errors import (
    ConfigurationError,
    InvalidInputError,
    MemoryStoreError,
)
from langchain_speedup.types import Episode, EpisodeMatch

__all__ = [
    "DEFAULT_COLLECTION",
    "EpisodicStore",
    "LessonsStore",
    "QdrantEpisodicStore",
    "ReflectionStore",
]

DEFAULT_COLLECTION = "speedup_episodes"

_LESSONS_KIND = "lessons"
_LESSONS_IDS = uuid.UUID("0b6c2f53-7d7e-4f0e-a6a4-9a1c3f8e5d21")

_T = TypeVar("_T")


def _lessons_point_id(namespace: str) -> str:
    """The deterministic point id of a namespace's lessons text."""
    return str(uuid.uuid5(_LESSONS_IDS, namespace))


def _check_namespace(namespace: object) -> str:
    """`check_namespace` for a call's input: raises `InvalidInputError`."""
    try:
        return check_namespace(namespace)
    except ConfigurationError as e:
        raise InvalidInputError(str(e)) from None


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        msg = f"{what} must be a non-empty string"
        raise InvalidInputError(msg)
    return text.strip()


def _point_id(episode_id: object) -> str:
    try:
        return str(uuid.UUID(str(episode_id)))
    except ValueError as e:
        msg = f"episode ids must be UUID strings, got {episode_id!r}"
        raise InvalidInputError(msg) from e


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

    Args:
        path: Directory for embedded on-disk mode.
        url: A Qdrant server or cluster URL.
        api_key: The server's API key.
        client: An existing `QdrantClient`; the store does not close it.
        collection: The collection name.

    Raises:
        MemoryStoreError: The store cannot be opened (for example a `path`
            that is a file, or is locked by another process).
    """

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        collection: str = DEFAULT_COLLECTION,
    ) -> None:
        if sum(x is not None for x in (path, url, client)) > 1:
            msg = "give at most one of `path`, `url` and `client`"
            raise MemoryStoreError(msg)
        if not collection or not isinstance(collection, str):
            msg = f"`collection` must be a non-empty string, got {collection!r}"
            raise MemoryStoreError(msg)
        self.collection = collection
        self.location = str(path or url or ("client" if client else ":memory:"))
        self._owns_client = client is None
        self._remote = url is not None
        self._lock = threading.RLock()
        try:
            if client is not None:
                self._client = client
            elif url is not None:
                self._client = QdrantClient(url=url, api_key=api_key)
            elif path is not None:
                target = Path(path)
                if target.exists() and not target.is_dir():
                    msg = (
                        f"the memory path {str(target)!r} exists and is not a directory"
                    )
                    raise MemoryStoreError(msg)
                target.mkdir(parents=True, exist_ok=True)
                self._client = QdrantClient(path=str(target))
            else:
                self._client = QdrantClient(":memory:")
            self._ready = self._client.collection_exists(collection)
        except MemoryStoreError:
            raise
        except Exception as e:
            msg = f"cannot open the episodic store at {self.location!r}: {e}"
            raise MemoryStoreError(msg) from e

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

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        try:
            with self._lock:
                return fn()
        except (MemoryStoreError, InvalidInputError):
            raise
        except Exception as e:
            msg = f"episodic store {what} failed at {self.location!r}: {e}"
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

    def _ensure_collection(self, size: int) -> None:
        if self._ready or self._client.collection_exists(self.collection):
            self._ready = True
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
        self._ready = True

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
        """Store one episode; an existing episode with the same id is replaced.

        Raises:
            InvalidInputError: The episode's namespace or id is invalid, or the
                vector is empty.
            MemoryStoreError: The store could not be written.
        """
        _check_namespace(episode.get("namespace"))
        point_id = _point_id(episode.get("id"))
        if not vector:
            msg = "cannot store an episode without a vector"
            raise InvalidInputError(msg)

        def write() -> None:
            self._ensure_collection(len(vector))
            self._upsert(point_id, list(vector), dict(episode))

        self._call("write", write)

    def find(self, namespace: str, question_key: str) -> Episode | None:
        """The newest verified episode of exactly this question, if any."""
        flt = _episodes_in(namespace, question_key=question_key, verified=True)
        if not self._exists():
            return None
        points, _ = self._scroll(flt, limit=64)
        episodes: list[Episode] = [p.payload for p in points if p.payload]
        return max(episodes, key=lambda e: e["created_at"], default=None)

    def search(
        self, namespace: str, vector: Sequence[float], *, limit: int = 3
    ) -> list[EpisodeMatch]:
        """The verified episodes most similar to `vector`, most similar first."""
        flt = _episodes_in(namespace, verified=True)
        if not self._exists():
            return []
        response = self._call(
            "search",
            lambda: self._client.query_points(
                self.collection,
                query=list(vector),
                query_filter=flt,
                limit=limit,
                with_payload=True,
            ),
        )
        return [
            EpisodeMatch(episode=cast(Episode, p.payload), similarity=float(p.score))
            for p in response.points
            if p.payload
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
            found += [p.payload for p in points if p.payload]
            if offset is None:
                return sorted(found, key=lambda e: e["created_at"])

    def set_reflection(self, namespace: str, episode_id: str, text: str) -> None:
        """Attach a per-case reflection to a stored episode (its `reflection` field).

        Args:
            namespace: The episode's namespace.
            episode_id: The episode's id.
            text: The reflection; replaces any earlier one.

        Raises:
            InvalidInputError: The text is empty, or no episode with this id is
                stored in this namespace.
            MemoryStoreError: The store could not be read or written.
        """
        _check_namespace(namespace)
        text = _check_text(text, "a reflection")
        point_id = _point_id(episode_id)
        payload = self._payload(point_id) if self._exists() else None
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
            InvalidInputError: The text is empty.
            MemoryStoreError: The store could not be written, or holds no
                collection yet.
        """
        _check_namespace(namespace)
        text = _check_text(text, "the lessons")
        if not self._exists():
            msg = (
                f"cannot store lessons at {self.location!r} before any episode: "
                "the collection's vector size is not known yet"
            )
            raise MemoryStoreError(msg)

        def write() -> None:
            vectors = self._client.get_collection(self.collection).config.params.vectors
            if not isinstance(vectors, models.VectorParams):
                msg = f"collection {self.collection!r} does not hold one unnamed vector"
                raise MemoryStoreError(msg)
            # A fixed unit vector: the point is never searched (every episode
            # read filters it out), and cosine distance rejects zero vectors.
            vector = [1.0] + [0.0] * (int(vectors.size) - 1)
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
