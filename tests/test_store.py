"""The package's memory in a LangGraph store: layout, reuse, search, lessons, outcomes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langgraph.store.base import BaseStore, SearchOp
from langgraph.store.memory import InMemoryStore

from langchain_speedup import (
    ConfigurationError,
    EpisodicMemory,
    InvalidInputError,
    question_key,
)
from langchain_speedup.memory import store as store_module
from tests.fakes import (
    BAKE,
    MAYA,
    TRAIN,
    FaultyStore,
    HashEmbeddings,
    cosine,
    make_episode,
)


async def put(memory: EpisodicMemory, episode: Any, *, is_async: bool) -> None:
    if is_async:
        await memory.aput(episode)
    else:
        memory.put(episode)


def test_only_a_langgraph_store_is_accepted() -> None:
    for not_a_store in (object(), "memory", {}, None):
        with pytest.raises(ConfigurationError, match="BaseStore"):
            EpisodicMemory(not_a_store)  # type: ignore[arg-type]


def test_an_empty_memory(memory: EpisodicMemory) -> None:
    assert memory.find("default", question_key(MAYA)) is None
    assert memory.search("default", MAYA) == []
    assert memory.episodes("default") == []
    assert memory.get_lessons("default") is None
    assert memory.outcomes("default") == {}


async def test_round_trip(
    memory: EpisodicMemory, embeddings: HashEmbeddings, is_async: bool
) -> None:
    episode = make_episode(MAYA)
    await put(memory, episode, is_async=is_async)
    assert memory.episodes("default") == [episode]
    if is_async:
        found = await memory.afind("default", episode["question_key"])
        [match] = await memory.asearch("default", MAYA)
        assert await memory.aepisodes("default") == [episode]
    else:
        found = memory.find("default", episode["question_key"])
        [match] = memory.search("default", MAYA)
    assert found == episode
    assert match["episode"] == episode
    assert match["similarity"] == pytest.approx(1.0, abs=1e-6)


def test_the_layout_is_plain_langgraph_store_items(
    store: BaseStore, memory: EpisodicMemory
) -> None:
    episode = make_episode(MAYA)
    memory.put(episode)
    memory.put_lessons("default", "Check the units.")
    item = store.get(("speedup", "default", "episodes"), episode["id"])
    assert item is not None
    assert item.value == episode
    [hit] = store.search(("speedup", "default", "episodes"), query=MAYA)
    assert hit.key == episode["id"]
    lessons = store.get(("speedup", "default", "lessons"), "lessons")
    assert lessons is not None
    assert lessons.value["lessons"] == "Check the units."
    spaces = set(store.list_namespaces(prefix=("speedup",)))
    assert {
        ("speedup", "default", "episodes"),
        ("speedup", "default", "lessons"),
        ("speedup", "default", "reuse"),
    } <= spaces


def test_search_orders_by_similarity_and_respects_the_limit(
    memory: EpisodicMemory, embeddings: HashEmbeddings
) -> None:
    for question in (TRAIN, MAYA, BAKE):
        memory.put(make_episode(question))
    found = memory.search("default", MAYA, limit=2)
    assert len(found) == 2
    assert found[0]["episode"]["question"] == MAYA
    similarities = [m["similarity"] for m in found]
    assert similarities == sorted(similarities, reverse=True)
    expected = cosine(embeddings.embed_query(TRAIN), embeddings.embed_query(MAYA))
    second = memory.search("default", TRAIN, limit=3)
    [maya] = [m for m in second if m["episode"]["question"] == MAYA]
    assert maya["similarity"] == pytest.approx(expected, abs=1e-6)


async def test_put_is_idempotent_by_id(memory: EpisodicMemory, is_async: bool) -> None:
    episode = make_episode(MAYA)
    episode.update(decision="exemplars", similarity=0.75, budget=4, budget_used=1)
    await put(memory, episode, is_async=is_async)
    await put(memory, episode, is_async=is_async)
    changed = {**episode, "answer": "It is \\boxed{12}.", "final_answer": "12"}
    await put(memory, changed, is_async=is_async)  # type: ignore[arg-type]
    assert memory.episodes("default") == [changed]
    # Its outcome counts once, however often it is written.
    assert memory.outcomes("default") == {"75": [1, 0.75]}


def test_find_returns_only_this_question_and_the_newest(
    memory: EpisodicMemory,
) -> None:
    old = make_episode(MAYA, final_answer="11", created_at=1.0)
    new = make_episode(MAYA, final_answer="12", created_at=2.0)
    memory.put(new)
    memory.put(make_episode(TRAIN))
    memory.put(old)  # written last, but older
    assert memory.find("default", question_key(MAYA)) == new
    assert memory.find("default", question_key(BAKE)) is None
    newer = make_episode(MAYA, final_answer="13", created_at=3.0)
    memory.put(newer)
    assert memory.find("default", question_key(MAYA)) == newer


def test_only_verified_episodes_are_found_or_searched(memory: EpisodicMemory) -> None:
    unsure = make_episode(MAYA, verified=False)
    memory.put(unsure)
    assert memory.find("default", question_key(MAYA)) is None
    assert memory.search("default", MAYA) == []
    assert memory.episodes("default") == [unsure]


def test_an_episode_overwritten_unverified_is_no_longer_reused(
    memory: EpisodicMemory,
) -> None:
    verified = make_episode(MAYA)
    memory.put(verified)
    memory.put({**verified, "verified": False})
    assert memory.find("default", question_key(MAYA)) is None
    assert memory.search("default", MAYA) == []


def test_exact_repeat_lookup_is_a_key_read_not_a_search(store: BaseStore) -> None:
    episode = make_episode(MAYA)
    EpisodicMemory(store).put(episode)
    no_search = FaultyStore(
        store, fails=lambda op: isinstance(op, SearchOp), error=RuntimeError("scan")
    )
    assert EpisodicMemory(no_search).find("default", episode["question_key"]) == episode
    assert no_search.batches == 3  # the pointer, the episode, its reflection


async def test_namespaces_are_isolated(memory: EpisodicMemory, is_async: bool) -> None:
    a = make_episode(MAYA, namespace="a", final_answer="11")
    b = make_episode(MAYA, namespace="b", id=a["id"], final_answer="12")
    await put(memory, a, is_async=is_async)
    await put(memory, b, is_async=is_async)
    memory.put_lessons("a", "Lessons of a.")
    assert memory.episodes("a") == [a]
    assert memory.episodes("b") == [b]
    assert memory.find("a", question_key(MAYA)) == a
    assert [m["episode"] for m in memory.search("b", MAYA)] == [b]
    assert memory.episodes("c") == []
    assert (memory.get_lessons("a"), memory.get_lessons("b")) == ("Lessons of a.", None)


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", "1234", 123, None, 1.5])
def test_invalid_episode_id(memory: EpisodicMemory, bad_id: object) -> None:
    with pytest.raises(InvalidInputError, match="UUID"):
        memory.put({**make_episode(MAYA), "id": bad_id})  # type: ignore[typeddict-item]
    assert memory.episodes("default") == []


def test_uuid_case_is_normalised(memory: EpisodicMemory) -> None:
    episode = make_episode(MAYA)
    memory.put({**episode, "id": episode["id"].upper()})  # type: ignore[typeddict-item]
    memory.put(episode)
    memory.set_reflection("default", episode["id"].upper(), "Multiply first.")
    assert memory.episodes("default") == [{**episode, "reflection": "Multiply first."}]


@pytest.mark.parametrize("namespace", ["", "   ", None, 3, "a.b"])
async def test_invalid_namespace(
    memory: EpisodicMemory, is_async: bool, namespace: Any
) -> None:
    with pytest.raises(InvalidInputError, match="namespace"):
        await put(memory, make_episode(MAYA, namespace=namespace), is_async=is_async)
    for read in (
        lambda: memory.find(namespace, "k"),
        lambda: memory.search(namespace, MAYA),
        lambda: memory.episodes(namespace),
        lambda: memory.get_lessons(namespace),
        lambda: memory.put_lessons(namespace, "x"),
    ):
        with pytest.raises(InvalidInputError, match="namespace"):
            read()


def test_many_episodes_are_all_listed_oldest_first(
    memory: EpisodicMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_PAGE", 7)
    stored = [
        make_episode(f"What is {i} + {i}?", created_at=float(100 - i))
        for i in range(23)
    ]
    for episode in stored:
        memory.put(episode)
    listed = memory.episodes("default")
    assert listed == sorted(stored, key=lambda e: e["created_at"])


async def test_reflections_attach_without_re_embedding(
    memory: EpisodicMemory, embeddings: HashEmbeddings, is_async: bool
) -> None:
    episode = make_episode(MAYA)
    memory.put(episode)
    calls = embeddings.calls
    if is_async:
        await memory.aset_reflection("default", episode["id"], "Multiply first.")
    else:
        memory.set_reflection("default", episode["id"], "Multiply first.")
    memory.set_reflection("default", episode["id"], "Multiply, then add.")
    assert embeddings.calls == calls
    reflected = {**episode, "reflection": "Multiply, then add."}
    assert memory.episodes("default") == [reflected]
    assert memory.find("default", episode["question_key"]) == reflected
    assert [m["episode"] for m in memory.search("default", MAYA)] == [reflected]
    with pytest.raises(InvalidInputError, match="no episode"):
        memory.set_reflection("other", episode["id"], "Not yours.")
    with pytest.raises(InvalidInputError, match="no episode"):
        memory.set_reflection("default", str(uuid.uuid4()), "Nobody's.")


async def test_lessons_round_trip_and_never_appear_as_episodes(
    memory: EpisodicMemory, is_async: bool
) -> None:
    if is_async:
        await memory.aput_lessons("default", "  Check the units.  ")
        assert await memory.aget_lessons("default") == "Check the units."
    else:
        memory.put_lessons("default", "  Check the units.  ")
        assert memory.get_lessons("default") == "Check the units."
    # Lessons may come before any episode; they are never read as one.
    assert memory.episodes("default") == []
    assert memory.search("default", "Check the units.") == []
    memory.put_lessons("default", "Multiply first.")
    assert memory.get_lessons("default") == "Multiply first."


@pytest.mark.parametrize("text", ["", "   ", None, 3])
def test_empty_lessons_and_reflections_are_rejected(
    memory: EpisodicMemory, text: Any
) -> None:
    episode = make_episode(MAYA)
    memory.put(episode)
    with pytest.raises(InvalidInputError, match="lessons"):
        memory.put_lessons("default", text)
    with pytest.raises(InvalidInputError, match="reflection"):
        memory.set_reflection("default", episode["id"], text)
    assert memory.get_lessons("default") is None
    assert memory.episodes("default") == [episode]


def outcome(question: str, decision: str, **fields: Any) -> Any:
    episode: Any = make_episode(question, **fields.pop("episode", {}))
    episode.update(decision=decision, budget=4, **fields)
    return episode


def test_outcomes_are_totals_kept_with_each_write(memory: EpisodicMemory) -> None:
    memory.put(outcome(MAYA, "scratch", similarity=None, budget_used=2))
    memory.put(outcome(TRAIN, "exemplars", similarity=0.7, budget_used=1))
    memory.put(outcome(BAKE, "exemplars", similarity=0.79, budget_used=3))
    failed = outcome(
        "What is 2 + 2?", "exemplars", similarity=0.7, episode={"verified": False}
    )
    memory.put(failed)
    memory.put(outcome("What is 1 + 1?", "reuse", similarity=0.99, budget_used=0))
    memory.put(make_episode("What is 5 + 5?"))  # written outside the router
    assert memory.outcomes("default") == {
        "baseline": [1, 0.5],
        "70": [2, 0.75],
        "79": [1, 0.25],
    }
    # Replacing an episode moves its outcome; removing one's band removes it.
    memory.put({**failed, "similarity": 0.9, "verified": True, "budget_used": 2})
    assert memory.outcomes("default") == {
        "baseline": [1, 0.5],
        "70": [1, 0.75],
        "79": [1, 0.25],
        "90": [1, 0.5],
    }


def test_a_store_without_a_vector_index_is_a_clear_error() -> None:
    memory = EpisodicMemory(InMemoryStore())
    memory.put(make_episode(MAYA))
    assert memory.find("default", question_key(MAYA)) is not None
    with pytest.raises(ConfigurationError, match="no vector index"):
        memory.search("default", MAYA)


# -- votes of unverified attempts ------------------------------------------------------


def attempt(votes: list[str], **episode: Any) -> Any:
    return {**make_episode(MAYA, verified=False, **episode), "votes": votes}


async def test_unverified_attempts_keep_their_votes_once_each(
    memory: EpisodicMemory, is_async: bool
) -> None:
    key = question_key(MAYA)
    first = attempt(["42", "17"], created_at=1.0)
    await put(memory, first, is_async=is_async)
    await put(memory, first, is_async=is_async)  # idempotent: counted once
    await put(memory, attempt(["42"], created_at=2.0), is_async=is_async)
    votes = (
        await memory.avotes("default", key)
        if is_async
        else memory.votes("default", key)
    )
    assert votes == ["42", "17", "42"]
    # Another tenant or question holds none.
    assert memory.votes("team-b", key) == []
    assert memory.votes("default", question_key(TRAIN)) == []


def test_a_verified_rewrite_drops_its_attempt_and_old_attempts_age_out(
    memory: EpisodicMemory,
) -> None:
    key = question_key(MAYA)
    first = attempt(["17"], created_at=1.0)
    memory.put(first)
    memory.put({**first, "verified": True, "votes": ["42"]})
    assert memory.votes("default", key) == []
    for when in range(store_module.MAX_VOTED_ATTEMPTS + 2):
        memory.put(attempt([str(when)], created_at=float(when)))
    kept = memory.votes("default", key)
    assert kept == [str(w) for w in range(2, store_module.MAX_VOTED_ATTEMPTS + 2)]


@pytest.mark.parametrize(
    "votes",
    [["1"] * (store_module.MAX_VOTES + 1), ["9" * 300], ["\ud800"]],
    ids=["too-many", "too-long", "lone-surrogate"],
)
def test_bad_votes_are_refused_before_anything_is_written(
    memory: EpisodicMemory, votes: list[str]
) -> None:
    with pytest.raises(InvalidInputError, match="votes"):
        memory.put(attempt(votes))
    assert memory.episodes("default") == []
    assert memory.votes("default", question_key(MAYA)) == []
