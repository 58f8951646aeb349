"""Exceptions raised by `langchain_speedup`.

Every error the package raises on purpose derives from `SpeedupError`, so one
`except SpeedupError` catches them all::

    SpeedupError(Exception)
     ├─ ConfigurationError(SpeedupError, ValueError)  bad options, raised at build time
     ├─ InvalidInputError(SpeedupError, ValueError)   a bad question or state at run time
     ├─ ModelError(SpeedupError)                      the chat model failed or is unreachable
     ├─ ScoringError(SpeedupError)                    a scorer failed or returned something unusable
     │   └─ SandboxError(ScoringError)                the program sandbox itself could not run
     ├─ EmbeddingError(SpeedupError)                  the embeddings failed or returned no vector
     ├─ MemoryStoreError(SpeedupError)                the episodic store cannot be used
     │   └─ EmbeddingSizeError(MemoryStoreError)      its vectors have another size than the embeddings'
     └─ LocalStackError(SpeedupError)                 the embedded local model stack failed

A wrapped failure keeps its cause as `__cause__`.
LangGraph's control-flow exceptions (interrupts, parent commands) are never
wrapped: they pass through untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langchain_speedup.types import Usage

__all__ = (
    "ConfigurationError",
    "EmbeddingError",
    "EmbeddingSizeError",
    "InvalidInputError",
    "LocalStackError",
    "MemoryStoreError",
    "ModelError",
    "SandboxError",
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
    """The chat model failed, returned no message, or its server could not be reached.

    Attributes:
        role: Which call failed: `"solver"`, `"scorer"`, `"reflection"` or
            `"fine_tuning"`.
        usage: What the question had spent when the call failed, the failed
            call included (`failed_calls`); `None` where nothing counted it.
            Engines and the router fill it.
    """

    def __init__(
        self, message: str, *, role: str = "solver", usage: Usage | None = None
    ) -> None:
        super().__init__(message)
        self.role = role
        self.usage = usage


class ScoringError(SpeedupError):
    """A scorer failed, or returned a value that is not a finite number in its range."""


class SandboxError(ScoringError):
    """The program sandbox could not run a program at all.

    Raised when the worker interpreter cannot start or breaks its protocol,
    or when the sandbox is given something that is not a program. A program
    that fails, is refused or is killed for overrunning a limit raises
    nothing: that is its result (`ProgramResult`, status other than `"ok"`),
    an unverified candidate.
    """


class EmbeddingError(SpeedupError):
    """The embeddings failed, or returned no finite vector.

    Raised before any model call of the question, so it costs no generation.
    """


class MemoryStoreError(SpeedupError):
    """The episodic store could not be opened, read or written."""


class LocalStackError(SpeedupError):
    """The embedded local stack (model file, server, embeddings) failed.

    The message names the missing package or the failing step, with the fix.
    """


class EmbeddingSizeError(MemoryStoreError):
    """A vector's size differs from the one the store's collection was built with.

    Attributes:
        expected: The collection's vector size.
        got: The size of the vector given.
    """

    def __init__(self, message: str, *, expected: int, got: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got
