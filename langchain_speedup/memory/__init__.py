"""Episodic memory: episodes of solved questions, stored on Qdrant."""

from langchain_speedup.memory.episodes import (
    Episode,
    EpisodeMatch,
    episode_from_result,
    episode_id,
)
from langchain_speedup.memory.store import (
    DEFAULT_COLLECTION,
    EpisodicStore,
    QdrantEpisodicStore,
)

__all__ = [
    "DEFAULT_COLLECTION",
    "Episode",
    "EpisodeMatch",
    "EpisodicStore",
    "QdrantEpisodicStore",
    "episode_from_result",
    "episode_id",
]
