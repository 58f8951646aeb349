"""The Qdrant episodic store, embedded in memory and on disk."""

from __future__ import annotations

import gc
import uuid
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from langchain_speedup import (
    EpisodicStore,
    InvalidInputError,
    MemoryStoreError,
    QdrantEpisodicStore,
    question_key,
)
from langchain_speedup.memory.store import _lessons_point_id
from tests.fakes import MAYA, TRAIN, HashEmbeddings, make_episode


def test_is_an_episodic_store(store: QdrantEpisodicStore) -> None:
    assert isinstance(store, EpisodicStore)


def test_empty_store(store: QdrantEpisodicStore, embeddings: HashEmbeddings) -> None:
    assert store.count("default") == 0
    assert store.find("default", question_key(MAYA)) is None
    assert store.search("default", embeddings.embed_query(MAYA)) == []
    assert store.episodes("default") == []


def test_round_trip(store: QdrantEpisodicStore, embeddings: HashEmbeddings) -> None:
    episode = make_episode(MAYA, final_answer="12")
    store.put(episode, embeddings.embed_query(MAYA))
    assert store.count("default") == 1
    assert store.find("default", question_key(MAYA)) == episode
    assert store.episodes("default") == [episode]
    [match] = store.search("default", embeddings.embed_query(MAYA))
    assert match["episode"] == episode
    assert match["similarity"] == pytest.approx(1.0)


def test_search_orders_by_similarity(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    maya, train = make_episode(MAYA), make_episode(TRAIN)
    store.put(train, embeddings.embed_query(TRAIN))
    store.put(maya, embeddings.embed_query(MAYA))
    query = "Maya buys 3 pens at 4 dollars each. How much does Maya spend?"
    matches = store.search("default", embeddings.embed_query(query), limit=5)
    assert [m["episode"]["id"] for m in matches] == [maya["id"], train["id"]]
    assert matches[0]["similarity"] > matches[1]["similarity"]
    assert -1.0 <= matches[1]["similarity"] <= 1.0
    assert len(store.search("default", embeddings.embed_query(query), limit=1)) == 1


def test_put_is_idempotent_by_id(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    episode = make_episode(MAYA, final_answer="12")
    store.put(episode, embeddings.embed_query(MAYA))
    store.put(episode, embeddings.embed_query(MAYA))
    assert store.count("default") == 1
    # The same id with new content overwrites.
    updated = {**episode, "final_answer": "13", "answer": "13"}
    store.put(updated, embeddings.embed_query(MAYA))
    assert store.count("default") == 1
    assert store.episodes("default") == [updated]


def test_find_returns_only_this_question(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    store.put(make_episode(MAYA), embeddings.embed_query(MAYA))
    variant = MAYA.replace("3 pens", "7 pens")
    assert store.find("default", question_key(variant)) is None
    # Keys are blind to case and punctuation.
    assert store.find("default", question_key(MAYA.upper() + "!!")) is not None


def test_find_returns_the_newest(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    old = make_episode(MAYA, final_answer="11", created_at=1.0)
    new = make_episode(MAYA, final_answer="12", created_at=2.0)
    store.put(new, embeddings.embed_query(MAYA))
    store.put(old, embeddings.embed_query(MAYA))
    found = store.find("default", question_key(MAYA))
    assert found is not None
    assert found["final_answer"] == "12"
    assert [e["final_answer"] for e in store.episodes("default")] == ["11", "12"]


def test_only_verified_episodes_are_found_or_searched(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    unverified = make_episode(MAYA, verified=False)
    store.put(unverified, embeddings.embed_query(MAYA))
    assert store.count("default") == 1
    assert store.episodes("default") == [unverified]
    assert store.find("default", question_key(MAYA)) is None
    assert store.search("default", embeddings.embed_query(MAYA)) == []
    verified = make_episode(TRAIN)
    store.put(verified, embeddings.embed_query(TRAIN))
    matches = store.search("default", embeddings.embed_query(MAYA), limit=10)
    assert [m["episode"]["id"] for m in matches] == [verified["id"]]


def test_namespaces_are_isolated(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    a = make_episode(MAYA, namespace="a", final_answer="1")
    b = make_episode(MAYA, namespace="b", final_answer="2")
    store.put(a, embeddings.embed_query(MAYA))
    store.put(b, embeddings.embed_query(MAYA))
    assert store.count("a") == store.count("b") == 1
    assert store.count("c") == 0
    assert store.find("a", question_key(MAYA)) == a
    assert store.find("b", question_key(MAYA)) == b
    assert store.find("c", question_key(MAYA)) is None
    assert [m["episode"] for m in store.search("a", embeddings.embed_query(MAYA))] == [
        a
    ]
    assert store.search("c", embeddings.embed_query(MAYA)) == []
    assert store.episodes("b") == [b]


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", "1234", 123, None, 1.5])
def test_invalid_episode_id(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, bad_id: object
) -> None:
    episode = make_episode(MAYA)
    episode["id"] = bad_id  # type: ignore[typeddict-item]
    with pytest.raises(InvalidInputError, match="UUID"):
        store.put(episode, embeddings.embed_query(MAYA))
    assert store.count("default") == 0


def test_missing_episode_id(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    episode = make_episode(MAYA)
    del episode["id"]  # type: ignore[misc]
    with pytest.raises(InvalidInputError):
        store.put(episode, embeddings.embed_query(MAYA))


@pytest.mark.parametrize("namespace", ["", "   ", None, 3])
def test_invalid_namespace(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings, namespace: object
) -> None:
    episode = make_episode(MAYA)
    episode["namespace"] = namespace  # type: ignore[typeddict-item]
    vector = embeddings.embed_query(MAYA)
    with pytest.raises(InvalidInputError, match="namespace"):
        store.put(episode, vector)
    for call in (
        lambda: store.find(namespace, "k"),  # type: ignore[arg-type]
        lambda: store.search(namespace, vector),  # type: ignore[arg-type]
        lambda: store.count(namespace),  # type: ignore[arg-type]
        lambda: store.episodes(namespace),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError, match="namespace"):
            call()


def test_empty_vector(store: QdrantEpisodicStore) -> None:
    with pytest.raises(InvalidInputError, match="vector"):
        store.put(make_episode(MAYA), [])
    assert store.count("default") == 0


def test_wrong_vector_size_is_a_store_error(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    store.put(make_episode(MAYA), embeddings.embed_query(MAYA))
    with pytest.raises(MemoryStoreError):
        store.put(make_episode(TRAIN), [1.0, 0.0, 0.0])
    with pytest.raises(MemoryStoreError):
        store.search("default", [1.0, 0.0, 0.0])
    assert store.count("default") == 1


def test_persistence(tmp_path: Path, embeddings: HashEmbeddings) -> None:
    episode = make_episode(MAYA, final_answer="12")
    with QdrantEpisodicStore(path=tmp_path / "memory") as store:
        store.put(episode, embeddings.embed_query(MAYA))
        assert store.count("default") == 1
    with QdrantEpisodicStore(path=tmp_path / "memory") as store:
        assert store.count("default") == 1
        assert store.find("default", question_key(MAYA)) == episode
        [match] = store.search("default", embeddings.embed_query(MAYA))
        assert match["episode"] == episode
        store.put(make_episode(TRAIN), embeddings.embed_query(TRAIN))
    with QdrantEpisodicStore(path=str(tmp_path / "memory")) as store:
        assert store.count("default") == 2


def test_path_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "memory"
    target.write_text("not a directory")
    with pytest.raises(MemoryStoreError, match="not a directory"):
        QdrantEpisodicStore(path=target)
    assert target.read_text() == "not a directory"


def test_path_inside_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MemoryStoreError):
        QdrantEpisodicStore(path=blocker / "memory")


# qdrant-client leaves the lock file of a failed open unclosed; that is its
# leak, not the store's, so its ResourceWarning is ignored here (and only here).
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_path_locked_by_another_store(tmp_path: Path) -> None:
    with QdrantEpisodicStore(path=tmp_path) as holder:
        with pytest.raises(MemoryStoreError, match="failed to open"):
            QdrantEpisodicStore(path=tmp_path)
        assert holder.count("default") == 0
    gc.collect()  # release the leaked handle while the filter applies


def test_at_most_one_location(tmp_path: Path) -> None:
    with pytest.raises(MemoryStoreError):
        QdrantEpisodicStore(path=tmp_path, url="http://127.0.0.1:6333")
    with pytest.raises(MemoryStoreError):
        QdrantEpisodicStore(path=tmp_path, client=QdrantClient(":memory:"))


def test_empty_collection_name() -> None:
    with pytest.raises(MemoryStoreError):
        QdrantEpisodicStore(collection="")


def test_from_env_without_a_url_is_embedded(tmp_path: Path) -> None:
    # The autouse fixture removed QDRANT_URL.
    with QdrantEpisodicStore.from_env(path=tmp_path) as store:
        assert store.location == str(tmp_path)


def test_shared_client_is_not_closed(embeddings: HashEmbeddings) -> None:
    client = QdrantClient(":memory:")
    with QdrantEpisodicStore(client=client, collection="mine") as store:
        store.put(make_episode(MAYA), embeddings.embed_query(MAYA))
    assert client.collection_exists("mine")
    with QdrantEpisodicStore(client=client, collection="mine") as again:
        assert again.count("default") == 1
    client.close()


def test_a_collection_created_by_another_client_is_seen(
    embeddings: HashEmbeddings,
) -> None:
    # Two stores on one server (here: one shared client), both opened before
    # any episode exists: what one writes, the other must read and extend.
    client = QdrantClient(":memory:")
    first = QdrantEpisodicStore(client=client)
    second = QdrantEpisodicStore(client=client)
    episode = make_episode(MAYA)
    second.put(episode, embeddings.embed_query(MAYA))
    assert first.count("default") == 1
    assert first.find("default", question_key(MAYA)) == episode
    assert len(first.search("default", embeddings.embed_query(MAYA))) == 1
    first.put(make_episode(TRAIN), embeddings.embed_query(TRAIN))
    assert second.count("default") == 2
    client.close()


def test_many_episodes_are_all_listed(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    ids = []
    for i in range(300):  # more than one scroll page
        episode = make_episode(f"What is {i} + 1?", created_at=float(i))
        ids.append(episode["id"])
        store.put(episode, embeddings.embed_query(episode["question"]))
    listed = store.episodes("default")
    assert [e["id"] for e in listed] == ids
    assert store.count("default") == 300


def test_uuid_case_is_normalised_for_the_point_id(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    raw = str(uuid.uuid4())
    store.put(make_episode(MAYA, id=raw.upper()), embeddings.embed_query(MAYA))
    store.put(make_episode(MAYA, id=raw), embeddings.embed_query(MAYA))
    assert store.count("default") == 1


async def test_async_twins(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    episode = make_episode(MAYA, namespace="x")
    assert await store.afind("x", question_key(MAYA)) is None
    assert await store.asearch("x", embeddings.embed_query(MAYA)) == []
    await store.aput(episode, embeddings.embed_query(MAYA))
    await store.aput(episode, embeddings.embed_query(MAYA))
    assert store.count("x") == 1
    assert await store.afind("x", question_key(MAYA)) == episode
    [match] = await store.asearch("x", embeddings.embed_query(MAYA), limit=2)
    assert match["episode"] == episode
    assert await store.afind("y", question_key(MAYA)) is None
    assert await store.asearch("y", embeddings.embed_query(MAYA)) == []


async def test_async_invalid_input(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    with pytest.raises(InvalidInputError):
        await store.aput(make_episode(MAYA, id="nope"), embeddings.embed_query(MAYA))
    with pytest.raises(InvalidInputError):
        await store.afind("", "k")
    with pytest.raises(InvalidInputError):
        await store.asearch("", embeddings.embed_query(MAYA))


async def test_async_persistence(tmp_path: Path, embeddings: HashEmbeddings) -> None:
    episode = make_episode(MAYA)
    with QdrantEpisodicStore(path=tmp_path) as store:
        await store.aput(episode, embeddings.embed_query(MAYA))
    with QdrantEpisodicStore(path=tmp_path) as store:
        assert await store.afind("default", question_key(MAYA)) == episode


# -- the lessons point and reflections -------------------------------------------


def test_lessons_persist_across_reopening(
    tmp_path: Path, embeddings: HashEmbeddings
) -> None:
    with QdrantEpisodicStore(path=tmp_path) as store:
        store.put(make_episode(MAYA), embeddings.embed_query(MAYA))
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
    episode = make_episode(MAYA)
    store.put(episode, embeddings.embed_query(MAYA))
    store.put_lessons("default", "Check the units.")
    assert store.count("default") == 1
    assert store.episodes("default") == [episode]
    # The lessons point's vector is [1, 0, ...]: search for exactly it.
    unit = [1.0] + [0.0] * (embeddings.dim - 1)
    found = store.search("default", unit, limit=10)
    assert [m["episode"]["id"] for m in found] == [episode["id"]]
    assert store.find("default", question_key(MAYA)) == episode
    # Nor can a reflection be attached to it.
    with pytest.raises(InvalidInputError, match="no episode"):
        store.set_reflection("default", _lessons_point_id("default"), "x")


def test_lessons_before_any_episode_is_a_clear_error(
    store: QdrantEpisodicStore,
) -> None:
    assert store.get_lessons("default") is None
    with pytest.raises(MemoryStoreError, match="before any episode"):
        store.put_lessons("default", "x")


def test_empty_lessons_and_reflections_are_rejected(
    store: QdrantEpisodicStore, embeddings: HashEmbeddings
) -> None:
    episode = make_episode(MAYA)
    store.put(episode, embeddings.embed_query(MAYA))
    with pytest.raises(InvalidInputError, match="lessons"):
        store.put_lessons("default", "  ")
    with pytest.raises(InvalidInputError, match="reflection"):
        store.set_reflection("default", episode["id"], "")
    assert store.get_lessons("default") is None
    assert store.episodes("default") == [episode]
