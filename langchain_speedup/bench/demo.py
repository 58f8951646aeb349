"""The demo: one question stream, three ways, measured in one run.

Static Best-of-N (the baseline), adaptive Best-of-N, and the memory-aware
router over adaptive Best-of-N share the model, scorer, prompt and questions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from langchain_core.embeddings import Embeddings
from typing_extensions import TypedDict, Unpack

from langchain_speedup.scaling.best_of_n import BestOfN
from langchain_speedup.scoring import ConsensusScorer
from langchain_speedup.types import ChatRunnable, Mode

from ._report import Graded, Recorder, RunOptions, Summary, ask, ratios, summarize
from .questions import DEMO_SYSTEM_PROMPT, TEMPLATES, StreamQuestion, build_stream

__all__ = [
    "PHASES",
    "DemoReport",
    "QuestionRecord",
    "format_report",
    "plot_report",
    "run_demo",
]

Phase = Literal["baseline", "adaptive", "speedup"]
PHASES: tuple[Phase, ...] = ("baseline", "adaptive", "speedup")


class QuestionRecord(Graded):
    """One question of one phase."""

    phase: Phase
    kind: str
    decision: str
    """The router's decision; `static` or `adaptive` for the plain engines."""


class DemoReport(TypedDict):
    """The demo's results: per-phase totals, ratios to the baseline, every question."""

    model: str
    n: int
    quorum: int
    memory: str | None
    memory_episodes_at_start: int
    baseline: Summary
    adaptive: Summary
    speedup: Summary
    ratios: dict[str, float]
    """`<phase>_generations` and `<phase>_tokens` over the baseline's."""
    records: list[QuestionRecord]


def run_demo(
    model: ChatRunnable,
    *,
    embeddings: Embeddings,
    memory_path: str | Path | None = None,
    stream: Sequence[StreamQuestion] | None = None,
    n: int = 8,
    **options: Unpack[RunOptions[QuestionRecord]],
) -> DemoReport:
    """Run the stream through baseline, adaptive and speedup; measure all three.

    Args:
        model: The chat model (sampling temperature above 0).
        embeddings: Embeddings for the speedup router.
        memory_path: Keep the memory here across runs (`default_store`); in
            memory (and so empty at the start) when `None`.
        stream: The questions; `build_stream()` of four templates by default.
        n: The Best-of-N budget of every phase.
        **options: `quorum`, `model_name`, `progress`, `on_record` (`RunOptions`).

    Returns:
        The report.

    Raises:
        ConfigurationError: `n` or `quorum` is below 1, or an option is unknown
            or of the wrong type (before any call).
        ModelError: A model call failed.
    """
    from langchain_speedup.memory import EpisodicMemory, default_store
    from langchain_speedup.router import BudgetRouter

    items = list(stream or build_stream(TEMPLATES[:4]))
    quorum = options.get("quorum", 3)
    scorer = ConsensusScorer(quorum=quorum)

    def engine(mode: Mode) -> BestOfN:
        return BestOfN(
            model, budget=n, mode=mode, scorer=scorer, system_prompt=DEMO_SYSTEM_PROMPT
        )

    baseline, adaptive = engine("static"), engine("adaptive")
    seconds: dict[Phase, float] = {}
    total = len(items) * len(PHASES)
    store = default_store(embeddings, path=memory_path or None)
    try:
        with Recorder(total, desc="demo", unit="q", options=options) as run:
            at_start = len(EpisodicMemory(store).episodes("demo"))
            router = BudgetRouter(adaptive, store=store, namespace="demo")
            solvers: list[BestOfN | BudgetRouter] = [baseline, adaptive, router]
            for phase, solver in zip(PHASES, solvers, strict=True):
                run.label(phase)
                started = time.perf_counter()
                for index, item in enumerate(items):
                    found, decision, _ = ask(solver, index, item)
                    run.add(
                        QuestionRecord(
                            phase=phase, kind=item["kind"], decision=decision, **found
                        )
                    )
                seconds[phase] = time.perf_counter() - started
    finally:
        # An on-disk store holds its directory's lock until it is closed.
        close = getattr(store, "close", None)
        if close is not None:
            close()
    summaries = {
        p: summarize([r for r in run.records if r["phase"] == p], seconds=seconds[p])
        for p in PHASES
    }
    return DemoReport(
        model=run.name(model),
        n=n,
        quorum=quorum,
        memory=str(memory_path) if memory_path else None,
        memory_episodes_at_start=at_start,
        baseline=summaries["baseline"],
        adaptive=summaries["adaptive"],
        speedup=summaries["speedup"],
        ratios=ratios(summaries, "baseline", ("generations", "tokens")),
        records=run.records,
    )


def _precision(summary: Summary) -> str:
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
    tags = {"reuse": "R", "exemplars": "M", "scratch": "S", "procedure": "P"}
    for i, first in enumerate(by_phase["baseline"]):
        cells = []
        for p in PHASES:
            r = by_phase[p][i]
            mark, tag = "y" if r["correct"] else "n", tags.get(r["decision"], " ")
            cells.append(
                f"{r['final_answer'] or '-':>6} {mark} {tag}{r['generations']:>3} {r['tokens']:>6}  "
            )
        lines.append(
            f"{i + 1:>3} {first['kind']:<12} {first['template']:<9} {first['gold']:>5} | "
            + " | ".join(cells)
        )
    lines += [
        "(speedup decisions: R reuse, M memory exemplars, S scratch)",
        "",
        f"{'phase':<9} {'accuracy':>9} {'generations':>12} {'tokens':>8} {'passing right':>14} {'seconds':>8}",
    ]
    for p in PHASES:
        s = report[p]
        lines.append(
            f"{p:<9} {s['correct']:>4}/{s['questions']:<4} {s['generations']:>12} "
            f"{s['tokens']:>8} {_precision(s):>14} {s['seconds']:>8.1f}"
        )
    ratio = report["ratios"]
    lines += [
        "",
        f"speedup / baseline: generations {ratio['speedup_generations']:.2f}, "
        f"tokens {ratio['speedup_tokens']:.2f}",
        f"adaptive / baseline: generations {ratio['adaptive_generations']:.2f}, "
        f"tokens {ratio['adaptive_tokens']:.2f}",
        f"memory: {report['memory'] or 'in memory (empty at start)'}, "
        f"{report['memory_episodes_at_start']} episodes at start",
    ]
    return "\n".join(lines)


def plot_report(report: DemoReport, path: str | Path) -> Path:
    """Plot generations and tokens per question for each phase to a PNG file.

    Raises:
        ImportError: matplotlib is not installed.
    """
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
