"""The example graph on `langgraph dev`, driven through `langgraph-sdk`.

The server runs the repository's `langgraph.json` on 127.0.0.1 in this
test's own process group, against the session's local model server, and is
stopped by its PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from langchain_speedup.local import LocalModelServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Maya buys 3 notebooks at $4 each and pays with a $20 bill. How much change does Maya get, in dollars?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def api_url(
    local_server: LocalModelServer | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "LANGSMITH_TRACING": "false"}
    if local_server is not None:
        env["OPENAI_BASE_URL"] = local_server.base_url
    log = tmp_path_factory.mktemp("langgraph-dev") / "server.log"
    command = [
        str(Path(sys.executable).with_name("langgraph")),
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


async def run_once(client: Any, context: dict[str, Any]) -> list[tuple[str, Any]]:
    thread = await client.threads.create()
    return [
        (part.event, part.data)
        async for part in client.runs.stream(
            thread["thread_id"],
            "speedup",
            input={"messages": [{"role": "user", "content": QUESTION}]},
            stream_mode=["custom", "updates"],
            context=context,
        )
    ]


async def test_the_route_arrives_before_the_answer_and_a_repeat_is_reused(
    api_url: str,
) -> None:
    async with get_client(url=api_url) as client:
        [assistant] = await client.assistants.search(graph_id="speedup")
        schemas = await client.assistants.get_schemas(assistant["assistant_id"])
        assert set(schemas["context_schema"]["properties"]) == {
            "budget",
            "threshold",
            "namespace",
        }

        decisions, verified = [], []
        for _ in range(2):  # two threads: the same conversation twice
            parts = await run_once(client, {"budget": 3, "namespace": "server-test"})
            routes = [
                d for e, d in parts if e == "custom" and d.get("event") == "route"
            ]
            [route] = routes
            decisions.append(route["decision"])
            # The route event comes before the update that holds the answer.
            answered = next(
                i
                for i, (e, d) in enumerate(parts)
                if e == "updates" and ({"remember", "reuse"} & set(d or {}))
            )
            routed = next(
                i
                for i, (e, d) in enumerate(parts)
                if e == "custom" and d.get("event") == "route"
            )
            assert routed < answered
            [update] = [d for e, d in parts[answered : answered + 1]]
            node = "reuse" if route["decision"] == "reuse" else "remember"
            answer = update[node]["speedup"]
            assert answer["route"]["decision"] == route["decision"]
            assert answer["route"]["budget"] == (0 if node == "reuse" else 3)
            if node == "remember":
                assert answer["result"]["budget_used"] <= 3
                verified.append(answer["result"]["passed"])
        assert decisions[0] == "scratch"
        # Reused when the first answer was verified; only verified answers are.
        assert decisions[1] == ("reuse" if verified[0] else "scratch")
