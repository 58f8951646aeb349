"""Memory mechanisms: the memory each builds, its bounds, and the router wiring."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.errors import GraphInterrupt

from langchain_speedup import (
    BudgetRouter,
    ConfigurationError,
    EpisodeMatch,
    Ledger,
    MemoryContext,
    ModelError,
    QdrantEpisodicStore,
    create_engine,
)
from langchain_speedup._internal import LESSONS_HEADER, build_prompt
from langchain_speedup.memory import (
    InContextMemory,
    MemoryMechanism,
    MultiCaseReflectMemory,
    ReflectMemory,
    ReflectUpdateMemory,
)
from langchain_speedup.tokens import count_tokens
from tests.fakes import (
    FailingChatModel,
    FakeChatModel,
    HashEmbeddings,
    constant,
    make_episode,
    sum_solver,
)

MAYA = "Maya buys 3 pens at 4 dollars each. How many dollars does Maya spend?"
MAYA_NEW = "Maya buys 5 pens at 2 dollars each. How many dollars does Maya spend?"
TRAIN = "A train travels 60 miles per hour for 3 hours. How far does it go?"
BAKE = "Sam bakes 12 cakes and sells 5. How many cakes are left?"


def match(question: str, similarity: float, **fields: object) -> EpisodeMatch:
    episode = make_episode(question)
    episode.update(fields)  # type: ignore[typeddict-item]
    return EpisodeMatch(episode=episode, similarity=similarity)


MATCHES = [
    match(TRAIN, 0.71, reflection="Multiply rate by time."),
    match(MAYA, 0.93, reflection="Multiply the count by the unit price."),
    match(BAKE, 0.80, reflection="Subtract what is sold from what was made."),
]


async def build(
    mechanism: MemoryMechanism,
    store: QdrantEpisodicStore,
    is_async: bool = False,
    matches: Sequence[EpisodeMatch] = MATCHES,
    *,
    question: str = MAYA_NEW,
    namespace: str = "default",
) -> MemoryContext:
    if is_async:
        return await mechanism.abuild(
            question, matches, store=store, namespace=namespace
        )
    return mechanism.build(question, matches, store=store, namespace=namespace)


@pytest.mark.parametrize(
    "mechanism",
    [
        InContextMemory(),
        ReflectMemory(),
        MultiCaseReflectMemory(FakeChatModel(responder=constant("x."))),
        ReflectUpdateMemory(),
    ],
)
def test_every_mechanism_is_a_memory_mechanism(mechanism: object) -> None:
    assert isinstance(mechanism, MemoryMechanism)


class TestInContextMemory:
    async def test_most_similar_verified_episodes_most_similar_last(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        memory = await build(InContextMemory(max_exemplars=2), store, is_async)
        assert [e["question"] for e in memory["exemplars"]] == [BAKE, MAYA]
        assert memory["exemplars"][-1]["solution"] == MATCHES[1]["episode"]["answer"]
        assert "lessons" not in memory
        assert memory["precedents"] == []

    async def test_unverified_matches_are_never_shown(
        self, store: QdrantEpisodicStore
    ) -> None:
        matches = [match(MAYA, 0.99, verified=False), match(TRAIN, 0.5)]
        memory = await build(InContextMemory(), store, matches=matches)
        assert [e["question"] for e in memory["exemplars"]] == [TRAIN]

    async def test_token_budget_bounds_the_exemplars(
        self, store: QdrantEpisodicStore
    ) -> None:
        long = match("Long " * 400 + "question?", 0.99)
        short = MATCHES[1]
        cost = count_tokens(short["episode"]["question"]) + count_tokens(
            short["episode"]["answer"]
        )
        mechanism = InContextMemory(max_exemplars=3, max_tokens=cost)
        memory = await build(mechanism, store, matches=[long, short, MATCHES[0]])
        # The too-long most similar one is skipped; only one fits the budget.
        assert [e["question"] for e in memory["exemplars"]] == [MAYA]
        shown = sum(
            count_tokens(e["question"]) + count_tokens(e["solution"])
            for e in memory["exemplars"]
        )
        assert shown <= cost

    async def test_precedents_of_the_same_problem_reworded(
        self, store: QdrantEpisodicStore
    ) -> None:
        reworded = "Maya buys 3 pens at 4 dollars each. How much does Maya spend?"
        matches = [match(MAYA, 0.95), match(MAYA, 0.9, final_answer="13")]
        memory = await build(
            InContextMemory(),
            store,
            matches=[*matches, match(TRAIN, 0.5)],
            question=reworded,
        )
        assert memory["precedents"] == ["13", "42"]

    @pytest.mark.parametrize("bad", [0, -1, True, "2"])
    def test_bad_bounds_are_rejected(self, bad: object) -> None:
        with pytest.raises(ConfigurationError, match="max_tokens"):
            InContextMemory(max_tokens=bad)  # type: ignore[arg-type]


class TestReflectMemory:
    async def test_reflections_of_similar_episodes_as_lessons(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        memory = await build(ReflectMemory(max_cases=2), store, is_async)
        assert memory["exemplars"] == []
        assert memory["lessons"] == (
            "- Multiply the count by the unit price.\n"
            "- Subtract what is sold from what was made."
        )

    async def test_bounded_by_max_chars(self, store: QdrantEpisodicStore) -> None:
        memory = await build(ReflectMemory(max_chars=45), store)
        assert len(memory["lessons"]) <= 45
        assert memory["lessons"] == "- Multiply the count by the unit price."

    async def test_no_reflections_no_lessons(self, store: QdrantEpisodicStore) -> None:
        memory = await build(ReflectMemory(), store, matches=[match(MAYA, 0.9)])
        assert "lessons" not in memory


class TestMultiCaseReflectMemory:
    async def test_one_reflection_call_over_several_cases(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        model = FakeChatModel(responder=constant("Multiply count by price."))
        ledger = Ledger()
        mechanism = MultiCaseReflectMemory(model, max_cases=2, ledger=ledger)
        memory = await build(mechanism, store, is_async)
        assert memory["lessons"] == "Multiply count by price."
        assert memory["exemplars"] == []
        [prompt] = model.calls
        text = prompt[-1].content
        assert MAYA in text
        assert BAKE in text
        assert TRAIN not in text
        assert MAYA_NEW in text
        usage = ledger.usage()
        assert usage["other_calls"] == 1
        assert usage["generations"] == 0

    async def test_reply_trimmed_at_a_sentence(
        self, store: QdrantEpisodicStore
    ) -> None:
        reply = "First lesson here. " * 20
        model = FakeChatModel(responder=constant(reply))
        memory = await build(MultiCaseReflectMemory(model, max_chars=60), store)
        assert len(memory["lessons"]) <= 60
        assert memory["lessons"].endswith(".")

    async def test_no_matches_no_call(self, store: QdrantEpisodicStore) -> None:
        model = FakeChatModel(responder=constant("x."))
        memory = await build(MultiCaseReflectMemory(model), store, matches=[])
        assert model.calls == []
        assert "lessons" not in memory

    @pytest.mark.parametrize(
        ("model", "logged"),
        [
            (FailingChatModel, "multi-case reflection failed"),
            (FakeChatModel, "returned no text"),
        ],
    )
    async def test_failure_goes_on_without_lessons(
        self,
        store: QdrantEpisodicStore,
        caplog: pytest.LogCaptureFixture,
        is_async: bool,
        model: type[FakeChatModel],
        logged: str,
    ) -> None:
        mechanism = MultiCaseReflectMemory(model(responder=constant("  ")))
        memory = await build(mechanism, store, is_async)
        assert "lessons" not in memory
        assert logged in caplog.text

    async def test_strict_failure_raises_model_error(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        model = FailingChatModel(responder=constant("x."))
        with pytest.raises(ModelError) as info:
            await build(MultiCaseReflectMemory(model, strict=True), store, is_async)
        assert info.value.role == "reflection"

    async def test_interrupts_pass_through(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        def interrupt(_: list[BaseMessage]) -> str:
            raise GraphInterrupt(())

        mechanism = MultiCaseReflectMemory(FakeChatModel(responder=interrupt))
        with pytest.raises(GraphInterrupt):
            await build(mechanism, store, is_async)


class TestReflectUpdateMemory:
    async def test_reads_the_namespace_lessons(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        store.put(make_episode(MAYA), embeddings.embed_query(MAYA))
        store.put_lessons("default", "Always check the units.")
        memory = await build(ReflectUpdateMemory(), store, is_async)
        assert memory == MemoryContext(
            exemplars=[], precedents=[], lessons="Always check the units."
        )
        other = await build(ReflectUpdateMemory(), store, is_async, namespace="other")
        assert "lessons" not in other

    async def test_trimmed_to_max_chars(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        await store.aput(make_episode(MAYA), embeddings.embed_query(MAYA))
        await store.aput_lessons("default", "Check units. Then add.")
        memory = await build(ReflectUpdateMemory(max_chars=15), store, matches=[])
        assert memory["lessons"] == "Check units."

    async def test_needs_a_lessons_store(self, is_async: bool) -> None:
        class Plain:
            pass

        with pytest.raises(ConfigurationError, match="lessons"):
            await build(ReflectUpdateMemory(), Plain(), is_async)  # type: ignore[arg-type]


# -- the prompt ----------------------------------------------------------------------


def test_build_prompt_puts_lessons_in_the_system_message() -> None:
    prompt = build_prompt(
        [SystemMessage("Be terse."), HumanMessage(MAYA)],
        system_prompt="Solve it.",
        lessons="Check units.",
    )
    assert isinstance(prompt[0], SystemMessage)
    assert (
        prompt[0].content == f"Solve it.\n\n{LESSONS_HEADER}\nCheck units.\n\nBe terse."
    )
    assert len(prompt) == 2


def test_build_prompt_without_lessons_is_unchanged() -> None:
    assert build_prompt(
        [HumanMessage(MAYA)], system_prompt="Solve it.", lessons=None
    ) == build_prompt([HumanMessage(MAYA)], system_prompt="Solve it.")


# -- the router ----------------------------------------------------------------------


def system_of(messages: Sequence[BaseMessage]) -> str:
    return str(messages[0].content) if isinstance(messages[0], SystemMessage) else ""


def seeded_router(
    store: QdrantEpisodicStore,
    embeddings: HashEmbeddings,
    solver: Any = None,
    memory: MemoryMechanism | None = None,
) -> BudgetRouter:
    """A router over a store holding MAYA, which admits MAYA_NEW's memory."""
    store.put(make_episode(MAYA, final_answer="12"), embeddings.embed_query(MAYA))
    return BudgetRouter(
        solver or FakeChatModel(responder=sum_solver),
        store=store,
        embeddings=embeddings,
        similarity_gate=0.5,
        memory=memory,
    )


@pytest.mark.parametrize(
    "method", ["best_of_n", "self_refine", "tree_of_thoughts", "long_cot"]
)
async def test_router_shows_reflect_update_lessons(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, method: str
) -> None:
    model = FakeChatModel(responder=sum_solver)
    engine = create_engine(model, method)  # type: ignore[arg-type]
    router = seeded_router(store, embeddings, engine, ReflectUpdateMemory())
    store.put_lessons("default", "Multiply the count by the unit price.")
    answer = await router.asolve(MAYA_NEW)
    assert answer["route"]["decision"] == "exemplars"
    assert model.calls
    assert all(
        "Multiply the count by the unit price." in system_of(call)
        for call in model.calls
    )


async def test_router_counts_the_mechanisms_calls_in_the_answer(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
) -> None:
    reflector = FakeChatModel(responder=constant("Multiply count by price."))
    memory = MultiCaseReflectMemory(reflector)
    router = seeded_router(store, embeddings, memory=memory)
    answer = await router.asolve(MAYA_NEW) if is_async else router.solve(MAYA_NEW)
    route_usage = answer["route"]["usage"]
    assert len(reflector.calls) == 1
    assert route_usage["other_calls"] == 1
    assert route_usage["generations"] == 0
    result = answer["result"]
    assert result is not None
    assert answer["usage"]["other_calls"] == 1
    assert answer["usage"]["generations"] == result["usage"]["generations"]
    assert (
        answer["usage"]["total_tokens"]
        == result["usage"]["total_tokens"] + route_usage["total_tokens"]
    )
    assert route_usage["total_tokens"] > 0


def test_a_route_without_a_mechanism_costs_nothing(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    answer = seeded_router(store, embeddings).solve(MAYA_NEW)
    assert answer["route"]["decision"] == "exemplars"
    assert answer["route"]["usage"]["total_tokens"] == 0


def test_router_with_in_context_memory_limits_the_exemplars(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    router = seeded_router(store, embeddings, memory=InContextMemory(max_tokens=1))
    route, memory, _ = router.route(MAYA_NEW)
    assert route["decision"] == "exemplars"
    assert memory is not None
    assert memory["exemplars"] == []  # nothing fits one token
    assert memory["samples"] == router.memory_samples


def test_router_rejects_a_non_mechanism(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    with pytest.raises(ConfigurationError, match="MemoryMechanism"):
        BudgetRouter(
            FakeChatModel(responder=sum_solver),
            store=store,
            embeddings=embeddings,
            memory="in-context",  # type: ignore[arg-type]
        )
