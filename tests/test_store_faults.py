"""The memory under hostile ids, bad episodes, foreign items and failing stores."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore, GetOp, Op, PutOp
from langgraph.store.memory import InMemoryStore

from langchain_speedup import (
    BestOfN,
    BudgetRouter,
    EmbeddingError,
    EpisodicMemory,
    InvalidInputError,
    MemoryStoreError,
    memory_index,
    question_key,
)
from langchain_speedup.memory.store import (
    MAX_QUESTION_BYTES,
    MAX_TEXT_BYTES,
    _reuse_key,
)
from tests.fakes import (
    BAKE,
    MAYA,
    TRAIN,
    FakeChatModel,
    FaultyStore,
    make_episode,
    sum_solver,
)

EPISODES = ("speedup", "default", "episodes")
REUSE = ("speedup", "default", "reuse")


async def put(memory: EpisodicMemory, episode: Any, *, is_async: bool) -> None:
    if is_async:
        await memory.aput(episode)
    else:
        memory.put(episode)


async def find(memory: EpisodicMemory, key: str, *, is_async: bool) -> Any:
    if is_async:
        return await memory.afind("default", key)
    return memory.find("default", key)


def router(store: BaseStore, namespace: str = "default") -> BudgetRouter:
    model = FakeChatModel(responder=sum_solver)
    return BudgetRouter(BestOfN(model, budget=3), store=store, namespace=namespace)


# -- tenant isolation: hostile episode ids ------------------------------------------


async def test_an_id_from_another_namespace_cannot_move_its_episode(
    memory: EpisodicMemory, is_async: bool
) -> None:
    theirs = make_episode(MAYA, namespace="b", final_answer="12")
    memory.put(theirs)
    memory.set_reflection("b", theirs["id"], "Multiply first.")
    theirs["reflection"] = "Multiply first."
    mine = make_episode(TRAIN, namespace="a", id=theirs["id"], final_answer="180")
    await put(memory, mine, is_async=is_async)
    assert memory.episodes("b") == [theirs]
    assert memory.episodes("a") == [mine]
    # Reflecting by that id in a touches a's episode only; elsewhere it is unknown.
    memory.set_reflection("a", mine["id"], "Speed times time.")
    assert memory.episodes("b") == [theirs]
    with pytest.raises(InvalidInputError, match="no episode"):
        memory.set_reflection("c", theirs["id"], "x")


def test_a_router_given_another_namespaces_id_leaves_it_alone(
    store: BaseStore, memory: EpisodicMemory
) -> None:
    theirs = router(store, "b").solve(MAYA)
    memory.put_lessons("b", "Check the units.")
    before = memory.episodes("b")
    router(store, "a").solve(TRAIN, episode_id=theirs["episode_id"])
    assert memory.episodes("b") == before
    assert memory.get_lessons("b") == "Check the units."
    assert len(memory.episodes("a")) == 1


# -- the episode at the store's boundary --------------------------------------------


def without(key: str) -> Any:
    episode: dict[str, Any] = dict(make_episode(MAYA))
    del episode[key]
    return episode


def with_field(key: str, value: object) -> Any:
    return {**make_episode(MAYA), key: value}


BAD_EPISODES = {
    "no-created_at": (without("created_at"), "created_at"),
    "no-question": (without("question"), "question"),
    "no-verified": (without("verified"), "verified"),
    "score-as-text": (with_field("score", "1.0"), "score"),
    "nan-score": (with_field("score", math.nan), "score"),
    "verified-as-text": (with_field("verified", "yes"), "verified"),
    "bool-generations": (with_field("generations", True), "generations"),
    "float-tokens": (with_field("total_tokens", 100.0), "total_tokens"),
    "none-answer": (with_field("answer", None), "answer"),
    "unknown-field": (with_field("vector", [1.0]), "vector"),
    "not-a-dict": ([("id", "x")], "dict"),
}


@pytest.mark.parametrize(
    ("episode", "named"), BAD_EPISODES.values(), ids=list(BAD_EPISODES)
)
async def test_an_incomplete_or_mistyped_episode_is_rejected_before_writing(
    store: BaseStore,
    memory: EpisodicMemory,
    is_async: bool,
    episode: Any,
    named: str,
) -> None:
    with pytest.raises(InvalidInputError, match=named):
        await put(memory, episode, is_async=is_async)
    assert list(store.list_namespaces()) == []
    # Nothing half-written: the store and the next router work as before.
    memory.put(make_episode(TRAIN))
    assert [e["question"] for e in memory.episodes("default")] == [TRAIN]
    assert router(store).solve(MAYA)["final_answer"] == "7"


def test_a_foreign_item_that_is_no_episode_is_skipped_on_read(
    store: BaseStore, memory: EpisodicMemory, caplog: pytest.LogCaptureFixture
) -> None:
    # Written past `put` (another program, an older version): no `created_at`.
    episode = make_episode(MAYA)
    memory.put(episode)
    foreign = {k: v for k, v in make_episode(MAYA).items() if k != "created_at"}
    store.put(EPISODES, foreign["id"], foreign, index=["question"])
    # And an episode filed under another key than its id.
    moved = make_episode(MAYA)
    store.put(EPISODES, "6f1c0f3e-2b1d-4c55-9a51-0d3c2f9b7e11", dict(moved))
    assert memory.episodes("default") == [episode]
    assert memory.find("default", question_key(MAYA)) == episode
    assert [m["episode"] for m in memory.search("default", MAYA, limit=5)] == [episode]
    assert "created_at" in caplog.text
    assert router(store).solve(TRAIN)["final_answer"] == "63"


def test_a_reuse_pointer_aimed_at_another_question_reuses_nothing(
    store: BaseStore, memory: EpisodicMemory
) -> None:
    maya, train = make_episode(MAYA), make_episode(TRAIN)
    memory.put(maya)
    memory.put(train)
    # MAYA's pointer, rewritten past `put` to aim at TRAIN's episode.
    key = _reuse_key(question_key(MAYA))
    store.put(REUSE, key, {"episode_id": train["id"]}, index=False)
    assert memory.find("default", question_key(MAYA)) is None
    store.put(REUSE, key, {"episode_id": 42}, index=False)
    assert memory.find("default", question_key(MAYA)) is None
    assert memory.find("default", question_key(TRAIN)) == train


@pytest.mark.parametrize(
    "field", ["question", "question_key", "answer", "final_answer", "method"]
)
async def test_a_lone_surrogate_is_rejected_in_any_text_field(
    memory: EpisodicMemory, is_async: bool, field: str
) -> None:
    episode = with_field(field, "What is 2+3?\ud800")
    with pytest.raises(InvalidInputError, match=f"{field} .*not valid Unicode"):
        await put(memory, episode, is_async=is_async)
    assert memory.episodes("default") == []


@pytest.mark.parametrize("write", ["reflection", "lessons"])
def test_a_lone_surrogate_is_rejected_in_reflections_and_lessons(
    memory: EpisodicMemory, write: str
) -> None:
    episode = make_episode(MAYA)
    memory.put(episode)
    writes: dict[str, Callable[[], None]] = {
        "reflection": lambda: memory.set_reflection("default", episode["id"], "\udfff"),
        "lessons": lambda: memory.put_lessons("default", "bad \ud800"),
    }
    with pytest.raises(InvalidInputError, match=f"{write} .*not valid Unicode"):
        writes[write]()
    assert memory.episodes("default") == [episode]
    assert memory.get_lessons("default") is None


def test_an_answer_over_the_size_cap_is_rejected(memory: EpisodicMemory) -> None:
    huge = "x" * (5 * 1024 * 1024) + " \\boxed{12}"
    with pytest.raises(
        InvalidInputError,
        match=rf"answer has \d+ bytes of UTF-8, more than the {MAX_TEXT_BYTES}",
    ):
        memory.put(make_episode(MAYA, answer=huge, final_answer="12"))
    # The cap counts UTF-8 bytes: one character over it in bytes is refused.
    with pytest.raises(InvalidInputError, match="answer"):
        memory.put(make_episode(MAYA, answer="é" * (MAX_TEXT_BYTES // 2 + 1)))
    with pytest.raises(InvalidInputError, match="question"):
        memory.put(make_episode("x" * (MAX_QUESTION_BYTES + 1)))
    with pytest.raises(InvalidInputError, match="reflection"):
        memory.set_reflection(
            "default", make_episode(MAYA)["id"], "x" * (MAX_TEXT_BYTES + 1)
        )
    with pytest.raises(InvalidInputError, match="lessons"):
        memory.put_lessons("default", "x" * (MAX_TEXT_BYTES + 1))
    assert memory.episodes("default") == []
    at_the_cap = make_episode(MAYA, answer="x" * MAX_TEXT_BYTES)
    memory.put(at_the_cap)
    assert memory.episodes("default") == [at_the_cap]


# -- failing stores and embeddings ------------------------------------------------------


def failing(store: BaseStore, fails: Callable[[Op], bool], error: Exception) -> Any:
    return FaultyStore(store, fails=fails, error=error)


async def test_a_failing_write_is_a_store_error_and_changes_nothing(
    store: BaseStore, memory: EpisodicMemory, is_async: bool
) -> None:
    kept = make_episode(MAYA)
    memory.put(kept)
    memory.put_lessons("default", "Check the units.")
    full = EpisodicMemory(
        failing(store, lambda op: isinstance(op, PutOp), OSError("disk full"))
    )
    with pytest.raises(MemoryStoreError, match="disk full"):
        await put(full, make_episode(TRAIN), is_async=is_async)
    with pytest.raises(MemoryStoreError, match="disk full"):
        full.put_lessons("default", "Forget everything.")
    with pytest.raises(MemoryStoreError, match="disk full"):
        full.set_reflection("default", kept["id"], "Overwritten.")
    assert memory.episodes("default") == [kept]
    assert memory.get_lessons("default") == "Check the units."


async def test_a_failing_read_is_a_store_error(
    store: BaseStore, is_async: bool
) -> None:
    gone = EpisodicMemory(
        failing(store, lambda op: isinstance(op, GetOp), ConnectionError("gone"))
    )
    with pytest.raises(MemoryStoreError, match="failed to read: ConnectionError: gone"):
        await find(gone, question_key(MAYA), is_async=is_async)


class Refusing(Embeddings):
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise ConnectionError("embedding server refused")

    def embed_query(self, text: str) -> list[float]:
        raise ConnectionError("embedding server refused")


async def test_failing_embeddings_write_nothing(is_async: bool) -> None:
    store = InMemoryStore(index=memory_index(Refusing(), dims=8))
    memory = EpisodicMemory(store)
    with pytest.raises(EmbeddingError, match="embedding server refused"):
        await put(memory, make_episode(MAYA), is_async=is_async)
    assert memory.episodes("default") == []
    assert memory.find("default", question_key(MAYA)) is None


SECRETS = ("s3cret-pass", "key-12345", "tok-999")


def test_credentials_never_appear_in_errors(store: BaseStore) -> None:
    leak = ConnectionError(
        f"could not connect to postgresql://admin:{SECRETS[0]}@db.example:5432/mem "
        f"(api_key={SECRETS[1]}; token={SECRETS[2]})"
    )
    leaky = EpisodicMemory(failing(store, lambda op: True, leak))
    with pytest.raises(MemoryStoreError) as info:
        leaky.get_lessons("default")
    message = str(info.value)
    assert "postgresql://admin:***@db.example:5432/mem" in message
    assert not any(secret in message for secret in SECRETS)
    # The cause would print the credentials in a traceback: it is dropped.
    assert info.value.__cause__ is None


def test_a_routers_answer_survives_a_failing_write(store: BaseStore) -> None:
    full = failing(store, lambda op: isinstance(op, PutOp), OSError("disk full"))
    out = router(full).solve(BAKE)
    assert out["final_answer"] == "17"
    assert out["episode_id"] is None
    assert "disk full" in out["memory_error"]
    assert EpisodicMemory(store).episodes("default") == []
