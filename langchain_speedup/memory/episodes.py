"""The episode stored for one answered question."""

from __future__ import annotations

import time
from collections.abc import Sequence

from langchain_speedup.answers import question_key, same_problem, states_answer
from langchain_speedup.types import Episode, EpisodeMatch, ScalingResult

__all__ = ["episode_from_result", "precedents_of"]


def episode_from_result(
    *,
    id: str,
    namespace: str,
    question: str,
    result: ScalingResult,
    decision: str,
    similarity: float | None = None,
    budget: int | None = None,
    key: str | None = None,
) -> Episode:
    """Build the episode to store for a scaling method's result.

    Args:
        id: The episode's UUID.
        namespace: The tenant it belongs to.
        question: The question answered.
        result: The scaling method's result.
        decision: The router's decision for the question.
        similarity: The closest verified episode's similarity at routing.
        budget: The most the question was allowed to spend; with it,
            `similarity` and `budget` are recorded for the similarity gate to
            learn from (`SimilarityGate.observe_episodes`).
        key: The question's reuse key (`reuse_key`, which knows the
            conversation); its `question_key` when `None`.

    Returns:
        The episode, verified when the result passed with a final answer; its
        `votes` are the final answers its candidates stated.
    """
    usage = result["usage"]
    episode = Episode(
        id=id,
        namespace=namespace,
        question=question,
        question_key=question_key(question) if key is None else key,
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
        votes=[
            c["answer"]
            for c in result["candidates"]
            if c["answer"] is not None and states_answer(c["text"])
        ],
    )
    if budget is not None:
        episode["similarity"] = similarity
        episode["budget"] = budget
    return episode


def precedents_of(question: str, matches: Sequence[EpisodeMatch]) -> list[str]:
    """The verified final answers of `question`'s own problem among `matches`.

    Only a rewording of the same problem (same numbers and names,
    `same_problem`) is a precedent; the consensus scorer counts them as votes.
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
