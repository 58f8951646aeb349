"""Reflections: the Reflect-Update lessons, per-case reflections, the queue and node."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any, NotRequired

import pytest
from langchain_core.messages import AnyMessage, BaseMessage
from langgraph.errors import GraphInterrupt
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from langchain_speedup import (
    ConfigurationError,
    InvalidInputError,
    Ledger,
    MemoryStoreError,
    QdrantEpisodicStore,
    SpeedupResult,
    create_speedup_graph,
    question_key,
)
from langchain_speedup.memory import (
    ReflectionQueue,
    ReflectionResult,
    areflect,
    areflect_update,
    create_reflection_update_node,
    reflect,
    reflect_update,
)
from langchain_speedup.memory.reflection import trim_to_sentence
from langchain_speedup.memory.store import lessons_point_id
from tests.fakes import (
    FailingChatModel,
    FakeChatModel,
    HashEmbeddings,
    constant,
    make_episode,
    sum_solver,
)

MAYA = "Maya buys 3 pens at 4 dollars each. How many dollars does Maya spend?"
TRAIN = "A train travels 60 miles per hour for 3 hours. How far does it go?"


def seeded(store: QdrantEpisodicStore, emb: HashEmbeddings) -> dict[str, Any]:
    episode = make_episode(MAYA, final_answer="12")
    store.put(episode, emb.embed_query(MAYA))
    return dict(episode)


# -- the lessons point ---------------------------------------------------------------


def test_lessons_persist_across_reopening(tmp_path: Path) -> None:
    emb = HashEmbeddings()
    with QdrantEpisodicStore(path=tmp_path) as store:
        seeded(store, emb)
        store.put_lessons("default", "Check the units.")
        store.put_lessons("other", "Draw a table.")
    with QdrantEpisodicStore(path=tmp_path) as store:
        assert store.get_lessons("default") == "Check the units."
        assert store.get_lessons("other") == "Draw a table."
        assert store.get_lessons("third") is None
        assert store.count("default") == 1


def test_lessons_never_appear_as_episodes(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    episode = seeded(store, embeddings)
    store.put_lessons("default", "Check the units.")
    assert store.count("default") == 1
    assert store.episodes("default") == [episode]
    # The lessons point's vector is [1, 0, ...]: search for exactly it.
    unit = [1.0] + [0.0] * (embeddings.dim - 1)
    found = store.search("default", unit, limit=10)
    assert [m["episode"]["id"] for m in found] == [episode["id"]]
    assert store.find("default", question_key(MAYA)) == episode


def test_lessons_id_is_deterministic_per_namespace() -> None:
    assert lessons_point_id("a") == lessons_point_id("a")
    assert lessons_point_id("a") != lessons_point_id("b")


def test_lessons_before_any_episode_is_a_clear_error(
    store: QdrantEpisodicStore,
) -> None:
    assert store.get_lessons("default") is None
    with pytest.raises(MemoryStoreError, match="before any episode"):
        store.put_lessons("default", "x")


def test_empty_lessons_are_rejected(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    seeded(store, embeddings)
    with pytest.raises(InvalidInputError):
        store.put_lessons("default", "  ")


# -- trimming -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Short.", 100, "Short."),
        ("One. Two. Three.", 10, "One. Two."),
        ("First line\nsecond line goes on", 15, "First line"),
        ("no sentence boundary here at all", 20, "no sentence"),
        ("x" * 50, 10, "x" * 10),
        # A list item's number is no sentence end; a number ending one is.
        (
            "Lessons:\n1. Read it twice.\n2. Check the units.",
            32,
            "Lessons:\n1. Read it twice.",
        ),
        ("It costs 12. Then more words", 20, "It costs 12."),
    ],
)
def test_trim_to_sentence(text: str, limit: int, expected: str) -> None:
    assert trim_to_sentence(text, limit) == expected


# -- Reflect-Update -------------------------------------------------------------------


class TestReflectUpdate:
    def test_rewrites_the_lessons_from_old_lessons_and_episode(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)
        store.put_lessons("default", "Old lesson.")
        model = FakeChatModel(responder=constant("  New lesson. Check units.  "))
        ledger = Ledger()
        result = reflect_update(model, episode, store=store, ledger=ledger)
        assert result == ReflectionResult(
            kind="reflect_update",
            namespace="default",
            episode_id=episode["id"],
            updated=True,
            text="New lesson. Check units.",
            error=None,
        )
        assert store.get_lessons("default") == "New lesson. Check units."
        prompt = model.calls[0][-1].content
        assert "Old lesson." in prompt
        assert MAYA in prompt
        assert "verified" in prompt
        assert ledger.usage()["other_calls"] == 1
        assert store.episodes("default") == [episode]

    def test_output_is_bounded(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)
        model = FakeChatModel(responder=constant("A lesson sentence. " * 200))
        result = reflect_update(model, episode, store=store, max_chars=100)
        assert result["updated"]
        text = store.get_lessons("default")
        assert text is not None
        assert len(text) <= 100
        assert text.endswith(".")

    def test_unverified_episode_is_described_as_such(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings) | {"verified": False}
        model = FakeChatModel(responder=constant("Check twice."))
        reflect_update(model, episode, store=store)
        assert "NOT verified" in model.calls[0][-1].content

    @pytest.mark.parametrize(
        ("model", "error"),
        [
            (FailingChatModel(responder=constant("x")), "reflection model call failed"),
            (FakeChatModel(responder=constant("   ")), "returned no lessons text"),
            (FakeChatModel(responder=constant("```\n```")), "returned no lessons text"),
        ],
    )
    def test_failure_keeps_the_previous_lessons_and_the_episodes(
        self,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        model: FakeChatModel,
        error: str,
    ) -> None:
        episode = seeded(store, embeddings)
        store.put_lessons("default", "Old lesson.")
        result = reflect_update(model, episode, store=store)
        assert not result["updated"]
        assert result["error"] is not None
        assert error in result["error"]
        assert result["text"] == "Old lesson."
        assert store.get_lessons("default") == "Old lesson."
        assert store.episodes("default") == [episode]

    def test_interrupts_pass_through_and_keep_the_lessons(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        def interrupt(_: list[BaseMessage]) -> str:
            raise GraphInterrupt(())

        episode = seeded(store, embeddings)
        store.put_lessons("default", "Old lesson.")
        with pytest.raises(GraphInterrupt):
            reflect_update(FakeChatModel(responder=interrupt), episode, store=store)
        assert store.get_lessons("default") == "Old lesson."

    def test_store_write_failure_is_reported(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        # No episode stored yet: the lessons cannot be written.
        result = reflect_update(
            FakeChatModel(responder=constant("Lesson.")),
            make_episode(MAYA),
            store=store,
        )
        assert not result["updated"]
        assert result["error"] is not None
        assert result["error"].startswith("writing the lessons failed")

    def test_bad_arguments_raise(self, store: QdrantEpisodicStore) -> None:
        model = FakeChatModel(responder=constant("x"))
        with pytest.raises(ConfigurationError, match="max_chars"):
            reflect_update(model, make_episode(MAYA), store=store, max_chars=5)
        with pytest.raises(InvalidInputError, match="question"):
            reflect_update(model, {"answer": "1"}, store=store)
        with pytest.raises(ConfigurationError, match="lessons"):
            reflect_update(model, make_episode(MAYA), store=object())  # type: ignore[arg-type]

    async def test_async(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)
        result = await areflect_update(
            FakeChatModel(responder=constant("Async lesson.")), episode, store=store
        )
        assert result["updated"]
        assert await store.aget_lessons("default") == "Async lesson."
        failed = await areflect_update(
            FailingChatModel(responder=constant("x")), episode, store=store
        )
        assert not failed["updated"]
        assert await store.aget_lessons("default") == "Async lesson."


# -- Reflect (per case) ---------------------------------------------------------------


class TestReflect:
    def test_writes_the_reflection_onto_the_episode(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)
        result = reflect(
            FakeChatModel(responder=constant("Multiply count by price.")),
            episode,
            store=store,
        )
        assert result["updated"]
        assert result["text"] == "Multiply count by price."
        [stored] = store.episodes("default")
        assert stored["reflection"] == "Multiply count by price."
        [found] = store.search("default", embeddings.embed_query(MAYA))
        assert found["episode"]["reflection"] == "Multiply count by price."

    def test_unknown_episode_or_other_namespace_is_reported(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)
        model = FakeChatModel(responder=constant("Lesson."))
        result = reflect(model, episode, store=store, namespace="other")
        assert not result["updated"]
        assert result["error"] is not None
        assert "no episode" in result["error"]
        assert "reflection" not in store.episodes("default")[0]

    def test_model_failure_leaves_the_episode(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)
        result = reflect(
            FailingChatModel(responder=constant("x")), episode, store=store
        )
        assert not result["updated"]
        assert store.episodes("default") == [episode]

    async def test_async(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)
        result = await areflect(
            FakeChatModel(responder=constant("Async.")), episode, store=store
        )
        assert result["updated"]
        assert store.episodes("default")[0]["reflection"] == "Async."


# -- the background queue ------------------------------------------------------------


class GatedModel(FakeChatModel):
    """Waits for `gate` before answering, so a test can see work pending."""

    gate: Any = None

    def _before_reply(self, call_number: int) -> None:
        assert self.gate.wait(10)


class TestReflectionQueue:
    def test_submit_returns_before_the_update_and_flush_waits(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)
        gate = threading.Event()
        model = GatedModel(responder=constant("Queued lesson."), gate=gate)
        with ReflectionQueue(model, store=store) as queue:
            queue.submit(episode)
            assert queue.pending == 1
            assert store.get_lessons("default") is None
            assert not queue.flush(timeout=0.05)
            gate.set()
            assert queue.flush(timeout=10)
            assert queue.completed == 1
            assert queue.failed == 0
            assert store.get_lessons("default") == "Queued lesson."

    def test_updates_run_in_order(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)

        def grow(messages: list[BaseMessage]) -> str:
            text = str(messages[-1].content)
            old = text.split("Current lessons:\n")[1].split("\n\nNew case")[0]
            return "L." if old == "(none yet)" else f"{old} L."

        with ReflectionQueue(FakeChatModel(responder=grow), store=store) as queue:
            for _ in range(3):
                queue.submit(episode)
            assert queue.flush(timeout=10)
        assert store.get_lessons("default") == "L. L. L."

    def test_failures_are_logged_and_counted(
        self,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        episode = seeded(store, embeddings)
        store.put_lessons("default", "Old lesson.")
        queue = ReflectionQueue(FailingChatModel(responder=constant("x")), store=store)
        queue.submit(episode)
        assert queue.flush(timeout=10)
        assert queue.failed == 1
        assert queue.completed == 0
        assert queue.results[-1]["error"] is not None
        assert "reflect_update for episode" in caplog.text
        assert store.get_lessons("default") == "Old lesson."
        assert store.episodes("default") == [episode]
        assert queue.close(timeout=10)
        with pytest.raises(InvalidInputError, match="closed"):
            queue.submit(episode)

    def test_reflect_mode(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)
        with ReflectionQueue(
            FakeChatModel(responder=constant("Per case.")), store=store, mode="reflect"
        ) as queue:
            queue.submit(episode)
            assert queue.flush(timeout=10)
        assert store.episodes("default")[0]["reflection"] == "Per case."

    async def test_aflush(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)
        queue = ReflectionQueue(FakeChatModel(responder=constant("A.")), store=store)
        queue.submit(episode)
        assert await queue.aflush(timeout=10)
        assert store.get_lessons("default") == "A."
        assert queue.close(timeout=10)


# -- the node ------------------------------------------------------------------------


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    speedup: NotRequired[SpeedupResult]
    reflection: NotRequired[ReflectionResult]


def parent_graph(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, node: Any
) -> Any:
    builder = StateGraph(State)
    builder.add_node(
        "speedup",
        create_speedup_graph(
            FakeChatModel(responder=sum_solver), store=store, embeddings=embeddings
        ),
    )
    builder.add_node("reflect", node)
    builder.add_edge(START, "speedup")
    builder.add_edge("speedup", "reflect")
    return builder.compile()


class TestReflectionUpdateNode:
    def test_updates_the_lessons_after_an_answer(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        reflector = FakeChatModel(responder=constant("Add the numbers."))
        node = create_reflection_update_node(reflector, store=store)
        out = parent_graph(store, embeddings, node).invoke(
            {"messages": [("user", MAYA)]}
        )
        assert out["reflection"]["updated"]
        assert out["reflection"]["episode_id"] == out["speedup"]["episode_id"]
        assert store.get_lessons("default") == "Add the numbers."
        assert store.count("default") == 1
        assert "verified (its answer" in reflector.calls[0][-1].content

    async def test_async_and_reuse_updates_nothing(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        reflector = FakeChatModel(responder=constant("Add the numbers."))
        node = create_reflection_update_node(reflector, store=store)
        graph = parent_graph(store, embeddings, node)
        first = await graph.ainvoke({"messages": [("user", MAYA)]})
        assert first["reflection"]["updated"]
        again = await graph.ainvoke({"messages": [("user", MAYA)]})
        assert again["speedup"]["route"]["decision"] == "reuse"
        assert "reflection" not in again
        assert len(reflector.calls) == 1

    def test_failure_keeps_the_answer_and_the_episode(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        node = create_reflection_update_node(
            FailingChatModel(responder=constant("x")), store=store
        )
        out = parent_graph(store, embeddings, node).invoke(
            {"messages": [("user", MAYA)]}
        )
        assert out["messages"][-1].content.endswith("\\boxed{7}.")
        assert not out["reflection"]["updated"]
        assert store.count("default") == 1

    def test_with_a_queue(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        reflector = FakeChatModel(responder=constant("Queued."))
        with ReflectionQueue(reflector, store=store) as queue:
            node = create_reflection_update_node(reflector, store=store, queue=queue)
            out = parent_graph(store, embeddings, node).invoke(
                {"messages": [("user", TRAIN)]}
            )
            assert "reflection" not in out
            assert queue.flush(timeout=10)
        assert store.get_lessons("default") == "Queued."

    def test_bad_options(self, store: QdrantEpisodicStore) -> None:
        model = FakeChatModel(responder=constant("x"))
        with pytest.raises(ConfigurationError):
            create_reflection_update_node(model, store=store, max_chars=0)
        with pytest.raises(ConfigurationError):
            create_reflection_update_node(model, store=object())  # type: ignore[arg-type]
