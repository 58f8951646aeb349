"""SFT memory: verified episodes as a fine-tuning dataset, and the tuned model.

Export with `export_sft_dataset`, tune with a `FineTuner`, then solve with
`switch_to_tuned`; nothing here runs on its own.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from langgraph.store.base import BaseStore

from langchain_speedup._internal import DEFAULT_SYSTEM_PROMPT, raise_model_error
from langchain_speedup.answers import question_key
from langchain_speedup.errors import InvalidInputError, ModelError
from langchain_speedup.memory.store import EpisodicMemory
from langchain_speedup.types import Episode

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

__all__ = [
    "DEFAULT_BASE_MODEL",
    "FineTuneStatus",
    "FineTuner",
    "OpenAIFineTuner",
    "export_sft_dataset",
    "switch_to_tuned",
    "validate_sft_jsonl",
]

FineTuneStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
"""A fine-tuning job's state."""

DEFAULT_BASE_MODEL = "gpt-4o-mini-2024-07-18"
"""The base model `OpenAIFineTuner` tunes unless told otherwise."""

_ROLES = ("system", "user", "assistant")
_T = TypeVar("_T")


def export_sft_dataset(
    store: BaseStore | EpisodicMemory,
    namespace: str,
    path: str | os.PathLike[str],
    *,
    system_prompt: str | None = None,
) -> int:
    """Write the namespace's verified episodes as chat fine-tuning JSONL.

    Each line is `{"messages": [system, user, assistant]}`: the system prompt,
    the question and the verified solution. Only verified episodes are
    written, the newest per question (a question answered twice appears
    once; questions are the same when their `question_key` is). The file is written whole or not at all, and checked with
    `validate_sft_jsonl` before it replaces `path`.

    Args:
        store: The LangGraph store holding the episodes (or its `EpisodicMemory`).
        namespace: Whose episodes.
        path: The JSONL file to write (replaced if it exists).
        system_prompt: The system message of every example; the solver's
            default prompt when `None`, none when `""`. Use the prompt the
            tuned model will be called with.

    Returns:
        How many examples were written.

    Raises:
        ConfigurationError: `store` is no LangGraph store.
        InvalidInputError: The namespace holds no verified episode.
        MemoryStoreError: The store could not be read.
    """
    memory = EpisodicMemory.of(store)
    system = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    newest: dict[str, Episode] = {}
    for episode in memory.episodes(namespace):
        if episode.get("verified") and episode["answer"].strip():
            # Keyed afresh, not by the stored key: a key computed by an older
            # version may join different questions.
            newest[question_key(episode["question"])] = episode  # newest wins
    if not newest:
        msg = f"namespace {namespace!r} holds no verified episode to export"
        raise InvalidInputError(msg)
    lines = []
    for episode in newest.values():
        messages = [{"role": "system", "content": system}] if system.strip() else []
        messages += [
            {"role": "user", "content": episode["question"]},
            {"role": "assistant", "content": episode["answer"]},
        ]
        lines.append(json.dumps({"messages": messages}, ensure_ascii=False))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".jsonl.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        validate_sft_jsonl(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(lines)


def _problem(line: str) -> str | None:
    """What is wrong with one line of a fine-tuning file, or `None`."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        return f"not valid JSON ({e.msg})"
    if not isinstance(data, dict):
        return "each line must be a JSON object"
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        return "`messages` must be a non-empty list"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"message {i} is not an object"
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            return f"message {i} has role {role!r}, not one of {list(_ROLES)}"
        if role == "system" and i != 0:
            return "only the first message may be a system message"
        if not isinstance(content, str) or not content.strip():
            return f"message {i} ({role}) has empty or non-text content"
    if not any(m["role"] == "user" for m in messages):
        return "no user message"
    if messages[-1]["role"] != "assistant":
        return "the last message must be the assistant's"
    return None


def validate_sft_jsonl(path: str | os.PathLike[str]) -> int:
    """Check a chat fine-tuning JSONL file, line by line.

    Every line must be a JSON object whose `messages` is a non-empty list of
    `{"role", "content"}` objects: roles `system` (first only), `user` and
    `assistant`, non-empty text contents, at least one user message, and the
    assistant's message last.

    Args:
        path: The JSONL file.

    Returns:
        The number of examples.

    Raises:
        InvalidInputError: The file is missing, empty, or a line is invalid;
            the message names the line (1-based).
    """
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        msg = f"cannot read the fine-tuning file {str(target)!r}: {e}"
        raise InvalidInputError(msg) from e
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line
    if not lines:
        msg = f"the fine-tuning file {str(target)!r} holds no examples"
        raise InvalidInputError(msg)
    for number, line in enumerate(lines, start=1):
        problem = _problem(line)
        if problem is not None:
            msg = f"{target.name} line {number}: {problem}"
            raise InvalidInputError(msg)
    return len(lines)


@runtime_checkable
class FineTuner(Protocol):
    """Starts fine-tuning jobs on a JSONL file and reports on them."""

    def start(self, path: str | os.PathLike[str]) -> str:
        """Upload `path` and start a job; return the job's id."""
        ...

    def status(self, job_id: str) -> FineTuneStatus:
        """The job's state."""
        ...

    def model_name(self, job_id: str) -> str | None:
        """The tuned model's name once the job has succeeded, else `None`."""
        ...


_OPENAI_STATUS: dict[str, FineTuneStatus] = {
    "validating_files": "queued",
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


class OpenAIFineTuner:
    """Fine-tunes through the OpenAI API (`files` and `fine_tuning.jobs`).

    !!! warning
        This calls a paid remote service and cannot run offline; the unit
        tests use a fake client. Jobs take minutes to hours: poll `status`.

    Example:
        ```python
        export_sft_dataset(store, "default", "sft.jsonl")
        tuner = OpenAIFineTuner()
        job = tuner.start("sft.jsonl")
        # ... later, once tuner.status(job) == "succeeded":
        solver = switch_to_tuned(solver, tuner, job)
        ```

    Args:
        client: An `openai.OpenAI` client (or one with the same `files` and
            `fine_tuning.jobs` methods); `openai.OpenAI()` from the
            environment, created at first use, when `None`.
        base_model: The model to tune.
        suffix: Added to the tuned model's name.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        base_model: str = DEFAULT_BASE_MODEL,
        suffix: str | None = None,
    ) -> None:
        self._client = client
        self.base_model = base_model
        self.suffix = suffix

    @property
    def client(self) -> Any:
        """The OpenAI client."""
        if self._client is None:
            import openai

            self._client = self._api(openai.OpenAI)
        return self._client

    def _api(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except Exception as e:  # noqa: BLE001 - re-raised as ModelError
            raise_model_error(e, role="fine_tuning")

    def start(self, path: str | os.PathLike[str]) -> str:
        """Validate and upload `path`, and start a fine-tuning job.

        Args:
            path: A chat fine-tuning JSONL file.

        Returns:
            The job's id.

        Raises:
            InvalidInputError: The file is invalid (see `validate_sft_jsonl`).
            ModelError: The upload or the job creation failed.
        """
        validate_sft_jsonl(path)
        files, jobs = self.client.files, self.client.fine_tuning.jobs
        with open(path, "rb") as f:
            uploaded = self._api(lambda: files.create(file=f, purpose="fine-tune"))
        options: dict[str, Any] = {
            "training_file": uploaded.id,
            "model": self.base_model,
        }
        if self.suffix:
            options["suffix"] = self.suffix
        return str(self._api(lambda: jobs.create(**options)).id)

    def _job(self, job_id: str) -> Any:
        return self._api(lambda: self.client.fine_tuning.jobs.retrieve(job_id))

    def status(self, job_id: str) -> FineTuneStatus:
        """The job's state.

        Raises:
            ModelError: The job could not be read, or its state is unknown.
        """
        raw = str(self._job(job_id).status)
        if raw not in _OPENAI_STATUS:
            msg = f"fine-tuning job {job_id!r} has an unknown status {raw!r}"
            raise ModelError(msg, role="fine_tuning")
        return _OPENAI_STATUS[raw]

    def model_name(self, job_id: str) -> str | None:
        """The tuned model's name once the job has succeeded, else `None`.

        Raises:
            ModelError: The job could not be read.
        """
        job = self._job(job_id)
        name = getattr(job, "fine_tuned_model", None)
        return str(name) if job.status == "succeeded" and name else None


def switch_to_tuned(model: ChatOpenAI, tuner: FineTuner, job_id: str) -> ChatOpenAI:
    """A copy of `model` that calls the tuned model of a succeeded job.

    Everything else (endpoint, key, temperature, callbacks) is kept; `model`
    itself is unchanged.

    Args:
        model: The solver to switch.
        tuner: The fine-tuner that ran the job.
        job_id: The job's id.

    Returns:
        The switched copy.

    Raises:
        InvalidInputError: `model` is not a `ChatOpenAI`, or the job has not
            succeeded (its status is in the message) or names no model.
        ModelError: The job could not be read.
    """
    from langchain_openai import ChatOpenAI

    if not isinstance(model, ChatOpenAI):
        msg = f"`model` must be a ChatOpenAI, got {type(model).__name__}"
        raise InvalidInputError(msg)
    status = tuner.status(job_id)
    if status != "succeeded":
        msg = f"fine-tuning job {job_id!r} is {status!r}, not 'succeeded'; keep the current model"
        raise InvalidInputError(msg)
    name = tuner.model_name(job_id)
    if not name:
        msg = f"fine-tuning job {job_id!r} succeeded but names no tuned model"
        raise InvalidInputError(msg)
    return model.model_copy(update={"model_name": name})
