"""What every benchmark shares: graded records, summaries, ratios, progress, JSON."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from typing_extensions import TypedDict

from langchain_speedup.types import Usage

from .questions import StreamQuestion

R = TypeVar("R", bound=Mapping[str, Any])
K = TypeVar("K", bound=str)


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
    """Collects a run's records, shows its progress and calls `on_record`.

    Use it as a context manager: the progress bar closes on exit.
    """

    def __init__(
        self,
        total: int,
        *,
        desc: str,
        unit: str,
        progress: bool,
        on_record: Callable[[R], None] | None,
    ) -> None:
        from tqdm import tqdm

        self.records: list[R] = []
        self.started = time.perf_counter()
        self._bar = tqdm(total=total, disable=not progress, unit=unit, desc=desc)
        self._on_record = on_record

    def __enter__(self) -> Recorder[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()

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
