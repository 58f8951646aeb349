"""Memory mechanisms: the memory each builds, its bounds, and the router wiring."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from langchain_speedup import (
    BudgetRouter,
    ConfigurationError,
    Ledger,
    ModelError,
    QdrantEpisodicStore,
)
from langchain_speedup.memory import (
    EpisodeMatch,
    InContextMemory,
    MemoryMechanism,
    MultiCaseReflectMemory,
    ReflectMemory,
    ReflectUpdateMemory,
)
from langchain_speedup.scaling.base import LESSONS_HEADER, MemoryContext, build_prompt
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


def build(mechanism: MemoryMechanism, store: QdrantEpisodicStore) -> MemoryContext:
    return mechanism.build(MAYA_NEW, MATCHES, store=store, namespace="default")


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
    def test_most_similar_verified_episodes_most_similar_last(
        self, store: QdrantEpisodicStore
    ) -> None:
        memory = build(InContextMemory(max_exemplars=2), store)
        assert [e["question"] for e in memory["exemplars"]] == [BAKE, MAYA]
        assert "lessons" not in memory
        assert memory["precedents"] == []

    def test_unverified_matches_are_never_shown(
        self, store: QdrantEpisodicStore
    ) -> None:
        matches = [match(MAYA, 0.99, verified=False), match(TRAIN, 0.5)]
        memory = InContextMemory().build(
            MAYA_NEW, matches, store=store, namespace="default"
        )
        assert [e["question"] for e in memory["exemplars"]] == [TRAIN]

    def test_token_budget_bounds_the_exemplars(
        self, store: QdrantEpisodicStore
    ) -> None:
        long = match("Long " * 400 + "question?", 0.99)
        short = MATCHES[1]
        cost = count_tokens(short["episode"]["question"]) + count_tokens(
            short["episode"]["answer"]
        )
        mechanism = InContextMemory(max_exemplars=3, max_tokens=cost)
        memory = mechanism.build(
            MAYA_NEW, [long, short, MATCHES[0]], store=store, namespace="default"
        )
        # The too-long most similar one is skipped; only one fits the budget.
        assert [e["question"] for e in memory["exemplars"]] == [MAYA]
        shown = sum(
            count_tokens(e["question"]) + count_tokens(e["solution"])
            for e in memory["exemplars"]
        )
        assert shown <= cost

    def test_precedents_of_the_same_problem_reworded(
        self, store: QdrantEpisodicStore
    ) -> None:
        reworded = "Maya buys 3 pens at 4 dollars each. How much does Maya spend?"
        memory = InContextMemory().build(
            reworded, [match(MAYA, 0.95)], store=store, namespace="default"
        )
        assert memory["precedents"] == ["42"]

    @pytest.mark.parametrize("bad", [0, -1, True, "2"])
    def test_bad_bounds_are_rejected(self, bad: object) -> None:
        with pytest.raises(ConfigurationError, match="max_tokens"):
            InContextMemory(max_tokens=bad)  # type: ignore[arg-type]

    async def test_async_matches_sync(self, store: QdrantEpisodicStore) -> None:
        mechanism = InContextMemory()
        built = await mechanism.abuild(MAYA_NEW, MATCHES, store=store, namespace="d")
        assert built == mechanism.build(MAYA_NEW, MATCHES, store=store, namespace="d")


class TestReflectMemory:
    def test_reflections_of_similar_episodes_as_lessons(
        self, store: QdrantEpisodicStore
    ) -> None:
        memory = build(ReflectMemory(max_cases=2), store)
        assert memory["exemplars"] == []
        assert memory["lessons"] == (
            "- Multiply the count by the unit price.\n"
            "- Subtract what is sold from what was made."
        )

    def test_bounded_by_max_chars(self, store: QdrantEpisodicStore) -> None:
        memory = build(ReflectMemory(max_chars=45), store)
        assert len(memory["lessons"]) <= 45
        assert memory["lessons"] == "- Multiply the count by the unit price."

    def test_no_reflections_no_lessons(self, store: QdrantEpisodicStore) -> None:
        memory = ReflectMemory().build(
            MAYA_NEW, [match(MAYA, 0.9)], store=store, namespace="default"
        )
        assert "lessons" not in memory

    async def test_async(self, store: QdrantEpisodicStore) -> None:
        memory = await ReflectMemory().abuild(
            MAYA_NEW, MATCHES, store=store, namespace="default"
        )
        assert memory["lessons"].startswith("- Multiply the count")


class TestMultiCaseReflectMemory:
    def test_one_reflection_call_over_several_cases(
        self, store: QdrantEpisodicStore
    ) -> None:
        model = FakeChatModel(responder=constant("Multiply count by price."))
        ledger = Ledger()
        memory = MultiCaseReflectMemory(model, max_cases=2, ledger=ledger).build(
            MAYA_NEW, MATCHES, store=store, namespace="default"
        )
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

    def test_reply_trimmed_at_a_sentence(self, store: QdrantEpisodicStore) -> None:
        reply = "First lesson here. " * 20
        model = FakeChatModel(responder=constant(reply))
        memory = MultiCaseReflectMemory(model, max_chars=60).build(
            MAYA_NEW, MATCHES, store=store, namespace="default"
        )
        assert len(memory["lessons"]) <= 60
        assert memory["lessons"].endswith(".")

    def test_no_matches_no_call(self, store: QdrantEpisodicStore) -> None:
        model = FakeChatModel(responder=constant("x."))
        memory = MultiCaseReflectMemory(model).build(
            MAYA_NEW, [], store=store, namespace="default"
        )
        assert model.calls == []
        assert "lessons" not in memory

    def test_failure_goes_on_without_lessons(
        self, store: QdrantEpisodicStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        model = FailingChatModel(responder=constant("x."))
        memory = MultiCaseReflectMemory(model).build(
            MAYA_NEW, MATCHES, store=store, namespace="default"
        )
        assert "lessons" not in memory
        assert "multi-case reflection failed" in caplog.text

    def test_strict_failure_raises_model_error(
        self, store: QdrantEpisodicStore
    ) -> None:
        model = FailingChatModel(responder=constant("x."))
        with pytest.raises(ModelError) as info:
            MultiCaseReflectMemory(model, strict=True).build(
                MAYA_NEW, MATCHES, store=store, namespace="default"
            )
        assert info.value.role == "reflection"

    async def test_async(self, store: QdrantEpisodicStore) -> None:
        model = FakeChatModel(responder=constant("Check units."))
        memory = await MultiCaseReflectMemory(model).abuild(
            MAYA_NEW, MATCHES, store=store, namespace="default"
        )
        assert memory["lessons"] == "Check units."


class TestReflectUpdateMemory:
    def test_reads_the_namespace_lessons(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        store.put(make_episode(MAYA), embeddings.embed_query(MAYA))
        store.put_lessons("default", "Always check the units.")
        memory = build(ReflectUpdateMemory(), store)
        assert memory == MemoryContext(
            exemplars=[], precedents=[], lessons="Always check the units."
        )
        other = ReflectUpdateMemory().build(
            MAYA_NEW, [], store=store, namespace="other"
        )
        assert "lessons" not in other

    async def test_async(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        await store.aput(make_episode(MAYA), embeddings.embed_query(MAYA))
        await store.aput_lessons("default", "Check units. Then add.")
        memory = await ReflectUpdateMemory(max_chars=15).abuild(
            MAYA_NEW, [], store=store, namespace="default"
        )
        assert memory["lessons"] == "Check units."

    def test_needs_a_lessons_store(self) -> None:
        class Plain:
            pass

        with pytest.raises(ConfigurationError, match="lessons"):
            ReflectUpdateMemory().build(
                MAYA_NEW,
                [],
                store=Plain(),  # type: ignore[arg-type]
                namespace="default",
            )


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


@pytest.mark.parametrize(
    "method", ["best_of_n", "self_refine", "tree_of_thoughts", "long_cot"]
)
async def test_router_shows_reflect_update_lessons(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, method: str
) -> None:
    store.put(make_episode(MAYA, final_answer="12"), embeddings.embed_query(MAYA))
    store.put_lessons("default", "Multiply the count by the unit price.")
    model = FakeChatModel(responder=sum_solver)
    router = BudgetRouter(
        model,
        store=store,
        embeddings=embeddings,
        method=method,  # type: ignore[arg-type]
        similarity_gate=0.5,
        memory=ReflectUpdateMemory(),
    )
    answer = await router.asolve(MAYA_NEW)
    assert answer["route"]["decision"] == "exemplars"
    assert all(
        "Multiply the count by the unit price." in system_of(call)
        for call in model.calls
    )


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_router_counts_the_mechanisms_calls_in_the_answer(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
) -> None:
    store.put(make_episode(MAYA, final_answer="12"), embeddings.embed_query(MAYA))
    reflector = FakeChatModel(responder=constant("Multiply count by price."))
    router = BudgetRouter(
        FakeChatModel(responder=sum_solver),
        store=store,
        embeddings=embeddings,
        similarity_gate=0.5,
        memory=MultiCaseReflectMemory(reflector),
    )
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
    store.put(make_episode(MAYA, final_answer="12"), embeddings.embed_query(MAYA))
    router = BudgetRouter(
        FakeChatModel(responder=sum_solver),
        store=store,
        embeddings=embeddings,
        similarity_gate=0.5,
    )
    answer = router.solve(MAYA_NEW)
    assert answer["route"]["decision"] == "exemplars"
    assert answer["route"]["usage"]["total_tokens"] == 0


def test_router_with_in_context_memory_limits_the_exemplars(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    store.put(make_episode(MAYA, final_answer="12"), embeddings.embed_query(MAYA))
    router = BudgetRouter(
        FakeChatModel(responder=sum_solver),
        store=store,
        embeddings=embeddings,
        similarity_gate=0.5,
        memory=InContextMemory(max_tokens=1),
    )
    route, memory, _, _ = router.route(MAYA_NEW)
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
