"""The demo: one stream of questions, three ways, measured in one run.

1. `baseline`: static Best-of-N without memory (the paper's baseline);
2. `adaptive`: adaptive Best-of-N without memory, so the share of the saving
   that adaptive stopping alone brings is visible;
3. `speedup`: the memory-aware router over adaptive Best-of-N.

All three use the same model, scorer, prompt and questions. Gold answers only
grade the final answers, after the fact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from tqdm import tqdm
from typing_extensions import TypedDict

from langchain_speedup.budget import Usage
from langchain_speedup.memory.store import QdrantEpisodicStore
from langchain_speedup.router import BudgetRouter
from langchain_speedup.scaling.best_of_n import BestOfN, ChatRunnable
from langchain_speedup.scoring import ConsensusScorer

from ._report import ratio, write_report
from .questions import TEMPLATES, StreamQuestion, build_stream

__all__ = [
    "DEMO_SYSTEM_PROMPT",
    "PHASES",
    "DemoReport",
    "PhaseSummary",
    "QuestionRecord",
    "format_report",
    "plot_report",
    "run_demo",
]

logger = logging.getLogger(__name__)

Phase = Literal["baseline", "adaptive", "speedup"]
PHASES: tuple[Phase, ...] = ("baseline", "adaptive", "speedup")

DEMO_SYSTEM_PROMPT = (
    "You solve grade-school math word problems. Write only the arithmetic, one "
    "short step per line, then the final answer. Example:\n"
    "Problem: Tom has 3 bags with 5 apples in each bag. He eats 2 apples. How "
    "many apples are left?\n"
    "3 * 5 = 15\n"
    "15 - 2 = 13\n"
    "The final answer is \\boxed{13}."
)
"""Short answers keep the demo fast on a CPU; the example is not from the stream."""


class QuestionRecord(TypedDict):
    """One question of one phase."""

    phase: Phase
    index: int
    kind: str
    template: str
    question: str
    gold: int
    final_answer: str | None
    correct: bool
    passed: bool
    decision: str
    generations: int
    tokens: int
    seconds: float


class PhaseSummary(TypedDict):
    """Totals of one phase."""

    questions: int
    correct: int
    accuracy: float
    generations: int
    tokens: int
    passed: int
    """Questions whose answer scored at or above the threshold."""
    passed_correct: int
    """Of those, how many were right: the scorer's precision is the ratio."""
    seconds: float


class DemoReport(TypedDict):
    """The demo's results: per-phase totals, ratios and every question."""

    model: str
    n: int
    quorum: int
    memory: str | None
    memory_episodes_at_start: int
    baseline: PhaseSummary
    adaptive: PhaseSummary
    speedup: PhaseSummary
    ratios: dict[str, float]
    records: list[QuestionRecord]


def _record(
    phase: Phase,
    index: int,
    item: StreamQuestion,
    final: str | None,
    passed: bool,
    decision: str,
    usage: Usage,
) -> QuestionRecord:
    return QuestionRecord(
        phase=phase,
        index=index,
        kind=item["kind"],
        template=item["template"],
        question=item["question"],
        gold=item["gold"],
        final_answer=final,
        correct=final == str(item["gold"]),
        passed=passed,
        decision=decision,
        generations=usage["generations"],
        tokens=usage["total_tokens"],
        seconds=usage["seconds"],
    )


def _summary(records: Sequence[QuestionRecord], seconds: float) -> PhaseSummary:
    correct = sum(r["correct"] for r in records)
    return PhaseSummary(
        questions=len(records),
        correct=correct,
        accuracy=round(correct / len(records), 4) if records else 0.0,
        generations=sum(r["generations"] for r in records),
        tokens=sum(r["tokens"] for r in records),
        passed=sum(r["passed"] for r in records),
        passed_correct=sum(r["passed"] and r["correct"] for r in records),
        seconds=round(seconds, 1),
    )


def run_demo(
    model: ChatRunnable,
    *,
    embeddings: Embeddings,
    memory_path: str | Path | None = None,
    stream: Sequence[StreamQuestion] | None = None,
    n: int = 8,
    quorum: int = 3,
    model_name: str = "",
    progress: bool = True,
    on_record: Callable[[QuestionRecord], None] | None = None,
) -> DemoReport:
    """Run the stream through baseline, adaptive and speedup; measure all three.

    Args:
        model: The chat model (sampling temperature above 0).
        embeddings: Embeddings for the speedup router.
        memory_path: Keep the episodic store here across runs; in memory (and
            so empty at the start) when `None`.
        stream: The questions; `build_stream()` of four templates by default.
        n: The Best-of-N budget of every phase.
        quorum: Agreeing answers the consensus scorer requires.
        model_name: Shown in the report.
        progress: Show a progress bar on stderr.
        on_record: Called with each question's record as it completes.

    Returns:
        The report.
    """
    items = list(stream or build_stream(TEMPLATES[:4]))
    scorer = ConsensusScorer(quorum=quorum)
    options: dict[str, Any] = {
        "n": n,
        "scorer": scorer,
        "system_prompt": DEMO_SYSTEM_PROMPT,
    }
    store = (
        QdrantEpisodicStore(path=memory_path) if memory_path else QdrantEpisodicStore()
    )
    namespace = "demo"
    at_start = store.count(namespace)
    engines = {
        "baseline": BestOfN(model, mode="static", **options),
        "adaptive": BestOfN(model, mode="adaptive", **options),
    }
    router = BudgetRouter(
        model, store=store, embeddings=embeddings, namespace=namespace, **options
    )
    records: dict[Phase, list[QuestionRecord]] = {p: [] for p in PHASES}
    seconds: dict[Phase, float] = {}
    bar = tqdm(
        total=len(items) * len(PHASES), disable=not progress, unit="q", desc="demo"
    )
    try:
        for phase in PHASES:
            started = time.perf_counter()
            for index, item in enumerate(items):
                bar.set_postfix_str(phase)
                if phase == "speedup":
                    answer = router.solve(item["question"])
                    record = _record(
                        phase,
                        index,
                        item,
                        answer["final_answer"],
                        bool(
                            answer["score"] is not None
                            and answer["score"]
                            >= router.engine.options.active_threshold
                        ),
                        answer["route"]["decision"],
                        answer["usage"],
                    )
                else:
                    result = engines[phase].run(item["question"])
                    record = _record(
                        phase,
                        index,
                        item,
                        result["final_answer"],
                        result["passed"],
                        "static" if phase == "baseline" else "adaptive",
                        result["usage"],
                    )
                records[phase].append(record)
                if on_record:
                    on_record(record)
                bar.update()
            seconds[phase] = time.perf_counter() - started
    finally:
        bar.close()
        store.close()
    summaries = {p: _summary(records[p], seconds[p]) for p in PHASES}
    base = summaries["baseline"]
    ratios = {
        f"{p}_{k}": ratio(summaries[p][k], base[k])
        for p in ("adaptive", "speedup")
        for k in ("generations", "tokens")
    }
    return DemoReport(
        model=model_name,
        n=n,
        quorum=quorum,
        memory=str(memory_path) if memory_path else None,
        memory_episodes_at_start=at_start,
        baseline=summaries["baseline"],
        adaptive=summaries["adaptive"],
        speedup=summaries["speedup"],
        ratios=ratios,
        records=[r for p in PHASES for r in records[p]],
    )


def _precision(summary: PhaseSummary) -> str:
    if not summary["passed"]:
        return "n/a"
    return f"{summary['passed_correct']}/{summary['passed']}"


def format_report(report: DemoReport) -> str:
    """The per-question table and the summary, as text."""
    lines = [
        f"{'#':>3} {'kind':<12} {'problem':<9} {'gold':>5} | "
        + " | ".join(f"{p:<22}" for p in PHASES),
        f"{'':>3} {'':<12} {'':<9} {'':>5} | "
        + " | ".join(f"{'answer ok gen tokens':<22}" for _ in PHASES),
    ]
    by_phase = {p: [r for r in report["records"] if r["phase"] == p] for p in PHASES}
    for i, first in enumerate(by_phase["baseline"]):
        cells = []
        for p in PHASES:
            r = by_phase[p][i]
            mark = "y" if r["correct"] else "n"
            tag = {"reuse": "R", "exemplars": "M", "scratch": "S"}.get(
                r["decision"], " "
            )
            cells.append(
                f"{r['final_answer'] or '-':>6} {mark} {tag}{r['generations']:>3} {r['tokens']:>6}  "
            )
        lines.append(
            f"{i + 1:>3} {first['kind']:<12} {first['template']:<9} {first['gold']:>5} | "
            + " | ".join(cells)
        )
    lines.append("(speedup decisions: R reuse, M memory exemplars, S scratch)")
    lines.append("")
    lines.append(
        f"{'phase':<9} {'accuracy':>9} {'generations':>12} {'tokens':>8} {'passing right':>14} {'seconds':>8}"
    )
    for p in PHASES:
        s = report[p]
        lines.append(
            f"{p:<9} {s['correct']:>4}/{s['questions']:<4} {s['generations']:>12} "
            f"{s['tokens']:>8} {_precision(s):>14} {s['seconds']:>8.1f}"
        )
    ratios = report["ratios"]
    lines += [
        "",
        f"speedup / baseline: generations {ratios['speedup_generations']:.2f}, "
        f"tokens {ratios['speedup_tokens']:.2f}",
        f"adaptive / baseline: generations {ratios['adaptive_generations']:.2f}, "
        f"tokens {ratios['adaptive_tokens']:.2f}",
        f"memory: {report['memory'] or 'in memory (empty at start)'}, "
        f"{report['memory_episodes_at_start']} episodes at start",
    ]
    return "\n".join(lines)


def plot_report(report: DemoReport, path: str | Path) -> Path:
    """Plot generated tokens per question for each phase to a PNG file."""
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        msg = 'plotting needs matplotlib: `pip install "langchain-speedup[local]"`'
        raise ImportError(msg) from e
    figure, axes = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for phase, style in zip(PHASES, ("s-", "o--", "^-"), strict=True):
        rows = [r for r in report["records"] if r["phase"] == phase]
        x = [r["index"] + 1 for r in rows]
        axes[0].plot(x, [r["generations"] for r in rows], style, label=phase)
        axes[1].plot(x, [r["tokens"] for r in rows], style, label=phase)
    kinds = [r["kind"] for r in report["records"] if r["phase"] == "baseline"]
    axes[1].set_xticks(range(1, len(kinds) + 1))
    short = {"paraphrase": "reword", "new_numbers": "numbers"}
    axes[1].set_xticklabels(
        [f"{i + 1}\n{short.get(k, k)}" for i, k in enumerate(kinds)], fontsize=7
    )
    axes[0].set_ylabel("generations")
    axes[1].set_ylabel("total tokens")
    axes[0].set_title(
        "Compute per question: speedup "
        f"{report['ratios']['speedup_tokens']:.0%} of baseline tokens"
    )
    axes[0].legend()
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return target


def write_json(report: DemoReport, path: str | Path) -> Path:
    """Write the report as JSON (NaN ratios become `null`)."""
    return write_report(report, path)
