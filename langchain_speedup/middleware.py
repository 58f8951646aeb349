"""`SpeedupMiddleware`: the router in an existing `create_agent` agent, in one line.

Needs `langchain` (`pip install "langchain-speedup[agents]"`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import Runnable
from langgraph.store.base import BaseStore

from langchain_speedup._dropin import RequestModel, answering, is_answer
from langchain_speedup._internal import adrive, drive
from langchain_speedup.router import BudgetRouter, RouterOptions
from langchain_speedup.scaling import create_engine
from langchain_speedup.types import Method

__all__ = ["SpeedupMiddleware"]


def _bound(request: ModelRequest[Any]) -> Runnable[Any, Any]:
    # The agent's own binding, so the method's samples see the same request.
    if request.tools:
        return request.model.bind_tools(
            request.tools, tool_choice=request.tool_choice, **request.model_settings
        )
    return request.model.bind(**request.model_settings)


def _conversation(request: ModelRequest[Any]) -> list[AnyMessage]:
    system = [request.system_message] if request.system_message else []
    return [*system, *request.messages]


def _answer_turn(
    request: ModelRequest[Any], response: object
) -> tuple[AIMessage, list[AnyMessage]] | None:
    # Structured output and tool calls are the agent's business: untouched.
    if request.response_format is not None or not isinstance(response, ModelResponse):
        return None
    if response.structured_response is not None or len(response.result) != 1:
        return None
    [reply], conversation = response.result, _conversation(request)
    if not is_answer(reply, conversation):
        return None
    return reply, conversation  # type: ignore[return-value]


class SpeedupMiddleware(AgentMiddleware):
    """Adaptive test-time scaling and experience reuse for a `create_agent` agent.

    Add it to an agent you already have; nothing else changes:

    ```python
    agent = create_agent(model, tools, middleware=[SpeedupMiddleware(store=store)])
    ```

    Each model call of the agent runs once as it would without the
    middleware, with the agent's tools bound. A reply that calls tools is
    returned untouched: tool turns are exactly what they were. A reply that
    answers makes the turn an answer turn, which the `BudgetRouter` answers
    over the agent's model: it reuses the verified answer of the same
    question, or solves with the method's adaptive stop (with exemplars when
    the similarity gate admits them), and writes the episode. The first reply
    is not wasted: it is the method's first sample (Best-of-N, Self-Refine);
    for Tree-of-Thoughts and long chain-of-thought, whose first call is a
    partial step, its cost is added to the answer's usage.

    "The same question" is the last human message together with everything
    else the model saw: the agent's system prompt, the earlier turns, the
    tool calls and their results (`reuse_key`; tool call ids, which differ
    on every run, count only by how they link calls to results). A follow-up
    such as "What is double that?" in two conversations is two questions.

    The answer is one `AIMessage` named `"speedup"`, whose `usage_metadata`
    counts every call the turn cost and whose `response_metadata` holds the
    route (`speedup_decision`, `speedup_method`, `speedup_similarity`,
    `speedup_episode_id`). The router's `route` event goes to the agent's
    custom stream (`subgraphs=True`).

    Example:
        ```python
        from langchain.agents import create_agent

        agent = create_agent(
            model,
            [calculator, convert_units],
            middleware=[SpeedupMiddleware("best_of_n", budget=4, store=store)],
        )
        agent.invoke({"messages": [("user", "How many km is 26.2 miles?")]})
        ```

    Args:
        method: The scaling method that solves answer turns.
        store: The LangGraph store that holds the memory, with a vector
            index (`memory_index(embeddings)`); when `None`, the agent's store
            (`create_agent(..., store=...)`), else `default_store()`.
        embeddings: Embeds questions for the default store only (the offline
            `MiniLMEmbeddings` when `None`); a given store embeds with its
            own index.
        **options: The engine's options (`budget`, `threshold`, `scorer`,
            `system_prompt` and the method's own, `mode` defaulting to
            `"adaptive"`) and the router's (`namespace`, `similarity_gate`,
            `max_exemplars`, `memory_samples`, `enable_reuse`, `memory`).

    Raises:
        ConfigurationError: An unknown method or option, or one out of range.
    """

    def __init__(
        self,
        method: Method = "best_of_n",
        /,
        *,
        store: BaseStore | None = None,
        embeddings: Embeddings | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        routing = {
            k: v for k, v in options.items() if k in RouterOptions.__annotations__
        }
        engine = create_engine(
            RequestModel(),
            method,
            **{k: v for k, v in options.items() if k not in routing},
        )
        self.router = BudgetRouter(
            engine, store=store, embeddings=embeddings, **routing
        )

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Call the model; answer an answer turn with the router.

        Raises:
            ModelError: A sample failed; nothing is written to memory.
            EmbeddingError: The question could not be embedded.
            MemoryStoreError: The store could not be read.
        """
        response = handler(request)
        turn = _answer_turn(request, response)
        if turn is None:
            return response
        reply, conversation = turn
        answer = drive(answering(self.router, conversation, reply, _bound(request)))
        return ModelResponse(result=[answer])

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async form of `wrap_model_call`."""
        response = await handler(request)
        turn = _answer_turn(request, response)
        if turn is None:
            return response
        reply, conversation = turn
        answer = await adrive(
            answering(self.router, conversation, reply, _bound(request))
        )
        return ModelResponse(result=[answer])
