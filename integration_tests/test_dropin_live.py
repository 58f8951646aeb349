"""`SpeedupMiddleware` in a `create_agent` agent with two real tools, on the local model.

The server parses tool calls with llama-cpp-python's `chatml-function-calling`
format. The 0.5B model rarely chooses a tool by itself, so the agent (as an
agent of one's own might) names the tool for the first call of a question
with a small middleware of its own; what `SpeedupMiddleware` does is the same
either way.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from langgraph.store.base import BaseStore

from integration_tests.conftest import new_store
from langchain_speedup import ConsensusScorer, SpeedupMiddleware
from langchain_speedup.local import LocalModelServer, MiniLMEmbeddings
from tests.test_examples import _load

pytestmark = pytest.mark.integration

EXAMPLE = _load("agent_with_middleware")
TOOLS = [EXAMPLE.calculator, EXAMPLE.convert_units]
PRODUCT = "Use the calculator: what is 37 * 12 + 5?"


@pytest.fixture(scope="module")
def tool_server(
    tmp_path_factory: pytest.TempPathFactory,
    process_gone: Callable[[int], None],
) -> Iterator[LocalModelServer]:
    log = tmp_path_factory.mktemp("tool-server") / "server.log"
    with LocalModelServer(
        n_threads=1, log_path=log, chat_format="chatml-function-calling"
    ) as server:
        pid = server.pid
        assert pid is not None
        yield server
    process_gone(pid)


def after_question(messages: list[BaseMessage]) -> list[BaseMessage]:
    last = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    return messages[last + 1 :]


class NameTheTool(AgentMiddleware):
    """The agent's own policy: the first call for a question uses the tool it names."""

    def _named(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        if any(isinstance(m, ToolMessage) for m in after_question(request.messages)):
            return request
        question = next(
            m.text for m in reversed(request.messages) if isinstance(m, HumanMessage)
        )
        name = "convert_units" if "convert" in question else "calculator"
        return request.override(
            tool_choice={"type": "function", "function": {"name": name}}
        )

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        return handler(self._named(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        return await handler(self._named(request))


def model_on(server: LocalModelServer, temperature: float) -> ChatOpenAI:
    return server.chat_model(temperature=temperature, max_tokens=128)


def speedup(store: BaseStore) -> SpeedupMiddleware:
    # Two agreeing samples verify an answer; the agent's instructions ask for
    # the answer line.
    return SpeedupMiddleware(
        budget=3,
        scorer=ConsensusScorer(quorum=2),
        store=store,
        namespace=f"live-{uuid.uuid4().hex[:8]}",
    )


def agent(model: ChatOpenAI, *middleware: AgentMiddleware) -> Any:
    return create_agent(
        model,
        TOOLS,
        system_prompt=EXAMPLE.SYSTEM_PROMPT,
        middleware=[NameTheTool(), *middleware],
    )


async def ask(graph: Any, messages: list[Any], is_async: bool) -> list[BaseMessage]:
    state = {"messages": messages}
    out = await graph.ainvoke(state) if is_async else graph.invoke(state)
    return list(out["messages"])


def tool_turns(messages: list[BaseMessage]) -> list[Any]:
    return [
        (m.type, [(c["name"], c["args"]) for c in getattr(m, "tool_calls", [])], m.text)
        for m in messages
        if (isinstance(m, AIMessage) and m.tool_calls) or isinstance(m, ToolMessage)
    ]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_an_agent_with_the_middleware_on_the_local_model(
    tool_server: LocalModelServer, embeddings: MiniLMEmbeddings, is_async: bool
) -> None:
    # Tool turns: greedy decoding makes both agents' tool calls comparable.
    greedy = model_on(tool_server, 0.0)
    plain = await ask(agent(greedy), [HumanMessage(PRODUCT)], is_async)
    store = new_store(embeddings)
    sped_agent = agent(greedy, speedup(store))
    sped = await ask(sped_agent, [HumanMessage(PRODUCT)], is_async)
    assert tool_turns(sped) == tool_turns(plain)
    assert tool_turns(sped)[0][1] == [("calculator", {"expression": "37 * 12 + 5"})]
    assert "449" in tool_turns(sped)[1][2]
    answer = sped[-1]
    assert isinstance(answer, AIMessage)
    assert answer.name == "speedup"
    assert answer.response_metadata["speedup_decision"] == "scratch"

    # The same question again, in a new conversation: it costs less.
    again = (await ask(sped_agent, [HumanMessage(PRODUCT)], is_async))[-1]
    first_cost = answer.usage_metadata["total_tokens"]  # type: ignore[index]
    assert again.usage_metadata is not None  # type: ignore[attr-defined]
    assert again.usage_metadata["total_tokens"] < first_cost  # type: ignore[attr-defined]
    assert again.response_metadata["speedup_decision"] == "reuse"


async def test_the_same_follow_up_in_two_conversations_is_not_reused(
    tool_server: LocalModelServer, embeddings: MiniLMEmbeddings
) -> None:
    model = model_on(tool_server, 0.7)
    store = new_store(embeddings)
    graph = agent(model, speedup(store))
    decisions, tool_args = [], []
    for opening in (PRODUCT, "Use the calculator: what is 15 * 3?"):
        first = await ask(graph, [HumanMessage(opening)], False)
        follow_up = await ask(
            graph,
            [*first, HumanMessage("Use the calculator: what is double that?")],
            False,
        )
        answer = follow_up[-1]
        decisions.append(answer.response_metadata.get("speedup_decision"))
        tool_args.append(tool_turns(follow_up[len(first) + 1 :])[0][1])
    assert "reuse" not in decisions
    assert tool_args[0] != tool_args[1]


def test_the_example_runs_on_the_local_model(
    tool_server: LocalModelServer, embeddings: MiniLMEmbeddings
) -> None:
    answers = EXAMPLE.main(model_on(tool_server, 0.7), embeddings)
    # Every question reached an answer turn, which the router answered.
    assert all(a["decision"] in {"reuse", "exemplars", "scratch"} for a in answers)
    assert all(re.search(r"\d", a["answer"]) for a in answers)
    if answers[1]["decision"] == "reuse":
        assert answers[1]["tokens"] < answers[0]["tokens"]
