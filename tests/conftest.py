"""Hermetic fixtures: no provider credentials, no servers, fresh fakes per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import pytest
from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore

from langchain_speedup import EpisodicMemory
from tests.fakes import (
    FakeChatModel,
    HashEmbeddings,
    Run,
    new_qdrant_store,
    new_store,
    solve,
    sum_solver,
)

STORES: dict[str, Callable[[Embeddings], BaseStore]] = {
    "in_memory": new_store,
    "qdrant": new_qdrant_store,
}
"""The LangGraph stores every memory test runs on, built around the test's
embeddings (one line adds a store)."""

_LEAKY_ENV = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "QDRANT_URL", "QDRANT_API_KEY")


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may see a developer's model server or Qdrant credentials."""
    for name in _LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "1")


@pytest.fixture
def model() -> FakeChatModel:
    """Answers every question with the sum of its integers, with usage."""
    return FakeChatModel(responder=sum_solver)


@pytest.fixture
def embeddings() -> HashEmbeddings:
    return HashEmbeddings()


@pytest.fixture(params=sorted(STORES))
def make_store(request: pytest.FixtureRequest) -> Callable[[Embeddings], BaseStore]:
    """Builds an empty store of each kind in `STORES` around given embeddings."""
    return STORES[request.param]


@pytest.fixture
def store(
    make_store: Callable[[Embeddings], BaseStore], embeddings: HashEmbeddings
) -> Iterator[BaseStore]:
    """An empty store indexed with the test's `embeddings`, closed afterwards."""
    store = make_store(embeddings)
    embeddings.calls = 0  # sizing the index is no call of the test's
    yield store
    close = getattr(store, "close", None)
    if close is not None:
        close()


@pytest.fixture
def memory(store: BaseStore) -> EpisodicMemory:
    """The package's memory in `store`."""
    return EpisodicMemory(store)


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def is_async(request: pytest.FixtureRequest) -> bool:
    """Runs a test through the sync path, then through the async one."""
    return bool(request.param)


@pytest.fixture
def run(request: pytest.FixtureRequest, is_async: bool) -> Run:
    """`run(model, question, **options)`: the test module's `ENGINE`, built from
    `options` and run sync, then async (see `solve`)."""
    return partial(solve, request.module.ENGINE, is_async=is_async)
