"""The memory-aware budget router and the speedup graph it runs.

For each question the router looks it up in memory (a LangGraph store with a
vector index) and decides: `reuse` the verified answer of exactly this
question, solve with `exemplars` from similar verified episodes that the
similarity gate admits, or solve from `scratch` with the full budget and no
memory. `BudgetRouter.solve`
and `create_speedup_graph` run the same graph: route, then reuse or the
method's own graph, then remember the episode. Concurrent calls asking the
same question are solved once (see `BudgetRouter`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from typing import Any, NotRequired, Unpack, cast

from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.runnables.config import merge_configs
from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer
from typing_extensions import TypedDict

from langchain_speedup._flight import FLIGHTS
from langchain_speedup._internal import (
    Call,
    GraphOptions,
    Messages,
    adrive,
    check_count,
    check_namespace,
    check_uuid,
    compile_options,
    drive,
    emit,
    graph_config,
    question_of,
    result_of,
    run_option,
    step_node,
    validate_question,
    with_fields,
)
from langchain_speedup.answers import reuse_key
from langchain_speedup.budget import ROLE_TAG_PREFIX, Ledger
from langchain_speedup.errors import (
    ConfigurationError,
    EmbeddingError,
    EmbeddingSizeError,
    InvalidInputError,
    MemoryStoreError,
    ModelError,
)
from langchain_speedup.memory import (
    EpisodicMemory,
    GateVerdict,
    MemoryMechanism,
    ProcedureMemory,
    SimilarityGate,
    default_store,
    episode_from_result,
    precedents_of,
    saving_of,
)
from langchain_speedup.memory.procedures import PROCEDURE_ERRORS, evidence_of
from langchain_speedup.scaling import BestOfN, RunContext, ScalingEngine
from langchain_speedup.scoring import ProgramVerifiedScorer
from langchain_speedup.tokens import usage_metadata
from langchain_speedup.types import (
    ChatRunnable,
    Decision,
    Episode,
    EpisodeMatch,
    Exemplar,
    MemoryContext,
    Procedure,
    ProcedureTrial,
    Route,
    ScalingEvent,
    ScalingResult,
    SpeedupResult,
    Usage,
    add_usage,
    empty_usage,
)

__all__ = ["BudgetRouter", "SpeedupContext", "SpeedupInput", "create_speedup_graph"]

logger = logging.getLogger(__name__)


class SpeedupInput(TypedDict):
    """Input of the speedup graph: a conversation ending in the question."""

    messages: Messages
    episode_id: NotRequired[str | None]
    """Store this question's episode under this UUID (this invocation only)."""


class SpeedupState(SpeedupInput):
    """The speedup graph's working state; `route` resets it per invocation."""

    question: NotRequired[str]
    key: NotRequired[str]
    """The question's reuse key, which knows its conversation (`reuse_key`)."""
    route: NotRequired[Route]
    memory: NotRequired[MemoryContext | None]
    """Read by the method's graph."""
    reuse: NotRequired[Episode | None]
    new_episode_id: NotRequired[str]
    """Where this question's episode is written."""
    flight: NotRequired[str | None]
    """Set while this invocation solves the question for concurrent askers."""
    started: NotRequired[float]


class SpeedupContext(RunContext, total=False):
    """Per-run settings of the speedup graph, from LangGraph's run context.

    `graph.invoke(inputs, context={"budget": 2, "namespace": "team-a"})`:
    `budget` and `threshold` as for a method's graph (`RunContext`), and
    `namespace`, the tenant whose episodes this run reads and writes.
    """

    namespace: str


class RouterOptions(TypedDict, total=False):
    """The keyword options of `BudgetRouter` besides the store and embeddings."""

    namespace: str
    similarity_gate: float | SimilarityGate | None
    max_exemplars: int
    memory_samples: int
    enable_reuse: bool
    memory: MemoryMechanism | None
    procedures: ProcedureMemory | None


class SpeedupGraphOptions(RouterOptions, total=False):
    """The keyword options of `create_speedup_graph` (`store` is the episodic one)."""

    checkpointer: Checkpointer
    interrupt_before: list[str] | None
    interrupt_after: list[str] | None
    debug: bool


def _context_of(conversation: Sequence[BaseMessage]) -> list[BaseMessage]:
    # Everything but the question itself (the last human turn).
    last = max(i for i, m in enumerate(conversation) if isinstance(m, HumanMessage))
    return [m for i, m in enumerate(conversation) if i != last]


def _check_episode_id(episode_id: object) -> str:
    # Checked before solving, so a bad id never costs a whole budget.
    return (
        str(uuid.uuid4())
        if episode_id is None
        else check_uuid(episode_id, "`episode_id`")
    )


def _traced(config: RunnableConfig, route: Route) -> RunnableConfig:
    # The decision on the run that acts on it, and on its children, for
    # tracing tools to filter on.
    metadata = {
        f"speedup_{key}": route[key]
        for key in ("decision", "similarity", "band", "budget", "method")
    }
    metadata["speedup_memory"] = route["decision"] != "scratch"
    tags = [f"{ROLE_TAG_PREFIX}{key}:{route[key]}" for key in ("decision", "method")]
    return merge_configs(config, {"tags": tags, "metadata": metadata})


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

    The solver is a scaling engine (or a chat model, solved by `BestOfN`), and
    every decision is in its budget unit: `scratch` gets the whole `budget`
    and no memory; `exemplars` gets the whole budget, its first
    `memory_samples` generations, rounds or expansions seeing the exemplars
    before the method escalates to the plain prompt (long chain-of-thought,
    one line of thought, keeps them throughout); `reuse` spends nothing.
    Similarity alone never triggers reuse: a variant with new numbers embeds
    almost exactly like the original.

    Concurrent calls asking the same question (same `question_key`, same
    store and namespace; tasks or threads of one process) are solved once:
    the first solves it, the others wait for it (at most ten minutes), then
    reuse its episode if it was verified. If it was not verified, or the
    solve failed, each waiting call solves the question itself; a call waits
    for at most one solve. Without reuse (`enable_reuse=False`) or with a
    graph compiled with static interrupts, every call solves. Processes
    sharing a store do not see each other's solves: racing processes store
    at most one episode each for a question, every one whole (an episode
    is one item, written in one batch with its reuse pointer).

    Memory lives in a LangGraph `BaseStore` with a vector index (see
    `EpisodicMemory` for the layout): the one given as `store`, else the
    graph's runtime store (`compile(store=...)`, a parent graph's, a
    LangGraph deployment's), else one `default_store()` per router. The
    store's index embeds: an exact repeat is found by key without
    embedding anything; otherwise the question is searched before anything
    is solved, so failing embeddings (`EmbeddingError` with a
    `memory_index` store, `MemoryStoreError` with others) cost no
    generation. A store that reports vectors of another size than its
    embeddings' (`EmbeddingSizeError`) is routed around: the question is
    solved from `scratch`, the route's reason says why, and the answer is
    returned with a `memory_error`.

    Example:
        ```python
        router = BudgetRouter(
            TreeOfThoughts(model, budget=6, breadth=2),
            store=InMemoryStore(index=memory_index(embeddings)),
        )
        first = router.solve("Maya buys 3 pens at $4 each ...")
        again = router.solve("Maya buys 3 pens at $4 each ...")
        assert again["route"]["decision"] == "reuse"
        ```

    Attributes:
        engine: The full-budget engine that solves every question not reused.
        gate: The similarity gate; `gate.stats()` shows what it has learnt.

    Args:
        solver: A `ScalingEngine` (`BestOfN`, `SelfRefine`, `TreeOfThoughts`,
            `LongCoT`, with its budget and options), or a chat model, solved
            by `BestOfN(model)`.
        store: The LangGraph store with a vector index; the runtime's store,
            else `default_store(embeddings)`, when `None`.
        embeddings: The default store's embeddings (the offline
            `MiniLMEmbeddings` when `None`); give a store's embeddings to its
            index instead (`memory_index`).
        namespace: The tenant whose episodes are read and written.
        similarity_gate: When stored episodes may enter the prompt: a
            `SimilarityGate` (calibrated from outcomes; the default, whose
            prior opens at a cosine similarity of 0.7), or a number, a fixed
            lowest similarity (-1 admits everything). The router replays the
            outcomes stored with the namespace's episodes into the gate
            before its first question.
        max_exemplars: Most exemplars per question.
        memory_samples: Budget units that see the exemplars before the method
            escalates to the plain prompt.
        enable_reuse: Whether exact repeats of verified questions are answered
            from memory.
        memory: Builds an `exemplars` decision's memory from the episodes the
            gate admitted (e.g. `InContextMemory()`, `ReflectUpdateMemory()`);
            by default they are the exemplars. Its model calls count in
            `Route.usage`.
        procedures: Keeps verified programs as procedures and runs the
            nearest similar episode's procedure on a new question, as
            evidence for the scorer (`ProcedureMemory`); none when `None`.

    Raises:
        ConfigurationError: An option is out of range or of the wrong kind.
    """

    def __init__(
        self,
        solver: ScalingEngine | ChatRunnable,
        /,
        *,
        store: BaseStore | None = None,
        embeddings: Embeddings | None = None,
        namespace: str = "default",
        similarity_gate: float | SimilarityGate | None = None,
        max_exemplars: int = 2,
        memory_samples: int = 2,
        enable_reuse: bool = True,
        memory: MemoryMechanism | None = None,
        procedures: ProcedureMemory | None = None,
    ) -> None:
        if isinstance(solver, ScalingEngine):
            self.engine = solver
        elif isinstance(solver, Runnable):
            self.engine = BestOfN(solver)
        else:
            msg = f"the solver must be a ScalingEngine or a chat model, got {type(solver).__name__}"
            raise ConfigurationError(msg)
        if store is not None:
            EpisodicMemory(store)  # checks it is a LangGraph store
            if embeddings is not None:
                msg = (
                    "give `embeddings` to the store's index, not to the router: "
                    "InMemoryStore(index=memory_index(embeddings)); the router's "
                    "`embeddings` only serve the default store"
                )
                raise ConfigurationError(msg)
        if embeddings is not None and not isinstance(embeddings, Embeddings):
            msg = f"`embeddings` must be a LangChain Embeddings, got {type(embeddings).__name__}"
            raise ConfigurationError(msg)
        if memory is not None and not isinstance(memory, MemoryMechanism):
            msg = (
                f"`memory` must implement MemoryMechanism, got {type(memory).__name__}"
            )
            raise ConfigurationError(msg)
        if procedures is not None and not isinstance(procedures, ProcedureMemory):
            msg = f"`procedures` must be a ProcedureMemory, got {type(procedures).__name__}"
            raise ConfigurationError(msg)
        self.store = store
        self.embeddings = embeddings
        self._namespace = check_namespace(namespace)
        self.gate = _gate(similarity_gate)
        self.max_exemplars = check_count("max_exemplars", max_exemplars)
        self.memory_samples = check_count("memory_samples", memory_samples)
        self.enable_reuse = bool(enable_reuse)
        self.memory = memory
        self.procedures = procedures
        self._replayed = False
        self._replay_lock = threading.Lock()
        self._default: BaseStore | None = None
        self._default_lock = threading.Lock()
        self._graph = self.as_graph()

    @property
    def namespace(self) -> str:
        """The tenant: the run context's `namespace`, else the router's."""
        value = run_option("namespace")
        return self._namespace if value is None else check_namespace(value)

    # -- deciding (no I/O) -----------------------------------------------------------

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
        return Route(
            decision=decision,
            reason=reason,
            similarity=similarity,
            band=band,
            explored=explored,
            exemplar_ids=list(exemplar_ids),
            precedents=list(precedents),
            budget=self.engine.budget if budget is None else budget,
            memory_samples=memory_samples,
            method=self.engine.method,
            unit=self.engine.unit,
            usage=empty_usage(),
        )

    def decide(
        self,
        question: str,
        exact: Episode | None,
        matches: Sequence[EpisodeMatch],
        *,
        in_conversation: bool = False,
    ) -> tuple[Route, MemoryContext | None, Episode | None]:
        """Decide how to answer `question` from what the store returned.

        This makes no I/O (the similarity gate may draw its exploration
        coin), so it can be tested and reasoned about on its own.

        Args:
            question: The question.
            exact: The verified episode of exactly this question, if any.
            matches: Verified episodes similar to it.
            in_conversation: The question is a turn of a longer conversation:
                a stored answer to the same words may answer another
                conversation, so it is shown, never counted as a vote.

        Returns:
            The route, the memory to solve with (`None` for none) and the
            episode to reuse (for `reuse`).
        """
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
        if verdict is None or best is None:
            return (
                self._route("scratch", "no verified episode is stored", best),
                None,
                None,
            )
        if not verdict["admitted"]:
            reason = f"memory kept out at similarity {best:.3f}: {verdict['reason']}"
            return (
                self._route("scratch", reason, best, band=verdict["band"]),
                None,
                None,
            )
        close = self._admitted(matches, verdict)
        precedents = [] if in_conversation else precedents_of(question, close)
        memory = MemoryContext(
            exemplars=[
                Exemplar(
                    question=m["episode"]["question"], solution=m["episode"]["answer"]
                )
                for m in close
            ],
            precedents=precedents,
        )
        # Long chain-of-thought keeps one line of thought, so it cannot leave
        # the exemplars behind part way: it sees them throughout.
        start = (
            None
            if self.engine.method == "long_cot"
            else min(self.memory_samples, self.engine.budget)
        )
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
            memory_samples=self.engine.budget if start is None else start,
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

    # -- deciding (the I/O around it) -------------------------------------------------

    def _memory(self) -> EpisodicMemory:
        # The router's store, else the graph's runtime store, else the default.
        if self.store is not None:
            return EpisodicMemory(self.store)
        try:
            runtime = get_store()
        except RuntimeError:  # called outside a graph
            runtime = None
        if runtime is not None:
            return EpisodicMemory(runtime)
        with self._default_lock:
            if self._default is None:
                self._default = default_store(self.embeddings)
            return EpisodicMemory(self._default)

    def _replay(self, memory: EpisodicMemory) -> Generator[Call, Any, None]:
        # The outcome totals kept with the episodes calibrate the gate, once
        # per router, in one read; a failed read is retried by the next question.
        if not self.gate.calibrate:
            self._replayed = True
            return
        totals = yield from memory.outcomes_step(self.namespace)
        with self._replay_lock:
            if not self._replayed:
                replayed = self.gate.observe_totals(totals)
                logger.debug("similarity gate replayed %d outcome(s)", replayed)
                self._replayed = True

    def _board(
        self, store: BaseStore, key: str, owner: str
    ) -> Generator[Call, Any, bool]:
        # Claims the question for `owner`, after waiting for at most one
        # solve ahead of it; whether `owner` holds the claim.
        ahead = FLIGHTS.claim(store, self.namespace, key, owner)
        if ahead is None:
            return True
        stale = yield Call(ahead.wait, ahead.await_landing)
        taken = FLIGHTS.claim(
            store, self.namespace, key, owner, stale=ahead if stale else None
        )
        return taken is None

    def _land(self, state: Mapping[str, Any]) -> None:
        # Ends this invocation's claim, if it holds one; waiting calls go on.
        owner = state.get("flight")
        if owner is not None:
            # Within the run that claimed it: the same store as at `route`.
            store, key = self._memory().store, state["key"]
            FLIGHTS.land(store, self.namespace, key, owner)

    def _routing(
        self,
        records: EpisodicMemory,
        question: str,
        key: str,
        config: RunnableConfig | None,
    ) -> Generator[Call, Any, tuple[Route, MemoryContext | None, Episode | None]]:
        if not self._replayed:
            yield from self._replay(records)
        ns, limit = self.namespace, self.max_exemplars + 2
        exact, unusable = None, None
        matches: list[EpisodeMatch] = []
        votes: list[str] = []
        try:
            exact, votes = yield from records.recall_step(
                ns, key, reuse=self.enable_reuse
            )
            if exact is None:
                matches = yield from records.search_step(ns, question, limit=limit)
        except EmbeddingSizeError as e:
            logger.warning("memory unusable, answering without it: %s", e)
            unusable = f"memory unusable: {e}"
        route, memory, reuse = self.decide(
            question, exact, matches, in_conversation=key != reuse_key(question)
        )
        if unusable:  # nothing was read: scratch
            route["reason"] = unusable
        if self.memory is not None and memory is not None:
            ids = set(route["exemplar_ids"])
            gated = [m for m in matches if m["episode"]["id"] in ids]
            ledger = Ledger()
            mechanism, cfg = self.memory, ledger.config(config, role="reflection")
            store = records.store
            try:
                built: MemoryContext = yield Call(
                    lambda: mechanism.build(
                        question, gated, store=store, namespace=ns, config=cfg
                    ),
                    lambda: mechanism.abuild(
                        question, gated, store=store, namespace=ns, config=cfg
                    ),
                )
            except ModelError as e:
                e.usage = ledger.usage()
                raise
            # The precedents the scorer counts and the start that limits the
            # exemplars are the router's, whatever the mechanism returns.
            merged = MemoryContext(**built)
            merged["precedents"] = memory["precedents"]
            if "samples" in memory:
                merged["samples"] = memory["samples"]
            memory, route["usage"] = merged, ledger.usage()
        if self.procedures is not None and reuse is None and matches:
            trial = yield from self._try_procedure(question, matches, route, config)
            if trial is not None:
                memory = self._with_procedure(route, memory, trial)
        if votes and reuse is None and not unusable:
            # Earlier unverified attempts at this very question vote, so that
            # a hard question converges over repeats instead of restarting.
            memory = memory or MemoryContext(exemplars=[], precedents=[])
            memory["votes"] = votes
            route["reason"] += (
                f"; {len(votes)} answer(s) of earlier unverified attempts vote"
            )
        return route, memory, reuse

    def _try_procedure(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        route: Route,
        config: RunnableConfig | None,
    ) -> Generator[Call, Any, ProcedureTrial | None]:
        # The nearest stored procedure run on this question; failing, it
        # leaves the route as it was, its cost and reason added. Evidence
        # never enters the prompt, so it needs no open band of the gate: a
        # procedure only confirms a sample that states what it computes.
        assert self.procedures is not None
        ledger = Ledger()
        try:
            trial, why = yield from self.procedures.recall(
                question,
                matches,
                model=self.engine.model,
                config=ledger.config(config, role="memory"),
            )
        except PROCEDURE_ERRORS as e:
            logger.warning("procedure not tried: %s", e)
            trial, why = None, f"procedure not tried: {e}"
        route["usage"] = add_usage(route["usage"], ledger.usage())
        if why:
            route["reason"] += f"; {why}"
        return trial

    @staticmethod
    def _with_procedure(
        route: Route, memory: MemoryContext | None, trial: ProcedureTrial
    ) -> MemoryContext:
        # The samples see no exemplars: a sample that copied an exemplar's
        # method would agree with the procedure drawn from that same method,
        # right or wrong, and the agreement would prove nothing.
        route["decision"], route["procedure"] = "procedure", trial
        route["exemplar_ids"], route["memory_samples"] = [], 0
        route["reason"] += (
            ": solved without exemplars, the procedure's answer as evidence"
        )
        kept = MemoryContext(
            exemplars=[],
            precedents=memory["precedents"] if memory else [],
            evidence=[evidence_of(trial)],
        )
        if memory and "lessons" in memory:
            kept["lessons"] = memory["lessons"]
        return kept

    def route(
        self, question: str, *, config: RunnableConfig | None = None
    ) -> tuple[Route, MemoryContext | None, Episode | None]:
        """Decide how to answer `question`, reading the store.

        Args:
            question: The question.
            config: Passed to any model call of the memory mechanism.

        Returns:
            The route, the memory to solve with and the episode to reuse.

        Raises:
            InvalidInputError: The question is empty or not text.
            EmbeddingError: The store's `memory_index` embeddings failed.
            ConfigurationError: The store has no vector index.
            MemoryStoreError: The store could not be read.
            ModelError: The memory mechanism's model call failed.
        """
        question = validate_question(question)
        records = self._memory()
        return drive(self._routing(records, question, reuse_key(question), config))

    async def aroute(
        self, question: str, *, config: RunnableConfig | None = None
    ) -> tuple[Route, MemoryContext | None, Episode | None]:
        """Async form of `route`."""
        question = validate_question(question)
        records = self._memory()
        return await adrive(
            self._routing(records, question, reuse_key(question), config)
        )

    # -- answering and remembering -------------------------------------------------------

    @staticmethod
    def _answer(
        state: Mapping[str, Any],
        source: Episode | ScalingResult,
        spent: Usage,
        *,
        result: ScalingResult | None = None,
        episode_id: str | None = None,
    ) -> SpeedupResult:
        # `source` holds the answer: the reused episode, or the method's result.
        usage = add_usage(spent, state["route"]["usage"])
        usage["seconds"] = round(time.time() - state["started"], 3)
        return SpeedupResult(
            question=state["question"],
            answer=source["answer"],
            final_answer=source["final_answer"],
            score=source["score"],
            route=state["route"],
            result=result,
            usage=usage,
            episode_id=episode_id,
        )

    def _learn(self, route: Route, episode: Episode, result: ScalingResult) -> None:
        # The gate learns from every solved question what exemplars saved; a
        # procedure's evidence saves too and would blur that, so those
        # questions teach it nothing (nor do their stored outcomes).
        if route["decision"] == "procedure":
            return
        self.gate.observe(
            similarity=route["similarity"],
            with_memory=route["decision"] == "exemplars",
            saving=saving_of(
                passed=episode["verified"],
                budget_used=result["budget_used"],
                budget=route["budget"],
            ),
        )

    def _procedure_for(
        self,
        state: Mapping[str, Any],
        result: ScalingResult,
        config: RunnableConfig | None,
    ) -> Generator[Call, Any, tuple[Procedure | None, Usage]]:
        # The procedure stored with a verified answer, and what finding it
        # cost; a failure costs the procedure, never the answer or its episode.
        assert self.procedures is not None
        assert result["final_answer"] is not None
        scorer, ledger = self.engine.scorer, Ledger()
        own = (
            scorer.program_for(state["question"])
            if isinstance(scorer, ProgramVerifiedScorer)
            else None
        )
        try:
            procedure = yield from self.procedures.learn(
                state["question"],
                result["final_answer"],
                trial=state["route"].get("procedure"),
                solutions=[c["text"] for c in result["candidates"]],
                programs=[] if own is None else [own],
                model=self.engine.model,
                config=ledger.config(config, role="memory"),
            )
        except PROCEDURE_ERRORS as e:
            logger.warning("no procedure kept: %s", e)
            procedure = None
        return procedure, ledger.usage()

    def as_graph(
        self, *, name: str = "speedup", **options: Unpack[GraphOptions]
    ) -> CompiledStateGraph[Any, None, SpeedupInput, Any]:
        """The speedup graph: `route`, then `reuse` or the method's graph, then `remember`.

        The answer is appended to `messages` and the `SpeedupResult` is under
        the key `name`. Each invocation answers the conversation's last human
        message afresh, so a checkpointed thread can hold many questions.

        Args:
            name: The graph's name, its node name in a parent graph and the
                key of its result.
            **options: `checkpointer`, `store`, `interrupt_before`,
                `interrupt_after` and `debug`, as LangGraph's `compile` takes.
        """
        method, compiled = self.engine.method, compile_options(options)
        # A run stopped by a static interrupt may never come back to land.
        single_flight = self.enable_reuse and not (
            compiled.get("interrupt_before") or compiled.get("interrupt_after")
        )

        def route(
            state: Mapping[str, Any], config: RunnableConfig
        ) -> Generator[Call, Any, dict[str, Any]]:
            started = time.time()
            question, conversation = question_of(state["messages"])
            key = reuse_key(question, _context_of(conversation))
            episode_id = _check_episode_id(state.get("episode_id"))
            records = self._memory()
            owned: dict[str, Any] = {"question": question, "key": key, "flight": None}
            owner = str(uuid.uuid4())
            if single_flight and (yield from self._board(records.store, key, owner)):
                owned["flight"] = owner
            try:
                decided, memory, reuse = yield from self._routing(
                    records, question, key, config
                )
            except BaseException:
                self._land(owned)
                raise
            if reuse is not None:
                self._land(owned)
                owned["flight"] = None
            emit(
                ScalingEvent(
                    method=decided["method"],
                    event="route",
                    decision=decided["decision"],
                    reason=decided["reason"],
                    similarity=decided["similarity"],
                    band=decided["band"],
                    budget=decided["budget"],
                    unit=decided["unit"],
                )
            )
            return {
                **owned,
                "route": decided,
                "memory": memory,
                "reuse": reuse,
                # The caller's id serves this invocation only.
                "episode_id": None,
                "new_episode_id": episode_id,
                "started": started,
            }

        def after_route(state: Mapping[str, Any]) -> str:
            return "reuse" if state.get("reuse") else method

        solver = self.engine.as_graph()

        def failed(state: Mapping[str, Any], error: BaseException) -> None:
            self._land(state)
            if isinstance(error, ModelError):
                error.usage = add_usage(
                    error.usage or empty_usage(), state["route"]["usage"]
                )

        def solve(state: Any, config: RunnableConfig) -> Any:
            try:
                return solver.invoke(state, _traced(config, state["route"]))
            except BaseException as e:
                failed(state, e)
                raise

        async def asolve(state: Any, config: RunnableConfig) -> Any:
            try:
                return await solver.ainvoke(state, _traced(config, state["route"]))
            except BaseException as e:
                failed(state, e)
                raise

        def message(answer: SpeedupResult, id: str | None = None) -> AIMessage:
            usage = usage_metadata(answer["usage"])
            return AIMessage(answer["answer"], name=name, usage_metadata=usage, id=id)

        def answer_reused(state: Any) -> dict[str, Any]:
            answer = self._answer(state, state["reuse"], empty_usage())
            return {name: answer, "messages": [message(answer)]}

        reused = RunnableLambda(answer_reused, name="reuse")

        def reuse(state: Any, config: RunnableConfig) -> dict[str, Any]:
            return reused.invoke(state, _traced(config, state["route"]))

        def remember(
            state: Mapping[str, Any], config: RunnableConfig
        ) -> Generator[Call, Any, dict[str, Any]]:
            try:
                return (yield from store(state, config))
            finally:  # stored or not, calls waiting for this one go on
                self._land(state)

        def store(
            state: Mapping[str, Any], config: RunnableConfig
        ) -> Generator[Call, Any, dict[str, Any]]:
            result: ScalingResult = state[method]
            route, episode_id = state["route"], state["new_episode_id"]
            episode = episode_from_result(
                id=episode_id,
                namespace=self.namespace,
                question=state["question"],
                result=result,
                decision=route["decision"],
                similarity=route["similarity"],
                budget=route["budget"],
                key=state["key"],
            )
            self._learn(route, episode, result)
            spent = result["usage"]
            if self.procedures is not None and episode["verified"]:
                procedure, learning = yield from self._procedure_for(
                    state, result, config
                )
                spent = add_usage(spent, learning)
                if procedure is not None:
                    episode["procedure"] = procedure
            answer = self._answer(
                state, result, spent, result=result, episode_id=episode_id
            )
            try:
                # The store's index embeds the question as it writes.
                yield from self._memory().put_step(episode)
            except (
                MemoryStoreError,
                InvalidInputError,
                EmbeddingError,
                ConfigurationError,
            ) as e:
                # The answer stands; only its memory is lost.
                logger.warning("episode %s not stored: %s", episode["id"], e)
                answer = {**answer, "episode_id": None, "memory_error": str(e)}
            # Replaces the method's answer message (same id): the graph's
            # answers carry its name and everything the question cost.
            replaced = message(answer, id=state["messages"][-1].id)
            return {name: answer, "messages": [replaced]}

        state = with_fields(
            SpeedupState,
            "SpeedupState",
            {name: NotRequired[SpeedupResult], method: NotRequired[ScalingResult]},
        )
        output = with_fields(
            TypedDict, "SpeedupOutput", {"messages": Messages, name: SpeedupResult}
        )
        builder: StateGraph[Any, Any, Any, Any] = StateGraph(
            state,
            context_schema=SpeedupContext,
            input_schema=SpeedupInput,
            output_schema=output,
        )
        builder.add_node("route", step_node("route", route))
        builder.add_node("reuse", reuse)
        builder.add_node(method, RunnableLambda(solve, afunc=asolve, name=method))
        builder.add_node("remember", step_node("remember", remember))
        builder.add_edge(START, "route")
        builder.add_conditional_edges("route", after_route, ["reuse", method])
        builder.add_edge("reuse", END)
        builder.add_edge(method, "remember")
        builder.add_edge("remember", END)
        return builder.compile(name=name, **compiled)

    def _input(
        self, question: str | Sequence[BaseMessage], episode_id: str | None
    ) -> SpeedupInput:
        _, conversation = question_of(question)
        return SpeedupInput(
            messages=cast(list[AnyMessage], conversation),
            episode_id=_check_episode_id(episode_id),
        )

    def _config(self, config: RunnableConfig | None) -> RunnableConfig:
        return graph_config(config, 4 * self.engine.budget + 16)

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

        Returns:
            The answer, the route taken, the method's result and the usage.

        Raises:
            InvalidInputError: The question or `episode_id` is unusable.
            EmbeddingError: The embeddings failed or returned no vector;
                nothing was generated.
            ModelError: A model call failed or returned no message; nothing
                is written to memory, and its `usage` holds what was spent.
            MemoryStoreError: The store could not be read.
        """
        output = self._graph.invoke(
            self._input(question, episode_id), self._config(config)
        )
        return result_of(output, "speedup")  # type: ignore[no-any-return]

    async def asolve(
        self,
        question: str | Sequence[BaseMessage],
        *,
        episode_id: str | None = None,
        config: RunnableConfig | None = None,
    ) -> SpeedupResult:
        """Async form of `solve`."""
        inputs, config = self._input(question, episode_id), self._config(config)
        return result_of(await self._graph.ainvoke(inputs, config), "speedup")  # type: ignore[no-any-return]


def create_speedup_graph(
    solver: ScalingEngine | ChatRunnable,
    /,
    *,
    store: BaseStore | None = None,
    embeddings: Embeddings | None = None,
    name: str = "speedup",
    **options: Unpack[SpeedupGraphOptions],
) -> CompiledStateGraph[Any, None, SpeedupInput, Any]:
    """Build the memory-aware speedup graph: route, then reuse or solve, then remember.

    `route` looks the question up in memory and decides; `reuse` answers an exact repeat
    of a verified question from memory; otherwise the method's own graph (a
    node named after the method) solves with the memory and budget the
    router allows, and `remember` writes the episode. The answer is appended
    to `messages` and a `SpeedupResult` is under the key `name`.

    What tracing and streaming tools see: the method's graph run (or the
    `reuse` run) and its children carry the tags `speedup:decision:<decision>`
    and `speedup:method:<method>` and the metadata `speedup_decision`,
    `speedup_similarity`, `speedup_band`, `speedup_budget`, `speedup_method`
    and `speedup_memory` (whether memory was used); `route` writes a custom
    stream event `{"event": "route", "decision", "reason", "similarity",
    "band", "budget", "method", "unit"}` before any answer; the answer's
    `AIMessage` is named `name` and its `usage_metadata` counts every call
    the question cost (zero for reuse).

    Example:
        ```python
        store = InMemoryStore(index=memory_index(MiniLMEmbeddings()))
        graph = create_speedup_graph(model, store=store)
        out = graph.invoke({"messages": [("user", "Maya buys 3 pens at $4 ...")]})
        print(out["speedup"]["route"]["decision"], out["messages"][-1].content)
        ```

    Args:
        solver: A `ScalingEngine`, or a chat model (solved by `BestOfN`).
        store: The LangGraph store with a vector index that holds the memory
            (see `EpisodicMemory`); the graph is compiled with it, so a parent
            graph or a deployment sees one store. When `None`, the runtime's
            store (a parent graph's `compile(store=...)`, a LangGraph
            deployment's), else one `default_store(embeddings)` per graph.
        embeddings: The default store's embeddings; the offline
            `MiniLMEmbeddings` when `None` (needs the `local` extra). Give a
            store's embeddings to its index instead (`memory_index`).
        name: The graph's name, its node name in a parent graph and the key
            of its result.
        **options: The options of `BudgetRouter` (`namespace`,
            `similarity_gate`, `max_exemplars`, `memory_samples`,
            `enable_reuse`, `memory`) and of LangGraph's `compile`
            (`checkpointer`, `interrupt_before`, `interrupt_after`, `debug`).

    Returns:
        The compiled graph.

    Raises:
        ConfigurationError: An unknown option, or one out of range.
    """
    graph: dict[str, Any] = {
        k: v for k, v in options.items() if k not in RouterOptions.__annotations__
    }
    router_options: dict[str, Any] = {
        k: v for k, v in options.items() if k not in graph
    }
    unknown = sorted(set(graph) - set(SpeedupGraphOptions.__annotations__))
    if unknown:
        msg = (
            f"create_speedup_graph has no option {', '.join(unknown)}; give the method's "
            "options to its engine, e.g. create_speedup_graph(BestOfN(model, budget=4))"
        )
        raise ConfigurationError(msg)
    router = BudgetRouter(solver, store=store, embeddings=embeddings, **router_options)
    if store is not None:
        graph["store"] = store
    return router.as_graph(name=name, **graph)
