"""A sandbox for short model-written Python programs, and their result.

A program never runs in the host process, and never through `exec` or
`eval`: it goes to a worker process (`python -I`, its own process group, an
environment without the host's variables) where `asteval` interprets its
syntax tree. The interpreter allows arithmetic, assignments, loops,
conditionals, functions, comprehensions and `print`, with `math` and
`fractions.Fraction` as the only imports. It refuses every other import,
dunder names and attributes (`().__class__.__bases__` and the like), `open`
and the other builtins that reach outside, exponents above 10,000 and strings
above 256 KiB. The worker runs under `setrlimit` limits on CPU time, address
space, file size and processes; the host enforces the wall time and kills the
worker's process group by PID on any overrun.

The answer convention (`PROGRAM_CONVENTION`): a program states its answer by
assigning the variable `answer`; else the last line it prints is the answer
(its last number, when the line holds several: "Total for 3 items: 42");
else, if it defines a function `solution()` and prints nothing, its return
value; else the value of its last expression.

POSIX only (it needs `resource` and process groups).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Generator
from typing import IO, Any, Literal

from typing_extensions import TypedDict

from langchain_speedup._internal import Call, adrive, drive
from langchain_speedup.answers import extract_answer, normalize_answer
from langchain_speedup.errors import ConfigurationError, SandboxError

__all__ = ["PROGRAM_CONVENTION", "ProgramResult", "ProgramStatus", "Sandbox"]

PROGRAM_CONVENTION = (
    "The program stores its final answer in a variable named `answer` "
    "(or prints it as its last line). It may import only `math` and "
    "`fractions`; it cannot read files or the network."
)
"""How a program states its answer, in words a prompt can quote."""

ProgramStatus = Literal["ok", "error", "refused", "timeout", "killed"]
"""How a program ended: it ran (`ok`); it raised (`error`); the sandbox would
not run it (`refused`); it overran the wall time (`timeout`); or the worker
died, for example at the CPU-time limit (`killed`)."""

_RATIO = re.compile(r"(-?\d+)\s*/\s*([1-9]\d*)")
_NUMBERS = re.compile(r"\d+(?:[.,]\d+)*")
_STARTUP_SECONDS = 30.0  # a cold interpreter on a loaded machine
_KILL_WAIT_SECONDS = 5.0
_ENVIRONMENT = ("PATH", "LD_LIBRARY_PATH", "LANG", "LC_ALL", "SYSTEMROOT")


class ProgramResult(TypedDict):
    """What running one program gave."""

    status: ProgramStatus
    answer: str | None
    """The result normalised like `answers.extract_answer` output (`"42"`
    for `42.0`); `None` unless the program ran and stated a result."""
    value: str | None
    """The result as the program gave it, before normalising."""
    output: str
    """What the program printed (up to the output limit)."""
    error: str | None
    """Why the program did not run to a result; `None` when it did."""
    seconds: float
    """Wall time, from sending the program to reading its result."""


def _result(
    status: ProgramStatus,
    *,
    seconds: float,
    value: str | None = None,
    output: str = "",
    error: str | None = None,
) -> ProgramResult:
    answer = None
    if status == "ok" and value:
        ratio = _RATIO.fullmatch(value.strip())
        if ratio:  # a Fraction's text, "3/4": its value, as for "\\frac{3}{4}"
            value_of = int(ratio.group(1)) / int(ratio.group(2))
            answer = normalize_answer(repr(value_of))
        else:
            answer = normalize_answer(value)
            if len(_NUMBERS.findall(value)) > 1:  # "Total for 3 items: 42"
                answer = extract_answer(value)
    return ProgramResult(
        status=status,
        answer=answer,
        value=value,
        output=output,
        error=error,
        seconds=seconds,
    )


class _Worker:
    """One worker process and the bytes read from it so far."""

    def __init__(self, memory_bytes: int) -> None:
        env = {k: os.environ[k] for k in _ENVIRONMENT if k in os.environ}
        command = [sys.executable, "-I", "-m", "langchain_speedup._sandbox_worker"]
        try:
            self.process = subprocess.Popen(  # our own interpreter and module
                [*command, str(memory_bytes)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, killed as one
                close_fds=True,
                env=env,
                cwd="/",
            )
        except OSError as e:
            msg = f"cannot start the sandbox worker ({type(e).__name__}: {e})"
            raise SandboxError(msg) from e
        self.pid = self.process.pid
        self.ready = False
        self._buffer = b""
        self._stdin = self.process.stdin
        self._stdout = self.process.stdout
        assert self._stdin is not None
        assert self._stdout is not None
        os.set_blocking(self._stdout.fileno(), False)

    @property
    def stdout(self) -> IO[bytes]:
        assert self._stdout is not None
        return self._stdout

    def send(self, request: dict[str, Any]) -> bool:
        """Send a request; `False` when the worker is gone."""
        assert self._stdin is not None
        try:
            self._stdin.write(json.dumps(request).encode() + b"\n")
            self._stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def take_line(self) -> bytes | None:
        """Read what is available; a complete line if there is one.

        Raises:
            EOFError: The worker closed its output (it died).
        """
        while b"\n" not in self._buffer:
            try:
                chunk = os.read(self.stdout.fileno(), 65536)
            except BlockingIOError:
                return None
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def read_line(self, deadline: float) -> bytes:
        """The next line, waiting until `deadline` (monotonic) at most.

        Raises:
            EOFError: The worker died.
            TimeoutError: The deadline passed first.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.stdout, selectors.EVENT_READ)
            while (line := self.take_line()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                selector.select(left)
        return line

    async def aread_line(self, deadline: float) -> bytes:
        """Async form of `read_line`: waits on the event loop, never blocks it."""
        loop = asyncio.get_running_loop()
        while (line := self.take_line()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            readable = loop.create_future()
            fd = self.stdout.fileno()
            loop.add_reader(fd, _wake, readable)
            try:
                await asyncio.wait_for(readable, left)
            except TimeoutError:
                pass
            finally:
                loop.remove_reader(fd)
        return line

    def kill(self) -> int | None:
        """Kill the worker's process group and reap it; its exit status."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:  # the group is gone and the id reused
            self.process.kill()
        try:
            code = self.process.wait(_KILL_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            code = None
        for stream in (self._stdin, self._stdout):
            if stream is not None:
                stream.close()
        return code


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _kill_all(workers: list[_Worker]) -> None:
    while workers:
        workers.pop().kill()


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        if -code == signal.SIGXCPU:
            return "the program overran its CPU-time limit"
        return f"the worker was killed by {signal.Signals(-code).name}"
    return f"the worker exited with status {code}"


class Sandbox:
    """Runs short model-written Python programs safely; see the module docstring.

    Workers are reused (`reuse_workers`): starting one (a fresh interpreter
    importing asteval) took about 0.3 s here, a short program on a warm one
    under a millisecond.
    Each program still gets a fresh asteval interpreter and fresh `math` and
    `Fraction` objects, so nothing one program does is seen by the next; a
    worker that overran a limit, ran out of memory or recursion is killed and
    never reused. Safe to share between threads and tasks: a busy worker is
    never lent twice.

    A program that fails, is refused, or is killed is no error: `run` returns
    its `ProgramResult` with that status. `SandboxError` means the sandbox
    itself could not work.

    Example:
        ```python
        with Sandbox() as sandbox:
            result = sandbox.run("answer = sum(range(1, 11))")
            assert result["answer"] == "55"
            assert sandbox.run("import os")["status"] == "refused"
        ```

    Args:
        cpu_seconds: CPU time one program may use.
        wall_seconds: Wall time one program may take, measured by the host.
        memory_mb: Address space a worker may map, in MiB.
        max_output_chars: Characters a program may print.
        max_program_chars: The longest program accepted.
        reuse_workers: Keep idle workers for later programs.
        max_idle_workers: How many idle workers to keep.

    Raises:
        ConfigurationError: An option is invalid.
    """

    @staticmethod
    def checked(sandbox: object) -> Sandbox | None:
        """`sandbox` if it is a `Sandbox` or `None`, else `ConfigurationError`."""
        if sandbox is not None and not isinstance(sandbox, Sandbox):
            msg = f"`sandbox` must be a Sandbox, got {type(sandbox).__name__}"
            raise ConfigurationError(msg)
        return sandbox

    def __init__(
        self,
        *,
        cpu_seconds: float = 2.0,
        wall_seconds: float = 5.0,
        memory_mb: int = 256,
        max_output_chars: int = 10_000,
        max_program_chars: int = 20_000,
        reuse_workers: bool = True,
        max_idle_workers: int = 2,
    ) -> None:
        for name, value in (
            ("cpu_seconds", cpu_seconds),
            ("wall_seconds", wall_seconds),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (0 < value <= 600)
            ):
                msg = f"`{name}` must be a number of seconds in (0, 600], got {value!r}"
                raise ConfigurationError(msg)
        for name, count, least in (
            ("memory_mb", memory_mb, 64),
            ("max_output_chars", max_output_chars, 1),
            ("max_program_chars", max_program_chars, 1),
            ("max_idle_workers", max_idle_workers, 0),
        ):
            if isinstance(count, bool) or not isinstance(count, int) or count < least:
                msg = f"`{name}` must be an integer >= {least}, got {count!r}"
                raise ConfigurationError(msg)
        self.cpu_seconds = float(cpu_seconds)
        self.wall_seconds = float(wall_seconds)
        self.memory_mb = memory_mb
        self.max_output_chars = max_output_chars
        self.max_program_chars = max_program_chars
        self.reuse_workers = bool(reuse_workers)
        self.max_idle_workers = max_idle_workers
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _kill_all, self._idle)

    @property
    def idle_pids(self) -> list[int]:
        """The process ids of the idle workers kept for reuse."""
        with self._lock:
            return [w.pid for w in self._idle]

    def close(self) -> None:
        """Kill every idle worker; the sandbox starts new ones if used again."""
        with self._lock:
            idle = list(self._idle)
            self._idle.clear()
        _kill_all(idle)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def run(self, program: str) -> ProgramResult:
        """Run `program` and return its result.

        Args:
            program: Python source following `PROGRAM_CONVENTION`.

        Returns:
            The result; its `status` says whether the program ran.

        Raises:
            SandboxError: `program` is not a string, or no worker could start.
        """
        return drive(self._step(program))

    async def arun(self, program: str) -> ProgramResult:
        """Async form of `run`; waits on the event loop, never blocks it."""
        return await adrive(self._step(program))

    # -- internals ---------------------------------------------------------------------

    def _checkout(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.poll() is None:
                    return worker
                worker.kill()
        return _Worker(self.memory_mb * 1024 * 1024)

    def _checkin(self, worker: _Worker) -> None:
        with self._lock:
            if self.reuse_workers and len(self._idle) < self.max_idle_workers:
                self._idle.append(worker)
                return
        worker.kill()

    def _step(self, program: object) -> Generator[Call, Any, ProgramResult]:
        if not isinstance(program, str):
            msg = f"a program must be a string, got {type(program).__name__}"
            raise SandboxError(msg)
        if len(program) > self.max_program_chars:
            error = f"the program has {len(program)} characters, more than {self.max_program_chars}"
            return _result("refused", seconds=0.0, error=error)
        worker = self._checkout()
        keep = False
        try:
            if not worker.ready:
                deadline = time.monotonic() + _STARTUP_SECONDS
                try:
                    yield self._read(worker, deadline)
                except (EOFError, TimeoutError) as e:
                    code = worker.kill()
                    msg = f"the sandbox worker did not start ({_death(code)})"
                    raise SandboxError(msg) from e
                worker.ready = True
            request = {
                "program": program,
                "cpu_seconds": self.cpu_seconds,
                "max_output": self.max_output_chars,
            }
            sent = time.monotonic()
            if not worker.send(request):
                return _result("killed", seconds=0.0, error=_death(worker.kill()))
            try:
                line = yield self._read(worker, sent + self.wall_seconds)
            except TimeoutError:
                worker.kill()
                error = (
                    f"the program overran its wall-time limit of {self.wall_seconds} s"
                )
                return _result("timeout", seconds=time.monotonic() - sent, error=error)
            except EOFError:
                error = _death(worker.kill())
                return _result("killed", seconds=time.monotonic() - sent, error=error)
            try:
                reply = json.loads(line)
            except ValueError as e:
                msg = f"the sandbox worker sent {line[:200]!r}, not a result"
                raise SandboxError(msg) from e
            keep = not reply.get("fatal", False)
            return _result(
                reply["status"],
                seconds=time.monotonic() - sent,
                value=reply.get("value"),
                output=reply.get("output", ""),
                error=reply.get("error"),
            )
        finally:
            if keep:
                self._checkin(worker)
            elif worker.process.returncode is None:
                worker.kill()

    @staticmethod
    def _read(worker: _Worker, deadline: float) -> Call:
        return Call(
            lambda: worker.read_line(deadline),
            lambda: worker.aread_line(deadline),
        )
