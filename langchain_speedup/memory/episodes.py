"""Episodes: what the system remembers about one solved question."""

from __future__ import annotations

import time
import uuid
from typing import NotRequired

from typing_extensions import TypedDict

from langchain_speedup.answers import question_key
from langchain_speedup.scaling.base import ScalingResult

__all__ = ["Episode", "EpisodeMatch", "episode_from_result", "episode_id"]

_ID_NAMESPACE = uuid.UUID("6c1f4e0a-52b5-4c1e-9d0f-3b7a5d3e2a11")


class Episode(TypedDict):
    """One answered question, as stored in the episodic store."""

    id: str
    """A UUID; writing the same id twice overwrites, never duplicates."""
    namespace: str
    """The tenant; every read and write is confined to one namespace."""
    question: str
    question_key: str
    answer: str
    """The selected solution's text."""
    final_answer: str | None
    score: float
    verified: bool
    """Whether the score reached the method's threshold; only verified
    episodes are reused or shown as exemplars."""
    method: str
    mode: str
    budget_used: int
    budget_unit: str
    stop_reason: str
    decision: str
    """The router's decision for this question."""
    generations: int
    total_tokens: int
    seconds: float
    created_at: float
    """Unix time of the write."""
    similarity: NotRequired[float | None]
    """The closest verified episode's similarity when this question was
    routed; `None` when nothing similar was stored."""
    budget: NotRequired[int]
    """The most the question was allowed to spend, in `budget_unit`."""
    reflection: NotRequired[str]
    """A short lesson drawn from this episode (`reflect`), if one was written."""


class EpisodeMatch(TypedDict):
    """An episode returned by a similarity search, with its similarity."""

    episode: Episode
    similarity: float
    """Cosine similarity of the questions' embeddings, in [-1, 1]."""
    vector: NotRequired[list[float]]


def episode_id(namespace: str, run_id: str) -> str:
    """A deterministic episode id for one question of one run (idempotent)."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{namespace}\x00{run_id}"))


def episode_from_result(
    *,
    id: str,
    namespace: str,
    question: str,
    result: ScalingResult,
    decision: str,
    similarity: float | None = None,
    budget: int | None = None,
) -> Episode:
    """Build the episode to store for a scaling method's result.

    `similarity` and `budget` record the routing outcome the similarity gate
    learns from (`SimilarityGate.observe_episodes`).
    """
    usage = result["usage"]
    episode = Episode(
        id=id,
        namespace=namespace,
        question=question,
        question_key=question_key(question),
        answer=result["answer"],
        final_answer=result["final_answer"],
        score=result["score"],
        verified=result["passed"] and result["final_answer"] is not None,
        method=result["method"],
        mode=result["mode"],
        budget_used=result["budget_used"],
        budget_unit=result["budget_unit"],
        stop_reason=result["stop_reason"],
        decision=decision,
        generations=usage["generations"],
        total_tokens=usage["total_tokens"],
        seconds=usage["seconds"],
        created_at=time.time(),
    )
    if budget is not None:
        episode["similarity"] = similarity
        episode["budget"] = budget
    return episode
