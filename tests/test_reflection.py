"""Reflections: the Reflect-Update lessons, per-case reflections, the queue and node."""

from __future__ import annotations

import threading
from collections.abc import Callable
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
from langchain_speedup.memory.reflection import _trim_to_sentence
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


ASYNC_FORM = {reflect: areflect, reflect_update: areflect_update}


async def run(
    is_async: bool, reflection: Callable[..., ReflectionResult], *args: Any, **kw: Any
) -> ReflectionResult:
    """`reflection(*args, **kw)`, or its async form awaited."""
    if is_async:
        return await ASYNC_FORM[reflection](*args, **kw)
    return reflection(*args, **kw)


# -- the lessons point ---------------------------------------------------------------


def test_lessons_persist_across_reopening(tmp_path: Path) -> None:
    emb = HashEmbeddings()
    with QdrantEpisodicStore(path=tmp_path) as store:
        seeded(store, emb)
        store.put_lessons("default", "Read twice.")
        store.put_lessons("default", "Check the units.")  # replaces, by namespace
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
    assert _trim_to_sentence(text, limit) == expected


# -- Reflect-Update -------------------------------------------------------------------


class TestReflectUpdate:
    async def test_rewrites_the_lessons_from_old_lessons_and_episode(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        episode = seeded(store, embeddings)
        store.put_lessons("default", "Old lesson.")
        model = FakeChatModel(responder=constant("  New lesson. Check units.  "))
        ledger = Ledger()
        result = await run(
            is_async, reflect_update, model, episode, store=store, ledger=ledger
        )
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
        assert "Outcome: verified" in prompt
        assert ledger.usage()["other_calls"] == 1
        assert ledger.usage()["generations"] == 0
        assert store.episodes("default") == [episode]

    def test_first_lessons_and_an_explicit_namespace(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings
    ) -> None:
        episode = seeded(store, embeddings)
        model = FakeChatModel(responder=constant("First lesson."))
        result = reflect_update(model, episode, store=store, namespace="team")
        assert result["namespace"] == "team"
        assert store.get_lessons("team") == "First lesson."
        assert store.get_lessons("default") is None
        assert "Current lessons:\n(none yet)" in model.calls[0][-1].content

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
            (
                lambda: FailingChatModel(responder=constant("x")),
                "reflection model call failed",
            ),
            (lambda: FakeChatModel(responder=constant("   ")), "no lessons text"),
            (lambda: FakeChatModel(responder=constant("```\n```")), "no lessons text"),
        ],
        ids=["model-fails", "blank-reply", "empty-fence"],
    )
    async def test_failure_keeps_the_previous_lessons_and_the_episodes(
        self,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        model: Callable[[], FakeChatModel],
        error: str,
        is_async: bool,
    ) -> None:
        episode = seeded(store, embeddings)
        store.put_lessons("default", "Old lesson.")
        result = await run(is_async, reflect_update, model(), episode, store=store)
        assert not result["updated"]
        assert result["error"] is not None
        assert error in result["error"]
        assert result["text"] == "Old lesson."
        assert store.get_lessons("default") == "Old lesson."
        assert store.episodes("default") == [episode]

    async def test_interrupts_pass_through_and_keep_the_lessons(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        def interrupt(_: list[BaseMessage]) -> str:
            raise GraphInterrupt(())

        episode = seeded(store, embeddings)
        store.put_lessons("default", "Old lesson.")
        model = FakeChatModel(responder=interrupt)
        with pytest.raises(GraphInterrupt):
            await run(is_async, reflect_update, model, episode, store=store)
        assert store.get_lessons("default") == "Old lesson."

    async def test_store_write_failure_is_reported(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        # No episode stored yet: the lessons cannot be written.
        model = FakeChatModel(responder=constant("Lesson."))
        result = await run(
            is_async, reflect_update, model, make_episode(MAYA), store=store
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
        with pytest.raises(ConfigurationError, match="`max_char`"):
            reflect_update(model, make_episode(MAYA), store=store, max_char=100)  # type: ignore[call-arg]
        with pytest.raises(InvalidInputError, match="namespace"):
            reflect_update(model, make_episode(MAYA), store=store, namespace=" ")
        assert model.calls == []


# -- Reflect (per case) ---------------------------------------------------------------


class TestReflect:
    async def test_writes_the_reflection_onto_the_episode(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        episode = seeded(store, embeddings)
        model = FakeChatModel(responder=constant("Multiply count by price."))
        result = await run(is_async, reflect, model, episode, store=store)
        assert result["updated"]
        assert result["text"] == "Multiply count by price."
        [stored] = store.episodes("default")
        assert stored["reflection"] == "Multiply count by price."
        [found] = store.search("default", embeddings.embed_query(MAYA))
        assert found["episode"]["reflection"] == "Multiply count by price."

    @pytest.mark.parametrize(
        ("model", "namespace", "error"),
        [
            (
                lambda: FailingChatModel(responder=constant("x")),
                None,
                "the reflection model call failed",
            ),
            (
                lambda: FakeChatModel(responder=constant(" ")),
                None,
                "the reflection model returned no text",
            ),
            (
                lambda: FakeChatModel(responder=constant("Lesson.")),
                "other",
                "writing the reflection failed: no episode",
            ),
        ],
        ids=["model-fails", "blank-reply", "other-namespace"],
    )
    async def test_failure_leaves_the_episode(
        self,
        store: QdrantEpisodicStore,
        embeddings: HashEmbeddings,
        model: Callable[[], FakeChatModel],
        namespace: str | None,
        error: str,
        is_async: bool,
    ) -> None:
        episode = seeded(store, embeddings)
        result = await run(
            is_async, reflect, model(), episode, store=store, namespace=namespace
        )
        assert not result["updated"]
        assert result["text"] is None
        assert result["error"] is not None
        assert result["error"].startswith(error)
        assert store.episodes("default") == [episode]

    def test_bad_arguments_raise(self, store: QdrantEpisodicStore) -> None:
        model = FakeChatModel(responder=constant("x"))
        episode = dict(make_episode(MAYA))
        del episode["id"]
        with pytest.raises(InvalidInputError, match="no `id`"):
            reflect(model, episode, store=store)
        with pytest.raises(ConfigurationError, match="reflections"):
            reflect(model, make_episode(MAYA), store=object())  # type: ignore[arg-type]
        assert model.calls == []


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

    def test_bad_input_is_rejected_at_once(self, store: QdrantEpisodicStore) -> None:
        model = FakeChatModel(responder=constant("x"))
        with pytest.raises(ConfigurationError, match="mode"):
            ReflectionQueue(model, store=store, mode="other")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="max_chars"):
            ReflectionQueue(model, store=store, max_chars=5)
        with ReflectionQueue(model, store=store, mode="reflect") as queue:
            with pytest.raises(InvalidInputError, match="question"):
                queue.submit({"answer": "1"})
            with pytest.raises(InvalidInputError, match="no `id`"):
                queue.submit({"question": MAYA, "answer": "1"})
            assert queue.pending == 0
            assert queue.flush(timeout=0)
        assert model.calls == []

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
    async def test_updates_the_lessons_after_an_answer(
        self, store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        reflector = FakeChatModel(responder=constant("Add the numbers."))
        node = create_reflection_update_node(reflector, store=store)
        graph = parent_graph(store, embeddings, node)
        inputs = {"messages": [("user", MAYA)]}
        out = await graph.ainvoke(inputs) if is_async else graph.invoke(inputs)
        assert out["reflection"]["updated"]
        assert out["reflection"]["episode_id"] == out["speedup"]["episode_id"]
        assert store.get_lessons("default") == "Add the numbers."
        assert store.count("default") == 1
        assert "verified (its answer" in reflector.calls[0][-1].content

    async def test_a_reused_answer_updates_nothing(
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
        with pytest.raises(ConfigurationError, match="namespace"):
            create_reflection_update_node(model, store=store, namespace="")
