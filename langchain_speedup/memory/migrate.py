"""Copy a store written by 0.1.0's `QdrantEpisodicStore` into a `QdrantStore`.

0.1.0 kept everything in one qdrant-client collection (`speedup_episodes`,
local mode on disk): one point per episode (payload: the episode, with its
`reflection` if any), and one point per namespace with `kind: "lessons"`.
The copy goes through `EpisodicMemory`, so it gets today's layout (reuse
pointers, reflections apart, the gate's outcome totals) and its checks; each
question keeps the vector it was stored with, so no embedding model is needed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from langchain_core.embeddings import Embeddings
from typing_extensions import TypedDict

from langchain_speedup.errors import MemoryStoreError, SpeedupError
from langchain_speedup.memory.qdrant import QdrantStore
from langchain_speedup.memory.store import EpisodicMemory
from langchain_speedup.types import Episode

__all__ = ["OLD_COLLECTION", "MigrationReport", "migrate_store"]

logger = logging.getLogger(__name__)

OLD_COLLECTION = "speedup_episodes"
"""The collection 0.1.0's `QdrantEpisodicStore` wrote."""

_PAGE = 512


class MigrationReport(TypedDict):
    """What `migrate_store` copied."""

    episodes: int
    reflections: int
    lessons: int
    skipped: int
    """Points that were neither a valid episode nor a lessons text."""


class _KeptVectors(Embeddings):
    """Gives each question the vector 0.1.0 stored for it."""

    def __init__(self) -> None:
        self.vectors: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        try:
            return [self.vectors[t] for t in texts]
        except KeyError as e:
            msg = f"no stored vector for the text {e.args[0][:60]!r}"
            raise MemoryStoreError(msg) from None

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def _old_points(client: Any, collection: str) -> Iterator[Any]:
    offset: Any = None
    while True:
        points, offset = client.scroll(
            collection, limit=_PAGE, offset=offset, with_payload=True, with_vectors=True
        )
        yield from points
        if offset is None:
            return


def migrate_store(
    old: str | os.PathLike[str],
    new: str | os.PathLike[str],
    *,
    collection: str = OLD_COLLECTION,
) -> MigrationReport:
    """Copy a 0.1.0 on-disk store at `old` into a new `QdrantStore` at `new`.

    `old` is only read. Episodes are written oldest first, so each question's
    reuse pointer ends on its newest verified episode.

    Example:
        ```python
        report = migrate_store("./speedup-memory", "./speedup-memory-v2")
        store = QdrantStore(path="./speedup-memory-v2", index=memory_index(emb))
        ```

    Args:
        old: The directory 0.1.0 wrote (qdrant-client local mode).
        new: An empty or missing directory for the new store.
        collection: The old collection's name.

    Returns:
        The counts of what was copied and skipped.

    Raises:
        MemoryStoreError: `old` holds no such store, `new` is not empty, or
            either cannot be opened.
    """
    from qdrant_client import QdrantClient, models

    source, target = Path(old), Path(new)
    if not (source / "meta.json").is_file():
        msg = f"{str(source)!r} holds no store written by 0.1.0 (no meta.json)"
        raise MemoryStoreError(msg)
    if target.exists() and any(target.iterdir()):
        msg = f"the target {str(target)!r} is not empty: give a new directory"
        raise MemoryStoreError(msg)
    try:
        client = QdrantClient(path=str(source))
    except Exception as e:
        msg = f"cannot open the old store at {str(source)!r}: {e}"
        raise MemoryStoreError(msg) from e
    report = MigrationReport(episodes=0, reflections=0, lessons=0, skipped=0)
    try:
        if not client.collection_exists(collection):
            msg = f"{str(source)!r} holds no collection {collection!r}"
            raise MemoryStoreError(msg)
        params = client.get_collection(collection).config.params.vectors
        if not isinstance(params, models.VectorParams):
            msg = f"the collection {collection!r} does not hold one unnamed vector"
            raise MemoryStoreError(msg)
        dims = int(params.size)
        kept = _KeptVectors()
        episodes: list[Episode] = []
        lessons: dict[str, str] = {}
        for point in _old_points(client, collection):
            payload = dict(point.payload or {})
            if payload.get("kind") == "lessons":
                text, tenant = payload.get("lessons"), payload.get("namespace")
                if isinstance(text, str) and text and isinstance(tenant, str):
                    lessons[tenant] = text
                else:
                    report["skipped"] += 1
                continue
            if isinstance(payload.get("question"), str) and point.vector:
                kept.vectors[payload["question"]] = [float(x) for x in point.vector]
            episodes.append(cast(Episode, payload))
    finally:
        client.close()

    index: Any = {"dims": dims, "embed": kept, "fields": ["question"]}
    with QdrantStore(path=target, index=index) as store:
        memory = EpisodicMemory(store)
        for episode in sorted(episodes, key=lambda e: float(e.get("created_at", 0.0))):
            reflection = episode.pop("reflection", None)
            try:
                memory.put(episode)
            except SpeedupError as e:
                if isinstance(e, MemoryStoreError) and "failed" in str(e):
                    raise
                logger.warning("skipped an old point that is no episode: %s", e)
                report["skipped"] += 1
                continue
            report["episodes"] += 1
            if isinstance(reflection, str) and reflection.strip():
                memory.set_reflection(episode["namespace"], episode["id"], reflection)
                report["reflections"] += 1
        for tenant, text in lessons.items():
            memory.put_lessons(tenant, text)
            report["lessons"] += 1
    return report
