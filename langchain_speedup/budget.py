"""The compute ledger: a callback handler that counts model calls and tokens by role.

Token counts come from the provider's `usage_metadata` when it reports them,
and from `langchain_speedup.tokens` otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Final, get_args
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, merge_configs

from langchain_speedup.tokens import count_message_tokens, count_tokens
from langchain_speedup.types import Role, Usage, empty_usage

__all__ = ["ROLE_TAG_PREFIX", "Ledger"]

ROLE_TAG_PREFIX: Final = "speedup:"
"""Calls are tagged `speedup:<role>`; the tag shows in traces too."""


def _role_of(tags: Sequence[str] | None) -> Role:
    # The innermost tag wins: tags are inherited, so a scorer called from a
    # solver's config carries both, with its own appended last.
    for tag in reversed(tags or ()):
        role = tag.removeprefix(ROLE_TAG_PREFIX)
        if role != tag and role in get_args(Role):
            return role  # type: ignore[return-value]
    return "solver"


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
        self._pending: dict[UUID, tuple[Role, list[list[BaseMessage]]]] = {}
        self._usage = empty_usage()

    def config(
        self, config: RunnableConfig | None = None, *, role: Role
    ) -> RunnableConfig:
        """A copy of `config` that reports to this ledger under `role`.

        Args:
            config: The config to extend; its callbacks and tags are kept.
            role: What the calls made with the copy are for.

        Returns:
            The config, with this ledger among its callbacks and the role tag last.
        """
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
        self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        """Remember the role and prompt of a starting call."""
        with self._lock:
            self._pending[kwargs["run_id"]] = (_role_of(kwargs.get("tags")), messages)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Count a finished call."""
        self._count(run_id, *_output_tokens(response))

    def on_llm_error(
        self, error: BaseException, *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Count a failed call: its prompt was sent, so its tokens were spent."""
        self._count(run_id, None, 0, failed=True)

    def _count(
        self,
        run_id: UUID,
        reported_in: int | None,
        output: int,
        *,
        failed: bool = False,
    ) -> None:
        with self._lock:
            role, prompt = self._pending.pop(run_id, ("solver", []))
            # Counted only when the provider reports none: an estimate is
            # made (and its warning logged) only when it is needed.
            if reported_in is None:
                reported_in = sum(count_message_tokens(batch) for batch in prompt)
            tokens_in = reported_in
            usage, call = self._usage, int(not failed)
            if role == "solver":
                usage["generations"] += call
                usage["solver_input_tokens"] += tokens_in
                usage["solver_output_tokens"] += output
            elif role == "scorer":
                usage["scorer_calls"] += call
                usage["scorer_input_tokens"] += tokens_in
                usage["scorer_output_tokens"] += output
            else:
                usage["other_calls"] += call
                usage["other_tokens"] += tokens_in + output
            usage["failed_calls"] += int(failed)
            usage["total_tokens"] += tokens_in + output

    def usage(self) -> Usage:
        """A snapshot of the counts, with the wall time so far."""
        with self._lock:
            snapshot = Usage(**self._usage)
        snapshot["seconds"] = round(time.perf_counter() - self._started, 3)
        return snapshot
