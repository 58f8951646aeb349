"""`migrate-store`: a store written by 0.1.0 copied into today's layout."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models

from langchain_speedup.cli import main
from langchain_speedup.errors import MemoryStoreError
from langchain_speedup.memory.migrate import OLD_COLLECTION, migrate_store
from langchain_speedup.memory.qdrant import QdrantStore
from langchain_speedup.memory.store import EpisodicMemory, memory_index
from tests.fakes import BAKE, MAYA, TRAIN, HashEmbeddings, make_episode

DIMS = 64


def write_old_store(path: Path) -> dict[str, object]:
    """A store in 0.1.0's layout, written with qdrant-client as 0.1.0 did."""
    embeddings = HashEmbeddings(DIMS)
    old = make_episode(MAYA, final_answer="11", created_at=1.0)
    new = make_episode(MAYA, final_answer="12", created_at=2.0)
    unverified = make_episode(TRAIN, verified=False)
    other = make_episode(BAKE, namespace="tenant-b")
    reflected = {**make_episode(BAKE), "reflection": "count the cakes sold"}
    client = QdrantClient(path=str(path))
    client.create_collection(
        OLD_COLLECTION,
        vectors_config=models.VectorParams(size=DIMS, distance=models.Distance.COSINE),
    )
    points = [
        models.PointStruct(
            id=str(uuid.uuid4()),
            vector=embeddings.embed_query(str(e["question"])),
            payload=dict(e),
        )
        for e in (old, new, unverified, other, reflected)
    ]
    points.append(
        models.PointStruct(
            id=str(uuid.uuid4()),
            vector=[1.0] + [0.0] * (DIMS - 1),
            payload={"kind": "lessons", "namespace": "default", "lessons": "be exact"},
        )
    )
    points.append(
        models.PointStruct(
            id=str(uuid.uuid4()), vector=[1.0] * DIMS, payload={"junk": True}
        )
    )
    client.upsert(OLD_COLLECTION, points=points)
    client.close()
    return {
        "new": new,
        "unverified": unverified,
        "other": other,
        "reflected": reflected,
    }


def test_migrates_episodes_reflections_and_lessons(tmp_path: Path) -> None:
    episodes = write_old_store(tmp_path / "old")
    with pytest.raises(MemoryStoreError, match="migrate-store"):
        QdrantStore(path=tmp_path / "old")
    report = migrate_store(tmp_path / "old", tmp_path / "new")
    assert report == {"episodes": 5, "reflections": 1, "lessons": 1, "skipped": 1}
    index = memory_index(HashEmbeddings(DIMS))
    with QdrantStore(path=tmp_path / "new", index=index) as store:
        memory = EpisodicMemory(store)
        found = memory.find("default", str(episodes["new"]["question_key"]))  # type: ignore[index]
        assert found is not None
        assert found["final_answer"] == "12"  # the newest verified of the question
        assert memory.find("default", episodes["unverified"]["question_key"]) is None  # type: ignore[index]
        matches = memory.search("default", MAYA, limit=3)
        assert matches[0]["episode"]["question"] == MAYA
        assert matches[0]["similarity"] == pytest.approx(1.0, abs=1e-5)
        assert {m["episode"]["question"] for m in memory.search("tenant-b", MAYA)} == {
            BAKE
        }
        reflected = memory.find("default", episodes["reflected"]["question_key"])  # type: ignore[index]
        assert reflected is not None
        assert reflected.get("reflection") == "count the cakes sold"
        assert memory.get_lessons("default") == "be exact"
        assert memory.get_lessons("tenant-b") is None
        assert len(memory.episodes("default")) == 4


def test_refuses_what_it_cannot_migrate(tmp_path: Path) -> None:
    with pytest.raises(MemoryStoreError, match=r"no store written by 0\.1\.0"):
        migrate_store(tmp_path / "missing", tmp_path / "new")
    write_old_store(tmp_path / "old")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x", encoding="utf-8")
    with pytest.raises(MemoryStoreError, match="not empty"):
        migrate_store(tmp_path / "old", tmp_path / "full")


def test_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_old_store(tmp_path / "old")
    assert main(["migrate-store", str(tmp_path / "old"), str(tmp_path / "new")]) == 0
    assert "5 episodes, 1 reflections, 1 lessons" in capsys.readouterr().out
    assert main(["migrate-store", str(tmp_path / "old"), str(tmp_path / "new")]) == 1
    assert "not empty" in capsys.readouterr().err
