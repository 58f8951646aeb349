"""Live fixtures: one real local model server for the whole session.

The tier runs against llama-cpp-python's server on loopback, started here and
stopped by PID at the end of the session. When `OPENAI_BASE_URL` is set, the
chat model talks to that server instead (the semantics of `open_chat_model`)
and nothing is started for the session; the tests that need a process of
their own still start one.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_openai import ChatOpenAI
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from pydantic import SecretStr

from langchain_speedup import memory_index
from langchain_speedup.local import (
    DEFAULT_MODEL,
    LocalModelServer,
    MiniLMEmbeddings,
    open_chat_model,
)
from langchain_speedup.memory.qdrant import QdrantStore
from tests.fakes import episodes_in as episodes_in

CHAT_OPTIONS: dict[str, Any] = {"temperature": 0.7, "max_tokens": 256}
SERVER_THREADS = 1


def assert_process_gone(pid: int) -> None:
    """Fail unless `pid` no longer runs (a reaped or zombie process passes)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    with contextlib.suppress(FileNotFoundError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat.rsplit(")", 1)[1].split()[0]
        assert state == "Z", f"process {pid} still runs (state {state})"


@pytest.fixture(scope="session")
def local_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalModelServer | None]:
    """The session's model server; `None` when `OPENAI_BASE_URL` names one."""
    if os.environ.get("OPENAI_BASE_URL"):
        yield None
        return
    log = tmp_path_factory.mktemp("server-logs") / "session-server.log"
    # One inference thread: when the two cores are shared with another busy
    # llama.cpp server, a two-thread server stalls in its spinning barriers
    # (8 short calls: 270 s with two threads, 76 s with one). On an idle
    # machine one thread is somewhat slower per token.
    with LocalModelServer(n_threads=SERVER_THREADS, log_path=log) as server:
        pid = server.pid
        assert pid is not None
        yield server
    assert server.pid is None
    assert_process_gone(pid)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every async test on one session-wide event loop.

    langchain-openai shares one async HTTP client per base URL across all
    `ChatOpenAI` instances, and that client belongs to the event loop that
    first used it; with a loop per test, the second async test would find it
    closed.
    """
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(
            item.function
        ):
            # Prepended, so it wins over the marker auto mode adds.
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


@pytest.fixture(scope="session")
def chat_model(local_server: LocalModelServer | None) -> Iterator[ChatOpenAI]:
    """A sampling chat model on the session's server."""
    if local_server is None:
        with open_chat_model(**CHAT_OPTIONS) as model:
            yield model
        return
    yield local_server.chat_model(**CHAT_OPTIONS)


@pytest.fixture
def unreachable_model() -> ChatOpenAI:
    """A chat model whose server is a loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return ChatOpenAI(
        model=DEFAULT_MODEL,
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key=SecretStr("none"),
        max_retries=0,
        timeout=5,
    )


@pytest.fixture(scope="session")
def process_gone() -> Callable[[int], None]:
    """`assert_process_gone`, for fixtures of test modules."""
    return assert_process_gone


@pytest.fixture(scope="session")
def embeddings() -> MiniLMEmbeddings:
    """The offline MiniLM embeddings."""
    return MiniLMEmbeddings()


STORES: dict[str, Callable[[Embeddings], BaseStore]] = {
    "qdrant": lambda embeddings: QdrantStore(index=memory_index(embeddings)),
    "in_memory": lambda embeddings: InMemoryStore(index=memory_index(embeddings)),
}
"""The LangGraph stores the live tests run on (one line adds a store)."""


def new_store(embeddings: Embeddings) -> BaseStore:
    """An empty store of the first kind in `STORES`, indexed with `embeddings`."""
    return STORES[next(iter(STORES))](embeddings)


def copy_of_store(store: BaseStore, embeddings: Embeddings) -> BaseStore:
    """A new store holding `store`'s items, for a test that writes to it."""
    copy = new_store(embeddings)
    for namespace in store.list_namespaces(limit=10_000):
        for item in store.search(namespace, limit=100_000):
            index = ["question"] if namespace[-1] == "episodes" else False
            copy.put(namespace, item.key, item.value, index=index)
    return copy
