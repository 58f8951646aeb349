"""Memory with and without the similarity gate, on dissimilar and similar streams.

Memory should speed up questions like those solved before and keep out of
the way of the others. `run_memory_bench` measures both sides in one run,
with adaptive Best-of-N (the demo's budget, scorer and prompt) in three arms:

- `none`: no memory at all (the engine alone);
- `ungated`: the router with every retrieved verified episode admitted
  (`similarity_gate=-1`), the paper's memory;
- `gated`: the router with the calibrated `SimilarityGate` (its default).

over two streams:

- `dissimilar`: one problem of each template, all different: memory can only
  mislead here;
- `similar`: a few problems, each followed by its paraphrase and by variants
  with new numbers, interleaved: memory has precedents and close exemplars.

Each arm of each stream starts from an empty in-memory store, and no stream
repeats a question exactly, so no answer is ever reused: the comparison is
what memory in the prompt does. Gold answers only grade, after the fact.

The command (`langchain-speedup bench-memory`) starts a fresh local server
for every arm (`open_model`). llama.cpp replays its sampling sequence from a
fresh start, so two arms that send the same prompts draw the same samples:
where the gate keeps memory out, the gated arm repeats the no-memory arm
exactly, and differences come from memory, not from sampling noise. (A
server named by `OPENAI_BASE_URL` is not restarted, so there the arms sample
independently.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from tqdm import tqdm
from typing_extensions import TypedDict

from langchain_speedup.budget import Usage
from langchain_speedup.errors import ConfigurationError
from langchain_speedup.memory.gating import BandStats, SimilarityGate
from langchain_speedup.memory.store import QdrantEpisodicStore
from langchain_speedup.router import BudgetRouter, Route
from langchain_speedup.scaling._common import ChatRunnable, check_count
from langchain_speedup.scaling.base import ScalingResult
from langchain_speedup.scaling.best_of_n import BestOfN
from langchain_speedup.scoring import ConsensusScorer

from ._report import ratio, write_report
from .demo import DEMO_SYSTEM_PROMPT
from .questions import TEMPLATES, ProblemTemplate, StreamQuestion, problems

__all__ = [
    "ARMS",
    "STREAMS",
    "ArmSummary",
    "MemoryBenchReport",
    "MemoryRecord",
    "StreamSummary",
    "dissimilar_stream",
    "format_memory_report",
    "run_memory_bench",
    "similar_stream",
    "write_memory_json",
]

Arm = Literal["none", "ungated", "gated"]
ARMS: tuple[Arm, ...] = ("none", "ungated", "gated")
STREAMS = ("dissimilar", "similar")

ModelOpener = Callable[[], AbstractContextManager[ChatRunnable]]
"""Opens a chat model for the length of a `with` block."""


def dissimilar_stream(
    templates: Sequence[ProblemTemplate] = TEMPLATES,
) -> list[StreamQuestion]:
    """One problem of each template: no two questions share a problem."""
    return problems(templates, variants=1)


def similar_stream(
    templates: Sequence[ProblemTemplate] = TEMPLATES[:4],
) -> list[StreamQuestion]:
    """Each problem, then its paraphrase and two variants with new numbers.

    The problems come first, then the paraphrases, then each round of new
    numbers, so every question after the first `len(templates)` has a
    solved relative earlier in the stream.
    """
    firsts = problems(templates, variants=1)
    paraphrases = [
        StreamQuestion(
            question=t.question(0, paraphrased=True),
            gold=t.answer(0),
            template=t.key,
            variant=0,
            kind="paraphrase",
        )
        for t in templates
    ]
    variants = [
        StreamQuestion(
            question=t.question(v),
            gold=t.answer(v),
            template=t.key,
            variant=v,
            kind="new_numbers",
        )
        for v in (1, 2)
        for t in templates
    ]
    return [*firsts, *paraphrases, *variants]


class MemoryRecord(TypedDict):
    """One question of one stream, in one arm."""

    stream: str
    arm: Arm
    index: int
    kind: str
    template: str
    gold: int
    final_answer: str | None
    correct: bool
    passed: bool
    decision: str
    """`scratch` or `exemplars` (the router's), `none` for the engine alone."""
    similarity: float | None
    band: str | None
    explored: bool
    generations: int
    tokens: int
    seconds: float


class ArmSummary(TypedDict):
    """Totals of one arm on one stream."""

    questions: int
    correct: int
    accuracy: float
    passed: int
    generations: int
    tokens: int
    with_memory: int
    """Questions whose prompt held memory."""
    explored: int
    seconds: float


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


def _summary(records: Sequence[MemoryRecord]) -> ArmSummary:
    correct = sum(r["correct"] for r in records)
    return ArmSummary(
        questions=len(records),
        correct=correct,
        accuracy=round(correct / len(records), 4) if records else 0.0,
        passed=sum(r["passed"] for r in records),
        generations=sum(r["generations"] for r in records),
        tokens=sum(r["tokens"] for r in records),
        with_memory=sum(r["decision"] == "exemplars" for r in records),
        explored=sum(r["explored"] for r in records),
        seconds=round(sum(r["seconds"] for r in records), 1),
    )


def _record(
    stream: str,
    arm: Arm,
    index: int,
    item: StreamQuestion,
    *,
    final: str | None,
    result: ScalingResult | None,
    usage: Usage,
    route: Route | None = None,
) -> MemoryRecord:
    return MemoryRecord(
        stream=stream,
        arm=arm,
        index=index,
        kind=item["kind"],
        template=item["template"],
        gold=item["gold"],
        final_answer=final,
        correct=final == str(item["gold"]),
        passed=bool(result and result["passed"]),
        decision=route["decision"] if route else "none",
        similarity=route["similarity"] if route else None,
        band=route["band"] if route else None,
        explored=route["explored"] if route else False,
        generations=usage["generations"],
        tokens=usage["total_tokens"],
        seconds=usage["seconds"],
    )


def _run_arm(
    arm: Arm,
    stream: str,
    items: Sequence[StreamQuestion],
    model: ChatRunnable,
    embeddings: Embeddings,
    options: Mapping[str, Any],
    tick: Callable[[MemoryRecord], None],
) -> tuple[list[MemoryRecord], list[BandStats]]:
    records: list[MemoryRecord] = []
    if arm == "none":
        engine = BestOfN(model, **options)
        for index, item in enumerate(items):
            result = engine.run(item["question"])
            records.append(
                _record(
                    stream,
                    arm,
                    index,
                    item,
                    final=result["final_answer"],
                    result=result,
                    usage=result["usage"],
                )
            )
            tick(records[-1])
        return records, []
    gate = SimilarityGate() if arm == "gated" else SimilarityGate.fixed(-1.0)
    with QdrantEpisodicStore() as store:
        router = BudgetRouter(
            model,
            store=store,
            embeddings=embeddings,
            namespace=f"{stream}-{arm}",
            similarity_gate=gate,
            **options,
        )
        for index, item in enumerate(items):
            answer = router.solve(item["question"])
            records.append(
                _record(
                    stream,
                    arm,
                    index,
                    item,
                    final=answer["final_answer"],
                    result=answer["result"],
                    usage=answer["usage"],
                    route=answer["route"],
                )
            )
            tick(records[-1])
    return records, gate.stats() if arm == "gated" else []


def run_memory_bench(
    model: ChatRunnable | None = None,
    *,
    open_model: ModelOpener | None = None,
    embeddings: Embeddings,
    streams: Mapping[str, Sequence[StreamQuestion]] | None = None,
    n: int = 8,
    quorum: int = 3,
    model_name: str = "",
    progress: bool = True,
    on_record: Callable[[MemoryRecord], None] | None = None,
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
            context manager, such as `open_chat_model`). With a local
            llama.cpp server started afresh, which replays its sampling
            sequence, arms that send the same prompts get the same samples,
            so a difference between arms is memory's doing rather than
            sampling noise.
        embeddings: Embeds questions for the routers.
        streams: Named streams of questions; `dissimilar_stream()` and
            `similar_stream()` by default.
        n: The Best-of-N budget of every arm.
        quorum: Agreeing answers the consensus scorer requires.
        model_name: Shown in the report; the model's `model_name` when
            empty.
        progress: Show a progress bar on stderr.
        on_record: Called with each record as it completes.

    Returns:
        The report.

    Raises:
        ConfigurationError: A stream is empty, `n` or `quorum` is below 1,
            or not exactly one of `model` and `open_model` is given.
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
    options: dict[str, Any] = {
        "n": n,
        "scorer": ConsensusScorer(quorum=quorum),
        "system_prompt": DEMO_SYSTEM_PROMPT,
    }
    # Options fail here, before any model is opened or called.
    check_count("n", n)
    if (model is None) == (open_model is None):
        msg = "give exactly one of `model` and `open_model`"
        raise ConfigurationError(msg)

    def opened() -> AbstractContextManager[ChatRunnable]:
        if open_model is not None:
            return open_model()
        assert model is not None
        return nullcontext(model)

    started = time.perf_counter()
    bar = tqdm(
        total=sum(len(items) for items in chosen.values()) * len(ARMS),
        disable=not progress,
        unit="q",
        desc="memory",
    )

    def tick(record: MemoryRecord) -> None:
        bar.update()
        if on_record:
            on_record(record)

    summaries: list[StreamSummary] = []
    records: list[MemoryRecord] = []
    try:
        for stream, items in chosen.items():
            by_arm: dict[str, ArmSummary] = {}
            gate: list[BandStats] = []
            for arm in ARMS:
                bar.set_postfix_str(f"{stream} {arm}")
                with opened() as arm_model:
                    model_name = model_name or str(getattr(arm_model, "model_name", ""))
                    found, stats = _run_arm(
                        arm, stream, items, arm_model, embeddings, options, tick
                    )
                records += found
                by_arm[arm] = _summary(found)
                gate = stats or gate
            base = by_arm["none"]
            summaries.append(
                StreamSummary(
                    stream=stream,
                    questions=len(items),
                    arms=by_arm,
                    ratios={
                        f"{arm}_{key}": ratio(by_arm[arm][key], base[key])
                        for arm in ("ungated", "gated")
                        for key in ("generations", "tokens")
                    },
                    gate=gate,
                )
            )
    finally:
        bar.close()
    return MemoryBenchReport(
        model=model_name,
        n=n,
        quorum=quorum,
        streams=summaries,
        records=records,
        seconds=round(time.perf_counter() - started, 1),
    )


def _kept_saving(summary: StreamSummary, key: Literal["generations", "tokens"]) -> str:
    # The share of the ungated arm's saving (generations or tokens) that the
    # gated arm keeps.
    arms = summary["arms"]
    none = arms["none"][key]
    ungated = none - arms["ungated"][key]
    gated = none - arms["gated"][key]
    if ungated <= 0:
        return "n/a (ungated saved none)"
    return f"{gated / ungated:.0%}"


def format_memory_report(report: MemoryBenchReport) -> str:
    """Each stream's arms, ratios and the gate's bands, as text."""
    lines = [
        f"model: {report['model'] or 'unnamed'}; adaptive Best-of-N, n={report['n']}, "
        f"consensus quorum {report['quorum']}",
    ]
    for summary in report["streams"]:
        lines += [
            "",
            f"{summary['stream']} stream ({summary['questions']} questions)",
            f"{'arm':<8} {'accuracy':>9} {'passed':>7} {'generations':>12} "
            f"{'tokens':>8} {'with memory':>12} {'explored':>9}",
        ]
        for arm in ARMS:
            s = summary["arms"][arm]
            lines.append(
                f"{arm:<8} {s['correct']:>4}/{s['questions']:<4} {s['passed']:>7} "
                f"{s['generations']:>12} {s['tokens']:>8} {s['with_memory']:>12} "
                f"{s['explored']:>9}"
            )
        ratios = summary["ratios"]
        lines.append(
            "vs none: "
            + ", ".join(
                f"{arm} generations {ratios[f'{arm}_generations']:.2f} "
                f"tokens {ratios[f'{arm}_tokens']:.2f}"
                for arm in ("ungated", "gated")
            )
        )
        lines.append(
            "gated keeps of ungated's saving: generations "
            f"{_kept_saving(summary, 'generations')}, tokens "
            f"{_kept_saving(summary, 'tokens')}"
        )
        bands = [
            f"{b['band']} {'open' if b['open'] else 'closed'} ({b['memory_outcomes']})"
            for b in summary["gate"]
        ]
        if bands:
            lines.append("gate at the end (band, state, outcomes with memory):")
            lines.append("  " + "; ".join(bands))
    lines.append("")
    lines.append(f"total time: {report['seconds']:.0f} s")
    return "\n".join(lines)


def write_memory_json(report: MemoryBenchReport, path: str | Path) -> Path:
    """Write the report as JSON (NaN ratios become `null`)."""
    return write_report(report, path)
