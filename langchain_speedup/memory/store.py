"""The episodic store: episodes on Qdrant, confined to namespaces.

`EpisodicStore` is the small interface the router needs, so other backends can
follow. `QdrantEpisodicStore` implements it with qdrant-client: embedded local
mode on disk (`path=`) or in memory by default, a Qdrant server or cluster by
`url=` (or `QDRANT_URL` / `QDRANT_API_KEY` through `from_env`). Every read and
write filters on the namespace, and episodes are upserted by their id, so a
retried write never duplicates one.

Besides episodes, the collection may hold one *lessons* point per namespace:
the Reflect-Update memory's generalised lessons text (see
`langchain_speedup.memory.reflection`). It has the payload `kind: "lessons"`
and a deterministic id, and every episode read excludes it; points without a
`kind` are episodes, so collections written before lessons existed read as
before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

from qdrant_client import QdrantClient, models

from langchain_speedup.errors import InvalidInputError, MemoryStoreError
from langchain_speedup.memory.episodes import Episode, EpisodeMatch

__all__ = [
    "DEFAULT_COLLECTION",
    "LESSONS_KIND",
    "EpisodicStore",
    "QdrantEpisodicStore",
    "lessons_point_id",
]

logger = logging.getLogger(__name__)

DEFAULT_COLLECTION = "speedup_episodes"

LESSONS_KIND = "lessons"
"""The `kind` payload value of a namespace's lessons point."""

_LESSONS_ID_NAMESPACE = uuid.UUID("0b6c2f53-7d7e-4f0e-a6a4-9a1c3f8e5d21")


def lessons_point_id(namespace: str) -> str:
    """The deterministic point id of a namespace's lessons text."""
    return str(uuid.uuid5(_LESSONS_ID_NAMESPACE, namespace))


@runtime_checkable
class EpisodicStore(Protocol):
    """Where episodes live. Every call is confined to one namespace."""

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
        ...

    async def afind(self, namespace: str, question_key: str) -> Episode | None:
        """Async form of `find`."""
        ...

    async def asearch(
        self, namespace: str, vector: Sequence[float], *, limit: int = 3
    ) -> list[EpisodeMatch]:
        """Async form of `search`."""
        ...


def _check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not namespace.strip():
        msg = f"the namespace must be a non-empty string, got {namespace!r}"
        raise InvalidInputError(msg)
    return namespace


def _match(key: str, value: str | bool) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _episodes_filter(*conditions: models.Condition) -> models.Filter:
    # Lessons points share the collection; points without `kind` are episodes.
    return models.Filter(must=list(conditions), must_not=[_match("kind", LESSONS_KIND)])


class QdrantEpisodicStore:
    """Episodes in a Qdrant collection, one point per episode.

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
            return cls(
                url=url, api_key=os.environ.get("QDRANT_API_KEY"), collection=collection
            )
        return cls(path=path, collection=collection)

    def _exists(self) -> bool:
        # Another client (another store, process or worker on the same server)
        # may create the collection after this store opened: look again until
        # it exists rather than trusting the answer read at construction.
        if not self._ready:
            exists = self._call("read", self._client.collection_exists, self.collection)
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
            for field in ("namespace", "question_key", "kind"):
                self._client.create_payload_index(
                    self.collection, field, models.PayloadSchemaType.KEYWORD
                )
            self._client.create_payload_index(
                self.collection, "verified", models.PayloadSchemaType.BOOL
            )
        self._ready = True

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._lock:
                return fn(*args, **kwargs)
        except (MemoryStoreError, InvalidInputError):
            raise
        except Exception as e:
            msg = f"episodic store {what} failed at {self.location!r}: {e}"
            raise MemoryStoreError(msg) from e

    def put(self, episode: Episode, vector: Sequence[float]) -> None:
        """Store one episode; an existing episode with the same id is replaced."""
        _check_namespace(episode.get("namespace"))
        try:
            point_id = str(uuid.UUID(episode["id"]))
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            msg = f"episode ids must be UUID strings, got {episode.get('id')!r}"
            raise InvalidInputError(msg) from e
        if not vector:
            msg = "cannot store an episode without a vector"
            raise InvalidInputError(msg)

        def write() -> None:
            self._ensure_collection(len(vector))
            self._client.upsert(
                self.collection,
                points=[
                    models.PointStruct(
                        id=point_id, vector=list(vector), payload=dict(episode)
                    )
                ],
                wait=True,
            )

        self._call("write", write)

    def find(self, namespace: str, question_key: str) -> Episode | None:
        """The newest verified episode of exactly this question, if any."""
        _check_namespace(namespace)
        if not self._exists():
            return None
        flt = _episodes_filter(
            _match("namespace", namespace),
            _match("question_key", question_key),
            _match("verified", True),
        )
        points, _ = self._call(
            "read",
            self._client.scroll,
            self.collection,
            scroll_filter=flt,
            limit=64,
            with_payload=True,
            with_vectors=False,
        )
        episodes: list[Episode] = [p.payload for p in points if p.payload]
        return max(episodes, key=lambda e: e["created_at"], default=None)

    def search(
        self, namespace: str, vector: Sequence[float], *, limit: int = 3
    ) -> list[EpisodeMatch]:
        """The verified episodes most similar to `vector`, most similar first."""
        _check_namespace(namespace)
        if not self._exists():
            return []
        flt = _episodes_filter(_match("namespace", namespace), _match("verified", True))
        response = self._call(
            "search",
            self._client.query_points,
            self.collection,
            query=list(vector),
            query_filter=flt,
            limit=limit,
            with_payload=True,
        )
        return [
            EpisodeMatch(episode=p.payload, similarity=float(p.score))
            for p in response.points
            if p.payload
        ]

    def count(self, namespace: str) -> int:
        """How many episodes the namespace holds."""
        _check_namespace(namespace)
        if not self._exists():
            return 0
        flt = _episodes_filter(_match("namespace", namespace))
        result = self._call(
            "count", self._client.count, self.collection, count_filter=flt
        )
        return int(result.count)

    def episodes(self, namespace: str) -> list[Episode]:
        """Every episode of a namespace, oldest first."""
        _check_namespace(namespace)
        if not self._exists():
            return []
        flt = _episodes_filter(_match("namespace", namespace))
        found: list[Episode] = []
        offset: Any = None
        while True:
            points, offset = self._call(
                "read",
                self._client.scroll,
                self.collection,
                scroll_filter=flt,
                limit=256,
                offset=offset,
                with_payload=True,
            )
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
        if not isinstance(text, str) or not text.strip():
            msg = "a reflection must be a non-empty string"
            raise InvalidInputError(msg)
        point_id = self._point_id(episode_id)
        payload = self._payload(point_id) if self._exists() else None
        if (
            payload is None
            or payload.get("namespace") != namespace
            or payload.get("kind") == LESSONS_KIND
        ):
            msg = f"no episode {episode_id!r} is stored in namespace {namespace!r}"
            raise InvalidInputError(msg)
        self._call(
            "write",
            self._client.set_payload,
            self.collection,
            payload={"reflection": text.strip()},
            points=[point_id],
            wait=True,
        )

    def get_lessons(self, namespace: str) -> str | None:
        """The namespace's lessons text, or `None` when none is stored.

        Raises:
            MemoryStoreError: The store could not be read.
        """
        _check_namespace(namespace)
        if not self._exists():
            return None
        payload = self._payload(lessons_point_id(namespace))
        if payload is None or payload.get("kind") != LESSONS_KIND:
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
        if not isinstance(text, str) or not text.strip():
            msg = "the lessons must be a non-empty string"
            raise InvalidInputError(msg)
        if not self._exists():
            msg = (
                f"cannot store lessons at {self.location!r} before any episode: "
                "the collection's vector size is not known yet"
            )
            raise MemoryStoreError(msg)

        def write() -> None:
            params = self._client.get_collection(self.collection).config.params
            vectors = params.vectors
            if not isinstance(vectors, models.VectorParams):
                msg = f"collection {self.collection!r} does not hold one unnamed vector"
                raise MemoryStoreError(msg)
            size = int(vectors.size)
            # A fixed unit vector: the point is never searched (every episode
            # read filters it out), and cosine distance rejects zero vectors.
            vector = [1.0] + [0.0] * (size - 1)
            payload = {
                "kind": LESSONS_KIND,
                "namespace": namespace,
                "lessons": text.strip(),
                "updated_at": time.time(),
            }
            self._client.upsert(
                self.collection,
                points=[
                    models.PointStruct(
                        id=lessons_point_id(namespace), vector=vector, payload=payload
                    )
                ],
                wait=True,
            )

        self._call("write", write)

    def _point_id(self, episode_id: str) -> str:
        try:
            return str(uuid.UUID(str(episode_id)))
        except ValueError as e:
            msg = f"episode ids must be UUID strings, got {episode_id!r}"
            raise InvalidInputError(msg) from e

    def _payload(self, point_id: str) -> dict[str, Any] | None:
        points = self._call(
            "read",
            self._client.retrieve,
            self.collection,
            ids=[point_id],
            with_payload=True,
            with_vectors=False,
        )
        return dict(points[0].payload or {}) if points else None

    async def aset_reflection(self, namespace: str, episode_id: str, text: str) -> None:
        """Async form of `set_reflection` (runs in a worker thread)."""
        await asyncio.to_thread(self.set_reflection, namespace, episode_id, text)

    async def aget_lessons(self, namespace: str) -> str | None:
        """Async form of `get_lessons` (runs in a worker thread)."""
        return await asyncio.to_thread(self.get_lessons, namespace)

    async def aput_lessons(self, namespace: str, text: str) -> None:
        """Async form of `put_lessons` (runs in a worker thread)."""
        await asyncio.to_thread(self.put_lessons, namespace, text)

    async def aput(self, episode: Episode, vector: Sequence[float]) -> None:
        """Async form of `put` (runs in a worker thread)."""
        await asyncio.to_thread(self.put, episode, vector)

    async def afind(self, namespace: str, question_key: str) -> Episode | None:
        """Async form of `find` (runs in a worker thread)."""
        return await asyncio.to_thread(self.find, namespace, question_key)

    async def asearch(
        self, namespace: str, vector: Sequence[float], *, limit: int = 3
    ) -> list[EpisodeMatch]:
        """Async form of `search` (runs in a worker thread)."""
        return await asyncio.to_thread(self.search, namespace, vector, limit=limit)

    def close(self) -> None:
        """Release the client (and the on-disk lock) if this store opened it."""
        if self._owns_client:
            with self._lock:
                self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
