"""What the drop-in forms share: one reply first, then the method on answer turns.

`SpeedupMiddleware` and `SpeedupChatModel` answer a model call the same way.
The caller's model is called once, exactly as it would be without them
(tools bound). A reply that calls tools (or states nothing) is returned as
is: tool turns pass through untouched. A reply that answers is an answer
turn: the engine or router answers the conversation, and that first reply
is not wasted: it is the method's first sample (Best-of-N, Self-Refine), or,
for methods whose first call is a partial step, its cost is added to the
answer's usage.

The engine and router are built once, over `RequestModel`: a chat model that
stands for the model of the call being answered, which a context variable
holds for the duration of that call (threads and tasks the call starts see
it too).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import add_usage as add_usage_metadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig

from langchain_speedup._internal import Call, question_of
from langchain_speedup.errors import ConfigurationError, InvalidInputError
from langchain_speedup.router import BudgetRouter
from langchain_speedup.scaling import ScalingEngine
from langchain_speedup.tokens import usage_metadata

__all__ = ["ANSWER_NAME", "RequestModel", "answering", "is_answer"]

ANSWER_NAME: Final = "speedup"
"""The name of every answer message the drop-in forms return."""

# Methods whose first model call is a whole answer, which the caller's first
# reply can stand for.
_PRIMED_METHODS: Final = frozenset({"best_of_n", "self_refine"})


@dataclass
class _Call:
    model: Runnable[Any, Any]
    """The caller's model, bound as the caller binds it (tools included)."""
    first: list[AIMessage] = field(default_factory=list)
    """The reply already drawn, until a sample takes it."""


_CURRENT: ContextVar[_Call | None] = ContextVar("speedup_current_call", default=None)


def _current() -> _Call:
    call = _CURRENT.get()
    if call is None:
        msg = "RequestModel answers only inside a SpeedupMiddleware or SpeedupChatModel call"
        raise ConfigurationError(msg)
    return call


def _take_first(call: _Call) -> AIMessage | None:
    try:
        return call.first.pop()  # atomic: one sample of a batch gets it
    except IndexError:
        return None


def _with_stop(stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    # An absent `stop` must not override one the caller's model has bound.
    return kwargs if stop is None else {**kwargs, "stop": stop}


class RequestModel(BaseChatModel):
    """The model of the call being answered; the first sample is the reply drawn.

    Its calls reach the caller's model without this run's callbacks, so the
    ledger counts each call once, here.
    """

    @property
    def _llm_type(self) -> str:
        return "speedup-request-model"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = _current()
        reply = _take_first(call) or call.model.invoke(
            messages, **_with_stop(stop, kwargs)
        )
        return ChatResult(generations=[ChatGeneration(message=reply)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = _current()
        reply = _take_first(call) or await call.model.ainvoke(
            messages, **_with_stop(stop, kwargs)
        )
        return ChatResult(generations=[ChatGeneration(message=reply)])


def is_answer(reply: object, conversation: Sequence[BaseMessage]) -> bool:
    """Whether `reply` answers the conversation's question (an answer turn).

    A reply that calls tools or says nothing, or a conversation whose last
    human message is no usable question (none, only an image, too long),
    passes through as it is.
    """
    if not (
        isinstance(reply, AIMessage)
        and not reply.tool_calls
        and not reply.invalid_tool_calls
        and reply.text.strip()
    ):
        return False
    try:  # a question the router cannot take (an image alone, ...) is not scaled
        question_of(conversation)
    except InvalidInputError:
        return False
    return True


def _message(
    result: Any, unused: AIMessage | None, metadata: dict[str, Any]
) -> AIMessage:
    usage = usage_metadata(result["usage"])
    if unused is not None:  # the first reply was spent but not sampled
        usage = add_usage_metadata(usage, unused.usage_metadata)
    return AIMessage(
        result["answer"],
        name=ANSWER_NAME,
        usage_metadata=usage,
        response_metadata=metadata,
    )


def answering(
    solver: BudgetRouter | ScalingEngine,
    conversation: Sequence[BaseMessage],
    first: AIMessage,
    model: Runnable[Any, Any],
    config: RunnableConfig | None = None,
) -> Generator[Call, Any, AIMessage]:
    """Answer an answer turn with `solver`, the first reply as its first sample.

    Args:
        solver: A router (memory) or an engine (no memory), built over
            `RequestModel`.
        conversation: The messages answered, system messages included.
        first: The caller's model's reply to them, an answer (`is_answer`).
        model: The caller's model, bound as the caller binds it.
        config: Passed to the solver's run.

    Returns:
        The answer message, named `ANSWER_NAME`, whose `usage_metadata`
        counts every call the answer cost, `first` included, and whose
        `response_metadata` holds the route (`speedup_decision`, ...).
    """
    engine = solver.engine if isinstance(solver, BudgetRouter) else solver
    call = _Call(model, [first] if engine.method in _PRIMED_METHODS else [])
    token = _CURRENT.set(call)
    try:
        run: Callable[..., Any]
        arun: Callable[..., Any]
        if isinstance(solver, BudgetRouter):
            run, arun = solver.solve, solver.asolve
        else:
            run, arun = solver.run, solver.arun
        result = yield Call(
            partial(run, list(conversation), config=config),
            partial(arun, list(conversation), config=config),
        )
    finally:
        _CURRENT.reset(token)
    unused = first if call.first or engine.method not in _PRIMED_METHODS else None
    # Which model answered, as a provider's reply says (`model_name`, ...).
    metadata: dict[str, Any] = {
        k: v for k, v in first.response_metadata.items() if k.startswith("model_")
    }
    if isinstance(solver, BudgetRouter):
        route = result["route"]
        metadata |= {
            "speedup_decision": route["decision"],
            "speedup_method": route["method"],
            "speedup_similarity": route["similarity"],
            "speedup_episode_id": result["episode_id"],
        }
    else:
        metadata |= {
            "speedup_method": result["method"],
            "speedup_stop_reason": result["stop_reason"],
            "speedup_budget_used": result["budget_used"],
        }
    return _message(result, unused, metadata)
