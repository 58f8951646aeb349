"""What every benchmark shares: options, graded records, summaries, progress, JSON."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from langchain_speedup.errors import ConfigurationError
from langchain_speedup.scaling import ScalingEngine
from langchain_speedup.types import Route, Usage

from .questions import StreamQuestion

if TYPE_CHECKING:
    from langchain_speedup.router import BudgetRouter

R = TypeVar("R", bound=Mapping[str, Any])
K = TypeVar("K", bound=str)


@with_config(ConfigDict(extra="forbid", strict=True))
class RunOptions(TypedDict, Generic[R], total=False):
    """The options every benchmark takes, all optional."""

    quorum: int
    """Agreeing answers the consensus scorer requires; 3 by default."""
    model_name: str
    """Shown in the report; the model's own `model_name` by default."""
    progress: bool
    """Show a progress bar on stderr; on by default."""
    on_record: Callable[[R], None]
    """Called with each record as it completes."""


_RUN_OPTIONS: TypeAdapter[RunOptions[Any]] = TypeAdapter(RunOptions[Any])


class Graded(TypedDict):
    """What every record holds: the question, the answer's grade and its cost."""

    index: int
    """The question's position in its stream."""
    template: str
    question: str
    gold: int
    final_answer: str | None
    correct: bool
    """Whether `final_answer` is the gold answer (gold answers only grade)."""
    passed: bool
    """Whether the answer's score reached the threshold."""
    generations: int
    """Solver calls."""
    tokens: int
    """Total tokens of every call, scorer calls included."""
    seconds: float


class Summary(TypedDict):
    """Totals over a set of records."""

    questions: int
    correct: int
    accuracy: float
    passed: int
    passed_correct: int
    """Of the passing answers, how many were right: the scorer's precision."""
    generations: int
    tokens: int
    seconds: float


def graded(
    index: int, item: StreamQuestion, final: str | None, passed: bool, usage: Usage
) -> Graded:
    """The graded part of a record for one answered question."""
    return Graded(
        index=index,
        template=item["template"],
        question=item["question"],
        gold=item["gold"],
        final_answer=final,
        correct=final == str(item["gold"]),
        passed=passed,
        generations=usage["generations"],
        tokens=usage["total_tokens"],
        seconds=usage["seconds"],
    )


def ask(
    solver: ScalingEngine | BudgetRouter, index: int, item: StreamQuestion
) -> tuple[Graded, str, Route | None]:
    """Put one question to an engine or a router; grade the answer.

    Returns:
        The graded part of the record, the decision (the router's, or the
        engine's mode) and the router's route (`None` for an engine).
    """
    if isinstance(solver, ScalingEngine):
        result = solver.run(item["question"])
        found = graded(
            index, item, result["final_answer"], result["passed"], result["usage"]
        )
        return found, result["mode"], None
    answer = solver.solve(item["question"])
    method, score, route = answer["result"], answer["score"], answer["route"]
    # A reused answer passes on its stored score.
    passed = (
        method["passed"]
        if method
        else score is not None and score >= solver.engine.threshold
    )
    found = graded(index, item, answer["final_answer"], passed, answer["usage"])
    return found, route["decision"], route


def summarize(
    records: Sequence[Mapping[str, Any]],
    *,
    sums: Sequence[str] = (),
    seconds: float | None = None,
) -> Summary:
    """Totals of `records`, plus the sums of the fields named in `sums`.

    `seconds` is the records' own unless given (a phase's wall time).
    """
    correct = sum(r["correct"] for r in records)
    summary: dict[str, Any] = {
        "questions": len(records),
        "correct": correct,
        "accuracy": round(correct / len(records), 4) if records else 0.0,
        "passed": sum(r["passed"] for r in records),
        "passed_correct": sum(r["passed"] and r["correct"] for r in records),
    }
    for key in ("generations", "tokens", *sums):
        summary[key] = sum(r[key] for r in records)
    total = sum(r["seconds"] for r in records) if seconds is None else seconds
    summary["seconds"] = round(total, 1)
    return summary  # type: ignore[return-value]


def ratio(a: float, b: float) -> float:
    """`a / b` to four places; NaN when `b` is 0 (nothing to compare with)."""
    return round(a / b, 4) if b else math.nan


def ratios(
    summaries: Mapping[K, Mapping[str, Any]], base: K, keys: Sequence[str]
) -> dict[str, float]:
    """`<name>_<key>`: each summary's `key` over the `base` summary's."""
    return {
        f"{name}_{key}": ratio(summary[key], summaries[base][key])
        for name, summary in summaries.items()
        if name != base
        for key in keys
    }


class Recorder(Generic[R]):
    """A run's options, records and progress bar; it calls `on_record`.

    Use it as a context manager: the progress bar closes on exit.

    Raises:
        ConfigurationError: An option is unknown or of the wrong type.
    """

    def __init__(
        self, total: int, *, desc: str, unit: str, options: RunOptions[R]
    ) -> None:
        from tqdm import tqdm

        try:
            _RUN_OPTIONS.validate_python(options)
        except ValidationError as e:
            found = "; ".join(f"`{x['loc'][0]}`: {x['msg']}" for x in e.errors())
            msg = f"bad benchmark option: {found}"
            raise ConfigurationError(msg) from e
        self.records: list[R] = []
        self.started = time.perf_counter()
        self.model_name = options.get("model_name", "")
        self._bar = tqdm(
            total=total, disable=not options.get("progress", True), unit=unit, desc=desc
        )
        self._on_record = options.get("on_record")

    def __enter__(self) -> Recorder[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()

    def name(self, model: object) -> str:
        """The report's model name: the option, else the first `model_name` seen."""
        self.model_name = self.model_name or str(getattr(model, "model_name", ""))
        return self.model_name

    def label(self, text: str) -> None:
        """Show what runs now beside the bar."""
        self._bar.set_postfix_str(text)

    def add(self, record: R) -> None:
        """Keep a finished record."""
        self.records.append(record)
        if self._on_record:
            self._on_record(record)
        self._bar.update()

    def elapsed(self) -> float:
        """Seconds since the run started, to one place."""
        return round(time.perf_counter() - self.started, 1)


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value


def write_report(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write a report as JSON, NaN ratios as `null`, creating the parent folder.

    Args:
        report: Any benchmark's report.
        path: The file to write.

    Returns:
        The path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(_without_nan(report), indent=2) + "\n")
    return target
