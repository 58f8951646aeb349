"""The program sandbox: the answer convention, limits, hostile programs, workers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_speedup import ConfigurationError, Sandbox, SandboxError
from langchain_speedup import sandbox as sandbox_module
from langchain_speedup.sandbox import ProgramResult


def children() -> set[int]:
    """The live (or zombie) child processes of this test process, by PID."""
    found = set()
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[1] == me:
            found.add(int(stat.parent.name))
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The PIDs of every worker the sandbox starts during the test."""
    pids: list[int] = []
    original = sandbox_module._Worker.__init__

    def recording(self: sandbox_module._Worker, memory_bytes: int) -> None:
        original(self, memory_bytes)
        pids.append(self.pid)

    monkeypatch.setattr(sandbox_module._Worker, "__init__", recording)
    return pids


@pytest.fixture
def sandbox(started: list[int]) -> Iterator[Sandbox]:
    before = children()
    with Sandbox(cpu_seconds=1, wall_seconds=20, memory_mb=256) as box:
        yield box
    # Closed: no worker of the test is left, whatever it ran.
    assert all(gone(pid) for pid in started)
    assert children() - before == set()


async def execute(box: Sandbox, program: str, *, is_async: bool) -> ProgramResult:
    return await box.arun(program) if is_async else box.run(program)


class TestAnswerConvention:
    @pytest.mark.parametrize(
        ("program", "answer"),
        [
            ("answer = 6 * 7", "42"),
            ("x = 3\nprint('working')\nprint(x * 5)", "15"),
            ("def solution():\n    return 12 / 4\n", "3"),
            ("total = 0\nfor i in range(1, 11):\n    total += i\ntotal", "55"),
            ("import math\nanswer = math.sqrt(16) + math.floor(2.7)", "6"),
            (
                "from fractions import Fraction\nanswer = Fraction(1, 3) + Fraction(1, 6)",
                "0.5",
            ),
            ("from math import comb as c\nanswer = c(5, 2)", "10"),
            ("answer = 1200.0", "1200"),
            ("n = 3\nprint(f'Total for {n} items: {n * 14}')", "42"),
            ("answer = 'Tuesday'", "tuesday"),
        ],
        ids=[
            "answer-variable",
            "last-printed-line",
            "solution-function",
            "last-expression",
            "math",
            "fractions",
            "import-from-as",
            "float-normalised",
            "last-number-of-a-printed-line",
            "text-answer",
        ],
    )
    async def test_a_program_states_its_answer(
        self, sandbox: Sandbox, is_async: bool, program: str, answer: str
    ) -> None:
        result = await execute(sandbox, program, is_async=is_async)
        assert result["status"] == "ok", result
        assert result["answer"] == answer
        assert result["error"] is None

    async def test_answer_wins_over_printing(self, sandbox: Sandbox) -> None:
        result = sandbox.run("print(1)\nanswer = 2")
        assert (result["answer"], result["output"]) == ("2", "1\n")

    async def test_a_program_that_states_nothing_has_no_answer(
        self, sandbox: Sandbox
    ) -> None:
        result = sandbox.run("x = 1")
        assert result["status"] == "ok"
        assert result["answer"] is None

    async def test_a_failing_program_reports_its_error(self, sandbox: Sandbox) -> None:
        result = sandbox.run("answer = 1 / 0")
        assert result["status"] == "error"
        assert "ZeroDivisionError" in (result["error"] or "")
        assert result["answer"] is None

    async def test_a_syntax_error_is_an_error(self, sandbox: Sandbox) -> None:
        result = sandbox.run("answer = (")
        assert result["status"] == "error"
        assert "SyntaxError" in (result["error"] or "")


HOSTILE = {
    "infinite-loop": "while True:\n    pass",
    "huge-allocation": "x = [0] * (10**9)\nanswer = len(x)",
    "dunder-import": "answer = __import__('os').system('true')",
    "import-os": "import os\nanswer = os.getpid()",
    "open-etc-passwd": "answer = open('/etc/passwd').read()",
    "subclasses-escape": "answer = ().__class__.__bases__[0].__subclasses__()",
    "fork-bomb": "import os\nwhile True:\n    os.fork()",
    "fork-bomb-from-import": "from os import fork\nwhile True:\n    fork()",
    "nested-import": "def f():\n    import subprocess\n    return 1\nanswer = f()",
    "recursion-bomb": "def f(n):\n    return f(n + 1) + 1\nanswer = f(0)",
    "large-integer-power": "answer = 10**10**10",
    "output-flood": "while True:\n    print('x' * 1000)",
    "format-escape": "answer = '{0.__class__}'.format(1)",
    "f-string-escape": "answer = f'{(1).__class__.__bases__}'",
    "generator-frame": "g = (x for x in [1])\nanswer = g.gi_frame.f_back",
    "private-attribute": "from fractions import Fraction\nanswer = Fraction._from_coprime_ints",
    "function-globals": "def f():\n    return 1\nanswer = f.__globals__",
}


class TestHostilePrograms:
    @pytest.mark.parametrize("name", list(HOSTILE))
    async def test_each_is_refused_or_killed_and_the_host_is_unaffected(
        self, sandbox: Sandbox, started: list[int], is_async: bool, name: str
    ) -> None:
        result = await execute(sandbox, HOSTILE[name], is_async=is_async)
        assert result["status"] in {"refused", "error", "killed", "timeout"}, result
        assert result["answer"] is None
        assert result["error"]
        # A killed worker is reaped at once; only reusable idle ones live on.
        idle = set(sandbox.idle_pids)
        assert all(gone(pid) for pid in started if pid not in idle)
        # The host still answers, and so does the sandbox.
        assert sum(range(1000)) == 499500
        assert sandbox.run("answer = 2 + 2")["answer"] == "4"

    @pytest.mark.parametrize("name", ["import-os", "dunder-import", "fork-bomb"])
    def test_imports_and_dunders_are_refused_before_running(
        self, sandbox: Sandbox, name: str
    ) -> None:
        result = sandbox.run(HOSTILE[name])
        assert result["status"] == "refused"

    def test_an_overrun_of_cpu_time_kills_the_worker(
        self, sandbox: Sandbox, started: list[int]
    ) -> None:
        result = sandbox.run(HOSTILE["infinite-loop"])
        # SIGXCPU at the CPU limit; on a machine too busy to give one CPU
        # second within the wall time, the wall-time kill comes first.
        assert result["status"] in {"killed", "timeout"}
        assert started
        assert gone(started[0])
        assert sandbox.idle_pids == []

    async def test_an_overrun_of_wall_time_kills_the_worker_group(
        self, started: list[int], is_async: bool
    ) -> None:
        with Sandbox(cpu_seconds=60, wall_seconds=0.5) as box:
            begun = time.monotonic()
            result = await execute(box, HOSTILE["infinite-loop"], is_async=is_async)
            assert time.monotonic() - begun < 10
            assert result["status"] == "timeout"
            assert "wall-time" in (result["error"] or "")
            assert gone(started[0])

    def test_a_program_cannot_write_files(
        self, sandbox: Sandbox, tmp_path: Path
    ) -> None:
        target = tmp_path / "x"
        result = sandbox.run(f"f = open({str(target)!r}, 'w')\nf.write('x')")
        assert result["status"] == "error"
        assert not target.exists()

    def test_a_program_sees_none_of_the_hosts_secrets(
        self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
        result = sandbox.run("import os\nanswer = os.environ['OPENAI_API_KEY']")
        assert result["status"] == "refused"

    def test_changes_to_math_do_not_reach_the_next_program(
        self, sandbox: Sandbox
    ) -> None:
        assert (
            sandbox.run("import math\nmath.pi = 3\nanswer = math.pi")["answer"] == "3"
        )
        assert sandbox.run("import math\nanswer = math.pi")["answer"] == "3.14159"


class TestWorkers:
    def test_a_worker_is_reused(self, sandbox: Sandbox, started: list[int]) -> None:
        for _ in range(3):
            assert sandbox.run("answer = 1")["answer"] == "1"
        assert len(started) == 1
        assert sandbox.idle_pids == started

    def test_a_killed_worker_is_replaced(
        self, sandbox: Sandbox, started: list[int]
    ) -> None:
        sandbox.run(HOSTILE["recursion-bomb"])
        assert sandbox.run("answer = 5")["answer"] == "5"
        assert len(started) == 2
        assert gone(started[0])

    def test_without_reuse_every_program_has_a_fresh_worker(
        self, started: list[int]
    ) -> None:
        with Sandbox(reuse_workers=False) as box:
            box.run("answer = 1")
            box.run("answer = 2")
            assert box.idle_pids == []
        assert len(started) == 2
        assert all(gone(pid) for pid in started)

    async def test_concurrent_programs_each_get_a_worker(
        self, sandbox: Sandbox
    ) -> None:
        results = await asyncio.gather(
            *(sandbox.arun(f"answer = {i} * 2") for i in range(4))
        )
        assert [r["answer"] for r in results] == ["0", "2", "4", "6"]
        assert len(sandbox.idle_pids) <= sandbox.max_idle_workers

    def test_a_cancelled_run_kills_its_worker(self, started: list[int]) -> None:
        async def cancel() -> None:
            with Sandbox(wall_seconds=30) as box:
                task = asyncio.ensure_future(box.arun(HOSTILE["infinite-loop"]))
                await asyncio.sleep(0.5)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

        asyncio.run(cancel())
        assert started
        assert all(gone(pid) for pid in started)


class TestInput:
    def test_a_program_must_be_text(self, sandbox: Sandbox) -> None:
        with pytest.raises(SandboxError, match="must be a string"):
            sandbox.run(b"answer = 1")  # type: ignore[arg-type]

    def test_a_too_long_program_is_refused(self) -> None:
        with Sandbox(max_program_chars=10) as box:
            result = box.run("answer = 1 + 2 + 3")
        assert result["status"] == "refused"

    @pytest.mark.parametrize(
        "options",
        [
            {"cpu_seconds": 0},
            {"wall_seconds": -1},
            {"wall_seconds": True},
            {"memory_mb": 10},
            {"max_output_chars": 0},
            {"max_idle_workers": -1},
        ],
    )
    def test_bad_options_raise(self, options: dict[str, object]) -> None:
        with pytest.raises(ConfigurationError):
            Sandbox(**options)  # type: ignore[arg-type]

    def test_a_worker_that_cannot_start_is_a_sandbox_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sandbox_module.sys, "executable", "/nonexistent/python")
        with Sandbox() as box, pytest.raises(SandboxError, match="cannot start"):
            box.run("answer = 1")
