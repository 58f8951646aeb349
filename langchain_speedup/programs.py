"""Program-of-thought: ask a model for a program that computes the answer, run it.

Any method or scorer can use it: `PROGRAM_PROMPT` asks for one short Python
program following `sandbox.PROGRAM_CONVENTION`, `extract_program` takes the
program out of the reply, and `program_of_thought` does both and runs the
program in a `Sandbox`, giving an answer comparable with
`answers.extract_answer` output (and with `answers.answers_equal`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Generator
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from typing_extensions import TypedDict

from langchain_speedup._internal import (
    Call,
    adrive,
    check_model,
    drive,
    model_call,
    validate_question,
)
from langchain_speedup.sandbox import PROGRAM_CONVENTION, ProgramResult, Sandbox
from langchain_speedup.types import ChatRunnable

__all__ = [
    "PROGRAM_PROMPT",
    "ProgramAnswer",
    "aprogram_of_thought",
    "extract_program",
    "program_of_thought",
    "program_solution",
]

PROGRAM_PROMPT = (
    "Solve the problem by writing a short Python program that computes the "
    f"answer. {PROGRAM_CONVENTION} Use exact arithmetic where you can. Reply "
    "with the program only, in one ```python code block."
)
"""The system prompt asking for a program-of-thought solution."""

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_program(reply: str) -> str | None:
    r"""The program in a model's reply, or `None` if it holds none.

    The last fenced block tagged `python` (or `py`), else the last untagged
    fenced block, else the whole reply when it parses as Python and assigns
    `answer` or prints; a block that does not parse is still returned (the
    sandbox reports its syntax error).

    Example:
        ```python
        reply = "Here:\n```python\nanswer = 6 * 7\n```"
        assert extract_program(reply) == "answer = 6 * 7"
        ```
    """
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(reply)]
    tagged = [body for tag, body in blocks if tag in {"python", "py", "python3"}]
    untagged = [body for tag, body in blocks if not tag]
    for found in (tagged, untagged):
        if found and found[-1].strip():
            program: str = found[-1].strip("\n").rstrip()
            return program
    if blocks:
        return None
    text = reply.strip()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    states = any(
        (isinstance(n, ast.Name) and n.id == "answer" and isinstance(n.ctx, ast.Store))
        or (isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print")
        for n in ast.walk(tree)
    )
    return text if states else None


class ProgramAnswer(TypedDict):
    """A program-of-thought: the reply, its program and what running it gave."""

    reply: str
    program: str | None
    """`None` when the reply held no program."""
    result: ProgramResult | None
    """`None` when there was no program to run."""
    answer: str | None
    """The program's normalised answer; `None` unless it ran and stated one."""


def program_solution(found: ProgramAnswer) -> str | None:
    r"""A candidate solution made of a program and the answer it computed.

    The reply, then "The final answer is \boxed{ANSWER}." with the executed
    answer, so that scaling methods and scorers read the executed answer as
    the solution's stated final answer. `None` when the program gave none.
    A method that samples programs as candidates uses this as its text.
    """
    if found["answer"] is None:
        return None
    return f"{found['reply'].rstrip()}\n\nThe final answer is \\boxed{{{found['answer']}}}."


def program_prompt(question: str, prompt: str = PROGRAM_PROMPT) -> list[BaseMessage]:
    """The messages asking for a program that answers `question`."""
    return [SystemMessage(prompt), HumanMessage(question)]


def run_reply(reply: str, sandbox: Sandbox) -> Generator[Call, Any, ProgramAnswer]:
    """A step: run the program in `reply`, if it holds one."""
    program = extract_program(reply)
    if program is None:
        return ProgramAnswer(reply=reply, program=None, result=None, answer=None)
    result = yield Call(lambda: sandbox.run(program), lambda: sandbox.arun(program))
    return ProgramAnswer(
        reply=reply, program=program, result=result, answer=result["answer"]
    )


def program_step(
    model: ChatRunnable,
    question: str,
    *,
    sandbox: Sandbox,
    prompt: str = PROGRAM_PROMPT,
    config: RunnableConfig | None = None,
    role: str = "solver",
) -> Generator[Call, Any, ProgramAnswer]:
    """A step: one model call for a program, then the program's run."""
    messages = program_prompt(question, prompt)
    message = yield model_call(
        lambda: model.invoke(messages, config),
        lambda: model.ainvoke(messages, config),
        role=role,
    )
    return (yield from run_reply(message.text, sandbox))


def program_of_thought(
    model: ChatRunnable,
    question: str,
    *,
    sandbox: Sandbox | None = None,
    prompt: str = PROGRAM_PROMPT,
    config: RunnableConfig | None = None,
) -> ProgramAnswer:
    """Ask `model` for a program that answers `question`, and run it.

    One model call (made with `config`, so a `Ledger` in it counts it), then
    one sandboxed run.

    Example:
        ```python
        with Sandbox() as sandbox:
            found = program_of_thought(model, "What is 17 * 23?", sandbox=sandbox)
            found["answer"]  # "391" when the program ran
        ```

    Args:
        model: Any chat model or runnable returning a message.
        question: The question.
        sandbox: Where the program runs; a new `Sandbox()` when `None`
            (pass one to reuse its warm workers).
        prompt: The system prompt asking for the program.
        config: Passed to the model call.

    Returns:
        The reply, its program, the run's result and the answer.

    Raises:
        InvalidInputError: The question is not a non-empty string.
        ModelError: The model call failed.
        SandboxError: The sandbox could not run at all.
    """
    return drive(_checked_step(model, question, sandbox, prompt, config))


async def aprogram_of_thought(
    model: ChatRunnable,
    question: str,
    *,
    sandbox: Sandbox | None = None,
    prompt: str = PROGRAM_PROMPT,
    config: RunnableConfig | None = None,
) -> ProgramAnswer:
    """Async form of `program_of_thought`."""
    return await adrive(_checked_step(model, question, sandbox, prompt, config))


def _checked_step(
    model: ChatRunnable,
    question: str,
    sandbox: Sandbox | None,
    prompt: str,
    config: RunnableConfig | None,
) -> Generator[Call, Any, ProgramAnswer]:
    """`program_step` on checked input, in a sandbox of its own if none is given."""
    check_model(model)
    text = validate_question(question)
    box = Sandbox() if sandbox is None else sandbox
    try:
        return (
            yield from program_step(
                model, text, sandbox=box, prompt=prompt, config=config
            )
        )
    finally:
        if sandbox is None:
            box.close()
