"""Run a generated program against tests in a separate, limited Python process.

Every execution of model-written code in the harness goes through
`run_program`, so a stronger sandbox replaces one function. The child runs
in isolated mode (`python -I`) in a fresh temporary directory, with limits on
CPU seconds, address space, file size and processes, and is killed (its whole
process group) at the wall-clock timeout.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CodeLimits",
    "examples_in",
    "extract_program",
    "passes_examples",
    "passes_tests",
    "run_program",
]


@dataclass(frozen=True, kw_only=True)
class CodeLimits:
    """Resource limits of one execution."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 5
    memory_bytes: int = 512 * 1024 * 1024
    file_bytes: int = 1024 * 1024


def _limit(limits: CodeLimits) -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))


def run_program(source: str, *, limits: CodeLimits | None = None) -> bool:
    """Run `source` as a script; whether it exited with status 0 in time.

    Args:
        source: The Python program.
        limits: The resource limits; `CodeLimits()` by default.

    Returns:
        `True` when the program ran to completion without an error.
    """
    limits = limits or CodeLimits()
    with tempfile.TemporaryDirectory(prefix="speedup-run-") as tmp:
        script = Path(tmp) / "program.py"
        script.write_text(source, encoding="utf-8")
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"}
        process = subprocess.Popen(
            [sys.executable, "-I", str(script)],
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: _limit(limits),
        )
        try:
            return process.wait(timeout=limits.wall_seconds) == 0
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return False


_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


def extract_program(reply: str, prompt: str, entry_point: str) -> str:
    """The program a reply states: its longest fenced block, or the reply itself.

    A reply that only continues the function body is appended to `prompt`.
    """
    blocks = _FENCE.findall(reply)
    code = max(blocks, key=len) if blocks else reply
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
        header = "\n".join(
            line
            for line in prompt.splitlines()
            if line.startswith(("import ", "from ")) and line not in code
        )
        return f"{header}\n{code}" if header else code
    return prompt + code


def passes_tests(
    program: str, tests: str, entry_point: str, *, limits: CodeLimits | None = None
) -> bool:
    """Whether `program` passes HumanEval-style `tests` (`check(candidate)`)."""
    source = f"{program}\n\n{tests}\n\ncheck({entry_point})\n"
    return run_program(source, limits=limits)


_EXAMPLE = re.compile(r"^\s*>>>\s*(.+)\n\s*(\S.*)$", re.MULTILINE)
_FUNCTION = re.compile(r"^\s*def\s+(\w+)\s*\(", re.MULTILINE)


def examples_in(prompt: str) -> list[tuple[str, str]]:
    """The `>>> call` / expected-output pairs of a prompt's docstring."""
    return [(m.group(1).strip(), m.group(2).strip()) for m in _EXAMPLE.finditer(prompt)]


def passes_examples(prompt: str, reply: str) -> float:
    """The share of the prompt's own docstring examples the reply's program passes.

    This reads only the question (the examples are part of it), never the
    hidden tests, so a method may use it as its scorer. A prompt without
    examples scores 0.
    """
    examples = examples_in(prompt)
    names = _FUNCTION.findall(prompt)
    if not examples or not names:
        return 0.0
    program = extract_program(reply, prompt, names[-1])
    checks = "\n".join(
        f"try:\n    _ok += int(({call}) == ({expected}))\nexcept Exception:\n    pass"
        for call, expected in examples
    )
    source = f"{program}\n\n_ok = 0\n{checks}\nraise SystemExit(0 if _ok == {len(examples)} else 1)\n"
    # One run answers all-or-nothing; the scorer needs no finer grain.
    return 1.0 if run_program(source) else 0.0
