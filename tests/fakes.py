"""Deterministic, offline stand-ins for chat models and embeddings, and the
scripted solvers the method tests share.

`FakeChatModel` answers through `responder(messages)`, so what it says depends
only on its input and never on call order: results are the same under
`invoke`, `batch` and `abatch`, whatever the thread or task interleaving.
Every call's messages are recorded on the instance (`model.calls`).
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    UsageMetadata,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.store.base import BaseStore, Op, Result
from langgraph.store.memory import InMemoryStore
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_speedup import (
    ConsensusScorer,
    Episode,
    EpisodicMemory,
    ScalingEngine,
    memory_index,
    question_key,
)
from langchain_speedup.scaling import CRITIQUE_PROMPT, PROBE_PROMPT, REVISE_PROMPT
from langchain_speedup.types import Exemplar, ScalingResult, Usage

Responder = Callable[[list[BaseMessage]], str]
Run = Callable[..., Awaitable[ScalingResult]]
"""A test module's engine run on a question, sync or async (the `run` fixture)."""

_WORDS = re.compile(r"[a-z0-9]+")
_NUMBERS = re.compile(r"\d+")


def text_of(message: BaseMessage) -> str:
    """The text of a message (string content or text blocks)."""
    return str(message.text)


def last_human(messages: Sequence[BaseMessage]) -> str:
    """The text of the last human message (the question being asked)."""
    humans = [m for m in messages if isinstance(m, HumanMessage)]
    return text_of(humans[-1]) if humans else ""


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words: the fake's notion of a token."""
    return _WORDS.findall(text.lower())


def boxed(answer: object) -> str:
    """A solution in the format the package's default prompt asks for."""
    return f"Let me work it out step by step. The final answer is \\boxed{{{answer}}}."


def sum_solver(messages: list[BaseMessage]) -> str:
    """Answers the last human message with the sum of the integers in it."""
    question = last_human(messages)
    total = sum(int(n) for n in _NUMBERS.findall(question))
    return boxed(total)


def constant(text: str) -> Responder:
    """A responder that always says `text`."""
    return lambda _messages: text


# -- the methods' tests: a question, memory, and a scripted solver a method ----------

QUESTION = "What is 17 + 25?"
QUORUM = ConsensusScorer(quorum=2)  # stateless: safe to share
EXEMPLAR = Exemplar(question="What is 1 + 1?", solution=boxed(2))
FEEDBACK = "Step 2 adds the ones wrongly: 7 + 5 is 12, not 11."
STEP_1 = "Add the tens first."
STEP_2 = "Then add the ones and carry."
FINAL = "So the total is \\boxed{42}."
SOLUTION_PATH = f"{STEP_1}\n{STEP_2}\n{FINAL}"
"""The path `three_steps` solves the question by."""


def has_exemplar(prompt: Sequence[BaseMessage]) -> bool:
    """Whether `EXEMPLAR` is a turn of the prompt."""
    asked = EXEMPLAR["question"]
    return any(isinstance(m, HumanMessage) and m.text == asked for m in prompt)


def tokens_by_role(usage: Usage) -> int:
    """The sum of the token counts by role: what `total_tokens` must equal."""
    roles = ("solver_input", "solver_output", "scorer_input", "scorer_output", "other")
    return sum(usage[f"{role}_tokens"] for role in roles)  # type: ignore[literal-required]


def refiner(messages: list[BaseMessage]) -> str:
    """Self-Refine: drafts 41, critiques it (`FEEDBACK`) and revises to 42."""
    asked = last_human(messages)
    if asked == CRITIQUE_PROMPT:
        return FEEDBACK
    return boxed(42) if asked == REVISE_PROMPT else boxed(41)


def thinking_of(messages: Sequence[BaseMessage]) -> str:
    """Long chain-of-thought: the thinking a prompt shows (its last AI turn)."""
    shown = [m for m in messages if isinstance(m, AIMessage)]
    return shown[-1].text if shown else ""


def thinker(messages: list[BaseMessage]) -> str:
    """Long chain-of-thought: thinks at length; probed, answers 41 after under
    20 words of thought and 42 after more."""
    if last_human(messages) == PROBE_PROMPT:
        return boxed(41) if len(words(thinking_of(messages))) < 20 else boxed(42)
    return "think " * 1000


def path_of(messages: Sequence[BaseMessage]) -> list[str]:
    """Tree-of-Thoughts: the steps a proposal prompt shows (the AI turn before
    the request for the next step)."""
    if messages[-1].text.startswith("Write"):
        return messages[-2].text.split("\n")
    return []


def three_steps(messages: list[BaseMessage]) -> str:
    """Tree-of-Thoughts: two partial steps without numbers, then `FINAL`."""
    return [STEP_1, STEP_2, FINAL][min(len(path_of(messages)), 2)]


class Sequenced:
    """A responder that says the next item of `replies` on each call.

    Used where identical prompts must get different replies (all-different
    answers, a vote split). The order of replies across threads of one
    `batch` is not fixed, but the multiset of replies per call count is.
    Thread-safe.
    """

    def __init__(self, replies: Iterable[str], *, then: str | None = None) -> None:
        self._replies = list(replies)
        self._then = then
        self._next = 0
        self._lock = threading.Lock()

    def __call__(self, _messages: list[BaseMessage]) -> str:
        with self._lock:
            i = self._next
            self._next += 1
        if i < len(self._replies):
            return self._replies[i]
        if self._then is None:
            msg = f"Sequenced responder ran out of replies after {len(self._replies)}"
            raise AssertionError(msg)
        return self._then


class FakeChatModel(BaseChatModel):
    """A chat model whose reply is `responder(messages)`.

    Attributes:
        responder: Maps the prompt to the reply text.
        calls: The messages of every call, in the order calls started.
        call_kwargs: The keyword arguments of every call (bound `max_tokens`, ...).
        report_usage: Whether replies carry `usage_metadata`. When they do,
            input tokens are the words of the prompt and output tokens the
            words of the reply (see `words`), deliberately unlike tiktoken so
            tests can tell which source was counted.
        honours_max_tokens: Whether a `max_tokens` argument cuts the reply to
            that many words, as a real model stops at its token limit.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    responder: Callable[[list[BaseMessage]], str]
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    call_kwargs: list[dict[str, Any]] = Field(default_factory=list)
    report_usage: bool = True
    honours_max_tokens: bool = False

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "fake-chat-model"

    def _record(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> int:
        with self._lock:
            self.calls.append(list(messages))
            self.call_kwargs.append(kwargs)
            return len(self.calls)

    def _before_reply(self, call_number: int) -> None:
        """Hook for subclasses that fail on purpose."""

    def _result(self, messages: list[BaseMessage], **kwargs: Any) -> ChatResult:
        call_number = self._record(messages, kwargs)
        self._before_reply(call_number)
        text = self.responder(list(messages))
        if self.honours_max_tokens and "max_tokens" in kwargs:
            text = " ".join(text.split()[: kwargs["max_tokens"]])
        usage = None
        if self.report_usage:
            prompt = sum(len(words(m.text)) for m in messages)
            output = len(words(text))
            usage = UsageMetadata(
                input_tokens=prompt, output_tokens=output, total_tokens=prompt + output
            )
        message = AIMessage(content=text, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])

    # Without a `run_manager` parameter LangChain passes only the call's kwargs.
    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> ChatResult:
        return self._result(messages, **kwargs, **({"stop": stop} if stop else {}))

    async def _agenerate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> ChatResult:
        return self._result(messages, **kwargs, **({"stop": stop} if stop else {}))


class FailingChatModel(FakeChatModel):
    """A `FakeChatModel` whose `fail_on`-th call (1-based) raises `error()`.

    Calls before it answer normally, so a question fails part way through.
    The failing call is recorded in `calls` too.
    """

    fail_on: int = 1
    error: Callable[[], BaseException] = lambda: RuntimeError("model exploded")

    def _before_reply(self, call_number: int) -> None:
        if call_number == self.fail_on:
            raise self.error()


class HashEmbeddings(Embeddings):
    """Bag of words hashed into `dim` buckets, L2-normalised.

    Deterministic across processes (blake2b, not `hash`): a question reworded
    with mostly the same words embeds close to the original, an unrelated one
    does not. An empty text maps to a fixed unit vector (Qdrant's cosine
    distance needs a non-zero vector).
    """

    def __init__(self, dim: int = 256) -> None:
        if dim < 1:
            msg = "dim must be >= 1"
            raise ValueError(msg)
        self.dim = dim
        self.calls = 0

    def _embed(self, text: str) -> list[float]:
        self.calls += 1
        vector = [0.0] * self.dim
        for word in words(text):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest, "big") % self.dim] += 1.0
        norm = math.sqrt(sum(x * x for x in vector))
        if norm == 0.0:
            vector[0] = 1.0
            return vector
        return [x / norm for x in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# -- the memory's tests: word problems to store and retrieve ------------------------

MAYA = "Maya buys 3 pens at 4 dollars each. How many dollars does Maya spend?"
TRAIN = "A train travels 60 miles per hour for 3 hours. How far does it go?"
BAKE = "Sam bakes 12 cakes and sells 5. How many cakes are left?"


def make_episode(
    question: str,
    *,
    namespace: str = "default",
    id: str | None = None,
    answer: str | None = None,
    final_answer: str | None = "42",
    score: float = 1.0,
    verified: bool = True,
    created_at: float = 1_700_000_000.0,
) -> Episode:
    """A complete episode, as the router would write it."""
    return Episode(
        id=id or str(uuid.uuid4()),
        namespace=namespace,
        question=question,
        question_key=question_key(question),
        answer=answer if answer is not None else boxed(final_answer),
        final_answer=final_answer,
        score=score,
        verified=verified,
        method="best_of_n",
        mode="adaptive",
        budget_used=3,
        budget_unit="generations",
        stop_reason="threshold" if verified else "budget",
        decision="scratch",
        generations=3,
        total_tokens=100,
        seconds=0.5,
        created_at=created_at,
    )


async def solve(
    engine: type[ScalingEngine],
    model: Any,
    question: Any,
    *,
    is_async: bool,
    memory: Any = None,
    config: Any = None,
    **options: Any,
) -> ScalingResult:
    """Answer with `engine` built from `options`, through `run` or `arun`."""
    built = engine.from_options(model, options)
    if is_async:
        return await built.arun(question, memory=memory, config=config)
    return built.run(question, memory=memory, config=config)


async def invoke(
    runnable: Runnable[Any, Any], inputs: Any, config: Any = None, *, is_async: bool
) -> Any:
    """`runnable.invoke` or `runnable.ainvoke`, awaitable either way."""
    if is_async:
        return await runnable.ainvoke(inputs, config)
    return runnable.invoke(inputs, config)


class FaultyStore(BaseStore):
    """A LangGraph store that delegates to `inner` but fails the ops `fails` picks.

    Args:
        inner: The store that does the work.
        fails: Whether an operation fails (the whole batch then raises `error`).
        error: What a failing batch raises.
    """

    def __init__(
        self, inner: BaseStore, *, fails: Callable[[Op], bool], error: Exception
    ) -> None:
        self.inner, self.fails, self.error = inner, fails, error
        self.batches = 0

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        listed = list(ops)
        self.batches += 1
        if any(self.fails(op) for op in listed):
            raise self.error
        return self.inner.batch(listed)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        listed = list(ops)
        self.batches += 1
        if any(self.fails(op) for op in listed):
            raise self.error
        return await self.inner.abatch(listed)


def new_store(embeddings: Embeddings | None = None) -> BaseStore:
    """An empty `InMemoryStore` indexed with `embeddings` (`HashEmbeddings()`)."""
    embeddings = HashEmbeddings() if embeddings is None else embeddings
    dims = len(embeddings.embed_query(""))
    return InMemoryStore(index=memory_index(embeddings, dims=dims))


def new_qdrant_store(embeddings: Embeddings | None = None) -> BaseStore:
    """An empty embedded `QdrantStore` indexed with `embeddings` (`HashEmbeddings()`)."""
    from langchain_speedup.memory.qdrant import QdrantStore

    embeddings = HashEmbeddings() if embeddings is None else embeddings
    dims = len(embeddings.embed_query(""))
    return QdrantStore(index=memory_index(embeddings, dims=dims))


def episodes_in(store: BaseStore, namespace: str = "default") -> list[Episode]:
    """Every episode a namespace holds in `store`, oldest first."""
    return EpisodicMemory(store).episodes(namespace)


def tool_result_solver(messages: list[BaseMessage]) -> str:
    """Answers with the latest tool result after the question, else `sum_solver`."""
    last = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    results = [m for m in messages[last:] if isinstance(m, ToolMessage)]
    return boxed(text_of(results[-1])) if results else sum_solver(messages)


class ToolCallingFakeChatModel(FakeChatModel):
    """A `FakeChatModel` with `bind_tools`.

    With tools bound, `tool_caller(messages)` may return tool calls; each gets
    a fresh id, as a real model's do. Without tools, or when it returns none,
    the reply is `responder(messages)`.
    """

    tool_caller: Callable[[list[BaseMessage]], list[dict[str, Any]] | None] = (
        lambda _messages: None
    )

    def bind_tools(  # type: ignore[override]
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable[Any, BaseMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _result(self, messages: list[BaseMessage], **kwargs: Any) -> ChatResult:
        calls = self.tool_caller(list(messages)) if kwargs.get("tools") else None
        if not calls:
            return super()._result(messages, **kwargs)
        self._record(messages, kwargs)
        prompt = sum(len(words(m.text)) for m in messages)
        message = AIMessage(
            content="",
            tool_calls=[{**c, "id": f"call_{uuid.uuid4().hex[:8]}"} for c in calls],
            usage_metadata=UsageMetadata(
                input_tokens=prompt, output_tokens=3, total_tokens=prompt + 3
            ),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
