"""`SpeedupChatModel`: a scaling method, or the router, in any chat-model slot."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.store.base import BaseStore
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_speedup._dropin import RequestModel, answering, is_answer
from langchain_speedup._internal import adrive, drive
from langchain_speedup.router import BudgetRouter
from langchain_speedup.scaling import ScalingEngine, create_engine

__all__ = ["SpeedupChatModel"]

# Call settings passed on to the underlying model when set.
_CALL_SETTINGS = ("temperature", "max_tokens", "timeout")


def _child_config(
    run: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
) -> RunnableConfig | None:
    # The underlying calls and the method's run nest under this model's run
    # in traces (a model's run manager has no `get_child`).
    if run is None:
        return None
    children = CallbackManager(handlers=[], parent_run_id=run.run_id)
    children.set_handlers(run.inheritable_handlers)
    children.add_tags(run.inheritable_tags)
    children.add_metadata(run.inheritable_metadata)
    return RunnableConfig(callbacks=children)


def _as_chunk(result: ChatResult) -> ChatGenerationChunk:
    # The answer is picked among whole samples: it streams as one chunk.
    message = result.generations[0].message
    assert isinstance(message, AIMessage)
    chunk = AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        response_metadata=message.response_metadata,
        usage_metadata=message.usage_metadata,
        tool_call_chunks=[
            tool_call_chunk(
                name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=i
            )
            for i, call in enumerate(message.tool_calls)
        ],
        id=message.id,
        name=message.name,
    )
    return ChatGenerationChunk(message=chunk)


class SpeedupChatModel(BaseChatModel):
    r"""A chat model that answers with a scaling method over another chat model.

    Use it wherever a chat model goes (`create_agent`, `create_react_agent`,
    a node of your own graph, another framework): each call runs the
    underlying `model` once, exactly as a plain call would; a reply that
    calls tools is returned as it is, with no scaling; a reply that answers
    becomes the first sample of the `method`, run with its adaptive stop,
    and the method's selected answer is returned. With a `store`, the
    `BudgetRouter` answers instead: it reuses the verified answer of the
    same conversation, solves with exemplars of similar ones, and writes
    each answer to memory.

    `bind_tools` binds the tools to the underlying model (which must support
    them): every call and sample sees them, and a reply with tool calls
    comes back unchanged, so tool calling and `with_structured_output`
    (function calling) behave as the underlying model's do.

    Instructions: the conversation's system message takes precedence over
    the method's built-in prompt, which is left out when there is one (an
    explicit `system_prompt` option is kept, after it). The built-in prompt
    asks for a final `\boxed{}` answer line, which the consensus scorer
    compares; without it, answers are compared by their last stated number
    or "final answer" line, so keep an answer line in your instructions if
    you can. The returned `AIMessage` is named `"speedup"`; its
    `usage_metadata` counts every call the answer cost and its
    `response_metadata` the method (and route, with a store).

    Example:
        ```python
        model = SpeedupChatModel(model=ChatOpenAI(), method="best_of_n", budget=4)
        model.invoke("Maya buys 3 pens at $4 each. How much does she pay?")
        ```

    Attributes:
        model: The underlying chat model.
        method: The scaling method (`"best_of_n"`, `"self_refine"`,
            `"tree_of_thoughts"`, `"long_cot"`).
        budget: The method's budget, in its unit; its default when `None`.
        threshold: The adaptive stop's threshold; the scorer's top when `None`.
        options: The engine's other options (`scorer`, `system_prompt`,
            `mode`, the method's own).
        store: The LangGraph store that holds the memory, with a vector
            index (`memory_index(embeddings)`); without one, no memory is used.
        router_options: The router's options (`namespace`,
            `similarity_gate`, `max_exemplars`, `memory_samples`,
            `enable_reuse`, `memory`).
        temperature: Passed to every underlying call when set.
        max_tokens: Passed to every underlying call when set.
        timeout: Passed to every underlying call when set.
        stop: Stop sequences for every underlying call.
        max_retries: Recorded for the standard interface; retries are the
            underlying model's own setting.
        streaming: Accepted for compatibility; the answer is selected among
            whole samples, so it streams as one chunk.

    Raises:
        ConfigurationError: An unknown method or option, or one out of range.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: BaseChatModel
    method: str = "best_of_n"  # checked by `create_engine`: ConfigurationError
    budget: int | None = None
    threshold: float | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    store: BaseStore | None = None
    router_options: dict[str, Any] = Field(default_factory=dict)
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    stop: list[str] | None = None
    max_retries: int | None = None
    streaming: bool = False

    _solver: BudgetRouter | ScalingEngine = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        # Built once, after validation, so bad options raise ConfigurationError.
        self._solver = self._build_solver()

    def _build_solver(self) -> BudgetRouter | ScalingEngine:
        engine = create_engine(
            RequestModel(),
            self.method,  # type: ignore[arg-type]
            budget=self.budget,
            threshold=self.threshold,
            **self.options,
        )
        if self.store is None:
            return engine
        return BudgetRouter(engine, store=self.store, **self.router_options)

    @property
    def _llm_type(self) -> str:
        return "speedup"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "budget": self.budget,
            "threshold": self.threshold,
            "model": self.model._llm_type,
            "memory": self.store is not None,
        }

    def _get_ls_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> LangSmithParams:
        params = LangSmithParams(ls_provider="speedup", ls_model_type="chat")
        model = kwargs.get("model")
        params["ls_model_name"] = (
            model
            if isinstance(model, str)
            else str(self.model._get_ls_params().get("ls_model_name", self.method))
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to the underlying model, for every call and sample.

        A reply that calls tools is returned as the underlying model gave it,
        with no scaling.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _underlying(
        self, stop: list[str] | None, kwargs: dict[str, Any]
    ) -> Runnable[Any, Any]:
        # The underlying model as this call binds it: tools, stop, settings.
        kwargs = dict(kwargs)
        tools = kwargs.pop("tools", None)
        choice = kwargs.pop("tool_choice", None)
        model: Runnable[Any, Any] = self.model
        if tools:
            model = self.model.bind_tools(tools, tool_choice=choice)
        settings = {
            k: getattr(self, k) for k in _CALL_SETTINGS if getattr(self, k) is not None
        }
        if stop or self.stop:
            settings["stop"] = stop or self.stop
        settings.update(kwargs)
        return model.bind(**settings) if settings else model

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model = self._underlying(stop, kwargs)
        config = _child_config(run_manager)
        first = model.invoke(messages, config)
        if is_answer(first, messages):
            first = drive(answering(self._solver, messages, first, model, config))
        return ChatResult(generations=[ChatGeneration(message=first)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model = self._underlying(stop, kwargs)
        config = _child_config(run_manager)
        first = await model.ainvoke(messages, config)
        if is_answer(first, messages):
            first = await adrive(
                answering(self._solver, messages, first, model, config)
            )
        return ChatResult(generations=[ChatGeneration(message=first)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield _as_chunk(self._generate(messages, stop, run_manager, **kwargs))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        yield _as_chunk(await self._agenerate(messages, stop, run_manager, **kwargs))
