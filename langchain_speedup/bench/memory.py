"""Memory with and without the similarity gate, on dissimilar and similar streams.

Adaptive Best-of-N answers each stream with no memory (`none`), with every
verified episode retrieved (`ungated`) and behind the `SimilarityGate` (`gated`),
each arm from an empty store; no question repeats, so no answer is reused.
Two more arms verify by execution (`methods.program_verified`: prose and
program candidates, `ProgramVerifiedScorer`) instead of consensus:
`none-program` without memory and `procedure` with the gated router and
`ProcedureMemory`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Literal, cast

from langchain_core.embeddings import Embeddings
from typing_extensions import TypedDict, Unpack

from langchain_speedup._internal import check_count
from langchain_speedup.errors import ConfigurationError
from langchain_speedup.scaling.best_of_n import BestOfN
from langchain_speedup.scoring import ConsensusScorer
from langchain_speedup.types import ChatRunnable

from ._report import (
    Graded,
    Recorder,
    RunOptions,
    Summary,
    ask,
    ratio,
    ratios,
    summarize,
)
from .methods import program_verified
from .questions import (
    DEMO_SYSTEM_PROMPT,
    StreamQuestion,
    dissimilar_stream,
    similar_stream,
)

if TYPE_CHECKING:
    from langchain_speedup.memory import BandStats

__all__ = [
    "ARMS",
    "ArmSummary",
    "MemoryBenchReport",
    "MemoryRecord",
    "StreamSummary",
    "format_memory_report",
    "run_memory_bench",
]

Arm = Literal["none", "ungated", "gated", "none-program", "procedure"]
ARMS: tuple[Arm, ...] = ("none", "ungated", "gated", "none-program", "procedure")
_PROGRAM_ARMS = ("none-program", "procedure")

ModelOpener = Callable[[], AbstractContextManager[ChatRunnable]]
"""Opens a chat model for the length of a `with` block."""


class MemoryRecord(Graded):
    """One question of one stream, in one arm."""

    stream: str
    arm: Arm
    kind: str
    decision: str
    """`scratch` or `exemplars` (the router's), `none` for the engine alone."""
    similarity: float | None
    band: str | None
    explored: bool


class ArmSummary(Summary):
    """Totals of one arm on one stream."""

    with_memory: int
    """Questions whose prompt held memory."""
    explored: int


class StreamSummary(TypedDict):
    """One stream: each arm's totals, ratios to `none`, and the gate's bands."""

    stream: str
    questions: int
    arms: dict[str, ArmSummary]
    ratios: dict[str, float]
    """`<arm>_generations` and `<arm>_tokens` over the `none` arm's."""
    gate: list[BandStats]
    """What the gated arm's gate had learnt at the end of the stream."""


class MemoryBenchReport(TypedDict):
    """The benchmark's results."""

    model: str
    n: int
    quorum: int
    streams: list[StreamSummary]
    records: list[MemoryRecord]
    seconds: float


def _run_arm(
    arm: Arm,
    stream: str,
    items: Sequence[StreamQuestion],
    engine: BestOfN,
    embeddings: Embeddings,
    run: Recorder[MemoryRecord],
) -> list[BandStats]:
    from langchain_speedup.memory import ProcedureMemory, SimilarityGate, default_store
    from langchain_speedup.router import BudgetRouter

    gated = arm in ("gated", "procedure")
    gate = SimilarityGate() if gated else SimilarityGate.fixed(-1.0)
    solver: BestOfN | BudgetRouter = engine
    if not arm.startswith("none"):
        solver = BudgetRouter(
            engine,
            store=default_store(embeddings),  # empty: each arm starts afresh
            namespace=f"{stream}-{arm}",
            similarity_gate=gate,
            procedures=ProcedureMemory() if arm == "procedure" else None,
        )
    for index, item in enumerate(items):
        found, decision, route = ask(solver, index, item)
        run.add(
            MemoryRecord(
                stream=stream,
                arm=arm,
                kind=item["kind"],
                **found,
                decision=decision if route else "none",
                similarity=route["similarity"] if route else None,
                band=route["band"] if route else None,
                explored=route["explored"] if route else False,
            )
        )
    return gate.stats() if arm == "gated" else []


def run_memory_bench(
    model: ChatRunnable | None = None,
    *,
    open_model: ModelOpener | None = None,
    embeddings: Embeddings,
    streams: Mapping[str, Sequence[StreamQuestion]] | None = None,
    n: int = 8,
    arms: Sequence[Arm] = ARMS,
    **options: Unpack[RunOptions[MemoryRecord]],
) -> MemoryBenchReport:
    """Run each stream through no memory, ungated memory and gated memory.

    Example:
        ```python
        report = run_memory_bench(model, embeddings=MiniLMEmbeddings())
        print(format_memory_report(report))
        ```

    Args:
        model: The chat model (sampling temperature above 0), shared by
            every arm; or give `open_model`.
        open_model: Opens a fresh model for each arm of each stream (a
            context manager, such as `open_chat_model`). A local llama.cpp
            server started afresh replays its sampling sequence, so arms
            that send the same prompts get the same samples and a difference
            between arms is memory's doing rather than sampling noise.
        embeddings: Embeds questions for the routers.
        streams: Named streams of questions; `dissimilar_stream()` and
            `similar_stream()` by default.
        n: The Best-of-N budget of every arm.
        arms: The arms to run, in order (all by default).
        **options: `quorum`, `model_name`, `progress`, `on_record` (`RunOptions`).

    Returns:
        The report.

    Raises:
        ConfigurationError: A stream is empty, `n` or `quorum` is below 1, an
            option is unknown or of the wrong type, or not exactly one of
            `model` and `open_model` is given.
        ModelError: A model call failed.
    """
    chosen = dict(
        streams
        if streams is not None
        else {"dissimilar": dissimilar_stream(), "similar": similar_stream()}
    )
    if not chosen or any(not items for items in chosen.values()):
        msg = "every stream must hold at least one question"
        raise ConfigurationError(msg)
    # Options fail here, before any model is opened or called.
    check_count("n", n)
    if not arms or len(set(arms)) != len(arms) or not set(arms) <= set(ARMS):
        msg = f"`arms` must be distinct names among {ARMS}, got {arms!r}"
        raise ConfigurationError(msg)
    quorum = options.get("quorum", 3)
    check_count("quorum", quorum)
    if (model is None) == (open_model is None):
        msg = "give exactly one of `model` and `open_model`"
        raise ConfigurationError(msg)

    def opened() -> AbstractContextManager[ChatRunnable]:
        return open_model() if open_model else nullcontext(cast(ChatRunnable, model))

    summaries: list[StreamSummary] = []
    total = sum(len(items) for items in chosen.values()) * len(arms)
    with Recorder(total, desc="memory", unit="q", options=options) as run:
        for stream, items in chosen.items():
            summaries_of: dict[str, ArmSummary] = {}
            gate: list[BandStats] = []
            for arm in arms:
                run.label(f"{stream} {arm}")
                start = len(run.records)
                with opened() as arm_model:
                    run.name(arm_model)
                    verify = (
                        program_verified(arm_model, "best_of_n", DEMO_SYSTEM_PROMPT)
                        if arm in _PROGRAM_ARMS
                        else {"scorer": ConsensusScorer(quorum=quorum)}
                    )
                    engine = BestOfN(
                        arm_model, budget=n, system_prompt=DEMO_SYSTEM_PROMPT, **verify
                    )
                    gate = _run_arm(arm, stream, items, engine, embeddings, run) or gate
                records = run.records[start:]
                totals = summarize(records, sums=("explored",))
                with_memory = sum(r["decision"] == "exemplars" for r in records)
                summaries_of[arm] = cast(
                    ArmSummary, {**totals, "with_memory": with_memory}
                )
            summaries.append(
                StreamSummary(
                    stream=stream,
                    questions=len(items),
                    arms=summaries_of,
                    ratios={
                        **(
                            ratios(summaries_of, "none", ("generations", "tokens"))
                            if "none" in summaries_of
                            else {}
                        ),
                        **_over(summaries_of, "procedure", "none-program"),
                    },
                    gate=gate,
                )
            )
    return MemoryBenchReport(
        model=run.model_name,
        n=n,
        quorum=quorum,
        streams=summaries,
        records=run.records,
        seconds=run.elapsed(),
    )


def _over(arms: Mapping[str, ArmSummary], arm: str, base: str) -> dict[str, float]:
    # `arm`'s generations and tokens over `base`'s, keyed `<arm>/<base>_<what>`.
    if arm not in arms or base not in arms:
        return {}
    return {
        f"{arm}/{base}_{key}": ratio(arms[arm][key], arms[base][key])
        for key in ("generations", "tokens")
        if arms[base][key]
    }


def _kept_saving(summary: StreamSummary, key: Literal["generations", "tokens"]) -> str:
    # The share of the ungated arm's saving that the gated arm keeps.
    arms = summary["arms"]
    none = arms["none"][key]
    ungated = none - arms["ungated"][key]
    gated = none - arms["gated"][key]
    if ungated <= 0:
        return "n/a (ungated saved none)"
    return f"{gated / ungated:.0%}"


def _ratio_text(ratio: Mapping[str, float], key: str) -> str:
    return f"{ratio[key]:.2f}" if key in ratio else "n/a"


def format_memory_report(report: MemoryBenchReport) -> str:
    """Each stream's arms, ratios and the gate's bands, as text."""
    lines = [
        f"model: {report['model'] or 'unnamed'}; adaptive Best-of-N, n={report['n']}, "
        f"consensus quorum {report['quorum']}; the none-program and procedure arms "
        "verify by execution (ProgramVerifiedScorer)",
    ]
    for summary in report["streams"]:
        lines += [
            "",
            f"{summary['stream']} stream ({summary['questions']} questions)",
            f"{'arm':<12} {'accuracy':>9} {'passed':>7} {'generations':>12} "
            f"{'tokens':>8} {'with memory':>12} {'explored':>9}",
        ]
        for arm, s in summary["arms"].items():
            lines.append(
                f"{arm:<12} {s['correct']:>4}/{s['questions']:<4} {s['passed']:>7} "
                f"{s['generations']:>12} {s['tokens']:>8} {s['with_memory']:>12} "
                f"{s['explored']:>9}"
            )
        ratio, ran = summary["ratios"], set(summary["arms"])
        compared = [a for a in ("ungated", "gated") if a in ran]
        if "none" in ran and compared:
            lines.append(
                "vs none: "
                + ", ".join(
                    f"{arm} generations {ratio[f'{arm}_generations']:.2f} "
                    f"tokens {ratio[f'{arm}_tokens']:.2f}"
                    for arm in compared
                )
            )
        if {"procedure", "none-program"} <= ran:
            lines.append(
                "procedure vs none-program: generations "
                f"{_ratio_text(ratio, 'procedure/none-program_generations')}, tokens "
                f"{_ratio_text(ratio, 'procedure/none-program_tokens')}"
            )
        if {"none", "ungated", "gated"} <= ran:
            lines.append(
                "gated keeps of ungated's saving: generations "
                f"{_kept_saving(summary, 'generations')}, tokens "
                f"{_kept_saving(summary, 'tokens')}"
            )
        if summary["gate"]:
            lines.append("gate at the end (band, state, outcomes with memory):")
            lines.append(
                "  "
                + "; ".join(
                    f"{b['band']} {'open' if b['open'] else 'closed'} ({b['memory_outcomes']})"
                    for b in summary["gate"]
                )
            )
    lines += ["", f"total time: {report['seconds']:.0f} s"]
    return "\n".join(lines)
