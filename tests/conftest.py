"""Hermetic fixtures: no provider credentials, no servers, fresh fakes per test."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest

from langchain_speedup import QdrantEpisodicStore
from tests.fakes import FakeChatModel, HashEmbeddings, Run, solve, sum_solver

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


@pytest.fixture
def store() -> Iterator[QdrantEpisodicStore]:
    """An embedded in-memory Qdrant store."""
    with QdrantEpisodicStore() as s:
        yield s


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def is_async(request: pytest.FixtureRequest) -> bool:
    """Runs a test through the sync path, then through the async one."""
    return bool(request.param)


@pytest.fixture
def run(request: pytest.FixtureRequest, is_async: bool) -> Run:
    """`run(model, question, **options)`: the test module's `ENGINE`, built from
    `options` and run sync, then async (see `solve`)."""
    return partial(solve, request.module.ENGINE, is_async=is_async)
