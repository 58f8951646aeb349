"""The memory-aware budget router and the speedup graph, fully offline."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.store.base import BaseStore, GetOp, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

from langchain_speedup import (
    BestOfN,
    BudgetRouter,
    ConfigurationError,
    ConsensusScorer,
    EpisodicMemory,
    InvalidInputError,
    LongCoT,
    MemoryStoreError,
    ModelError,
    create_speedup_graph,
    question_key,
    reuse_key,
)
from langchain_speedup.types import Episode, EpisodeMatch, MemoryContext, empty_usage
from tests.fakes import (
    FailingChatModel,
    FakeChatModel,
    FaultyStore,
    HashEmbeddings,
    Sequenced,
    boxed,
    constant,
    cosine,
    make_episode,
    sum_solver,
)

MAYA = (
    "Maya buys 3 pens at 4 dollars each and 2 notebooks at 5 dollars each. "
    "How many dollars does Maya spend in total?"
)
REWORDED = (
    "In total, how many dollars does Maya spend if she buys 3 pens at 4 dollars "
    "each and 2 notebooks at 5 dollars each?"
)
NEW_NUMBERS = MAYA.replace("3 pens", "7 pens")
NEW_NAME = MAYA.replace("Maya", "Liam")
UNRELATED = "A train travels 60 miles per hour for 3 hours. How far does the train go?"
GATE = 0.7

SYNC_AND_ASYNC = pytest.mark.parametrize(
    "world", [False, True], ids=["sync", "async"], indirect=True
)


@dataclass
class World:
    """A test's store (indexed with its embeddings) and model, run sync or async."""

    make_store: Callable[[Embeddings], BaseStore]
    is_async: bool
    model: FakeChatModel = field(
        default_factory=lambda: FakeChatModel(responder=sum_solver)
    )
    embeddings: HashEmbeddings = field(default_factory=HashEmbeddings)
    store: BaseStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = self.make_store(self.embeddings)
        self.embeddings.calls = 0

    @property
    def memory(self) -> EpisodicMemory:
        return EpisodicMemory(self.store)

    def count(self, namespace: str) -> int:
        return len(self.memory.episodes(namespace))

    def router(self, solver: Any = None, **options: Any) -> BudgetRouter:
        options = {"store": self.store, **options}
        return BudgetRouter(self.model if solver is None else solver, **options)

    def graph(self, solver: Any = None, **options: Any) -> Any:
        options = {"store": self.store, **options}
        return create_speedup_graph(self.model if solver is None else solver, **options)

    def remember(self, question: str, **episode: Any) -> Episode:
        stored = make_episode(question, **episode)
        self.memory.put(stored)
        return stored

    async def solve(self, router: BudgetRouter, question: Any, **kw: Any) -> Any:
        if self.is_async:
            return await router.asolve(question, **kw)
        return router.solve(question, **kw)

    async def route(self, router: BudgetRouter, question: str) -> Any:
        if self.is_async:
            return await router.aroute(question)
        return router.route(question)

    async def invoke(self, graph: Any, question: str | dict[str, Any]) -> Any:
        state = question
        if isinstance(question, str):
            state = {"messages": [HumanMessage(question)]}
        return await graph.ainvoke(state) if self.is_async else graph.invoke(state)


@pytest.fixture(name="world")
def world_fixture(
    request: pytest.FixtureRequest, make_store: Callable[[Embeddings], BaseStore]
) -> World:
    return World(make_store, is_async=getattr(request, "param", False))


def has_question(prompt: Sequence[BaseMessage], question: str) -> bool:
    """Whether `question` appears in the prompt as an earlier (exemplar) turn."""
    return any(isinstance(m, HumanMessage) and m.text == question for m in prompt[:-1])


def pick(mapping: Any, keys: str) -> tuple[Any, ...]:
    """The values of the space-separated `keys`, in order."""
    return tuple(mapping[key] for key in keys.split())


def match(question: str, similarity: float, **episode: Any) -> EpisodeMatch:
    return EpisodeMatch(
        episode=make_episode(question, **episode), similarity=similarity
    )


def test_premises_of_the_fake_embeddings() -> None:
    # The routing tests rely on these similarities; check them here so a
    # change to the fakes cannot silently make those tests vacuous.
    embed = HashEmbeddings().embed_query
    for similar in (REWORDED, NEW_NUMBERS, NEW_NAME):
        assert cosine(embed(MAYA), embed(similar)) >= GATE + 0.1
    assert cosine(embed(MAYA), embed(UNRELATED)) < GATE - 0.3
    assert question_key(REWORDED) != question_key(MAYA)


# -- the decision, without I/O -----------------------------------------------------------


def test_decide_reuses_only_an_exact_verified_episode(world: World) -> None:
    exact = make_episode(MAYA, final_answer="14")
    route, memory, reuse = world.router().decide(MAYA, exact, [])
    assert (reuse, memory) == (exact, None)
    assert route == {
        "decision": "reuse",
        "reason": "a verified episode holds this exact question",
        "similarity": None,
        "band": None,
        "explored": False,
        "exemplar_ids": [exact["id"]],
        "precedents": [],
        "budget": 0,
        "memory_samples": 0,
        "method": "best_of_n",
        "unit": "generations",
        "usage": empty_usage(),
    }
    # Without reuse, the same episode is only an exemplar with a precedent.
    same = [match(MAYA, 0.99, final_answer="14")]
    route, _, reuse = world.router(enable_reuse=False).decide(MAYA, exact, same)
    assert (*pick(route, "decision precedents"), reuse) == ("exemplars", ["14"], None)
    # Nothing stored: scratch with the whole budget.
    route, memory, reuse = world.router().decide(MAYA, None, [])
    assert route["reason"] == "no verified episode is stored"
    assert pick(route, "decision similarity band budget") == ("scratch", None, None, 8)
    assert (memory, reuse) == (None, None)


@pytest.mark.parametrize(
    ("question", "precedents", "kind"),
    [
        pytest.param(REWORDED, ["14"], "the same problem reworded", id="reworded"),
        pytest.param(NEW_NUMBERS, [], "similar problems", id="new-numbers"),
        pytest.param(NEW_NAME, [], "similar problems", id="new-name"),
    ],
)
def test_decide_shows_admitted_episodes_as_exemplars(
    world: World, question: str, precedents: list[str], kind: str
) -> None:
    stored = match(MAYA, 0.9, final_answer="14")
    router = world.router(similarity_gate=GATE)
    route, memory, reuse = router.decide(question, None, [stored])
    assert reuse is None
    assert memory == MemoryContext(
        exemplars=[{"question": MAYA, "solution": stored["episode"]["answer"]}],
        precedents=precedents,
        samples=2,
    )
    assert route["decision"] == "exemplars"
    assert route["reason"].startswith(f"1 verified episode(s) of {kind}; ")
    assert pick(route, "similarity band explored") == (0.9, ">=0.70", False)
    assert route["exemplar_ids"] == [stored["episode"]["id"]]
    assert route["precedents"] == precedents
    assert pick(route, "budget memory_samples") == (8, 2)


@pytest.mark.parametrize(("gate", "similarity"), [(GATE, 0.5), (1.0, 0.99)])
def test_decide_scratch_when_the_gate_keeps_memory_out(
    world: World, gate: float, similarity: float
) -> None:
    router = world.router(similarity_gate=gate)
    route, memory, reuse = router.decide(REWORDED, None, [match(MAYA, similarity)])
    assert (route["decision"], memory, reuse) == ("scratch", None, None)
    assert route["reason"].startswith(
        f"memory kept out at similarity {similarity:.3f}: "
    )
    assert route["band"] == router.gate.band_of(similarity)
    assert route["exemplar_ids"] == route["precedents"] == []
    assert pick(route, "budget memory_samples") == (8, 0)


def test_decide_keeps_the_most_similar_admitted_exemplars(world: World) -> None:
    matches = [
        match(NEW_NUMBERS, 0.75),
        match(REWORDED, 0.95, final_answer="14"),
        match(MAYA, 0.85, final_answer=None),  # no final answer: no precedent
        match(UNRELATED, 0.6),  # below the gate
    ]
    ids = [m["episode"]["id"] for m in matches]
    route, memory, _ = world.router(similarity_gate=GATE).decide(MAYA, None, matches)
    assert route["exemplar_ids"] == [ids[2], ids[1]]  # most similar last
    assert memory is not None
    assert [e["question"] for e in memory["exemplars"]] == [MAYA, REWORDED]
    assert route["precedents"] == memory["precedents"] == ["14"]
    assert route["similarity"] == 0.95
    router = world.router(similarity_gate=GATE, max_exemplars=1)
    assert router.decide(MAYA, None, matches)[0]["exemplar_ids"] == [ids[1]]


def test_decide_memorys_start_within_the_budget(world: World) -> None:
    # Long chain-of-thought keeps one line of thought: exemplars throughout.
    for solver, start, samples in (
        (BestOfN(world.model, budget=1), 1, 1),
        (LongCoT(world.model, budget=300), 300, None),
    ):
        router = world.router(solver, similarity_gate=GATE, memory_samples=2)
        assert router.engine is solver
        route, memory, _ = router.decide(NEW_NUMBERS, None, [match(MAYA, 0.9)])
        assert route["memory_samples"] == start
        assert memory is not None
        assert memory.get("samples") == samples
        expected = (solver.budget, solver.method, solver.unit)
        assert pick(route, "budget method unit") == expected


# -- a question within a conversation ---------------------------------------------------

FOLLOW_UP = "What is double that?"


@SYNC_AND_ASYNC
async def test_the_same_follow_up_in_two_conversations_is_not_reused(
    world: World,
) -> None:
    router = world.router()
    first = [
        HumanMessage("Tom has 2 apples."),
        AIMessage("OK."),
        HumanMessage(FOLLOW_UP),
    ]
    other = [
        HumanMessage("Ann has 9 pears."),
        AIMessage("OK."),
        HumanMessage(FOLLOW_UP),
    ]
    await world.solve(router, first)
    out = await world.solve(router, other)
    # Same words, another conversation: no reuse, and the stored answer of the
    # other conversation is shown at most, never counted as a vote.
    assert out["route"]["decision"] != "reuse"
    assert out["route"]["precedents"] == []
    assert out["usage"]["generations"] > 0
    again = await world.solve(router, list(first))
    assert again["route"]["decision"] == "reuse"


@SYNC_AND_ASYNC
async def test_a_standalone_repeat_is_reused_but_not_the_same_words_in_a_conversation(
    world: World,
) -> None:
    router = world.router()
    await world.solve(router, MAYA)
    assert (await world.solve(router, MAYA))["route"]["decision"] == "reuse"
    within = [SystemMessage("Answer in euros."), HumanMessage(MAYA)]
    assert (await world.solve(router, within))["route"]["decision"] != "reuse"


def test_reuse_key_knows_the_conversation() -> None:
    alone = reuse_key(MAYA)
    assert alone == question_key(MAYA)
    told = reuse_key(MAYA, [SystemMessage("Answer in euros.")])
    asked = reuse_key(MAYA, [HumanMessage("Hi"), AIMessage("Hello")])
    assert len({alone, told, asked}) == 3
    assert reuse_key(MAYA, [HumanMessage("Hi"), AIMessage("Hello")]) == asked


def tool_turns(ids: tuple[str, str], answered: tuple[str, ...]) -> list[Any]:
    """Two tool calls, then the results "4.828" and "8.047", in that order,
    answering the calls `answered` names."""
    calls = [
        {"name": "convert", "args": {"miles": 3}, "id": ids[0]},
        {"name": "convert", "args": {"miles": 5}, "id": ids[1]},
    ]
    results = [
        ToolMessage(t, tool_call_id=i)
        for t, i in zip(["4.828", "8.047"], answered, strict=False)
    ]
    return [AIMessage("", tool_calls=calls), *results]


def test_reuse_key_counts_tool_call_ids_only_as_links() -> None:
    once = reuse_key(MAYA, tool_turns(("call_a", "call_b"), ("call_a", "call_b")))
    # The same calls and results under the new ids of another run.
    assert reuse_key(MAYA, tool_turns(("x1", "x2"), ("x1", "x2"))) == once
    # The same texts answering the other calls, or one result missing.
    assert reuse_key(MAYA, tool_turns(("x1", "x2"), ("x2", "x1"))) != once
    assert reuse_key(MAYA, tool_turns(("x1", "x2"), ("x1",))) != once


# -- routing through the store -----------------------------------------------------------


@SYNC_AND_ASYNC
@pytest.mark.parametrize(
    "asked",
    [MAYA, [HumanMessage("What is 1 + 1?"), AIMessage("2"), HumanMessage(MAYA)]],
    ids=["question", "conversation"],
)
async def test_first_question_is_scratch_and_remembered(
    world: World, asked: Any
) -> None:
    out = await world.solve(world.router(), asked)
    route = out["route"]
    assert (route["decision"], route["similarity"]) == ("scratch", None)
    assert "no verified episode is stored" in route["reason"]
    assert route["exemplar_ids"] == route["precedents"] == []
    assert route["budget"] == 8
    assert (out["question"], out["final_answer"], out["score"]) == (MAYA, "14", 1.0)
    assert out["result"]["stop_reason"] == "threshold"
    assert out["usage"]["generations"] == len(world.model.calls) == 3
    assert "memory_error" not in out
    # Embedded once: the vector searched is the vector stored.
    assert world.embeddings.calls == 1
    # Remembered once, verified, under the returned id.
    [episode] = world.memory.episodes("default")
    assert episode["id"] == str(uuid.UUID(out["episode_id"]))
    # The key knows the conversation the question was asked in.
    context = asked[:-1] if isinstance(asked, list) else []
    assert (episode["question"], episode["question_key"]) == (
        MAYA,
        reuse_key(MAYA, context),
    )
    assert (episode["final_answer"], episode["answer"]) == ("14", out["answer"])
    assert (episode["decision"], episode["generations"]) == ("scratch", 3)
    assert (episode["verified"], episode["namespace"]) == (True, "default")


@SYNC_AND_ASYNC
@pytest.mark.parametrize("enable_reuse", [True, False])
async def test_rewording_gets_exemplars_and_a_precedent(
    world: World, enable_reuse: bool
) -> None:
    router = world.router(enable_reuse=enable_reuse)
    first = await world.solve(router, MAYA)
    before = len(world.model.calls)
    # Without reuse, even the exact question is only shown its precedent.
    question = REWORDED if enable_reuse else MAYA
    out = await world.solve(router, question)
    route = out["route"]
    assert route["decision"] == "exemplars"
    assert "the same problem reworded" in route["reason"]
    assert route["precedents"] == ["14"]
    assert route["exemplar_ids"] == [first["episode_id"]]
    assert route["similarity"] >= GATE
    assert route["memory_samples"] == 2
    # The precedent plus one agreeing sample is a quorum.
    assert (out["usage"]["generations"], out["final_answer"]) == (1, "14")
    [prompt] = world.model.calls[before:]
    assert has_question(prompt, MAYA)
    assert prompt[-1].text == question
    assert world.count("default") == 2


@SYNC_AND_ASYNC
@pytest.mark.parametrize(
    ("memory_samples", "with_memory"),
    [(2, [True, True, False]), (1, [True, False, False])],
)
async def test_new_numbers_get_exemplars_for_the_first_samples_only(
    world: World, memory_samples: int, with_memory: list[bool]
) -> None:
    router = world.router(memory_samples=memory_samples)
    await world.solve(router, MAYA)
    before = len(world.model.calls)
    out = await world.solve(router, NEW_NUMBERS)
    route = out["route"]
    assert (route["decision"], route["precedents"]) == ("exemplars", [])
    assert "similar problems" in route["reason"]
    assert route["memory_samples"] == memory_samples
    # Solved afresh: its own answer, not the remembered one.
    assert (out["final_answer"], out["usage"]["generations"]) == ("18", 3)
    assert [has_question(p, MAYA) for p in world.model.calls[before:]] == with_memory
    assert [c["with_memory"] for c in out["result"]["candidates"]] == with_memory
    stored = {e["id"]: e for e in world.memory.episodes("default")}
    assert len(stored) == 2
    assert stored[out["episode_id"]]["decision"] == "exemplars"


@SYNC_AND_ASYNC
async def test_routing_reads_up_to_max_exemplars_from_the_store(world: World) -> None:
    stored = [world.remember(q) for q in (NEW_NAME, MAYA, NEW_NUMBERS)]
    route, _, _ = await world.route(world.router(max_exemplars=3), REWORDED)
    embed = world.embeddings.embed_query
    stored.sort(key=lambda e: cosine(embed(e["question"]), embed(REWORDED)))
    assert route["exemplar_ids"] == [e["id"] for e in stored]  # most similar last


@SYNC_AND_ASYNC
async def test_unverified_episodes_are_never_reused_nor_shown(world: World) -> None:
    unsure = FakeChatModel(responder=Sequenced([boxed(i) for i in range(8)]))
    first = await world.solve(world.router(unsure), MAYA)
    assert pick(first["result"], "stop_reason passed") == ("budget", False)
    router = world.router()
    for question in (MAYA, REWORDED, NEW_NUMBERS):
        route, memory, reuse = await world.route(router, question)
        assert (route["decision"], route["similarity"]) == ("scratch", None), question
        assert reuse is None
        # Only the exact question's earlier answers vote; nothing is shown.
        votes = [str(i) for i in range(8)] if question == MAYA else None
        assert memory == (
            None
            if votes is None
            else {"exemplars": [], "precedents": [], "votes": votes}
        )
    out = await world.solve(router, MAYA)
    assert (out["route"]["decision"], out["final_answer"]) == ("scratch", "14")
    assert len(world.model.calls) == 3
    assert not any(isinstance(m, AIMessage) for p in world.model.calls for m in p)


@SYNC_AND_ASYNC
async def test_namespaces_isolate_tenants(world: World) -> None:
    router_b = world.router(namespace="b")
    await world.solve(router_b, MAYA)
    assert (await world.solve(router_b, MAYA))["route"]["decision"] == "reuse"
    model_a = FakeChatModel(responder=sum_solver)
    out = await world.solve(world.router(model_a, namespace="a"), MAYA)
    assert (out["route"]["decision"], out["route"]["similarity"]) == ("scratch", None)
    assert len(model_a.calls) == 3
    assert not any(has_question(p, MAYA) for p in model_a.calls)
    assert (world.count("a"), world.count("b")) == (1, 1)
    assert {e["namespace"] for e in world.memory.episodes("a")} == {"a"}


@SYNC_AND_ASYNC
async def test_episode_id_is_checked_first_and_written_once(world: World) -> None:
    router = world.router(enable_reuse=False)
    with pytest.raises(InvalidInputError, match="UUID"):
        await world.solve(router, MAYA, episode_id="not-a-uuid")
    assert world.model.calls == []
    fixed = str(uuid.uuid4())
    assert (await world.solve(router, MAYA, episode_id=fixed))["episode_id"] == fixed
    await world.solve(router, MAYA, episode_id=fixed)
    assert [e["id"] for e in world.memory.episodes("default")] == [fixed]


class LessonMechanism:
    """A memory mechanism that asks a model for a lesson over the gated matches."""

    def __init__(self) -> None:
        self.reflector = FakeChatModel(responder=constant("Multiply count by price."))
        self.seen: list[str] = []

    def _memory(self, matches: Sequence[EpisodeMatch], lesson: Any) -> MemoryContext:
        self.seen = [m["episode"]["id"] for m in matches]
        # The router keeps its own precedents and start, whatever these say.
        return MemoryContext(
            exemplars=[], precedents=["9"], samples=7, lessons=lesson.text
        )

    def build(self, question: str, matches: Any, **kw: Any) -> MemoryContext:
        return self._memory(matches, self.reflector.invoke(question, kw["config"]))

    async def abuild(self, question: str, matches: Any, **kw: Any) -> MemoryContext:
        lesson = await self.reflector.ainvoke(question, kw["config"])
        return self._memory(matches, lesson)


@SYNC_AND_ASYNC
async def test_the_memory_mechanism_builds_memory_and_its_calls_count(
    world: World,
) -> None:
    near = world.remember(MAYA, final_answer="14")
    world.remember(UNRELATED)
    mechanism = LessonMechanism()
    router = world.router(memory=mechanism, similarity_gate=GATE)
    route, memory, _ = await world.route(router, REWORDED)
    assert mechanism.seen == [near["id"]]  # only what the gate admitted
    lesson = "Multiply count by price."
    assert memory == MemoryContext(
        exemplars=[], precedents=["14"], samples=2, lessons=lesson
    )
    assert (route["decision"], route["precedents"]) == ("exemplars", ["14"])
    assert pick(route["usage"], "other_calls generations") == (1, 0)
    assert route["usage"]["total_tokens"] > 0
    out = await world.solve(router, REWORDED)
    usage, route_usage = out["usage"], out["route"]["usage"]
    solving = out["result"]["usage"]["total_tokens"]
    assert usage["total_tokens"] == solving + route_usage["total_tokens"]
    assert usage["other_calls"] == route_usage["other_calls"] == 1
    # The lesson reaches the prompt; the precedent makes one sample a quorum.
    [prompt] = world.model.calls
    assert lesson in prompt[0].text
    assert out["final_answer"] == "14"


# -- the speedup graph -------------------------------------------------------------------


@SYNC_AND_ASYNC
async def test_the_speedup_graph_as_a_node_of_a_parent_graph(world: World) -> None:
    speedup = world.graph(name="fast", namespace="g")
    builder = StateGraph(MessagesState)
    builder.add_node("fast", speedup)
    builder.add_edge(START, "fast")
    builder.add_edge("fast", END)
    parent = builder.compile()
    for _ in range(2):
        out = await world.invoke(parent, MAYA)
        assert [type(m) for m in out["messages"]] == [HumanMessage, AIMessage]
        assert out["messages"][-1].text == boxed(14)
    assert len(world.model.calls) == 3  # the second was reused
    assert (world.count("g"), world.count("default")) == (1, 0)
    # Standalone, its result is under its name.
    out = await world.invoke(speedup, REWORDED)
    assert set(out) == {"messages", "fast"}
    assert pick(out["fast"]["route"], "decision precedents") == ("exemplars", ["14"])
    assert has_question(world.model.calls[-1], MAYA)


@SYNC_AND_ASYNC
async def test_the_speedup_graph_streams_the_methods_events(world: World) -> None:
    graph, state = world.graph(), {"messages": [("user", MAYA)]}
    options: Any = {"stream_mode": "custom", "subgraphs": True}
    if world.is_async:
        chunks = [c async for c in graph.astream(state, **options)]
    else:
        chunks = list(graph.stream(state, **options))
    # The route comes first, from the speedup graph itself.
    (root, route), *chunks = chunks
    assert (root, route["event"], route["decision"]) == ((), "route", "scratch")
    assert {namespace[0].split(":")[0] for namespace, _ in chunks} == {"best_of_n"}
    events = [event for _, event in chunks]
    assert [(e["event"], e.get("index")) for e in events] == [
        *[(kind, i) for i in range(3) for kind in ("candidate", "score")],
        ("stop", None),
    ]
    assert {e["method"] for e in events} == {"best_of_n"}
    assert (events[-1]["stop_reason"], events[-1]["answer"]) == ("threshold", "14")


def test_the_speedup_graph_uses_the_given_store_even_when_it_is_falsy(
    world: World,
) -> None:
    class SizedStore(InMemoryStore):
        def __len__(self) -> int:  # an empty store is falsy
            return len(EpisodicMemory(self).episodes("default"))

    world.store = SizedStore(index=world.store.index_config)  # type: ignore[attr-defined]
    world.graph().invoke({"messages": [HumanMessage(MAYA)]})
    assert len(world.store) == 1


# -- failures ----------------------------------------------------------------------------


@SYNC_AND_ASYNC
@pytest.mark.parametrize(
    "question",
    ["", "  \n ", None, 42, [], [AIMessage("hi")], "x" * 20_001],
    ids=["empty", "whitespace", "None", "int", "no-messages", "no-human", "too-long"],
)
async def test_bad_input_writes_nothing(world: World, question: object) -> None:
    router = world.router()
    await world.solve(router, MAYA)
    calls = len(world.model.calls)
    with pytest.raises(InvalidInputError):
        await world.solve(router, question)
    with pytest.raises(InvalidInputError):
        await world.route(router, question)
    assert world.count("default") == 1
    assert len(world.model.calls) == calls


@SYNC_AND_ASYNC
@pytest.mark.parametrize(
    "state",
    [
        {"messages": [AIMessage("hello")]},
        {"messages": [HumanMessage(MAYA)], "episode_id": "7"},
    ],
    ids=["no-question", "bad-episode-id"],
)
async def test_the_graph_checks_its_input_before_any_call(
    world: World, state: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInputError):
        await world.invoke(world.graph(), state)
    assert world.model.calls == []
    assert world.count("default") == 0


@SYNC_AND_ASYNC
async def test_a_model_failing_mid_question_writes_nothing(world: World) -> None:
    model = FailingChatModel(responder=sum_solver, fail_on=3)
    router = world.router(model)
    with pytest.raises(ModelError) as info:
        await world.solve(router, MAYA)
    assert info.value.role == "solver"
    assert len(model.calls) == 3
    assert world.count("default") == 0
    # The next question is unaffected by the failed one.
    assert (await world.solve(router, MAYA))["route"]["decision"] == "scratch"
    assert world.count("default") == 1
    # A failure on a question routed to exemplars leaves memory alone too.
    failing = world.router(FailingChatModel(responder=sum_solver, fail_on=1))
    with pytest.raises(ModelError):
        await world.solve(failing, NEW_NUMBERS)
    assert world.count("default") == 1


@SYNC_AND_ASYNC
async def test_model_error_carries_the_usage_spent_with_the_routing(
    world: World,
) -> None:
    world.remember(MAYA, final_answer="14")
    model = FailingChatModel(responder=sum_solver, fail_on=1)
    router = world.router(model, memory=LessonMechanism(), similarity_gate=GATE)
    with pytest.raises(ModelError) as info:
        await world.solve(router, REWORDED)
    usage = info.value.usage
    assert usage is not None
    # The mechanism's lesson, then the first sample, which failed.
    assert pick(usage, "other_calls generations failed_calls") == (1, 0, 1)
    assert usage["other_tokens"] > 0
    assert world.count("default") == 1


@SYNC_AND_ASYNC
async def test_an_unreachable_model_server_is_a_model_error(world: World) -> None:
    import openai
    from langchain_openai import ChatOpenAI

    # Port 9 (discard) on loopback: nothing listens, the connection is refused.
    model = ChatOpenAI(
        base_url="http://127.0.0.1:9/v1", api_key="x", max_retries=0, timeout=2
    )
    with pytest.raises(ModelError, match="reachable") as info:
        await world.solve(world.router(model), MAYA)
    assert info.value.role == "solver"
    assert isinstance(info.value.__cause__, openai.APIConnectionError)
    assert world.count("default") == 0


def disk_full(store: BaseStore) -> FaultyStore:
    """`store` whose writes fail."""
    return FaultyStore(
        store, fails=lambda op: isinstance(op, PutOp), error=OSError("disk full")
    )


def server_gone(store: BaseStore) -> FaultyStore:
    """`store` whose reads fail."""
    return FaultyStore(
        store,
        fails=lambda op: isinstance(op, GetOp | SearchOp),
        error=ConnectionError("server gone"),
    )


@SYNC_AND_ASYNC
async def test_a_failing_write_still_answers(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.store = disk_full(world.store)
    with caplog.at_level(logging.WARNING, logger="langchain_speedup.router"):
        out = await world.solve(world.router(), MAYA)
    assert (out["final_answer"], out["answer"]) == ("14", boxed(14))
    assert out["episode_id"] is None
    assert "disk full" in out["memory_error"]
    assert out["usage"]["generations"] == 3
    assert "not stored" in caplog.text
    assert world.count("default") == 0


@SYNC_AND_ASYNC
async def test_a_failing_store_read_is_a_store_error(world: World) -> None:
    world.store = server_gone(world.store)
    with pytest.raises(MemoryStoreError, match="server gone"):
        await world.solve(world.router(), MAYA)
    assert world.model.calls == []


# -- configuration -----------------------------------------------------------------------


BAD_OPTIONS = {
    "similarity_gate": [2, -1.5, math.nan, True, "0.8"],
    "namespace": ["", "  ", None],
    "memory_samples": [0, True],
    "max_exemplars": [0],
    "memory": ["in-context"],
    "store": [object(), "memory", {}],
    "embeddings": [lambda text: [1.0]],
}


@pytest.mark.parametrize(
    ("option", "value"), [(k, v) for k, values in BAD_OPTIONS.items() for v in values]
)
def test_bad_options_fail_at_build(world: World, option: str, value: Any) -> None:
    options = {"store": world.store, option: value}
    with pytest.raises(ConfigurationError, match=option):
        BudgetRouter(world.model, **options)
    with pytest.raises(ConfigurationError, match=option):
        create_speedup_graph(world.model, **options)


@pytest.mark.parametrize("solver", ["gpt-4o", 0, BestOfN])
def test_the_solver_must_be_an_engine_or_a_chat_model(
    world: World, solver: Any
) -> None:
    with pytest.raises(ConfigurationError, match="solver"):
        world.router(solver)


@pytest.mark.parametrize(
    "option",
    ["method", "budget", "n", "mode", "scorer", "threshold", "method_options"],
)
def test_the_methods_options_belong_to_its_engine(world: World, option: str) -> None:
    with pytest.raises(ConfigurationError, match=f"no option {option}; .*BestOfN"):
        world.graph(**{option: 1})


def test_good_options(world: World) -> None:
    router = world.router(similarity_gate=-1, namespace="t")
    assert (router.gate.calibrate, router.gate.is_open(-1.0)) == (False, True)
    assert router.namespace == "t"
    # A chat model is solved by Best-of-N with its default budget.
    assert type(router.engine) is BestOfN
    assert (router.engine.model, router.engine.budget) == (world.model, 8)


# -- where the memory lives --------------------------------------------------------------


@SYNC_AND_ASYNC
async def test_the_graph_is_compiled_with_its_store(world: World) -> None:
    graph = world.graph()
    assert graph.store is world.store
    await world.invoke(graph, MAYA)
    assert world.count("default") == 1


@SYNC_AND_ASYNC
async def test_without_a_store_the_graph_uses_its_runtime_store(world: World) -> None:
    # A parent graph compiled with a store: its nodes' runtime store.
    speedup = create_speedup_graph(world.model)
    builder = StateGraph(MessagesState)
    builder.add_node("fast", speedup)
    builder.add_edge(START, "fast")
    builder.add_edge("fast", END)
    parent = builder.compile(store=world.store)
    await world.invoke(parent, MAYA)
    out = await world.invoke(parent, MAYA)
    assert out["messages"][-1].text == boxed(14)
    assert len(world.model.calls) == 3  # the second was reused
    [episode] = world.memory.episodes("default")
    assert episode["question"] == MAYA


@SYNC_AND_ASYNC
async def test_with_no_store_anywhere_a_router_keeps_a_default_store(
    world: World,
) -> None:
    embeddings = HashEmbeddings()
    router = BudgetRouter(world.model, embeddings=embeddings)
    assert router.store is None
    first = await world.solve(router, MAYA)
    again = await world.solve(router, MAYA)
    assert (first["route"]["decision"], again["route"]["decision"]) == (
        "scratch",
        "reuse",
    )
    assert len(world.model.calls) == 3
    assert embeddings.calls >= 1  # the default store's index embeds with them
    # Nothing reached the test's own store.
    assert world.count("default") == 0


def test_embeddings_belong_to_the_stores_index(world: World) -> None:
    with pytest.raises(ConfigurationError, match="memory_index"):
        BudgetRouter(world.model, store=world.store, embeddings=HashEmbeddings())
    with pytest.raises(ConfigurationError, match="memory_index"):
        create_speedup_graph(
            world.model, store=world.store, embeddings=HashEmbeddings()
        )


@SYNC_AND_ASYNC
async def test_a_store_without_a_vector_index_is_a_clear_error(world: World) -> None:
    world.store = InMemoryStore()
    router = world.router()
    await world.solve(router, MAYA)  # nothing stored yet: nothing to search
    with pytest.raises(ConfigurationError, match="no vector index"):
        await world.solve(router, NEW_NUMBERS)
    assert len(world.model.calls) == 3


@SYNC_AND_ASYNC
async def test_a_new_router_calibrates_its_gate_with_one_read(world: World) -> None:
    router = world.router(enable_reuse=False)
    await world.solve(router, MAYA)
    await world.solve(router, NEW_NUMBERS)
    world.store = counting = FaultyStore(
        world.store, fails=lambda _: False, error=RuntimeError
    )
    fresh = world.router()
    await world.route(fresh, UNRELATED)
    # The outcome totals, the reuse pointer, the search, the matches' reflections.
    assert counting.batches == 4
    stats = {s["band"]: s for s in fresh.gate.stats()}
    assert stats == {s["band"]: s for s in router.gate.stats()}


# -- hard questions: earlier unverified attempts vote ---------------------------------


@SYNC_AND_ASYNC
async def test_a_repeated_hard_question_converges_on_its_earlier_votes(
    world: World,
) -> None:
    # Quorum 5 with a budget of 4: one attempt alone can never verify.
    world.model = FakeChatModel(responder=constant(boxed(42)))
    engine = BestOfN(world.model, budget=4, scorer=ConsensusScorer(quorum=5))
    router = world.router(engine)
    first = await world.solve(router, MAYA)
    assert pick(first["route"], "decision") == ("scratch",)
    assert not first["result"]["passed"]
    assert first["usage"]["generations"] == 4
    assert world.memory.votes("default", reuse_key(MAYA)) == ["42"] * 4

    # Asked again: the first new sample agrees with four earlier votes.
    again = await world.solve(router, MAYA)
    assert again["route"]["decision"] == "scratch"
    assert "4 answer(s) of earlier unverified attempts vote" in again["route"]["reason"]
    assert again["result"]["passed"]
    assert again["usage"]["generations"] == 1
    # Verified now: the third asking is reused, and the votes are not needed.
    third = await world.solve(router, MAYA)
    assert third["route"]["decision"] == "reuse"
    assert third["usage"]["generations"] == 0


@SYNC_AND_ASYNC
async def test_earlier_votes_never_pass_an_answer_on_their_own(world: World) -> None:
    world.model = FakeChatModel(responder=constant(boxed(42)))
    quorum = ConsensusScorer(quorum=5)
    await world.solve(world.router(BestOfN(world.model, budget=4, scorer=quorum)), MAYA)
    # Now the model says something else: 42's votes cannot make 17 pass, and
    # 42 is never answered without a new candidate stating it.
    other = FakeChatModel(responder=constant(boxed(17)))
    again = await world.solve(
        world.router(BestOfN(other, budget=2, scorer=quorum)), MAYA
    )
    assert not again["result"]["passed"]
    assert again["final_answer"] == "17"
    # Both attempts' votes are kept for the next asking, oldest first.
    assert world.memory.votes("default", reuse_key(MAYA)) == ["42"] * 4 + ["17"] * 2


@SYNC_AND_ASYNC
async def test_votes_belong_to_the_exact_question_and_tenant(world: World) -> None:
    world.model = FakeChatModel(responder=constant(boxed(42)))
    quorum = ConsensusScorer(quorum=5)
    await world.solve(world.router(BestOfN(world.model, budget=4, scorer=quorum)), MAYA)
    for question, namespace in ((NEW_NUMBERS, "default"), (MAYA, "team-b")):
        router = world.router(
            BestOfN(world.model, budget=4, scorer=quorum), namespace=namespace
        )
        result = await world.solve(router, question)
        assert "earlier unverified attempts" not in result["route"]["reason"]
        assert not result["result"]["passed"]


@SYNC_AND_ASYNC
async def test_votes_alone_do_not_build_memory(world: World) -> None:
    # A scratch decision stays scratch: the mechanism builds memory only from
    # admitted episodes, never for earlier votes alone.
    built: list[str] = []

    class Recording:
        def build(self, question: str, matches: Any, **_: Any) -> MemoryContext:
            built.append(question)
            return MemoryContext(exemplars=[], precedents=[], lessons="Be careful.")

        async def abuild(self, question: str, matches: Any, **kw: Any) -> MemoryContext:
            return self.build(question, matches, **kw)

    world.model = FakeChatModel(responder=constant(boxed(42)))
    quorum = ConsensusScorer(quorum=5)
    router = world.router(
        BestOfN(world.model, budget=4, scorer=quorum), memory=Recording()
    )
    await world.solve(router, MAYA)
    again = await world.solve(router, MAYA)
    assert again["route"]["decision"] == "scratch"
    assert again["result"]["passed"]
    assert built == []
    assert not any("Be careful." in m.text for p in world.model.calls for m in p)
