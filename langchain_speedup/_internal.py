"""Small helpers shared across the package; not public API."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

from langchain_core.messages import BaseMessage
from langgraph.errors import GraphBubbleUp

from langchain_speedup.errors import InvalidInputError, ModelError, SpeedupError

MAX_QUESTION_CHARS = 20_000


def message_text(message: BaseMessage) -> str:
    """The text of a message, whether its content is a string or blocks."""
    content: Any = message.content
    if isinstance(content, str):
        return content
    return "".join(
        part if isinstance(part, str) else str(part.get("text", "")) for part in content
    )


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
    return text
