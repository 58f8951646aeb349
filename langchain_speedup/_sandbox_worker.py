"""The sandbox's worker process: runs programs with asteval under resource limits.

Started by `langchain_speedup.sandbox` as `python -I -m
langchain_speedup._sandbox_worker MEMORY_BYTES`, in a process group of its
own. It sets its limits, prints one "ready" line, then reads one JSON request
per line on stdin (`{"program": ..., "cpu_seconds": ..., "max_output": ...}`)
and writes one JSON result per line on stdout. Model text is never given to
`exec` or `eval`: asteval walks the program's syntax tree itself, with
imports, dunder attributes, `open` and the rest of the builtins it would
expose for I/O removed. Private: this module imports nothing of the package.
"""

from __future__ import annotations

import ast
import fractions
import json
import math
import resource
import sys
import time
import types
from typing import Any

# What a program may import, and the names each import may bind.
_MODULES = {
    "math": {
        name: getattr(math, name) for name in dir(math) if not name.startswith("_")
    },
    "fractions": {"Fraction": fractions.Fraction},
}
# Builtins asteval offers that a computation does not need: `open` reads files.
_REMOVED = ("open", "dir", "id", "hash", "bytearray", "bytes", "type", "format")
_RECURSION_LIMIT = 2000
# Attributes of generators, coroutines, frames, tracebacks and code objects.
_FRAME_PREFIXES = frozenset({"gi", "cr", "ag", "f", "tb", "co", "im", "func"})


class _Refused(Exception):
    """The program uses something the sandbox does not run."""


class _OutputLimit(Exception):
    """The program printed more than it may."""


class _Writer:
    """Collects printed text, up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.size += len(text)
        if self.size > self.limit:
            raise _OutputLimit
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def _namespace(name: str) -> types.SimpleNamespace:
    # Fresh per program, so a program that assigns `math.pi` changes nothing
    # for the next one; `Fraction` is a fresh subclass for the same reason.
    values = dict(_MODULES[name])
    if name == "fractions":
        values["Fraction"] = type("Fraction", (fractions.Fraction,), {})
    return types.SimpleNamespace(**values)


def _imported(node: ast.Import | ast.ImportFrom) -> dict[str, Any]:
    """The names an allowed import binds.

    Raises:
        _Refused: It imports anything but `math` and `fractions`.
    """
    if isinstance(node, ast.Import):
        unknown = [a.name for a in node.names if a.name not in _MODULES]
        if unknown:
            msg = f"import of {unknown[0]!r} is not allowed"
            raise _Refused(msg)
        return {a.asname or a.name: _namespace(a.name) for a in node.names}
    if node.module not in _MODULES or node.level:
        msg = f"import from {node.module!r} is not allowed"
        raise _Refused(msg)
    space = _namespace(node.module)
    missing = [a.name for a in node.names if not hasattr(space, a.name)]
    if missing:
        msg = f"{node.module} has no {missing[0]!r} here"
        raise _Refused(msg)
    return {a.asname or a.name: getattr(space, a.name) for a in node.names}


def _without_imports(tree: ast.Module) -> tuple[ast.Module, dict[str, Any]]:
    """The program without its top-level imports, and the names those bind."""
    bound: dict[str, Any] = {}
    body: list[ast.stmt] = []
    for statement in tree.body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            bound.update(_imported(statement))
        else:
            body.append(statement)
    rest = ast.Module(body=body, type_ignores=[])
    for node in ast.walk(rest):
        if isinstance(node, ast.Import | ast.ImportFrom):
            msg = "imports are allowed only at the top of the program"
            raise _Refused(msg)
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            msg = f"the name {node.id!r} is not allowed"
            raise _Refused(msg)
        # asteval refuses dunders itself; refusing every private attribute and
        # the frame and code attributes too leaves no second line to find.
        if isinstance(node, ast.Attribute) and (
            node.attr.startswith("_") or node.attr.split("_")[0] in _FRAME_PREFIXES
        ):
            msg = f"the attribute {node.attr!r} is not allowed"
            raise _Refused(msg)
    return rest, bound


def _result_text(value: Any) -> str | None:
    if value is None or isinstance(value, bool) or callable(value):
        return None
    if isinstance(value, fractions.Fraction):
        return str(value) if value.denominator != 1 else str(value.numerator)
    if isinstance(value, int | float | str):
        return str(value)
    return None


def run(program: str, max_output: int) -> dict[str, Any]:
    """Run one program; the result as the parent reads it."""
    from asteval import Interpreter

    try:
        tree, bound = _without_imports(ast.parse(program))
    except SyntaxError as e:
        return {"status": "error", "error": f"SyntaxError: {e.msg} (line {e.lineno})"}
    except _Refused as e:
        return {"status": "refused", "error": str(e)}
    out, err = _Writer(max_output), _Writer(max_output)
    interpreter = Interpreter(use_numpy=False, writer=out, err_writer=err)
    for name in _REMOVED:
        interpreter.symtable.pop(name, None)
    interpreter.symtable.update(bound)
    try:
        last = interpreter.eval(ast.unparse(tree), show_errors=False)
        if not interpreter.error and "answer" not in interpreter.symtable:
            solution = interpreter.symtable.get("solution")
            if not out.parts and callable(solution):
                last = interpreter.eval("solution()", show_errors=False)
    except _OutputLimit:
        return {
            "status": "error",
            "error": f"printed more than {max_output} characters",
        }
    if interpreter.error:
        kind, message = interpreter.error[0].get_error()
        if kind == "_OutputLimit":
            return {
                "status": "error",
                "error": f"printed more than {max_output} characters",
            }
        fatal = kind in {"MemoryError", "RecursionError"}
        detail = message.strip().splitlines()[-1] if message.strip() else kind
        return {"status": "error", "error": detail[:500], "fatal": fatal}
    printed = "".join(out.parts)
    value = _result_text(interpreter.symtable.get("answer"))
    if value is None and printed.strip():
        value = printed.strip().splitlines()[-1].strip()
    if value is None:
        value = _result_text(last)
    return {"status": "ok", "value": value, "output": printed}


def _limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, hard))


def main() -> None:
    """Set the limits, then serve requests until stdin closes."""
    memory = int(sys.argv[1])
    import asteval  # noqa: F401  loaded before the memory limit applies

    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_FSIZE, 0)  # no file grows, whatever happens
    _limit(resource.RLIMIT_NPROC, 0)  # no fork (ignored for root: no `os` anyway)
    sys.setrecursionlimit(_RECURSION_LIMIT)
    sys.stdout.write('{"ready": true}\n')
    sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        used = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        # The CPU limit is cumulative for a process: allow this program its
        # share on top of what earlier ones used. SIGXCPU ends the worker.
        _limit(resource.RLIMIT_CPU, math.ceil(used + request["cpu_seconds"]))
        started = time.perf_counter()
        try:
            result = run(request["program"], request["max_output"])
        except MemoryError:
            result = {"status": "error", "error": "MemoryError", "fatal": True}
        result["seconds"] = time.perf_counter() - started
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
