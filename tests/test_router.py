"""The memory-aware budget router and the speedup graph, fully offline."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_speedup import (
    BudgetRouter,
    ConfigurationError,
    InvalidInputError,
    MemoryStoreError,
    ModelError,
    QdrantEpisodicStore,
    create_speedup_graph,
    question_key,
)
from langchain_speedup.memory.episodes import Episode
from tests.fakes import (
    FailingChatModel,
    FakeChatModel,
    HashEmbeddings,
    Sequenced,
    boxed,
    cosine,
    make_episode,
    sum_solver,
)

MAYA = (
    "Maya buys 3 pens at 4 dollars each and 2 notebooks at 5 dollars each. "
    "How many dollars does Maya spend in total?"
)
MAYA_SUM = "14"
REWORDED = (
    "In total, how many dollars does Maya spend if she buys 3 pens at 4 dollars "
    "each and 2 notebooks at 5 dollars each?"
)
NEW_NUMBERS = MAYA.replace("3 pens", "7 pens")
NEW_NUMBERS_SUM = "18"
NEW_NAME = MAYA.replace("Maya", "Liam")
UNRELATED = "A train travels 60 miles per hour for 3 hours. How far does the train go?"
GATE = 0.7


def has_question(prompt: Sequence[BaseMessage], question: str) -> bool:
    """Whether `question` appears in the prompt as an earlier (exemplar) turn."""
    return any(
        isinstance(m, HumanMessage) and m.content == question for m in prompt[:-1]
    )


def make_router(
    model: Any, store: Any, embeddings: Any, **options: Any
) -> BudgetRouter:
    return BudgetRouter(model, store=store, embeddings=embeddings, **options)


async def solve(router: BudgetRouter, question: Any, is_async: bool, **kw: Any) -> Any:
    if is_async:
        return await router.asolve(question, **kw)
    return router.solve(question, **kw)


async def invoke(graph: Any, state: Any, is_async: bool) -> Any:
    return await graph.ainvoke(state) if is_async else graph.invoke(state)


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def is_async(request: pytest.FixtureRequest) -> bool:
    return request.param


class FailingPutStore(QdrantEpisodicStore):
    """An in-memory store whose writes fail (a full disk, a lost server)."""

    def put(self, episode: Episode, vector: Sequence[float]) -> None:
        raise MemoryStoreError("disk full")

    async def aput(self, episode: Episode, vector: Sequence[float]) -> None:
        raise MemoryStoreError("disk full")


def test_premises_of_the_fake_embeddings(embeddings: HashEmbeddings) -> None:
    # The routing tests below rely on these similarities; check them here so
    # a change to the fakes cannot silently make those tests vacuous.
    base = embeddings.embed_query(MAYA)
    for similar in (REWORDED, NEW_NUMBERS, NEW_NAME):
        assert cosine(base, embeddings.embed_query(similar)) >= GATE + 0.1
    assert cosine(base, embeddings.embed_query(UNRELATED)) < GATE - 0.3
    assert question_key(REWORDED) != question_key(MAYA)


class TestRouting:
    async def test_first_question_is_scratch_and_remembered(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings)
        out = await solve(router, MAYA, is_async)
        route = out["route"]
        assert route["decision"] == "scratch"
        assert "no verified episode is stored" in route["reason"]
        assert route["similarity"] is None
        assert route["exemplar_ids"] == []
        assert route["precedents"] == []
        assert route["budget"] == 8
        assert out["question"] == MAYA
        assert out["final_answer"] == MAYA_SUM
        assert out["score"] == 1.0
        assert out["result"] is not None
        assert out["result"]["stop_reason"] == "threshold"
        assert out["usage"]["generations"] == len(model.calls) == 3
        assert "memory_error" not in out
        # Remembered once, verified, under the returned id.
        assert store.count("default") == 1
        [episode] = store.episodes("default")
        assert episode["id"] == out["episode_id"]
        uuid.UUID(out["episode_id"])
        assert episode["verified"] is True
        assert episode["question"] == MAYA
        assert episode["question_key"] == question_key(MAYA)
        assert episode["final_answer"] == MAYA_SUM
        assert episode["answer"] == out["answer"]
        assert episode["decision"] == "scratch"
        assert episode["generations"] == 3
        assert episode["namespace"] == "default"

    async def test_exact_repeat_is_reused(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings)
        first = await solve(router, MAYA, is_async)
        calls = len(model.calls)
        again = await solve(router, MAYA, is_async)
        assert again["route"]["decision"] == "reuse"
        assert again["route"]["budget"] == 0
        assert again["route"]["exemplar_ids"] == [first["episode_id"]]
        assert again["answer"] == first["answer"]
        assert again["final_answer"] == MAYA_SUM
        assert again["score"] == first["score"]
        assert again["result"] is None
        assert again["episode_id"] is None
        assert again["usage"]["generations"] == 0
        assert again["usage"]["total_tokens"] == 0
        assert len(model.calls) == calls
        assert store.count("default") == 1
        # Case, spacing and punctuation do not matter.
        noisy = "  " + MAYA.upper().replace("?", "??") + " "
        assert (await solve(router, noisy, is_async))["route"]["decision"] == "reuse"
        assert len(model.calls) == calls

    async def test_rewording_gets_exemplars_and_a_precedent(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings)
        first = await solve(router, MAYA, is_async)
        before = len(model.calls)
        out = await solve(router, REWORDED, is_async)
        route = out["route"]
        assert route["decision"] == "exemplars"
        assert "reworded" in route["reason"]
        assert route["precedents"] == [MAYA_SUM]
        assert route["exemplar_ids"] == [first["episode_id"]]
        assert route["similarity"] is not None
        assert route["similarity"] >= GATE
        assert route["memory_samples"] == 2
        # The precedent plus one agreeing sample is a quorum.
        assert out["usage"]["generations"] == 1
        assert out["final_answer"] == MAYA_SUM
        [prompt] = model.calls[before:]
        assert has_question(prompt, MAYA)
        assert prompt[-1].content == REWORDED
        assert store.count("default") == 2

    async def test_new_numbers_get_exemplars_but_no_precedent(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings)
        await solve(router, MAYA, is_async)
        before = len(model.calls)
        out = await solve(router, NEW_NUMBERS, is_async)
        route = out["route"]
        assert route["decision"] == "exemplars"
        assert route["decision"] != "reuse"
        assert route["precedents"] == []
        assert "similar problems" in route["reason"]
        assert out["result"] is not None
        # Solved afresh: its own answer, not the remembered one.
        assert out["final_answer"] == NEW_NUMBERS_SUM
        assert out["usage"]["generations"] == 3
        prompts = model.calls[before:]
        assert [has_question(p, MAYA) for p in prompts] == [True, True, False]
        assert [c["with_memory"] for c in out["result"]["candidates"]] == [
            True,
            True,
            False,
        ]
        assert store.count("default") == 2
        episode = next(
            e for e in store.episodes("default") if e["id"] == out["episode_id"]
        )
        assert episode["decision"] == "exemplars"

    async def test_new_name_gets_no_precedent(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings)
        await solve(router, MAYA, is_async)
        out = await solve(router, NEW_NAME, is_async)
        assert out["route"]["decision"] == "exemplars"
        assert out["route"]["precedents"] == []
        assert out["usage"]["generations"] == 3

    async def test_unrelated_question_is_scratch_without_exemplars(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings)
        await solve(router, MAYA, is_async)
        before = len(model.calls)
        out = await solve(router, UNRELATED, is_async)
        route = out["route"]
        assert route["decision"] == "scratch"
        assert route["exemplar_ids"] == []
        assert route["similarity"] is not None
        assert route["similarity"] < GATE
        assert route["band"] is not None
        assert route["explored"] is False
        assert "closed" in route["reason"]
        prompts = model.calls[before:]
        assert len(prompts) == 3
        assert all(
            [type(m) for m in p] == [SystemMessage, HumanMessage] for p in prompts
        )
        assert not any(has_question(p, MAYA) for p in prompts)
        assert out["final_answer"] == "63"
        assert store.count("default") == 2

    async def test_unverified_episodes_are_never_reused_nor_shown(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        unsure = FakeChatModel(responder=Sequenced([boxed(i) for i in range(8)]))
        first = await solve(make_router(unsure, store, embeddings), MAYA, is_async)
        assert first["result"]["stop_reason"] == "budget"
        assert first["result"]["passed"] is False
        [episode] = store.episodes("default")
        assert episode["verified"] is False
        model = FakeChatModel(responder=sum_solver)
        router = make_router(model, store, embeddings)
        for question in (MAYA, REWORDED, NEW_NUMBERS):
            decided = (
                await router.aroute(question) if is_async else router.route(question)
            )
            route, memory, reuse, _ = decided
            assert route["decision"] == "scratch", question
            assert route["similarity"] is None
            assert memory is None
            assert reuse is None
        out = await solve(router, MAYA, is_async)
        assert out["route"]["decision"] == "scratch"
        assert out["final_answer"] == MAYA_SUM
        assert len(model.calls) == 3
        assert not any(has_question(p, MAYA) for p in model.calls)
        assert not any(
            isinstance(m, AIMessage) for prompt in model.calls for m in prompt
        )

    async def test_reuse_disabled(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings, enable_reuse=False)
        await solve(router, MAYA, is_async)
        out = await solve(router, MAYA, is_async)
        assert out["route"]["decision"] == "exemplars"
        assert out["route"]["precedents"] == [MAYA_SUM]
        assert out["usage"]["generations"] == 1

    async def test_max_exemplars_keeps_the_most_similar(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings, max_exemplars=1)
        near = await solve(router, MAYA, is_async)
        await solve(router, NEW_NAME, is_async)
        out = await solve(router, REWORDED, is_async)
        assert out["route"]["exemplar_ids"] == [near["episode_id"]]

    async def test_gate_one_keeps_memory_out(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings, similarity_gate=1.0)
        await solve(router, MAYA, is_async)
        out = await solve(router, NEW_NUMBERS, is_async)
        assert out["route"]["decision"] == "scratch"

    async def test_memory_samples_option(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings, memory_samples=1)
        await solve(router, MAYA, is_async)
        before = len(model.calls)
        out = await solve(router, NEW_NUMBERS, is_async)
        assert out["route"]["memory_samples"] == 1
        assert [has_question(p, MAYA) for p in model.calls[before:]] == [
            True,
            False,
            False,
        ]

    async def test_namespaces_isolate_tenants(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        model_b = FakeChatModel(responder=sum_solver)
        router_b = make_router(model_b, store, embeddings, namespace="b")
        await solve(router_b, MAYA, is_async)
        assert (await solve(router_b, MAYA, is_async))["route"]["decision"] == "reuse"
        model_a = FakeChatModel(responder=sum_solver)
        router_a = make_router(model_a, store, embeddings, namespace="a")
        for question in (MAYA,):
            out = await solve(router_a, question, is_async)
            assert out["route"]["decision"] == "scratch"
            assert out["route"]["similarity"] is None
        assert len(model_a.calls) == 3
        assert not any(has_question(p, MAYA) for p in model_a.calls)
        assert store.count("a") == 1
        assert store.count("b") == 1
        assert {e["namespace"] for e in store.episodes("a")} == {"a"}

    async def test_conversation_input(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings)
        conversation = [
            HumanMessage("What is 1 + 1?"),
            AIMessage("2"),
            HumanMessage(MAYA),
        ]
        out = await solve(router, conversation, is_async)
        assert out["question"] == MAYA
        assert out["final_answer"] == MAYA_SUM
        assert store.episodes("default")[0]["question"] == MAYA
        assert (await solve(router, MAYA, is_async))["route"]["decision"] == "reuse"

    async def test_episode_id_makes_writes_idempotent(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings, enable_reuse=False)
        fixed = str(uuid.uuid4())
        out = await solve(router, MAYA, is_async, episode_id=fixed)
        assert out["episode_id"] == fixed
        await solve(router, MAYA, is_async, episode_id=fixed)
        assert store.count("default") == 1

    async def test_invalid_episode_id_writes_nothing(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        router = make_router(model, store, embeddings)
        with pytest.raises(InvalidInputError):
            await solve(router, MAYA, is_async, episode_id="not-a-uuid")
        assert store.count("default") == 0


class TestGraph:
    async def test_standalone(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        graph = create_speedup_graph(model, store=store, embeddings=embeddings)
        out = await invoke(graph, {"messages": [("user", MAYA)]}, is_async)
        assert set(out) == {"messages", "speedup"}
        first = out["speedup"]
        assert first["route"]["decision"] == "scratch"
        assert first["final_answer"] == MAYA_SUM
        assert first["usage"]["generations"] == len(model.calls) == 3
        last = out["messages"][-1]
        assert isinstance(last, AIMessage)
        assert last.content == first["answer"]
        assert len(out["messages"]) == 2
        assert store.count("default") == 1
        assert store.episodes("default")[0]["id"] == first["episode_id"]

        again = await invoke(graph, {"messages": [HumanMessage(MAYA)]}, is_async)
        assert again["speedup"]["route"]["decision"] == "reuse"
        assert again["speedup"]["usage"]["generations"] == 0
        assert again["messages"][-1].content == first["answer"]
        assert len(model.calls) == 3
        assert store.count("default") == 1

        reworded = await invoke(graph, {"messages": [HumanMessage(REWORDED)]}, is_async)
        assert reworded["speedup"]["route"]["decision"] == "exemplars"
        assert reworded["speedup"]["route"]["precedents"] == [MAYA_SUM]
        assert reworded["speedup"]["usage"]["generations"] == 1
        assert has_question(model.calls[-1], MAYA)
        assert store.count("default") == 2

    async def test_graph_and_router_agree(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        graph_model = FakeChatModel(responder=sum_solver)
        graph = create_speedup_graph(
            graph_model, store=store, embeddings=embeddings, namespace="g"
        )
        await invoke(graph, {"messages": [HumanMessage(MAYA)]}, is_async)
        out = await invoke(graph, {"messages": [HumanMessage(NEW_NUMBERS)]}, is_async)
        assert out["speedup"]["route"]["decision"] == "exemplars"
        assert out["speedup"]["final_answer"] == NEW_NUMBERS_SUM
        assert [has_question(p, MAYA) for p in graph_model.calls[3:]] == [
            True,
            True,
            False,
        ]
        assert store.count("g") == 2
        assert store.count("default") == 0

    async def test_as_a_node_of_a_parent_graph(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        builder = StateGraph(MessagesState)
        builder.add_node(
            "speedup", create_speedup_graph(model, store=store, embeddings=embeddings)
        )
        builder.add_edge(START, "speedup")
        builder.add_edge("speedup", END)
        parent = builder.compile()
        out = await invoke(parent, {"messages": [HumanMessage(MAYA)]}, is_async)
        assert [type(m) for m in out["messages"]] == [HumanMessage, AIMessage]
        assert "14" in out["messages"][-1].content
        out = await invoke(parent, {"messages": [HumanMessage(MAYA)]}, is_async)
        assert "14" in out["messages"][-1].content
        assert len(model.calls) == 3  # the second was reused
        assert store.count("default") == 1

    async def test_no_human_message(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
    ) -> None:
        graph = create_speedup_graph(model, store=store, embeddings=embeddings)
        with pytest.raises(InvalidInputError):
            await invoke(graph, {"messages": [AIMessage("hello")]}, is_async)
        assert model.calls == []
        assert store.count("default") == 0

    async def test_model_failure_writes_nothing(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        model = FailingChatModel(responder=sum_solver, fail_on=3)
        graph = create_speedup_graph(model, store=store, embeddings=embeddings)
        with pytest.raises(ModelError):
            await invoke(graph, {"messages": [HumanMessage(MAYA)]}, is_async)
        assert store.count("default") == 0

    async def test_failing_write_still_answers(
        self, model: FakeChatModel, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        store = FailingPutStore()
        graph = create_speedup_graph(model, store=store, embeddings=embeddings)
        out = await invoke(graph, {"messages": [HumanMessage(MAYA)]}, is_async)
        assert out["speedup"]["final_answer"] == MAYA_SUM
        assert out["speedup"]["episode_id"] is None
        assert "disk full" in out["speedup"]["memory_error"]
        assert store.count("default") == 0

    def test_uses_the_given_store_even_when_it_is_falsy(
        self, model: FakeChatModel, embeddings: HashEmbeddings
    ) -> None:
        class SizedStore(QdrantEpisodicStore):
            def __len__(self) -> int:  # an empty store is falsy
                return self.count("default")

        store = SizedStore()
        graph = create_speedup_graph(model, store=store, embeddings=embeddings)
        graph.invoke({"messages": [HumanMessage(MAYA)]})
        assert len(store) == 1

    @pytest.mark.parametrize(
        "options",
        [
            {"similarity_gate": 2},
            {"namespace": ""},
            {"memory_samples": 0},
            {"n": 0},
            {"mode": "fast"},
            {"threshold": 1.5},
        ],
    )
    def test_bad_options_at_build(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        options: dict[str, Any],
    ) -> None:
        with pytest.raises(ConfigurationError):
            create_speedup_graph(model, store=store, embeddings=embeddings, **options)

    def test_store_not_a_store_at_build(
        self, model: FakeChatModel, embeddings: HashEmbeddings
    ) -> None:
        with pytest.raises(ConfigurationError, match="store"):
            create_speedup_graph(model, store=object(), embeddings=embeddings)  # type: ignore[arg-type]


BAD_QUESTIONS = [
    pytest.param("", id="empty"),
    pytest.param("  \n ", id="whitespace"),
    pytest.param(None, id="None"),
    pytest.param(42, id="int"),
    pytest.param([], id="no-messages"),
    pytest.param([AIMessage("hi")], id="no-human"),
    pytest.param("x" * 20_001, id="too-long"),
]


class TestFailures:
    @pytest.mark.parametrize("question", BAD_QUESTIONS)
    async def test_bad_input_writes_nothing(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        is_async: bool,
        question: object,
    ) -> None:
        router = make_router(model, store, embeddings)
        await solve(router, MAYA, is_async)
        calls = len(model.calls)
        with pytest.raises(InvalidInputError):
            await solve(router, question, is_async)
        assert store.count("default") == 1
        assert len(model.calls) == calls

    async def test_model_failing_mid_question_writes_nothing(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        model = FailingChatModel(responder=sum_solver, fail_on=3)
        router = make_router(model, store, embeddings)
        with pytest.raises(ModelError) as info:
            await solve(router, MAYA, is_async)
        assert info.value.role == "solver"
        assert len(model.calls) == 3
        assert store.count("default") == 0
        # The next question is unaffected by the failed one.
        out = await solve(router, MAYA, is_async)
        assert out["route"]["decision"] == "scratch"
        assert store.count("default") == 1

    async def test_model_failure_leaves_existing_memory_alone(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        store.put(
            make_episode(MAYA, final_answer=MAYA_SUM), embeddings.embed_query(MAYA)
        )
        model = FailingChatModel(responder=sum_solver, fail_on=1)
        router = make_router(model, store, embeddings)
        with pytest.raises(ModelError):
            await solve(router, NEW_NUMBERS, is_async)
        assert store.count("default") == 1

    @pytest.mark.allow_hosts(["127.0.0.1"])
    async def test_unreachable_model_server(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        import openai
        from langchain_openai import ChatOpenAI

        # Port 9 (discard) on loopback: nothing listens, the connection is refused.
        model = ChatOpenAI(
            base_url="http://127.0.0.1:9/v1", api_key="x", max_retries=0, timeout=2
        )
        router = make_router(model, store, embeddings)
        with pytest.raises(ModelError, match="reachable") as info:
            await solve(router, MAYA, is_async)
        assert info.value.role == "solver"
        assert isinstance(info.value.__cause__, openai.APIConnectionError)
        assert store.count("default") == 0

    def test_store_path_that_is_a_file(self, tmp_path: Path) -> None:
        target = tmp_path / "memory.db"
        target.write_text("not a store")
        with pytest.raises(MemoryStoreError):
            QdrantEpisodicStore(path=target)

    async def test_failing_write_still_answers(
        self,
        model: FakeChatModel,
        embeddings: HashEmbeddings,
        is_async: bool,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        store = FailingPutStore()
        router = make_router(model, store, embeddings)
        with caplog.at_level(logging.WARNING, logger="langchain_speedup.router"):
            out = await solve(router, MAYA, is_async)
        assert out["final_answer"] == MAYA_SUM
        assert out["answer"]
        assert out["episode_id"] is None
        assert "disk full" in out["memory_error"]
        assert out["usage"]["generations"] == 3
        assert "not stored" in caplog.text
        assert store.count("default") == 0

    async def test_failing_store_read_is_a_store_error(
        self, model: FakeChatModel, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        class BrokenReads(QdrantEpisodicStore):
            def find(self, namespace: str, question_key: str) -> Episode | None:
                raise MemoryStoreError("server gone")

            async def afind(self, namespace: str, question_key: str) -> Episode | None:
                raise MemoryStoreError("server gone")

        router = make_router(model, BrokenReads(), embeddings)
        with pytest.raises(MemoryStoreError, match="server gone"):
            await solve(router, MAYA, is_async)
        assert model.calls == []


class TestConfiguration:
    @pytest.mark.parametrize(
        "options",
        [
            pytest.param({"similarity_gate": 2}, id="gate=2"),
            pytest.param({"similarity_gate": -1.5}, id="gate=-1.5"),
            pytest.param({"similarity_gate": math.nan}, id="gate=nan"),
            pytest.param({"similarity_gate": True}, id="gate=True"),
            pytest.param({"similarity_gate": "0.8"}, id="gate=str"),
            pytest.param({"namespace": ""}, id="namespace=empty"),
            pytest.param({"namespace": "  "}, id="namespace=blank"),
            pytest.param({"namespace": None}, id="namespace=None"),
            pytest.param({"memory_samples": 0}, id="memory_samples=0"),
            pytest.param({"memory_samples": True}, id="memory_samples=True"),
            pytest.param({"max_exemplars": 0}, id="max_exemplars=0"),
            pytest.param({"n": 0}, id="n=0"),
            pytest.param({"n": True}, id="n=True"),
            pytest.param({"mode": "fast"}, id="mode=fast"),
            pytest.param({"threshold": -0.1}, id="threshold=-0.1"),
        ],
    )
    def test_bad_options(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        options: dict[str, Any],
    ) -> None:
        with pytest.raises(ConfigurationError):
            make_router(model, store, embeddings, **options)

    @pytest.mark.parametrize("bad_store", [object(), None, "memory", {}])
    def test_store_not_a_store(
        self, model: FakeChatModel, embeddings: HashEmbeddings, bad_store: object
    ) -> None:
        with pytest.raises(ConfigurationError, match="store"):
            make_router(model, bad_store, embeddings)

    def test_embeddings_not_embeddings(
        self, model: FakeChatModel, store: QdrantEpisodicStore
    ) -> None:
        with pytest.raises(ConfigurationError, match="embeddings"):
            make_router(model, store, lambda text: [1.0])

    def test_model_not_a_runnable(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        with pytest.raises(ConfigurationError, match="model"):
            make_router("gpt-4o", store, embeddings)

    def test_good_options(
        self,
        model: FakeChatModel,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
    ) -> None:
        router = make_router(
            model, store, embeddings, similarity_gate=-1, n=1, namespace="t"
        )
        assert router.gate.calibrate is False
        assert router.gate.is_open(-1.0)
        assert router.engine.n == 1
