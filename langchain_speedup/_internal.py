"""Helpers the whole package shares: validation, prompts, steps, errors. Private."""

from __future__ import annotations

import asyncio
import math
import numbers
import types
import uuid
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from functools import partial
from typing import Annotated, Any, NamedTuple, NoReturn, TypeVar

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langgraph.config import get_stream_writer
from langgraph.errors import GraphBubbleUp, GraphInterrupt
from langgraph.graph.message import add_messages
from langgraph.runtime import get_runtime
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer
from typing_extensions import TypedDict

from langchain_speedup.errors import (
    ConfigurationError,
    InvalidInputError,
    ModelError,
    SpeedupError,
)
from langchain_speedup.types import Exemplar

MAX_QUESTION_CHARS = 20_000

Messages = Annotated[list[AnyMessage], add_messages]
"""A graph's `messages` key, as in `MessagesState`."""


class GraphOptions(TypedDict, total=False):
    """What a compiled graph takes, as in LangGraph's own factories."""

    checkpointer: Checkpointer
    store: BaseStore | None
    interrupt_before: list[str] | None
    interrupt_after: list[str] | None
    debug: bool


def compile_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` if LangGraph's `compile` takes them all, else `ConfigurationError`."""
    unknown = sorted(set(options) - set(GraphOptions.__annotations__))
    if unknown:
        msg = (
            f"unknown graph option(s) {', '.join(unknown)}; the options are "
            f"{', '.join(GraphOptions.__annotations__)}"
        )
        raise ConfigurationError(msg)
    return dict(options)


def graph_config(config: RunnableConfig | None, recursion_limit: int) -> RunnableConfig:
    """A copy of `config` with room for `recursion_limit` steps unless it sets one."""
    config = RunnableConfig(**(config or {}))
    config.setdefault("recursion_limit", recursion_limit)
    return config


def run_option(name: str) -> Any:
    """The value of `name` in the running graph's context, or `None`.

    LangGraph passes a run's context (`graph.invoke(..., context={...})`) to
    every node of the graph and of its subgraphs; outside a run there is none.
    """
    try:
        runtime = get_runtime()
    except RuntimeError:  # not inside a graph run
        return None
    context = getattr(runtime, "context", None)
    if isinstance(context, Mapping):
        return context.get(name)
    return getattr(context, name, None)


def emit(event: Mapping[str, Any]) -> None:
    """Write `event` to the running graph's custom stream, if there is one."""
    try:
        writer = get_stream_writer()
    except (RuntimeError, KeyError):  # not inside a graph run: nothing to write to
        return
    writer(event)


def result_of(output: Mapping[str, Any], key: str) -> Any:
    """The result under `key` of a graph run, or the run's interrupt, raised.

    LangGraph returns an interrupted run's state instead of raising; a caller
    of `run` or `solve` expects a result, so the interrupt goes on up.
    """
    if key not in output:
        raise GraphInterrupt(output.get("__interrupt__", ()))
    return output[key]


def with_fields(base: Any, name: str, fields: Mapping[str, Any]) -> type:
    """A `TypedDict` like `base` plus `fields`, whose keys are known at build time.

    A graph's result key follows its name, so its schemas are built per graph.
    """

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(__annotations__=dict(fields), __module__=base.__module__)

    return types.new_class(name, (base,), exec_body=body)


DEFAULT_SYSTEM_PROMPT = (
    "Solve the problem. Reason briefly, step by step, and end with the line "
    "'The final answer is \\boxed{ANSWER}.'"
)
LESSONS_HEADER = "Lessons from similar problems solved before:"
"""Opens the lessons note in the system message."""


# -- validation ----------------------------------------------------------------------


def check_model(model: object) -> None:
    """Raise `ConfigurationError` unless `model` is a runnable."""
    if not isinstance(model, Runnable):
        msg = f"`model` must be a chat model or runnable, got {type(model).__name__}"
        raise ConfigurationError(msg)


def check_count(name: str, value: object, *, minimum: int = 1) -> int:
    """Return `value` if it is an integer >= `minimum`, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"`{name}` must be an integer >= {minimum}, got {value!r}"
        raise ConfigurationError(msg)
    return value


def check_number(
    name: str, value: object, *, low: float, high: float, above_low: bool = False
) -> float:
    """`value` as a float if it is a finite number in `[low, high]` (`(low, high]`)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
        or (above_low and value == low)
    ):
        bounds = f"{'(' if above_low else '['}{low}, {high}]"
        msg = f"`{name}` must be a number in {bounds}, got {value!r}"
        raise ConfigurationError(msg)
    return float(value)


def check_prompt(name: str, value: object) -> str:
    """Return `value` if it is a non-empty string, else raise."""
    if not isinstance(value, str) or not value.strip():
        msg = f"`{name}` must be a non-empty string, got {value!r}"
        raise ConfigurationError(msg)
    return value


def check_namespace(namespace: object) -> str:
    """Return `namespace` if it can name a tenant, else raise.

    A tenant is a label of LangGraph store namespaces: a non-empty string
    without a period.
    """
    if not isinstance(namespace, str) or not namespace.strip():
        msg = f"`namespace` must be a non-empty string, got {namespace!r}"
        raise ConfigurationError(msg)
    if "." in namespace:
        msg = f"`namespace` must not contain a period (a LangGraph store label), got {namespace!r}"
        raise ConfigurationError(msg)
    return namespace


def check_uuid(value: object, what: str) -> str:
    """`value` as a canonical UUID string, else `InvalidInputError` naming `what`."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as e:
        msg = f"{what} must be a UUID string, got {value!r}"
        raise InvalidInputError(msg) from e


def as_vector(raw: object) -> list[float]:
    """`raw` as a non-empty list of finite floats.

    Raises:
        ValueError: It is not; the message says what it is instead.
    """
    if isinstance(raw, str | bytes | Mapping):
        msg = f"{type(raw).__name__}, not a vector"
        raise ValueError(msg)
    try:
        values = list(raw)  # type: ignore[call-overload]
    except TypeError:
        msg = f"{type(raw).__name__}, not a vector"
        raise ValueError(msg) from None
    if not values:
        msg = "an empty vector"
        raise ValueError(msg)
    if not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in values):
        msg = "a vector holding values that are not numbers"
        raise ValueError(msg)
    floats = [float(x) for x in values]
    if not all(map(math.isfinite, floats)):
        msg = "a vector holding non-finite values"
        raise ValueError(msg)
    return floats


def validate_question(question: object) -> str:
    """Return `question` stripped, or raise `InvalidInputError`."""
    if not isinstance(question, str):
        msg = f"the question must be a string, got {type(question).__name__}"
        raise InvalidInputError(msg)
    text = question.strip()
    if not text:
        msg = "the question is empty"
        raise InvalidInputError(msg)
    if len(text) > MAX_QUESTION_CHARS:
        msg = f"the question has {len(text)} characters, more than {MAX_QUESTION_CHARS}"
        raise InvalidInputError(msg)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate: no model or store takes it
        msg = f"the question is not valid Unicode: {e.reason} at position {e.start}"
        raise InvalidInputError(msg) from None
    return text


def question_of(question: str | Sequence[BaseMessage]) -> tuple[str, list[BaseMessage]]:
    """Split input into the question text and the conversation to answer.

    A string is a one-turn conversation; for messages, the question is the
    last human message.

    Raises:
        InvalidInputError: No usable question.
    """
    if isinstance(question, str):
        text = validate_question(question)
        return text, [HumanMessage(text)]
    if not isinstance(question, Sequence) or not all(
        isinstance(m, BaseMessage) for m in question
    ):
        msg = "the input must be a question string or a list of messages"
        raise InvalidInputError(msg)
    humans = [m for m in question if isinstance(m, HumanMessage)]
    if not humans:
        msg = "the messages hold no human message to answer"
        raise InvalidInputError(msg)
    return validate_question(humans[-1].text), [*question]


# -- prompts and model errors --------------------------------------------------------


def build_prompt(
    conversation: Sequence[BaseMessage],
    *,
    system_prompt: str,
    exemplars: Sequence[Exemplar] = (),
    lessons: str | None = None,
    default: bool = False,
) -> list[AnyMessage]:
    r"""One system message, then exemplars as earlier turns, then the conversation.

    The caller's own system messages take precedence: they open the system
    message, and a `default` `system_prompt` (the method's built-in
    instructions) is left out when there are any, so a caller's "no LaTeX"
    is not contradicted by the method's `\boxed{}` answer line. An explicit
    `system_prompt` follows the caller's, and the lessons close it.
    """
    own = [m.text for m in conversation if isinstance(m, SystemMessage)]
    system: list[str] = [str(text) for text in own]
    if system_prompt and not (default and own):
        system.append(system_prompt)
    if lessons and lessons.strip():
        system.append(f"{LESSONS_HEADER}\n{lessons.strip()}")
    messages: list[AnyMessage] = [SystemMessage("\n\n".join(system))] if system else []
    for exemplar in exemplars:
        messages += [
            HumanMessage(exemplar["question"]),
            AIMessage(exemplar["solution"]),
        ]
    messages.extend(m for m in conversation if not isinstance(m, SystemMessage))  # type: ignore[misc]
    return messages


def raise_model_error(error: Exception, *, role: str) -> NoReturn:
    """Re-raise a model call's failure as `ModelError`.

    LangGraph's control-flow exceptions, cancellation and our own errors pass
    through untouched, so interrupts and clear messages are never hidden.
    """
    if isinstance(error, GraphBubbleUp | asyncio.CancelledError | SpeedupError):
        raise error
    name = type(error).__name__
    hint = ""
    if "Connection" in name or "Timeout" in name:
        hint = "; is the model server running and reachable?"
    msg = f"the {role} model call failed ({name}: {error}){hint}"
    raise ModelError(msg, role=role) from error


# -- steps: an algorithm written once, run sync or async ------------------------------

R = TypeVar("R")


class Call(NamedTuple):
    """One I/O operation in its two forms; a step yields it to get its result."""

    sync: Callable[[], Any]
    asyn: Callable[[], Awaitable[Any]]


class _Run:
    """One run of a step: the request it makes next, or the value it returned."""

    def __init__(self, step: Generator[Call, Any, Any]) -> None:
        self._step, self._resume = step, step.send
        self._value: Any = None
        self.result: Any = None

    def next(self) -> Call | None:
        try:
            return self._resume(self._value)
        except StopIteration as done:
            self.result = done.value
            return None

    def send(self, value: Any) -> None:
        self._resume, self._value = self._step.send, value

    def throw(self, error: Exception) -> None:
        # The step sees the failure at its `yield`, to handle or let pass.
        self._resume, self._value = self._step.throw, error


def drive(step: Generator[Call, Any, R]) -> R:
    """Run a step, resolving each `Call` it yields with `call.sync()`.

    A step left part way (cancelled, interrupted) is closed at once, so its
    `finally` clauses run before the failure goes on up.
    """
    run = _Run(step)
    try:
        while (request := run.next()) is not None:
            try:
                run.send(request.sync())
            except Exception as e:  # noqa: BLE001
                run.throw(e)
    finally:
        step.close()
    return run.result  # type: ignore[no-any-return]


async def adrive(step: Generator[Call, Any, R]) -> R:
    """Run a step, resolving each `Call` it yields with `await call.asyn()`."""
    run = _Run(step)
    try:
        while (request := run.next()) is not None:
            try:
                run.send(await request.asyn())
            except Exception as e:  # noqa: BLE001
                run.throw(e)
    finally:
        step.close()
    return run.result  # type: ignore[no-any-return]


def _check_reply(reply: Any, role: str) -> Any:
    # A runnable that returns text, None or a dict would fail later, deep in
    # a step, with an AttributeError.
    replies = reply if isinstance(reply, list) else [reply]
    wrong = [r for r in replies if not isinstance(r, BaseMessage)]
    if not wrong:
        return reply
    msg = (
        f"the {role} model returned {type(wrong[0]).__name__}, not a chat message; "
        "give a chat model, or a runnable that returns an AIMessage"
    )
    raise ModelError(msg, role=role)


def guarded_call(
    sync: Callable[[], Any],
    asyn: Callable[[], Awaitable[Any]],
    *,
    fail: Callable[[Exception], NoReturn],
    check: Callable[[Any], Any],
) -> Call:
    """A call whose failures go through `fail` and whose result through `check`."""

    def checked() -> Any:
        try:
            result = sync()
        except Exception as e:  # noqa: BLE001
            fail(e)
        return check(result)

    async def achecked() -> Any:
        try:
            result = await asyn()
        except Exception as e:  # noqa: BLE001
            fail(e)
        return check(result)

    return Call(checked, achecked)


def model_call(
    sync: Callable[[], Any], asyn: Callable[[], Awaitable[Any]], *, role: str
) -> Call:
    """A model call whose failures and non-message replies become `ModelError`."""
    return guarded_call(
        sync,
        asyn,
        fail=partial(raise_model_error, role=role),
        check=partial(_check_reply, role=role),
    )


def step_node(
    name: str, step: Callable[[Any, RunnableConfig], Generator[Any, Any, R]]
) -> RunnableLambda[Any, R]:
    """A graph node that runs `step(state, config)`, sync or async."""

    def sync(state: Any, config: RunnableConfig) -> R:
        return drive(step(state, config))

    async def asyn(state: Any, config: RunnableConfig) -> R:
        return await adrive(step(state, config))

    return RunnableLambda(sync, afunc=asyn, name=name)
