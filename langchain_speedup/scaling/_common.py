"""Helpers the scaling methods share: validation, model calls, results, events.

Not public API. Graph node functions are the only callers of `emit`, so the
functional cores never write to a stream they were not asked to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AnyMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.config import get_stream_writer

from langchain_speedup._internal import raise_model_error
from langchain_speedup.answers import extract_answer
from langchain_speedup.budget import Ledger, Role, Usage
from langchain_speedup.errors import ConfigurationError
from langchain_speedup.scaling.base import (
    Candidate,
    Exemplar,
    MemoryContext,
    ScalingEvent,
    ScalingOptions,
    ScalingResult,
    StopReason,
)
from langchain_speedup.scoring import Scorer, check_score

ChatRunnable = Runnable[LanguageModelInput, BaseMessage]

# A graph needs this many supersteps after a decision to reach `select`; the
# conditional edges stop early rather than hit the caller's recursion limit.
_SELECT_STEPS = 1


# -- validation ----------------------------------------------------------------------


def check_model(model: object) -> None:
    """Raise `ConfigurationError` unless `model` is a runnable."""
    if not isinstance(model, Runnable):
        msg = f"`model` must be a chat model or runnable, got {type(model).__name__}"
        raise ConfigurationError(msg)


def check_count(name: str, value: object, *, minimum: int = 1) -> int:
    """Return `value` if it is an integer >= `minimum`, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"`{name}` must be an integer >= {minimum}, got {value!r}"
        raise ConfigurationError(msg)
    return value


def check_prompt(name: str, value: object) -> str:
    """Return `value` if it is a non-empty string, else raise."""
    if not isinstance(value, str) or not value.strip():
        msg = f"`{name}` must be a non-empty string, got {value!r}"
        raise ConfigurationError(msg)
    return value


# -- memory --------------------------------------------------------------------------


def chain_exemplars(memory: MemoryContext | None) -> tuple[list[Exemplar], bool]:
    """Exemplars for a method that grows one chain of prompts, and whether any.

    A chain shares one prompt prefix, so it sees the exemplars unless memory
    allows none (`samples == 0`). Methods that can escalate use `exemplars_at`
    to limit them to memory's start.
    """
    if not memory or not memory["exemplars"] or memory.get("samples", 1) < 1:
        return [], False
    return list(memory["exemplars"]), True


def exemplars_at(
    memory: MemoryContext | None, unit: int
) -> tuple[list[Exemplar], bool]:
    """Exemplars for the `unit`-th budget unit of a run (0-based), and whether any.

    For methods that can escalate (Self-Refine, Tree-of-Thoughts): the first
    `samples` units see the exemplars, the rest of the run does not; every
    unit sees them when `samples` is absent.
    """
    exemplars, with_memory = chain_exemplars(memory)
    samples = memory.get("samples") if memory else None
    if not with_memory or (samples is not None and unit >= samples):
        return [], False
    return exemplars, True


def escalates_at(memory: MemoryContext | None, unit: int) -> bool:
    """Whether `unit` is the first unit past memory's start.

    There the run leaves the exemplars behind and starts afresh from the plain
    prompt.
    """
    return (
        unit >= 1
        and exemplars_at(memory, unit - 1)[1]
        and not exemplars_at(memory, unit)[1]
    )


def lessons_of(memory: MemoryContext | None) -> str | None:
    """The lessons memory holds for every prompt of the run, if any.

    Lessons carry no final answer, so they are not limited to memory's start;
    `samples == 0` still keeps all memory out.
    """
    if not memory or memory.get("samples", 1) < 1:
        return None
    return memory.get("lessons") or None


def precedents_of(memory: MemoryContext | None) -> list[str]:
    """The verified precedents memory holds, for the scorer."""
    return list(memory["precedents"]) if memory else []


# -- model calls ---------------------------------------------------------------------


def invoke(
    model: ChatRunnable,
    prompt: Sequence[AnyMessage],
    config: RunnableConfig,
    *,
    role: Role,
) -> BaseMessage:
    """One model call; failures become `ModelError`."""
    try:
        return model.invoke(list(prompt), config)
    except Exception as e:  # noqa: BLE001
        raise_model_error(e, role=role)


async def ainvoke(
    model: ChatRunnable,
    prompt: Sequence[AnyMessage],
    config: RunnableConfig,
    *,
    role: Role,
) -> BaseMessage:
    """Async form of `invoke`."""
    try:
        return await model.ainvoke(list(prompt), config)
    except Exception as e:  # noqa: BLE001
        raise_model_error(e, role=role)


def batch(
    model: ChatRunnable,
    prompts: Sequence[Sequence[AnyMessage]],
    config: RunnableConfig,
    *,
    role: Role,
) -> list[BaseMessage]:
    """Parallel model calls (honouring `max_concurrency`), in input order."""
    try:
        return model.batch([list(p) for p in prompts], config)
    except Exception as e:  # noqa: BLE001
        raise_model_error(e, role=role)


async def abatch(
    model: ChatRunnable,
    prompts: Sequence[Sequence[AnyMessage]],
    config: RunnableConfig,
    *,
    role: Role,
) -> list[BaseMessage]:
    """Async form of `batch`."""
    try:
        return await model.abatch([list(p) for p in prompts], config)
    except Exception as e:  # noqa: BLE001
        raise_model_error(e, role=role)


# -- candidates and results ----------------------------------------------------------


def make_candidate(
    scorer: Scorer,
    text: str,
    score: object,
    *,
    with_memory: bool,
    complete: bool = True,
) -> Candidate:
    """A scored candidate; a partial one (`complete=False`) has no answer."""
    return Candidate(
        text=text,
        answer=extract_answer(text) if complete else None,
        score=check_score(scorer, score),
        with_memory=with_memory,
    )


def score_in_turn(
    scorer: Scorer,
    question: str,
    text: str,
    earlier: Sequence[Candidate],
    memory: MemoryContext | None,
    config: RunnableConfig | None,
    *,
    with_memory: bool | None = None,
) -> tuple[Candidate, Usage]:
    """Score the next answer of a sequential method against the earlier ones.

    `with_memory` says whether its prompt held exemplars; by default, whether
    memory puts them into the chain.
    """
    ledger = Ledger()
    score = scorer.score(
        question,
        text,
        peers=[c["text"] for c in earlier],
        precedents=precedents_of(memory),
        config=ledger.config(config, role="scorer"),
    )
    if with_memory is None:
        with_memory = chain_exemplars(memory)[1]
    return make_candidate(scorer, text, score, with_memory=with_memory), ledger.usage()


async def ascore_in_turn(
    scorer: Scorer,
    question: str,
    text: str,
    earlier: Sequence[Candidate],
    memory: MemoryContext | None,
    config: RunnableConfig | None,
    *,
    with_memory: bool | None = None,
) -> tuple[Candidate, Usage]:
    """Async form of `score_in_turn`."""
    ledger = Ledger()
    score = await scorer.ascore(
        question,
        text,
        peers=[c["text"] for c in earlier],
        precedents=precedents_of(memory),
        config=ledger.config(config, role="scorer"),
    )
    if with_memory is None:
        with_memory = chain_exemplars(memory)[1]
    return make_candidate(scorer, text, score, with_memory=with_memory), ledger.usage()


def pick_latest_best(
    candidates: Sequence[Candidate], options: ScalingOptions
) -> Candidate:
    """The pick of a sequential method (Self-Refine, Long CoT).

    Adaptive runs take the first passing candidate. Otherwise the best score
    wins and, among equals, the latest: it had the most refinement or thought.
    """
    assert candidates, "selection needs at least one candidate"
    threshold = options.active_threshold
    if options.mode == "adaptive":
        for candidate in candidates:
            if candidate["score"] >= threshold:
                return candidate
    best = candidates[0]
    for candidate in candidates[1:]:
        if candidate["score"] >= best["score"]:
            best = candidate
    return best


def build_result(
    *,
    method: str,
    unit: str,
    options: ScalingOptions,
    best: Candidate,
    candidates: Sequence[Candidate],
    budget_used: int,
    usage: Usage,
    complete: bool = True,
) -> ScalingResult:
    """The `ScalingResult` for a selected candidate (rules as in Best-of-N).

    A partial solution (`complete=False`) never counts as passing.
    """
    passed = complete and best["score"] >= options.active_threshold
    reason: StopReason = (
        "threshold" if options.mode == "adaptive" and passed else "budget"
    )
    return ScalingResult(
        method=method,
        mode=options.mode,
        answer=best["text"],
        final_answer=best["answer"],
        score=best["score"],
        passed=passed,
        stop_reason=reason,
        budget_used=budget_used,
        budget_unit=unit,
        candidates=list(candidates),
        usage=usage,
    )


# -- graphs: stream events and step limits -------------------------------------------


def emit(event: ScalingEvent) -> None:
    """Write `event` to the custom stream of the running graph, if any."""
    try:
        writer = get_stream_writer()
    except (RuntimeError, KeyError):
        # Outside a graph run (no runnable context, or one without a runtime)
        # there is no stream to write to; that is not an error.
        return
    writer(event)


def candidate_event(method: str, index: int, text: str) -> ScalingEvent:
    """The event for a new, not yet scored candidate."""
    return ScalingEvent(method=method, event="candidate", index=index, text=text)


def score_event(
    method: str,
    index: int,
    candidate: Candidate,
    options: ScalingOptions,
    *,
    complete: bool = True,
) -> ScalingEvent:
    """The event for a candidate's score; a partial one never passes."""
    return ScalingEvent(
        method=method,
        event="score",
        index=index,
        answer=candidate["answer"],
        score=candidate["score"],
        passed=complete and candidate["score"] >= options.active_threshold,
    )


def stop_event(result: ScalingResult) -> ScalingEvent:
    """The event closing a run: why it stopped and what it spent."""
    return ScalingEvent(
        method=result["method"],
        event="stop",
        answer=result["final_answer"],
        score=result["score"],
        passed=result["passed"],
        stop_reason=result["stop_reason"],
        budget_used=result["budget_used"],
        budget_unit=result["budget_unit"],
    )


def steps_left(state: Mapping[str, Any], needed: int) -> bool:
    """Whether `needed` more supersteps, then `select`, fit the recursion limit.

    Reads the `remaining_steps` managed value; without it there is no limit.
    """
    remaining = state.get("remaining_steps")
    return remaining is None or remaining > needed + _SELECT_STEPS
