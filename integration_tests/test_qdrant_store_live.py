"""QdrantStore with the real MiniLM embeddings, on both engines, on disk.

No Qdrant server installs offline here (see the README): the server path is
qdrant-client's, exercised here through its local mode with the same calls.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.store.memory import InMemoryStore

from langchain_speedup import EpisodicMemory, memory_index, question_key
from langchain_speedup.local import MiniLMEmbeddings
from langchain_speedup.memory.qdrant import QdrantStore
from tests.fakes import BAKE, MAYA, TRAIN, make_episode

PARAPHRASE = "Maya purchases 3 pens that cost 4 dollars each. What does she spend?"
NEW_NUMBERS = "Maya buys 5 pens at 2 dollars each. How many dollars does Maya spend?"


@pytest.mark.parametrize("engine", ["edge", "client"])
def test_real_embeddings_rank_as_in_memory_and_survive_reopen(
    engine: str, tmp_path: Path, embeddings: MiniLMEmbeddings
) -> None:
    index = memory_index(embeddings)
    oracle = EpisodicMemory(InMemoryStore(index=index))
    episodes = [make_episode(q) for q in (MAYA, TRAIN, BAKE)]
    with QdrantStore(engine=engine, path=tmp_path, index=index) as store:  # type: ignore[arg-type]
        memory = EpisodicMemory(store)
        for episode in episodes:
            memory.put(episode)
            oracle.put(episode)
        for question in (PARAPHRASE, NEW_NUMBERS, TRAIN):
            got = memory.search("default", question, limit=3)
            want = oracle.search("default", question, limit=3)
            assert [m["episode"]["id"] for m in got] == [
                m["episode"]["id"] for m in want
            ]
            assert [m["similarity"] for m in got] == pytest.approx(
                [m["similarity"] for m in want], abs=1e-4
            )
    with QdrantStore(engine=engine, path=tmp_path, index=index) as store:  # type: ignore[arg-type]
        memory = EpisodicMemory(store)
        assert memory.find("default", question_key(MAYA)) == episodes[0]
        [best, *_] = memory.search("default", PARAPHRASE)
        assert best["episode"]["question"] == MAYA
        assert best["similarity"] > 0.8
