"""The local model's client and server: the generation cap the server
understands, one request in flight per server slot, and a server that never
outlives its owner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.load import dumpd, load
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI

from langchain_speedup.local import LocalChatOpenAI, open_chat_model
from langchain_speedup.local.model import _port_in_use


def _payload(model: ChatOpenAI) -> dict:
    return model._get_request_payload([HumanMessage("hi")])


def test_max_tokens_reaches_llama_cpp_as_max_tokens() -> None:
    model = LocalChatOpenAI(
        model="m", base_url="http://127.0.0.1:1/v1", api_key="x", max_tokens=7
    )
    payload = _payload(model)
    assert payload["max_tokens"] == 7
    assert "max_completion_tokens" not in payload


def test_bound_max_tokens_is_renamed_too() -> None:
    model = LocalChatOpenAI(model="m", base_url="http://127.0.0.1:1/v1", api_key="x")
    payload = model._get_request_payload([HumanMessage("hi")], max_tokens=3)
    assert payload["max_tokens"] == 3
    assert "max_completion_tokens" not in payload


def test_a_tool_call_turn_goes_out_with_string_content() -> None:
    model = LocalChatOpenAI(model="m", base_url="http://127.0.0.1:1/v1", api_key="x")
    call = {"name": "calculator", "args": {"expression": "2 + 3"}, "id": "call_1"}
    payload = model._get_request_payload(
        [
            HumanMessage("What is 2 + 3?"),
            AIMessage("", tool_calls=[call]),
            ToolMessage("5", tool_call_id="call_1"),
        ]
    )
    assistant = payload["messages"][1]
    assert assistant["tool_calls"][0]["function"]["name"] == "calculator"
    assert assistant["content"] == ""


@pytest.mark.filterwarnings("ignore:The function `load` is in beta")
def test_a_serialized_model_loads_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-1")
    model = LocalChatOpenAI(
        model="m", base_url="http://127.0.0.1:1/v1", max_tokens=5, server_slots=2
    )
    serialized = dumpd(model)
    assert serialized["id"] == [
        "langchain_speedup",
        "local",
        "model",
        "LocalChatOpenAI",
    ]
    assert "sk-local-1" not in json.dumps(serialized)
    loaded = load(
        serialized,
        valid_namespaces=["langchain_speedup"],
        allowed_objects=[LocalChatOpenAI],
        secrets_from_env=True,
    )
    assert isinstance(loaded, LocalChatOpenAI)
    assert (loaded.max_tokens, loaded.server_slots) == (5, 2)
    assert loaded.openai_api_key is not None
    assert loaded.openai_api_key.get_secret_value() == "sk-local-1"


def test_plain_chat_openai_would_send_max_completion_tokens() -> None:
    # The reason `LocalChatOpenAI` exists: if this starts failing, upstream
    # changed and the override may be unnecessary.
    model = ChatOpenAI(
        model="m", base_url="http://127.0.0.1:1/v1", api_key="x", max_tokens=7
    )
    assert _payload(model).get("max_completion_tokens") == 7


def test_a_compatible_server_from_the_environment_gets_max_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with open_chat_model(max_tokens=20) as model:
        assert isinstance(model, LocalChatOpenAI)
        payload = model._get_request_payload([HumanMessage("hi")])
    assert payload["max_tokens"] == 20
    assert "max_completion_tokens" not in payload


def test_openai_itself_gets_max_completion_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with open_chat_model(max_tokens=20) as model:
        assert not isinstance(model, LocalChatOpenAI)
        payload = model._get_request_payload([HumanMessage("hi")])
    assert payload["max_completion_tokens"] == 20


# -- one request in flight per server -------------------------------------------------


class OneSlotServer:
    """A fake transport for a server that computes one completion at a time.

    Like llama-cpp-python's server, it queues the requests it receives, and a
    queued request's wait counts against its read timeout: one still waiting
    when the timeout ends is dropped (`httpx.ReadTimeout`).
    """

    def __init__(self, seconds_per_reply: float = 0.1) -> None:
        self.seconds_per_reply = seconds_per_reply
        self.prompts: list[str] = []
        self.in_flight = 0
        self.peak = 0
        self._busy_until = 0.0
        self._lock = threading.Lock()

    def _arrive(self, request: httpx.Request) -> tuple[float, bool]:
        """Queue `request`: (seconds until it is answered or dropped, answered?)."""
        timeout = request.extensions["timeout"]["read"]
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            now = time.monotonic()
            self._busy_until = max(now, self._busy_until) + self.seconds_per_reply
            wait = self._busy_until - now
            return (wait, True) if wait <= timeout else (timeout, False)

    def _reply(self, request: httpx.Request, answered: bool) -> httpx.Response:
        with self._lock:
            self.in_flight -= 1
        if not answered:
            raise httpx.ReadTimeout("queued past the timeout", request=request)
        body = json.loads(request.content)
        prompt = body["messages"][-1]["content"]
        with self._lock:
            self.prompts.append(prompt)
        if body.get("stream"):
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content=b"".join(
                    b"data: " + json.dumps(_chunk(piece, done)).encode() + b"\n\n"
                    for piece, done in ((f"echo {prompt}", False), ("", True))
                )
                + b"data: [DONE]\n\n",
            )
        return httpx.Response(200, json=_completion(f"echo {prompt}"))

    def handle(self, request: httpx.Request) -> httpx.Response:
        seconds, answered = self._arrive(request)
        time.sleep(seconds)
        return self._reply(request, answered)

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        seconds, answered = self._arrive(request)
        await asyncio.sleep(seconds)
        return self._reply(request, answered)


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunk(text: str, done: bool) -> dict[str, Any]:
    delta = {} if done else {"role": "assistant", "content": text}
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "delta": delta, "finish_reason": "stop" if done else None}
        ],
    }


@pytest.fixture
def server() -> OneSlotServer:
    return OneSlotServer()


@pytest.fixture
def connect(server: OneSlotServer) -> Iterator[Callable[..., LocalChatOpenAI]]:
    """`connect(**options)`: a `LocalChatOpenAI` talking to `server`."""
    # A base URL of the test's own: limiters are shared per URL in the process.
    base_url = f"http://one-slot-{uuid.uuid4().hex}.test/v1"
    clients = httpx.Client(transport=httpx.MockTransport(server.handle))
    aclients = httpx.AsyncClient(transport=httpx.MockTransport(server.ahandle))

    def connect(**options: Any) -> LocalChatOpenAI:
        defaults: dict[str, Any] = {"max_retries": 0, "timeout": 0.25}
        return LocalChatOpenAI(
            model="m",
            base_url=base_url,
            api_key="x",
            http_client=clients,
            http_async_client=aclients,
            **{**defaults, **options},
        )

    with clients:
        yield connect


PROMPTS = [f"question {i}" for i in range(5)]


async def test_a_batch_is_not_dropped_by_a_one_slot_server(
    server: OneSlotServer, connect: Callable[..., LocalChatOpenAI], is_async: bool
) -> None:
    # Five replies of 0.1 s each: the last waits 0.4 s in the server's queue,
    # past the 0.25 s timeout, unless the client sends one request at a time.
    model = connect()
    replies = await model.abatch(PROMPTS) if is_async else model.batch(PROMPTS)
    assert [reply.text for reply in replies] == [f"echo {p}" for p in PROMPTS]
    assert server.peak == 1
    if is_async:  # tasks line up in the order the batch made them
        assert server.prompts == PROMPTS
    else:
        assert sorted(server.prompts) == PROMPTS


async def test_without_the_limit_a_one_slot_server_drops_queued_requests(
    server: OneSlotServer, connect: Callable[..., LocalChatOpenAI], is_async: bool
) -> None:
    # The failure the limit prevents, on the same fake server.
    model = connect(server_slots=None)
    with pytest.raises(openai.APITimeoutError):
        await model.abatch(PROMPTS) if is_async else model.batch(PROMPTS)
    assert server.peak == len(PROMPTS)


async def test_a_server_with_more_slots_gets_that_many_requests_at_once(
    server: OneSlotServer, connect: Callable[..., LocalChatOpenAI], is_async: bool
) -> None:
    model = connect(server_slots=2, timeout=5)
    await model.abatch(PROMPTS) if is_async else model.batch(PROMPTS)
    assert server.peak == 2


def test_a_sync_stream_holds_its_slot_until_it_ends(
    server: OneSlotServer, connect: Callable[..., LocalChatOpenAI]
) -> None:
    model = connect(timeout=5)
    chunks = model.stream("first")
    assert next(chunks).text == "echo first"
    second = threading.Thread(target=model.invoke, args=("second",))
    second.start()
    second.join(0.3)
    assert second.is_alive()
    assert server.prompts == ["first"]
    # The stream's own thread does not wait for the slot it holds.
    assert model.invoke("nested").text == "echo nested"
    assert "".join(chunk.text for chunk in chunks) == ""
    second.join(5)
    assert not second.is_alive()
    assert server.prompts == ["first", "nested", "second"]


async def test_an_async_stream_holds_its_slot_until_it_ends(
    server: OneSlotServer, connect: Callable[..., LocalChatOpenAI]
) -> None:
    model = connect(timeout=5)
    chunks = model.astream("first")
    assert (await anext(chunks)).text == "echo first"
    second = asyncio.create_task(model.ainvoke("second"))
    await asyncio.sleep(0.3)
    assert not second.done()
    assert server.prompts == ["first"]
    assert "".join([chunk.text async for chunk in chunks]) == ""
    assert (await second).text == "echo second"
    assert server.prompts == ["first", "second"]


async def test_a_cancelled_waiter_gives_up_its_place_and_no_slot_is_lost(
    server: OneSlotServer, connect: Callable[..., LocalChatOpenAI]
) -> None:
    model = connect(timeout=5)
    tasks = [asyncio.create_task(model.ainvoke(p)) for p in PROMPTS[:3]]
    await asyncio.sleep(0.02)  # the first is being answered, the others wait
    tasks[1].cancel()
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
    assert isinstance(done[1], asyncio.CancelledError)
    assert server.prompts == [PROMPTS[0], PROMPTS[2]]
    # Sync and async calls share the one slot, which is free again.
    assert model.invoke("after").text == "echo after"
    assert server.peak == 1


# -- the server dies with its owner ---------------------------------------------------

FAKE_SERVER = """\
import argparse, http.server, json
parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int)
port = parser.parse_known_args()[0].port

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"data": [{"id": "m"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

# Starts a `LocalModelServer` on the fake server module, prints its PID and
# port, then ends as `sys.argv[1]` says.
OWNER = """\
import os, sys, time
from pathlib import Path
import langchain_speedup.local.model as local

local.assemble_model_file = lambda name: Path(os.devnull)
local._SERVER_MODULE = "fake_llama_server"
server = local.LocalModelServer(log_path=Path(sys.argv[2]), startup_timeout=30)
server.start()
print(server.pid, server.port, flush=True)
if sys.argv[1] == "exception":
    raise RuntimeError("the owner failed")
if sys.argv[1] == "signal":
    time.sleep(120)
"""


def _gone(pid: int, port: int) -> bool:
    """Whether the server no longer runs nor listens (an unreaped orphan is a
    zombie: it no longer runs)."""
    with contextlib.suppress(ProcessLookupError, FileNotFoundError):
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state != "Z":
            return False
    # Its first thread ends a moment before the last, which closes the socket.
    return not _port_in_use(port)


@pytest.mark.parametrize(
    ("ending", "signal_number"),
    [
        ("return", None),
        ("exception", None),
        ("signal", signal.SIGTERM),
        ("signal", signal.SIGKILL),
    ],
    ids=["normal-exit", "exception", "SIGTERM", "SIGKILL"],
)
def test_the_server_dies_with_its_owner(
    tmp_path: Path, ending: str, signal_number: signal.Signals | None
) -> None:
    (tmp_path / "fake_llama_server.py").write_text(FAKE_SERVER)
    (tmp_path / "owner.py").write_text(OWNER)
    owner = subprocess.Popen(
        [sys.executable, tmp_path / "owner.py", ending, tmp_path / "server.log"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    with owner:
        assert owner.stdout is not None
        pid, port = map(int, owner.stdout.readline().split())
        if signal_number is not None:
            owner.send_signal(signal_number)
        owner.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while not _gone(pid, port):
        assert time.monotonic() < deadline, f"the server (pid {pid}) outlived its owner"
        time.sleep(0.05)
