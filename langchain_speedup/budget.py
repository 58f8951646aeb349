"""The compute ledger: every model call of a question, counted.

A `Ledger` is a LangChain callback handler. The scaling methods put it in the
`config` of every model call they make and tag each call with its role
(`solver`, `scorer`, `reflection`), so calls are counted where they happen,
including calls a user's own scorer makes with the config it is handed. Tokens
come from the provider's `usage_metadata` when it reports them and from
`langchain_speedup.tokens` otherwise. `Ledger.usage()` returns plain data for
graph state and reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Final, Literal
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, merge_configs
from typing_extensions import TypedDict

from langchain_speedup.tokens import count_message_tokens, count_tokens

__all__ = ["ROLE_TAG_PREFIX", "Ledger", "Role", "Usage", "add_usage", "empty_usage"]

Role = Literal["solver", "scorer", "reflection"]
"""What a model call was for."""

ROLE_TAG_PREFIX: Final = "speedup:"
"""Calls are tagged `speedup:<role>`; the tag shows in traces too."""


class Usage(TypedDict):
    """Compute spent on one question (or summed over several)."""

    generations: int
    """Solver calls, each producing one candidate."""
    solver_input_tokens: int
    solver_output_tokens: int
    scorer_calls: int
    scorer_input_tokens: int
    scorer_output_tokens: int
    other_calls: int
    """Calls made for other roles, such as reflection."""
    other_tokens: int
    failed_calls: int
    """Calls that raised; their prompt tokens are counted as spent."""
    total_tokens: int
    """All input and output tokens of every counted call."""
    seconds: float
    """Wall time from the ledger's start to its last reading."""


def empty_usage() -> Usage:
    """A `Usage` with every count at zero."""
    return Usage(
        generations=0,
        solver_input_tokens=0,
        solver_output_tokens=0,
        scorer_calls=0,
        scorer_input_tokens=0,
        scorer_output_tokens=0,
        other_calls=0,
        other_tokens=0,
        failed_calls=0,
        total_tokens=0,
        seconds=0.0,
    )


def add_usage(*usages: Usage) -> Usage:
    """Sum several `Usage` records field by field."""
    total = empty_usage()
    for usage in usages:
        for key in total:
            total[key] += usage[key]  # type: ignore[literal-required]
    return total


def _role_of(tags: Sequence[str] | None) -> Role | None:
    # The innermost tag wins: tags are inherited, so a scorer called from a
    # solver's config carries both, with its own appended last.
    for tag in reversed(tags or ()):
        if tag.startswith(ROLE_TAG_PREFIX):
            role = tag.removeprefix(ROLE_TAG_PREFIX)
            if role in ("solver", "scorer", "reflection"):
                return role  # type: ignore[return-value]
    return None


def _output_tokens(response: LLMResult) -> tuple[int | None, int]:
    """(input tokens reported by the provider or None, output tokens)."""
    reported_in: int | None = None
    reported_out = 0
    counted_out = 0
    for generation in (g for batch in response.generations for g in batch):
        message = generation.message if isinstance(generation, ChatGeneration) else None
        usage = getattr(message, "usage_metadata", None)
        if usage:
            reported_in = (reported_in or 0) + usage["input_tokens"]
            reported_out += usage["output_tokens"]
        else:
            counted_out += count_tokens(generation.text)
    return reported_in, reported_out + counted_out


class Ledger(BaseCallbackHandler):
    """Counts the model calls of one question, by role.

    Pass it in a call's config (or use `Ledger.config`) and read `usage()`.

    Example:
        ```python
        ledger = Ledger()
        model.invoke("2 + 2?", ledger.config(role="solver"))
        print(ledger.usage()["generations"])  # 1
        ```
    """

    run_inline = True  # count in the caller's thread, in order, even in async code
    raise_error = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._pending: dict[UUID, tuple[Role, int]] = {}
        self._usage = empty_usage()

    def config(
        self, config: RunnableConfig | None = None, *, role: Role
    ) -> RunnableConfig:
        """A copy of `config` that reports to this ledger under `role`."""
        base = ensure_config(config)
        tag = f"{ROLE_TAG_PREFIX}{role}"
        # `merge_configs` concatenates handler lists, so a config that already
        # reports here would count every call twice.
        callbacks = base.get("callbacks")
        present = isinstance(callbacks, list) and any(h is self for h in callbacks)
        merged = merge_configs(base, {"callbacks": [] if present else [self]})
        # `merge_configs` also sorts tags; the role tag must come last so that
        # the innermost role wins (see `_role_of`).
        merged["tags"] = [t for t in base.get("tags", []) if t != tag] + [tag]
        return merged

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the role and prompt size of a starting call."""
        role = _role_of(tags) or "solver"
        prompt = sum(count_message_tokens(batch) for batch in messages)
        with self._lock:
            self._pending[run_id] = (role, prompt)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Count a finished call."""
        with self._lock:
            role, counted_in = self._pending.pop(run_id, ("solver", 0))
        reported_in, output = _output_tokens(response)
        self.record(
            role,
            input_tokens=counted_in if reported_in is None else reported_in,
            output_tokens=output,
        )

    def on_llm_error(
        self, error: BaseException, *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Count a failed call: its prompt was sent, so its tokens were spent."""
        with self._lock:
            role, counted_in = self._pending.pop(run_id, ("solver", 0))
            self._usage["failed_calls"] += 1
        self.record(role, input_tokens=counted_in, output_tokens=0, call=False)

    def record(
        self, role: Role, *, input_tokens: int, output_tokens: int, call: bool = True
    ) -> None:
        """Add one call's tokens under `role` (for calls made outside LangChain)."""
        with self._lock:
            usage = self._usage
            if role == "solver":
                usage["generations"] += int(call)
                usage["solver_input_tokens"] += input_tokens
                usage["solver_output_tokens"] += output_tokens
            elif role == "scorer":
                usage["scorer_calls"] += int(call)
                usage["scorer_input_tokens"] += input_tokens
                usage["scorer_output_tokens"] += output_tokens
            else:
                usage["other_calls"] += int(call)
                usage["other_tokens"] += input_tokens + output_tokens
            usage["total_tokens"] += input_tokens + output_tokens

    def usage(self) -> Usage:
        """A snapshot of the counts, with the wall time so far."""
        with self._lock:
            snapshot = Usage(**self._usage)
        snapshot["seconds"] = round(time.perf_counter() - self._started, 3)
        return snapshot
