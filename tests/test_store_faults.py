"""The episodic store under hostile ids, bad episodes, wrong vectors and damaged files."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient, models

from langchain_speedup import (
    BestOfN,
    BudgetRouter,
    EmbeddingSizeError,
    InvalidInputError,
    MemoryStoreError,
    QdrantEpisodicStore,
    question_key,
)
from langchain_speedup.memory import store as store_module
from langchain_speedup.memory.store import (
    MAX_QUESTION_BYTES,
    MAX_TEXT_BYTES,
    _lessons_point_id,
)
from tests.fakes import (
    BAKE,
    MAYA,
    TRAIN,
    FakeChatModel,
    HashEmbeddings,
    make_episode,
    sum_solver,
)


async def put(
    store: QdrantEpisodicStore, episode: Any, vector: Any, *, is_async: bool
) -> None:
    if is_async:
        await store.aput(episode, vector)
    else:
        store.put(episode, vector)


# -- tenant isolation: hostile episode ids ------------------------------------------


async def test_an_id_from_another_namespace_cannot_move_its_episode(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
) -> None:
    theirs = make_episode(MAYA, namespace="b", final_answer="12")
    store.put(theirs, embeddings.embed_query(MAYA))
    store.set_reflection("b", theirs["id"], "Multiply first.")
    theirs["reflection"] = "Multiply first."
    mine = make_episode(TRAIN, namespace="a", id=theirs["id"], final_answer="180")
    await put(store, mine, embeddings.embed_query(TRAIN), is_async=is_async)
    assert (store.count("a"), store.count("b")) == (1, 1)
    assert store.episodes("b") == [theirs]
    assert store.episodes("a") == [mine]
    # Reflecting by that id in a touches a's episode only; elsewhere it is unknown.
    store.set_reflection("a", mine["id"], "Speed times time.")
    assert store.episodes("b") == [theirs]
    with pytest.raises(InvalidInputError, match="no episode"):
        store.set_reflection("c", theirs["id"], "x")


def test_an_episode_stored_under_its_own_id_can_still_be_reflected_on(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    # Earlier versions used the episode's id as the point id.
    store.put(make_episode(TRAIN, namespace="b"), embeddings.embed_query(TRAIN))
    legacy = make_episode(MAYA, namespace="b")
    point = models.PointStruct(
        id=legacy["id"], vector=embeddings.embed_query(MAYA), payload=dict(legacy)
    )
    store._client.upsert(store.collection, points=[point], wait=True)
    with pytest.raises(InvalidInputError, match="no episode"):
        store.set_reflection("a", legacy["id"], "Not yours.")
    store.set_reflection("b", legacy["id"], "Multiply first.")
    [found] = [e for e in store.episodes("b") if e["id"] == legacy["id"]]
    assert found == {**legacy, "reflection": "Multiply first."}


async def test_another_namespaces_lessons_id_cannot_wipe_its_lessons(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool
) -> None:
    store.put(make_episode(MAYA, namespace="b"), embeddings.embed_query(MAYA))
    store.put_lessons("b", "Check the units.")
    hostile = make_episode(TRAIN, namespace="a", id=_lessons_point_id("b"))
    await put(store, hostile, embeddings.embed_query(TRAIN), is_async=is_async)
    assert store.get_lessons("b") == "Check the units."
    assert (store.count("a"), store.count("b")) == (1, 1)
    assert store.episodes("a") == [hostile]


@pytest.mark.parametrize("namespace", ["a", "b"])
async def test_a_namespaces_own_lessons_id_is_reserved(
    store: QdrantEpisodicStore,
    embeddings: HashEmbeddings,
    is_async: bool,
    namespace: str,
) -> None:
    store.put(make_episode(MAYA, namespace=namespace), embeddings.embed_query(MAYA))
    store.put_lessons(namespace, "Check the units.")
    hostile = make_episode(TRAIN, namespace=namespace, id=_lessons_point_id(namespace))
    with pytest.raises(InvalidInputError, match="reserved"):
        await put(store, hostile, embeddings.embed_query(TRAIN), is_async=is_async)
    assert store.get_lessons(namespace) == "Check the units."
    assert store.count(namespace) == 1


def test_a_router_given_another_namespaces_id_leaves_it_alone(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    def router(namespace: str) -> BudgetRouter:
        model = FakeChatModel(responder=sum_solver)
        return BudgetRouter(
            BestOfN(model, budget=3),
            store=store,
            embeddings=embeddings,
            namespace=namespace,
        )

    theirs = router("b").solve(MAYA)
    store.put_lessons("b", "Check the units.")
    before = store.episodes("b")
    router("a").solve(TRAIN, episode_id=theirs["episode_id"])
    router("a").solve(BAKE, episode_id=_lessons_point_id("b"))
    assert store.episodes("b") == before
    assert store.get_lessons("b") == "Check the units."
    assert store.count("a") == 2


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
    "masked-as-lessons": (with_field("kind", "lessons"), "kind"),
    "unknown-field": (with_field("vector", [1.0]), "vector"),
    "not-a-dict": ([("id", "x")], "dict"),
}


@pytest.mark.parametrize(
    ("episode", "named"), BAD_EPISODES.values(), ids=list(BAD_EPISODES)
)
async def test_an_incomplete_or_mistyped_episode_is_rejected_before_writing(
    store: QdrantEpisodicStore,
    embeddings: HashEmbeddings,
    is_async: bool,
    episode: Any,
    named: str,
) -> None:
    with pytest.raises(InvalidInputError, match=named):
        await put(store, episode, embeddings.embed_query(MAYA), is_async=is_async)
    assert store.count("default") == 0
    # Nothing half-written: the store and the next router work as before.
    store.put(make_episode(TRAIN), embeddings.embed_query(TRAIN))
    assert [e["question"] for e in store.episodes("default")] == [TRAIN]
    model = FakeChatModel(responder=sum_solver)
    router = BudgetRouter(BestOfN(model, budget=3), store=store, embeddings=embeddings)
    assert router.solve(MAYA)["final_answer"] == "7"


def test_a_foreign_point_that_is_no_episode_is_skipped_on_read(
    store: QdrantEpisodicStore,
    embeddings: HashEmbeddings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Written past `put` (another program, an older version): no `created_at`.
    episode = make_episode(MAYA)
    store.put(episode, embeddings.embed_query(MAYA))
    foreign = {k: v for k, v in make_episode(MAYA).items() if k != "created_at"}
    point = models.PointStruct(
        id="6f1c0f3e-2b1d-4c55-9a51-0d3c2f9b7e11",
        vector=embeddings.embed_query(MAYA),
        payload=foreign,
    )
    store._client.upsert(store.collection, points=[point], wait=True)
    assert store.episodes("default") == [episode]
    assert store.find("default", question_key(MAYA)) == episode
    found = store.search("default", embeddings.embed_query(MAYA), limit=5)
    assert [m["episode"] for m in found] == [episode]
    assert "created_at" in caplog.text
    model = FakeChatModel(responder=sum_solver)
    router = BudgetRouter(BestOfN(model, budget=3), store=store, embeddings=embeddings)
    assert router.solve(TRAIN)["final_answer"] == "63"


@pytest.mark.parametrize(
    "field", ["question", "question_key", "answer", "final_answer", "method"]
)
async def test_a_lone_surrogate_is_rejected_in_any_text_field(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool, field: str
) -> None:
    episode = with_field(field, "What is 2+3?\ud800")
    with pytest.raises(InvalidInputError, match=f"{field} .*not valid Unicode"):
        await put(store, episode, embeddings.embed_query(MAYA), is_async=is_async)
    assert store.count("default") == 0


@pytest.mark.parametrize("write", ["reflection", "lessons"])
def test_a_lone_surrogate_is_rejected_in_reflections_and_lessons(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, write: str
) -> None:
    episode = make_episode(MAYA)
    store.put(episode, embeddings.embed_query(MAYA))
    writes: dict[str, Callable[[], None]] = {
        "reflection": lambda: store.set_reflection("default", episode["id"], "\udfff"),
        "lessons": lambda: store.put_lessons("default", "bad \ud800"),
    }
    with pytest.raises(InvalidInputError, match=f"{write} .*not valid Unicode"):
        writes[write]()
    assert (store.episodes("default"), store.get_lessons("default")) == (
        [episode],
        None,
    )


def test_an_answer_over_the_size_cap_is_rejected(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    vector = embeddings.embed_query(MAYA)
    huge = "x" * (5 * 1024 * 1024) + " \\boxed{12}"
    with pytest.raises(
        InvalidInputError,
        match=rf"answer has \d+ bytes of UTF-8, more than the {MAX_TEXT_BYTES}",
    ):
        store.put(make_episode(MAYA, answer=huge, final_answer="12"), vector)
    # The cap counts UTF-8 bytes: one character over it in bytes is refused.
    with pytest.raises(InvalidInputError, match="answer"):
        store.put(make_episode(MAYA, answer="é" * (MAX_TEXT_BYTES // 2 + 1)), vector)
    long_question = "x" * (MAX_QUESTION_BYTES + 1)
    with pytest.raises(InvalidInputError, match="question"):
        store.put(make_episode(long_question), vector)
    with pytest.raises(InvalidInputError, match="reflection"):
        store.set_reflection(
            "default", make_episode(MAYA)["id"], "x" * (MAX_TEXT_BYTES + 1)
        )
    assert store.count("default") == 0
    at_the_cap = make_episode(MAYA, answer="x" * MAX_TEXT_BYTES)
    store.put(at_the_cap, vector)
    assert store.episodes("default") == [at_the_cap]


# -- vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vector",
    [[], [math.nan, 1.0], [math.inf, 0.0], [1.0, "2"], [True, False], None, "abc"],
    ids=["empty", "nan", "inf", "text", "bools", "None", "str"],
)
async def test_an_empty_or_non_finite_vector_is_rejected_before_any_write(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, is_async: bool, vector: Any
) -> None:
    with pytest.raises(InvalidInputError, match="vector"):
        await put(store, make_episode(MAYA), vector, is_async=is_async)
    with pytest.raises(InvalidInputError, match="vector"):
        store.search("default", vector)
    # No collection was created with the bad vector's size.
    assert store.vector_size is None
    store.put(make_episode(MAYA), embeddings.embed_query(MAYA))
    assert store.vector_size == embeddings.dim


def test_numpy_vectors_are_accepted(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    import numpy as np

    vector = np.asarray(embeddings.embed_query(MAYA), dtype=np.float32)
    store.put(make_episode(MAYA), vector)  # type: ignore[arg-type]
    [match] = store.search("default", vector)  # type: ignore[arg-type]
    assert match["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_an_embedding_size_change_names_both_sizes_and_the_fix(tmp_path: Path) -> None:
    small, large = HashEmbeddings(dim=64), HashEmbeddings(dim=384)
    with QdrantEpisodicStore(path=tmp_path) as store:
        store.put(make_episode(MAYA), small.embed_query(MAYA))
    with QdrantEpisodicStore(path=tmp_path) as store:
        assert store.vector_size == 64
        for call in (
            lambda: store.put(make_episode(TRAIN), large.embed_query(TRAIN)),
            lambda: store.search("default", large.embed_query(MAYA)),
        ):
            with pytest.raises(EmbeddingSizeError, match=r"size 384.*size 64") as info:
                call()
            assert (info.value.expected, info.value.got) == (64, 384)
            assert "another `path` or `collection`" in str(info.value)
        assert store.count("default") == 1
        assert len(store.search("default", small.embed_query(MAYA))) == 1
    # Told the embeddings' size, the store refuses at open.
    with pytest.raises(EmbeddingSizeError, match="384"):
        QdrantEpisodicStore(path=tmp_path, vector_size=384)
    with QdrantEpisodicStore(path=tmp_path, vector_size=64) as store:
        assert store.count("default") == 1


# -- opening: damaged storage, bad locations, credentials --------------------------


def filled(path: Path, embeddings: HashEmbeddings) -> Path:
    with QdrantEpisodicStore(path=path) as store:
        store.put(make_episode(MAYA), embeddings.embed_query(MAYA))
    return path


def storage_of(path: Path) -> Path:
    return path / "collection" / "speedup_episodes" / "storage.sqlite"


DAMAGES = {
    "zero-byte-storage": lambda p: storage_of(p).write_bytes(b""),
    "truncated-storage": lambda p: os.truncate(storage_of(p), 100),
    "missing-storage": lambda p: storage_of(p).unlink(),
    "missing-meta": lambda p: (p / "meta.json").unlink(),
    "empty-meta": lambda p: (p / "meta.json").write_text(""),
    "meta-without-the-collection": lambda p: (p / "meta.json").write_text(
        '{"collections": {}, "aliases": {}}'
    ),
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=list(DAMAGES))
def test_damaged_storage_is_reported_not_opened_empty(
    tmp_path: Path, embeddings: HashEmbeddings, damage: Any
) -> None:
    path = filled(tmp_path / "memory", embeddings)
    damage(path)
    files = sorted((f.name, f.stat().st_size) for f in path.rglob("*") if f.is_file())
    with pytest.raises(MemoryStoreError, match=r"damaged|malformed"):
        QdrantEpisodicStore(path=path)
    # Nothing was rewritten: the damage can still be repaired from a backup.
    assert (
        sorted((f.name, f.stat().st_size) for f in path.rglob("*") if f.is_file())
        == files
    )


def test_an_empty_directory_opens_as_a_new_store(
    tmp_path: Path, embeddings: HashEmbeddings
) -> None:
    (tmp_path / "notes.txt").write_text("unrelated")
    with QdrantEpisodicStore(path=tmp_path) as store:
        assert store.count("default") == 0
        store.put(make_episode(MAYA), embeddings.embed_query(MAYA))
    with QdrantEpisodicStore(path=tmp_path) as store:
        assert store.count("default") == 1


@pytest.mark.parametrize("option", ["path", "url"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_path_or_url_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    options: dict[str, Any] = {option: value}
    with pytest.raises(MemoryStoreError, match=f"`{option}` must not be empty"):
        QdrantEpisodicStore(**options)
    assert list(tmp_path.iterdir()) == []


SECRETS = ("s3cret-pass", "key-12345")


def test_credentials_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"https://admin:{SECRETS[0]}@qdrant.example:6333/?api_key={SECRETS[1]}"

    class Leaky(QdrantClient):
        """A client whose error quotes the credentials, as some servers' do."""

        def collection_exists(self, collection_name: str, **_: Any) -> bool:
            msg = f"401 for {url} with key {SECRETS[1]}"
            raise ConnectionError(msg)

    monkeypatch.setattr(store_module, "QdrantClient", lambda **_: Leaky(":memory:"))
    with pytest.raises(MemoryStoreError) as info:
        QdrantEpisodicStore(url=url, api_key=SECRETS[1])
    message = str(info.value)
    assert "at 'https://***@qdrant.example:6333/?***' failed to open: 401" in message
    assert not any(secret in message for secret in SECRETS)
    # The cause would print the credentials in a traceback: it is dropped.
    assert info.value.__cause__ is None
