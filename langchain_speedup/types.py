"""The data every part of the package shares, as plain `TypedDict`s.

Scaling methods, memory, the router and the benchmarks all speak these types
and import them from here, so no package reaches into another's internals.
Every value is plain data (strings, numbers, lists, dicts), so it travels
through LangGraph state and checkpoints unchanged.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypeAlias

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from typing_extensions import TypedDict

__all__ = [
    "METHODS",
    "Candidate",
    "ChatRunnable",
    "Decision",
    "Episode",
    "EpisodeMatch",
    "Exemplar",
    "MemoryContext",
    "Method",
    "Mode",
    "Procedure",
    "ProcedureTrial",
    "Quantity",
    "Role",
    "Route",
    "ScalingEvent",
    "ScalingResult",
    "SpeedupResult",
    "StopReason",
    "Usage",
    "add_usage",
    "empty_usage",
]

ChatRunnable: TypeAlias = Runnable[LanguageModelInput, BaseMessage]
"""A chat model, or any runnable that takes a prompt and returns a message."""

Mode = Literal["static", "adaptive"]
"""`static` spends the whole budget; `adaptive` stops once a score passes."""

Method = Literal["best_of_n", "self_refine", "tree_of_thoughts", "long_cot"]
"""The name of a scaling method, as in `ScalingResult["method"]`."""

METHODS: tuple[Method, ...] = (
    "best_of_n",
    "self_refine",
    "tree_of_thoughts",
    "long_cot",
)
"""Every method, in the order the package introduces them."""

StopReason = Literal["threshold", "budget"]
"""Why a method stopped: a score reached the threshold, or the budget ran out."""

Role = Literal["solver", "scorer", "reflection", "memory"]
"""What a model call was for; `memory` is memory's own work, such as reading a
new question's quantities for a stored procedure."""

Decision = Literal["reuse", "exemplars", "scratch", "procedure"]
"""The router's decision for one question: `procedure` solves it without
exemplars, a stored procedure's answer on its numbers as the scorer's
evidence."""


class Usage(TypedDict):
    """Compute spent on one question (or summed over several)."""

    generations: int
    """Solver calls, each producing one candidate."""
    solver_input_tokens: int
    solver_output_tokens: int
    scorer_calls: int
    scorer_input_tokens: int
    scorer_output_tokens: int
    other_calls: int
    """Calls made for other roles, such as reflection."""
    other_tokens: int
    failed_calls: int
    """Calls that raised; their prompt tokens are counted as spent."""
    total_tokens: int
    """All input and output tokens of every counted call."""
    seconds: float
    """Wall time spent."""


def empty_usage() -> Usage:
    """A `Usage` with every count at zero."""
    return Usage(
        generations=0,
        solver_input_tokens=0,
        solver_output_tokens=0,
        scorer_calls=0,
        scorer_input_tokens=0,
        scorer_output_tokens=0,
        other_calls=0,
        other_tokens=0,
        failed_calls=0,
        total_tokens=0,
        seconds=0.0,
    )


def add_usage(*usages: Usage) -> Usage:
    """Sum several `Usage` records field by field."""
    total = empty_usage()
    for usage in usages:
        for key in total:
            total[key] += usage[key]  # type: ignore[literal-required]
    return total


class Exemplar(TypedDict):
    """A solved question shown to the model before the new one."""

    question: str
    solution: str


class MemoryContext(TypedDict):
    """What memory contributes to one question (built by the router)."""

    exemplars: list[Exemplar]
    """Solved examples, most similar last."""
    precedents: list[str]
    """Verified final answers held for the same problem (reworded at most);
    only the scorer reads them."""
    samples: NotRequired[int]
    """How many budget units see the exemplars before the run escalates to the
    plain prompt, since memory makes wrong answers agree too. All units see
    them when absent, none when 0. Long chain-of-thought keeps one line of
    thought, so any value above 0 shows them throughout."""
    lessons: NotRequired[str]
    """General lessons drawn from past episodes, shown in the system message
    of every prompt of the run (unless `samples` is 0)."""
    votes: NotRequired[list[str]]
    """Final answers that earlier, unverified attempts at this same question
    stated, one per sample: the scorer counts each as a peer's vote, so a
    repeated hard question converges instead of restarting. A vote is never
    an answer on its own: only a new candidate can pass."""
    evidence: NotRequired[list[str]]
    """Solutions memory computed for this question, such as a stored
    procedure run on its quantities (a program and the answer it gave): the
    scorer reads each as a peer's solution. Like a vote, never an answer on
    its own."""


class Candidate(TypedDict):
    """One generated solution and its score."""

    text: str
    answer: str | None
    """The extracted final answer, if any."""
    score: float
    with_memory: bool
    """Whether the prompt held exemplars."""


class ScalingResult(TypedDict):
    """What a scaling method returns, whichever method it is."""

    method: str
    mode: Mode
    answer: str
    """The selected solution's text."""
    final_answer: str | None
    score: float
    passed: bool
    """Whether `score` reached the threshold."""
    stop_reason: StopReason
    budget_used: int
    """Compute spent, in `budget_unit`."""
    budget_unit: str
    candidates: list[Candidate]
    usage: Usage


class ScalingEvent(TypedDict):
    """A progress event a graph writes to LangGraph's custom stream.

    Read them with `graph.stream(..., stream_mode="custom")`. The speedup
    graph opens every question with a `route` event (its decision, before
    any answer, reuse included). A `candidate` event carries a new solution
    (for Tree-of-Thoughts, a path), a `score` event its score once rated,
    and one `stop` event closes the method's run. `index` is the
    candidate's position in `ScalingResult.candidates`.
    """

    method: str
    """The emitting method, e.g. `"self_refine"`: subgraphs can share a stream."""
    event: Literal["route", "candidate", "score", "stop"]
    decision: NotRequired[Decision]
    """`route` only, like `reason`, `similarity`, `band`, `budget` and `unit`
    (see `Route`)."""
    reason: NotRequired[str]
    similarity: NotRequired[float | None]
    band: NotRequired[str | None]
    budget: NotRequired[int]
    unit: NotRequired[str]
    index: NotRequired[int]
    text: NotRequired[str]
    """`candidate` only."""
    answer: NotRequired[str | None]
    """`score` and `stop`: the extracted final answer."""
    score: NotRequired[float]
    passed: NotRequired[bool]
    stop_reason: NotRequired[StopReason]
    """`stop` only, like the remaining keys."""
    budget_used: NotRequired[int]
    budget_unit: NotRequired[str]


class Quantity(TypedDict):
    """A number a question states, named by its place among the question's numbers."""

    name: str
    """`qty_1` for the question's first number, `qty_2` for the second, ..."""
    value: str
    """The number, normalised (`"1200"` for "$1,200")."""
    context: str
    """The words around it in the question, e.g. `"buys 3 pens"`."""


class Procedure(TypedDict):
    """A verified program, kept as a function of its question's quantities."""

    program: str
    """Python that reads the parameters as variables and states its answer
    following `sandbox.PROGRAM_CONVENTION`."""
    parameters: list[Quantity]
    """The question's quantities the program uses, with this question's values."""
    answer: str
    """What the program computes on these values."""


class ProcedureTrial(TypedDict):
    """A stored procedure run on a new question's quantities."""

    episode_id: str
    """The verified episode whose procedure ran."""
    procedure: Procedure
    """The procedure with the new question's values and what it computed."""
    read_by: Literal["position", "model"]
    """How the values were read: by the place of each number, when both
    questions state theirs in the same places, or by a model call."""


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
    votes: NotRequired[list[str]]
    """The final answers its candidates stated, one per candidate; counted as
    votes when the same question is asked again and was not verified."""
    procedure: NotRequired[Procedure]
    """The program that computed the verified answer, as a function of the
    question's quantities (`memory.ProcedureMemory`)."""


class EpisodeMatch(TypedDict):
    """An episode returned by a similarity search, with its similarity."""

    episode: Episode
    similarity: float
    """Cosine similarity of the questions' embeddings, in [-1, 1]."""
    vector: NotRequired[list[float]]


class Route(TypedDict):
    """The router's decision for one question, and why."""

    decision: Decision
    reason: str
    similarity: float | None
    """Similarity of the closest verified episode found by search; `None` when
    nothing is stored or no search ran (an exact repeat is found by key)."""
    band: str | None
    """The similarity band the gate judged; `None` when no search ran."""
    explored: bool
    """Memory was admitted although its band is closed, for the gate to learn
    what memory does there."""
    exemplar_ids: list[str]
    precedents: list[str]
    budget: int
    """The most compute the question may spend, in `unit`; 0 for reuse."""
    memory_samples: int
    """Units of `budget` that see the exemplars before the method escalates to
    the plain prompt; 0 when no memory is used."""
    method: str
    """The scaling method that solves (or would have solved) the question."""
    unit: str
    """The method's budget unit, e.g. `"generations"` or `"rounds"`."""
    usage: Usage
    """What deciding cost: the memory mechanism's model calls (such as a
    multi-case reflection), counted under `reflection`, and procedure
    memory's, under `memory`."""
    procedure: NotRequired[ProcedureTrial]
    """The stored procedure run on this question (`procedure` decisions),
    whose answer the scorer reads as evidence (`MemoryContext.evidence`)."""


class SpeedupResult(TypedDict):
    """Everything about one answered question."""

    question: str
    answer: str
    final_answer: str | None
    score: float | None
    """The answer's score; for reuse, the stored episode's."""
    route: Route
    result: ScalingResult | None
    """The scaling method's result; `None` when the answer was reused."""
    usage: Usage
    episode_id: str | None
    """The id of the episode written, if one was."""
    memory_error: NotRequired[str]
    """Why the episode could not be written, if it could not."""
