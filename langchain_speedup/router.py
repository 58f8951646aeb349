"""The memory-aware budget router and the speedup graph.

For each question the router embeds it, looks in the episodic store, and takes
one of three decisions, recording why:

- `reuse`: a verified episode holds *exactly this question* (same text up to
  case, spacing and punctuation). Its answer is returned with no generation.
  Similarity alone never triggers reuse: a variant with new numbers embeds
  almost exactly like the original, and reusing its answer would be wrong.
- `exemplars`: verified episodes are similar enough to help: the similarity
  gate (`SimilarityGate`) admits memory in their similarity band. They go
  into the prompt of the first few budget units, after which the method
  escalates to the plain prompt, since memory makes wrong answers agree too
  (see the table below). Verified answers of the *same problem* (a
  rewording with every number and name kept) count as consensus votes.
- `scratch`: nothing is stored, or the gate keeps memory out; the question
  gets the full budget and no memory, which would only mislead it.

The gate is calibrated from outcomes: each solved question tells it how much
of the budget memory saved in that question's similarity band, against
questions solved without memory, and it opens the bands where memory saves
at least as much (see `langchain_speedup.memory.gating`). Its prior opens at
a similarity of 0.7; `Route` records the similarity, the band and whether
memory was admitted only to explore a closed band. A number as
`similarity_gate` is a fixed threshold instead.

The router drives any of the four scaling methods (`method=`), and translates
each decision into that method's budget unit. `budget=` is the full budget in
that unit (the method's own default when not given; `n=` still sets it for
Best-of-N). `Route.budget` records the most the question may spend, and
`Route.memory_samples` how many of those units see the exemplars:

| method | unit | `scratch` | `exemplars` | `reuse` |
|---|---|---|---|---|
| `best_of_n` | generations | `n`, no memory | `n`; the first `memory_samples` candidates see the exemplars, the rest sample the plain prompt | 0 |
| `self_refine` | rounds | `max_rounds`, no memory | `max_rounds`; the first `memory_samples` rounds draft and refine with the exemplars; if none of their answers passed, the run escalates to a fresh plain draft, refined in the remaining rounds | 0 |
| `tree_of_thoughts` | expanded nodes | `max_nodes`, no memory | `max_nodes`; the first `memory_samples` expansions search with the exemplars; if no solution passed by then (or that tree is exhausted), the search escalates to a fresh root without them | 0 |
| `long_cot` | reasoning tokens | `max_tokens`, no memory | `max_tokens`, exemplars throughout | 0 |

Best-of-N, Self-Refine and Tree-of-Thoughts support escalation within one
run: their unit is a whole answer, a round or an expansion, so after memory's
smaller start the run can continue from the plain prompt while every answer
found so far keeps voting (a restarted run would lose those votes, and the
consensus scorer needs several). Long chain-of-thought does not: its unit is
a token of one line of thought, and leaving the exemplars behind would mean
abandoning that thought part way (static mode does not even probe it before
the end), so it gets the same budget with the exemplars in the prompt
throughout. `memory_samples` is therefore a count of generations, rounds or
expansions, and is ignored by long chain-of-thought.

After a solved question the episode is written once, under an id fixed before
solving, so a retried write overwrites rather than duplicates. Only episodes
whose score passed the threshold are verified and ever reused or shown.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, NotRequired, cast

from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from langchain_speedup.answers import question_key, same_problem
from langchain_speedup.budget import Ledger, Usage, add_usage, empty_usage
from langchain_speedup.errors import (
    ConfigurationError,
    InvalidInputError,
    MemoryStoreError,
    SpeedupError,
)
from langchain_speedup.memory.episodes import Episode, EpisodeMatch, episode_from_result
from langchain_speedup.memory.gating import GateVerdict, SimilarityGate, saving_of
from langchain_speedup.memory.mechanisms import MemoryMechanism
from langchain_speedup.memory.store import EpisodicStore, QdrantEpisodicStore
from langchain_speedup.scaling._common import ChatRunnable
from langchain_speedup.scaling.base import (
    Exemplar,
    MemoryContext,
    Mode,
    ScalingResult,
    question_of,
)
from langchain_speedup.scaling.engines import (
    BUDGET_OPTIONS,
    Method,
    ScalingEngine,
    check_method,
    check_options,
    create_engine,
)
from langchain_speedup.scoring import Scorer

__all__ = [
    "BudgetRouter",
    "Decision",
    "Route",
    "SpeedupInput",
    "SpeedupOutput",
    "SpeedupResult",
    "SpeedupState",
    "create_speedup_graph",
]

logger = logging.getLogger(__name__)

Decision = Literal["reuse", "exemplars", "scratch"]


class Route(TypedDict):
    """The router's decision for one question, and why."""

    decision: Decision
    reason: str
    similarity: float | None
    """Similarity of the closest verified episode found by search; `None` when
    nothing is stored or no search ran (an exact repeat is found by key)."""
    band: str | None
    """The similarity band the gate judged (`SimilarityGate`); `None` when
    nothing similar was found or no search ran."""
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
    multi-case reflection), counted under `reflection`; zero otherwise.
    `SpeedupResult.usage` includes it."""


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


def _check_episode_id(episode_id: object) -> str:
    # Checked before solving, so a bad id never costs a whole budget.
    if episode_id is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(str(episode_id)))
    except ValueError as e:
        msg = f"`episode_id` must be a UUID string, got {episode_id!r}"
        raise InvalidInputError(msg) from e


def _validate_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"`{name}` must be an integer >= 1, got {value!r}"
        raise ConfigurationError(msg)
    return value


def _gate(value: object) -> SimilarityGate:
    if value is None:
        return SimilarityGate()
    if isinstance(value, SimilarityGate):
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not -1.0 <= value <= 1.0
    ):
        msg = (
            "`similarity_gate` must be a SimilarityGate or a cosine similarity "
            f"in [-1, 1], got {value!r}"
        )
        raise ConfigurationError(msg)
    return SimilarityGate.fixed(float(value))


class BudgetRouter:
    """Routes questions between reuse, exemplars and scratch; remembers answers.

    Example:
        ```python
        router = BudgetRouter(model, store=QdrantEpisodicStore(), embeddings=emb)
        first = router.solve("Maya buys 3 pens at $4 each ...")
        again = router.solve("Maya buys 3 pens at $4 each ...")
        assert again["route"]["decision"] == "reuse"
        ```

    With another method, the decisions translate into its budget unit as the
    module docstring's table shows:

    ```python
    router = BudgetRouter(
        model,
        store=store,
        embeddings=emb,
        method="tree_of_thoughts",
        budget=6,  # expanded nodes
        method_options={"breadth": 2, "max_depth": 3},
    )
    ```

    Attributes:
        engine: The full-budget engine that solves every question not reused.
        gate: The similarity gate; `gate.stats()` shows what it has learnt.

    Args:
        model: The solver; any chat model.
        store: The episodic store.
        embeddings: Embeds questions for retrieval.
        namespace: The tenant whose episodes are read and written.
        method: The scaling method: `"best_of_n"` (default), `"self_refine"`,
            `"tree_of_thoughts"` or `"long_cot"`.
        budget: The full budget in the method's unit (generations, rounds,
            expanded nodes or reasoning tokens); the method's own default
            when `None`.
        n: The full Best-of-N budget, in generations; the same as `budget`
            and only for Best-of-N (8 when neither is given).
        mode: The method's mode for solved questions.
        scorer: Rates candidates; `ConsensusScorer()` when `None`.
        threshold: Stop score; the scorer's upper bound when `None`.
        similarity_gate: When stored episodes may enter the prompt: a
            `SimilarityGate` (calibrated from outcomes), or a number, the
            fixed lowest cosine similarity (-1 admits everything). `None`
            (default) is `SimilarityGate()`, whose prior opens at 0.7, which
            suits `MiniLMEmbeddings` on word problems: there, unrelated
            problems measured at most 0.55 and variants of one problem with
            new numbers 0.59-0.93. The router replays the outcomes stored
            with the namespace's episodes into it on its first question.
        max_exemplars: Most exemplars per question.
        memory_samples: Generations, rounds or expansions that see exemplars
            before the method escalates to the plain prompt; long
            chain-of-thought ignores it.
        enable_reuse: Whether exact repeats of verified questions are answered
            from memory.
        system_prompt: Instructions for the solver; the method's own default
            when `None`.
        method_options: Further keyword options of the method's engine, such
            as `breadth` for Tree-of-Thoughts or `segment_tokens` for long
            chain-of-thought.
        memory: Builds the memory of an `exemplars` decision from the
            episodes that passed the similarity gate (for example
            `InContextMemory()` or `ReflectUpdateMemory()`); the router keeps
            its own precedents and memory start. When `None` (default), the
            gated episodes themselves are the exemplars. Reuse and scratch
            decisions never consult it. Its model calls count in
            `Route.usage` and in the answer's `usage`.

    Raises:
        ConfigurationError: An option is out of range, `method` names no
            scaling method, `n` is given for another method or disagrees
            with `budget`, or `method_options` holds an option the engine
            does not take.
    """

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        store: EpisodicStore,
        embeddings: Embeddings,
        namespace: str = "default",
        method: Method = "best_of_n",
        budget: int | None = None,
        n: int | None = None,
        mode: Mode = "adaptive",
        scorer: Scorer | None = None,
        threshold: float | None = None,
        similarity_gate: float | SimilarityGate | None = None,
        max_exemplars: int = 2,
        memory_samples: int = 2,
        enable_reuse: bool = True,
        system_prompt: str | None = None,
        method_options: Mapping[str, Any] | None = None,
        memory: MemoryMechanism | None = None,
    ) -> None:
        if memory is not None and not isinstance(memory, MemoryMechanism):
            msg = (
                f"`memory` must implement MemoryMechanism, got {type(memory).__name__}"
            )
            raise ConfigurationError(msg)
        if not isinstance(store, EpisodicStore):
            msg = f"`store` must implement EpisodicStore, got {type(store).__name__}"
            raise ConfigurationError(msg)
        if not isinstance(embeddings, Embeddings):
            msg = f"`embeddings` must be a LangChain Embeddings, got {type(embeddings).__name__}"
            raise ConfigurationError(msg)
        if not isinstance(namespace, str) or not namespace.strip():
            msg = f"`namespace` must be a non-empty string, got {namespace!r}"
            raise ConfigurationError(msg)
        self.gate = _gate(similarity_gate)
        method = check_method(method)
        if budget is not None:
            budget = _validate_positive("budget", budget)
        if n is not None:
            n = _validate_positive("n", n)
            if method != "best_of_n":
                msg = (
                    f"`n` is the Best-of-N budget; give the {method} budget as "
                    f"`budget` (its `{BUDGET_OPTIONS[method]}`)"
                )
                raise ConfigurationError(msg)
            if budget is not None and budget != n:
                msg = f"`n` ({n}) and `budget` ({budget}) disagree; give one"
                raise ConfigurationError(msg)
            budget = n
        if method_options is not None and not isinstance(method_options, Mapping):
            msg = f"`method_options` must be a mapping, got {method_options!r}"
            raise ConfigurationError(msg)
        extra = check_options(method, method_options or {})
        self.engine: ScalingEngine = create_engine(
            model,
            method,
            budget=budget,
            mode=mode,
            scorer=scorer,
            threshold=threshold,
            system_prompt=system_prompt,
            **extra,
        )
        self.store = store
        self.embeddings = embeddings
        self.namespace = namespace
        self._replayed = False
        self._replay_lock = threading.Lock()
        self.max_exemplars = _validate_positive("max_exemplars", max_exemplars)
        self.memory_samples = _validate_positive("memory_samples", memory_samples)
        self.enable_reuse = bool(enable_reuse)
        self.memory = memory

    @property
    def method(self) -> Method:
        """The scaling method that solves questions."""
        return cast(Method, self.engine.method)

    @property
    def budget(self) -> int:
        """The full budget, in the method's unit (`engine.unit`)."""
        return self.engine.options.budget

    def _memory_start(self) -> int | None:
        # Units that see the exemplars: a small start for methods that can
        # escalate to the plain prompt within a run; `None` (all) for long
        # chain-of-thought, whose one line of thought cannot leave them behind.
        if self.method == "long_cot":
            return None
        return min(self.memory_samples, self.budget)

    # -- deciding ------------------------------------------------------------------

    def _replay(self) -> None:
        # The outcomes stored with past episodes calibrate the gate, once per
        # router; a failed read is retried by the next question.
        with self._replay_lock:
            if self._replayed:
                return
            read = getattr(self.store, "episodes", None)
            if self.gate.calibrate and callable(read):
                replayed = self.gate.observe_episodes(read(self.namespace))
                logger.debug("similarity gate replayed %d outcome(s)", replayed)
            self._replayed = True

    def _route(
        self,
        decision: Decision,
        reason: str,
        similarity: float | None,
        *,
        band: str | None = None,
        explored: bool = False,
        exemplar_ids: Sequence[str] = (),
        precedents: Sequence[str] = (),
        budget: int | None = None,
        memory_samples: int = 0,
    ) -> Route:
        # The fields every decision shares; `budget` defaults to the full one.
        return Route(
            decision=decision,
            reason=reason,
            similarity=similarity,
            band=band,
            explored=explored,
            exemplar_ids=list(exemplar_ids),
            precedents=list(precedents),
            budget=self.budget if budget is None else budget,
            memory_samples=memory_samples,
            method=self.engine.method,
            unit=self.engine.unit,
            usage=empty_usage(),
        )

    def _decide(
        self, question: str, exact: Episode | None, matches: Sequence[EpisodeMatch]
    ) -> tuple[Route, MemoryContext | None, Episode | None]:
        best = max((m["similarity"] for m in matches), default=None)
        if exact is not None and self.enable_reuse:
            route = self._route(
                "reuse",
                "a verified episode holds this exact question",
                best,
                exemplar_ids=[exact["id"]],
                budget=0,
            )
            return route, None, exact
        verdict = None if best is None else self.gate.admit(best)
        if verdict is None:
            return (
                self._route("scratch", "no verified episode is stored", best),
                None,
                None,
            )
        if not verdict["admitted"]:
            reason = f"memory kept out at similarity {best:.3f}: {verdict['reason']}"
            route = self._route("scratch", reason, best, band=verdict["band"])
            return route, None, None
        close = self._admitted(matches, verdict)
        precedents = sorted(
            {
                m["episode"]["final_answer"]
                for m in close
                if m["episode"]["final_answer"] is not None
                and same_problem(question, m["episode"]["question"])
            }
        )
        memory = MemoryContext(
            exemplars=[
                Exemplar(
                    question=m["episode"]["question"], solution=m["episode"]["answer"]
                )
                for m in close
            ],
            precedents=precedents,
        )
        start = self._memory_start()
        if start is not None:
            memory["samples"] = start
        kind = "the same problem reworded" if precedents else "similar problems"
        route = self._route(
            "exemplars",
            f"{len(close)} verified episode(s) of {kind}; {verdict['reason']}",
            best,
            band=verdict["band"],
            explored=verdict["explored"],
            exemplar_ids=[m["episode"]["id"] for m in close],
            precedents=precedents,
            memory_samples=self.budget if start is None else start,
        )
        return route, memory, None

    def _admitted(
        self, matches: Sequence[EpisodeMatch], verdict: GateVerdict
    ) -> list[EpisodeMatch]:
        # The episodes in open bands, and in the explored band when the gate
        # explores; the most similar `max_exemplars`, most similar last.
        admitted = [
            m
            for m in matches
            if self.gate.is_open(m["similarity"])
            or (
                verdict["explored"]
                and self.gate.band_of(m["similarity"]) == verdict["band"]
            )
        ]
        return sorted(admitted, key=lambda m: m["similarity"])[-self.max_exemplars :]

    def _mechanism_input(
        self,
        route: Route,
        memory: MemoryContext | None,
        matches: Sequence[EpisodeMatch],
    ) -> list[EpisodeMatch] | None:
        # The episodes that passed the gate, when a mechanism builds the memory.
        if self.memory is None or memory is None or route["decision"] != "exemplars":
            return None
        ids = set(route["exemplar_ids"])
        return [m for m in matches if m["episode"]["id"] in ids]

    @staticmethod
    def _with_router_memory(built: MemoryContext, own: MemoryContext) -> MemoryContext:
        # Precedents feed the scorer and the start limits the exemplars: both
        # stay the router's, whatever the mechanism shows.
        merged = MemoryContext(**built)
        merged["precedents"] = own["precedents"]
        if "samples" in own:
            merged["samples"] = own["samples"]
        return merged

    def route(
        self, question: str, *, config: RunnableConfig | None = None
    ) -> tuple[Route, MemoryContext | None, Episode | None, list[float]]:
        """Decide how to answer `question`.

        Args:
            question: The question.
            config: Passed to any model call of the memory mechanism.

        Returns:
            The decision, the memory to solve with, the episode to reuse (for
            `reuse`), and the question's embedding.
        """
        self._replay()
        vector = self.embeddings.embed_query(question)
        exact = (
            self.store.find(self.namespace, question_key(question))
            if self.enable_reuse
            else None
        )
        matches = (
            []
            if exact
            else self.store.search(self.namespace, vector, limit=self.max_exemplars + 2)
        )
        route, memory, reuse = self._decide(question, exact, matches)
        gated = self._mechanism_input(route, memory, matches)
        if gated is not None and self.memory is not None and memory is not None:
            ledger = Ledger()
            built = self.memory.build(
                question,
                gated,
                store=self.store,
                namespace=self.namespace,
                config=ledger.config(config, role="reflection"),
            )
            memory = self._with_router_memory(built, memory)
            route["usage"] = ledger.usage()
        return route, memory, reuse, vector

    async def aroute(
        self, question: str, *, config: RunnableConfig | None = None
    ) -> tuple[Route, MemoryContext | None, Episode | None, list[float]]:
        """Async form of `route`."""
        if not self._replayed:
            await asyncio.to_thread(self._replay)
        vector = await self.embeddings.aembed_query(question)
        exact = (
            await self.store.afind(self.namespace, question_key(question))
            if self.enable_reuse
            else None
        )
        matches = (
            []
            if exact
            else await self.store.asearch(
                self.namespace, vector, limit=self.max_exemplars + 2
            )
        )
        route, memory, reuse = self._decide(question, exact, matches)
        gated = self._mechanism_input(route, memory, matches)
        if gated is not None and self.memory is not None and memory is not None:
            ledger = Ledger()
            built = await self.memory.abuild(
                question,
                gated,
                store=self.store,
                namespace=self.namespace,
                config=ledger.config(config, role="reflection"),
            )
            memory = self._with_router_memory(built, memory)
            route["usage"] = ledger.usage()
        return route, memory, reuse, vector

    # -- answering and remembering -------------------------------------------------------

    def _reused(
        self, question: str, route: Route, episode: Episode, started: float
    ) -> SpeedupResult:
        usage = Usage(**route["usage"])
        usage["seconds"] = round(time.time() - started, 3)
        return SpeedupResult(
            question=question,
            answer=episode["answer"],
            final_answer=episode["final_answer"],
            score=episode["score"],
            route=route,
            result=None,
            usage=usage,
            episode_id=None,
        )

    def _solved(
        self,
        question: str,
        route: Route,
        result: ScalingResult,
        episode_id: str,
        started: float,
    ) -> tuple[SpeedupResult, Episode]:
        usage = add_usage(result["usage"], route["usage"])
        usage["seconds"] = round(time.time() - started, 3)
        episode = episode_from_result(
            id=episode_id,
            namespace=self.namespace,
            question=question,
            result=result,
            decision=route["decision"],
            similarity=route["similarity"],
            budget=route["budget"],
        )
        self.gate.observe(
            similarity=route["similarity"],
            with_memory=route["decision"] == "exemplars",
            saving=saving_of(
                passed=episode["verified"],
                budget_used=result["budget_used"],
                budget=route["budget"],
            ),
        )
        answer = SpeedupResult(
            question=question,
            answer=result["answer"],
            final_answer=result["final_answer"],
            score=result["score"],
            route=route,
            result=result,
            usage=usage,
            episode_id=episode_id,
        )
        return answer, episode

    def _write_failed(
        self, answer: SpeedupResult, error: SpeedupError
    ) -> SpeedupResult:
        logger.warning("episode %s not stored: %s", answer["episode_id"], error)
        return {**answer, "episode_id": None, "memory_error": str(error)}

    def solve(
        self,
        question: str | Sequence[BaseMessage],
        *,
        episode_id: str | None = None,
        config: RunnableConfig | None = None,
    ) -> SpeedupResult:
        """Route, answer and remember one question.

        Args:
            question: The question, or a conversation ending in it.
            episode_id: The id to store the episode under (a UUID); a new one
                when `None`. Reusing an id overwrites that episode.
            config: Passed to every model call.

        Raises:
            InvalidInputError: The question is empty or not text.
            ModelError: A model call failed; nothing is written to memory.
            MemoryStoreError: The store could not be read.
        """
        started = time.time()
        text, conversation = question_of(question)
        episode_id = _check_episode_id(episode_id)
        route, memory, reuse, vector = self.route(text, config=config)
        if reuse is not None:
            return self._reused(text, route, reuse, started)
        result = self.engine.run(conversation, memory=memory, config=config)
        answer, episode = self._solved(text, route, result, episode_id, started)
        try:
            self.store.put(episode, vector)
        except MemoryStoreError as e:
            return self._write_failed(answer, e)
        return answer

    async def asolve(
        self,
        question: str | Sequence[BaseMessage],
        *,
        episode_id: str | None = None,
        config: RunnableConfig | None = None,
    ) -> SpeedupResult:
        """Async form of `solve`."""
        started = time.time()
        text, conversation = question_of(question)
        episode_id = _check_episode_id(episode_id)
        route, memory, reuse, vector = await self.aroute(text, config=config)
        if reuse is not None:
            return self._reused(text, route, reuse, started)
        result = await self.engine.arun(conversation, memory=memory, config=config)
        answer, episode = self._solved(text, route, result, episode_id, started)
        try:
            await self.store.aput(episode, vector)
        except MemoryStoreError as e:
            return self._write_failed(answer, e)
        return answer


# -- the graph -----------------------------------------------------------------------


class SpeedupInput(TypedDict):
    """Input of the speedup graph: a conversation ending in the question."""

    messages: Annotated[list[AnyMessage], add_messages]


class SpeedupOutput(TypedDict):
    """Output: the answer appended to `messages`, details under `speedup`."""

    messages: Annotated[list[AnyMessage], add_messages]
    speedup: SpeedupResult


class SpeedupState(SpeedupInput):
    """Internal state of the speedup graph; only `messages` and `speedup` leave it."""

    speedup: NotRequired[SpeedupResult]
    question: NotRequired[str]
    route: NotRequired[Route]
    memory: NotRequired[MemoryContext]
    """Read by the method's subgraph; empty when the router keeps memory out."""
    vector: NotRequired[list[float]]
    reuse: NotRequired[Episode | None]
    episode_id: NotRequired[str]
    """Fixed before solving, so a retried write overwrites, never duplicates."""
    started: NotRequired[float]
    best_of_n: NotRequired[ScalingResult]
    """Written by the Best-of-N subgraph."""
    self_refine: NotRequired[ScalingResult]
    """Written by the Self-Refine subgraph."""
    tree_of_thoughts: NotRequired[ScalingResult]
    """Written by the Tree-of-Thoughts subgraph."""
    long_cot: NotRequired[ScalingResult]
    """Written by the long chain-of-thought subgraph."""


def create_speedup_graph(
    model: ChatRunnable,
    /,
    *,
    store: EpisodicStore | None = None,
    embeddings: Embeddings | None = None,
    name: str = "speedup",
    **options: Any,
) -> CompiledStateGraph[SpeedupState, None, SpeedupInput, SpeedupOutput]:
    """Build the memory-aware speedup graph: route, then reuse or solve, then remember.

    `route` embeds the question and decides; `reuse` answers an exact repeat
    of a verified question from memory; otherwise the chosen method's own
    subgraph, a node named after the method (`best_of_n` by default, or
    `self_refine`, `tree_of_thoughts`, `long_cot`), solves with the memory
    and budget the router allows, and `remember` writes the episode. The
    answer is appended to `messages` as an `AIMessage`, and a `SpeedupResult`
    (decision, reason, usage, candidates) is under `speedup`. The graph runs
    standalone or as a node of a parent graph with a `messages` key.

    Example:
        ```python
        graph = create_speedup_graph(model, store=QdrantEpisodicStore(path="mem"))
        out = graph.invoke({"messages": [("user", "Maya buys 3 pens at $4 ...")]})
        print(out["speedup"]["route"]["decision"], out["messages"][-1].content)
        ```

    Args:
        model: The solver; any chat model.
        store: The episodic store; `QdrantEpisodicStore.from_env()` when `None`
            (a server at `QDRANT_URL`, else embedded in memory).
        embeddings: Embeds questions; the offline `MiniLMEmbeddings` when `None`
            (needs the `local` extra).
        name: The graph's name, used as its node name in a parent graph.
        **options: The keyword options of `BudgetRouter` (`method`, `budget`,
            `n`, `mode`, `scorer`, `threshold`, `namespace`, `similarity_gate`,
            `method_options`, ...).

    Returns:
        The compiled graph.

    Raises:
        ConfigurationError: An option is out of range.
    """
    if embeddings is None:
        from langchain_speedup.local.embeddings import MiniLMEmbeddings

        embeddings = MiniLMEmbeddings()
    router = BudgetRouter(
        model,
        store=store if store is not None else QdrantEpisodicStore.from_env(),
        embeddings=embeddings,
        **options,
    )
    engine = router.engine
    solver = engine.method

    def _routed(
        question: str,
        decided: tuple[Route, MemoryContext | None, Episode | None, list[float]],
        started: float,
    ) -> dict[str, Any]:
        route, memory, reuse, vector = decided
        return {
            "question": question,
            "route": route,
            "memory": memory or MemoryContext(exemplars=[], precedents=[]),
            "reuse": reuse,
            "vector": vector,
            "episode_id": str(uuid.uuid4()),
            "started": started,
        }

    def route(state: SpeedupState, config: RunnableConfig) -> dict[str, Any]:
        started = time.time()
        text, _ = question_of(state["messages"])
        return _routed(text, router.route(text, config=config), started)

    async def aroute(state: SpeedupState, config: RunnableConfig) -> dict[str, Any]:
        started = time.time()
        text, _ = question_of(state["messages"])
        return _routed(text, await router.aroute(text, config=config), started)

    def after_route(state: SpeedupState) -> str:
        return "reuse" if state.get("reuse") else solver

    def reuse(state: SpeedupState) -> dict[str, Any]:
        episode = state["reuse"]
        assert episode is not None
        result = router._reused(
            state["question"], state["route"], episode, state["started"]
        )
        return {"speedup": result, "messages": [AIMessage(result["answer"], name=name)]}

    def _remembered(state: SpeedupState) -> tuple[SpeedupResult, Episode]:
        # The method's subgraph writes its result under the method's name.
        result = cast(ScalingResult, state.get(solver))
        return router._solved(
            state["question"],
            state["route"],
            result,
            state["episode_id"],
            state["started"],
        )

    def remember(state: SpeedupState) -> dict[str, Any]:
        answer, episode = _remembered(state)
        try:
            router.store.put(episode, state["vector"])
        except MemoryStoreError as e:
            answer = router._write_failed(answer, e)
        return {"speedup": answer}

    async def aremember(state: SpeedupState) -> dict[str, Any]:
        answer, episode = _remembered(state)
        try:
            await router.store.aput(episode, state["vector"])
        except MemoryStoreError as e:
            answer = router._write_failed(answer, e)
        return {"speedup": answer}

    builder = StateGraph(
        SpeedupState, input_schema=SpeedupInput, output_schema=SpeedupOutput
    )
    builder.add_node("route", RunnableLambda(route, afunc=aroute, name="route"))
    builder.add_node("reuse", reuse)
    builder.add_node(solver, engine.as_graph(name=engine.method))
    builder.add_node(
        "remember", RunnableLambda(remember, afunc=aremember, name="remember")
    )
    builder.add_edge(START, "route")
    builder.add_conditional_edges("route", after_route, ["reuse", solver])
    builder.add_edge("reuse", END)
    builder.add_edge(solver, "remember")
    builder.add_edge("remember", END)
    return builder.compile(name=name)
