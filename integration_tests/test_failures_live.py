"""Failures of the model server: unreachable, killed mid-run, port taken."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.store.base import BaseStore

from integration_tests.conftest import episodes_in, new_store
from langchain_speedup import (
    BestOfN,
    BudgetRouter,
    ConsensusScorer,
    ModelError,
    create_speedup_graph,
)
from langchain_speedup.bench.questions import DEMO_SYSTEM_PROMPT, TEMPLATES
from langchain_speedup.errors import LocalStackError
from langchain_speedup.local import LocalModelServer, MiniLMEmbeddings

pytestmark = pytest.mark.integration

NAMESPACE = "failures"


def refuses_connections(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def make_router(
    model: ChatOpenAI, store: BaseStore, embeddings: MiniLMEmbeddings, n: int
) -> BudgetRouter:
    return BudgetRouter(
        BestOfN(
            model,
            budget=n,
            scorer=ConsensusScorer(quorum=2),
            system_prompt=DEMO_SYSTEM_PROMPT,
        ),
        store=store,
        namespace=NAMESPACE,
    )


@pytest.fixture
def second_server(
    tmp_path: Path, process_gone: Callable[[int], None]
) -> Iterator[LocalModelServer]:
    """A small server of the test's own, stopped (or found dead) by PID."""
    with LocalModelServer(
        n_ctx=1024, n_threads=1, log_path=tmp_path / "second-server.log"
    ) as server:
        pid = server.pid
        assert pid is not None
        yield server
    assert server.pid is None
    process_gone(pid)


async def test_unreachable_server_raises_model_error_and_writes_nothing(
    unreachable_model: ChatOpenAI, embeddings: MiniLMEmbeddings, tmp_path: Path
) -> None:
    dead = unreachable_model
    store = new_store(embeddings)
    router = make_router(dead, store, embeddings, n=2)
    question = TEMPLATES[0].question(0)

    with pytest.raises(ModelError, match="reachable") as info:
        router.solve(question)
    assert info.value.role == "solver"
    with pytest.raises(ModelError, match="reachable"):
        await router.asolve(question)
    graph = create_speedup_graph(
        BestOfN(dead, budget=2),
        store=store,
        namespace=NAMESPACE,
    )
    with pytest.raises(ModelError, match="reachable"):
        graph.invoke({"messages": [HumanMessage(question)]})

    assert episodes_in(store, NAMESPACE) == []


def test_server_killed_mid_run_raises_model_error_and_keeps_memory(
    second_server: LocalModelServer, embeddings: MiniLMEmbeddings, tmp_path: Path
) -> None:
    model = second_server.chat_model(
        temperature=0.7, max_tokens=256, max_retries=0, timeout=60
    )
    store = new_store(embeddings)
    router = make_router(model, store, embeddings, n=2)
    first = router.solve(TEMPLATES[0].question(0))
    assert first["result"] is not None
    assert first["usage"]["generations"] >= 1
    assert len(episodes_in(store, NAMESPACE)) == 1

    pid = second_server.pid
    port = second_server.port
    assert pid is not None
    assert port is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not refuses_connections(port):
        assert time.monotonic() < deadline, "the killed server still accepts"
        time.sleep(0.1)

    # A different problem, so that memory cannot answer it.
    with pytest.raises(ModelError) as info:
        router.solve(TEMPLATES[3].question(0))
    assert info.value.role == "solver"
    assert len(episodes_in(store, NAMESPACE)) == 1
    assert [e["id"] for e in episodes_in(store, NAMESPACE)] == [first["episode_id"]]


class _ImpostorHandler(BaseHTTPRequestHandler):
    """Answers `GET /v1/models` like an OpenAI-compatible server."""

    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": "someone-else"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_server_on_a_taken_port_fails_instead_of_adopting_another(
    tmp_path: Path,
) -> None:
    impostor = ThreadingHTTPServer(("127.0.0.1", 0), _ImpostorHandler)
    thread = threading.Thread(target=impostor.serve_forever, daemon=True)
    thread.start()
    try:
        port = impostor.server_address[1]
        server = LocalModelServer(port=port, log_path=tmp_path / "server.log")
        with pytest.raises(LocalStackError, match="already in use"):
            server.start()
        assert server.pid is None
    finally:
        impostor.shutdown()
        impostor.server_close()
        thread.join(5)
