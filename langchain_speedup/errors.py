"""Exceptions raised by `langchain_speedup`.

Every error the package raises on purpose derives from `SpeedupError`, so one
`except SpeedupError` catches them all::

    SpeedupError(Exception)
     ├─ ConfigurationError(SpeedupError, ValueError)  bad options, raised at build time
     ├─ InvalidInputError(SpeedupError, ValueError)   a bad question or state at run time
     ├─ ModelError(SpeedupError)                      the chat model failed or is unreachable
     ├─ ScoringError(SpeedupError)                    a scorer returned something unusable
     ├─ MemoryStoreError(SpeedupError)                the episodic store cannot be used
     └─ LocalStackError(SpeedupError)                 the embedded local model stack failed

LangGraph's control-flow exceptions (interrupts, parent commands) are never
wrapped: they pass through untouched.
"""

from __future__ import annotations

__all__ = (
    "ConfigurationError",
    "InvalidInputError",
    "LocalStackError",
    "MemoryStoreError",
    "ModelError",
    "ScoringError",
    "SpeedupError",
)


class SpeedupError(Exception):
    """Base class of every error raised by `langchain_speedup`."""


class ConfigurationError(SpeedupError, ValueError):
    """An option is invalid; raised when a graph or component is built."""


class InvalidInputError(SpeedupError, ValueError):
    """A question or graph state given at run time is invalid.

    Nothing is written to memory when this is raised.
    """


class ModelError(SpeedupError):
    """The chat model failed, or its server could not be reached.

    Attributes:
        role: Which call failed: `"solver"`, `"scorer"`, `"reflection"` or
            `"fine_tuning"`.
    """

    def __init__(self, message: str, *, role: str = "solver") -> None:
        super().__init__(message)
        self.role = role


class ScoringError(SpeedupError):
    """A scorer returned a value that is not a finite number in its range."""


class MemoryStoreError(SpeedupError):
    """The episodic store could not be opened, read or written."""


class LocalStackError(SpeedupError):
    """The embedded local stack (model file, server, embeddings) failed.

    The message names the missing package or the failing step, with the fix.
    """
