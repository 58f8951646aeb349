"""Each scaling method, static versus adaptive, on the same problems, in one run.

`run_method_bench` runs every chosen method twice on every problem, once in
static mode (the whole budget: the paper's baseline) and once in adaptive
mode (stop at the first answer that reaches the threshold), with the same
model, the same scorer (`ConsensusScorer(quorum=3)`) and the same budget. It
reports, per method and mode, accuracy against the gold answers, budget units
spent, total tokens (every model call, scorer calls included) and the
adaptive/static ratios. Gold answers only grade, after the fact: no method
and no scorer ever sees them. Neither memory nor the router takes part: the
problems are all different, and the comparison is stopping alone.

The two modes of one problem run back to back, static first, so that a
machine whose speed drifts (other work, thermal limits) slows both alike, and
an interrupted run still holds matched pairs.

Budgets (`DEFAULT_SETTINGS`) keep the default run, 4 methods x 2 modes x 24
problems, to about an hour on 2 CPU cores with the embedded 0.5B model (about
30 tokens/s): calls are kept short (the demo's short-answer format, one-line
steps and critiques) except long chain-of-thought's, which needs room to
think. Each budget is the smallest that still leaves adaptive mode room to
stop early where the scorer allows it: a consensus of 3 needs 3 agreeing
answers, so a method producing one answer per unit cannot pass before its
third unit. Calls per problem, static + adaptive:

- Best-of-N, `n=6` generations: 6 + 3 to 6. Three agreeing samples stop a run
  at half its budget; 6 keeps static mode's majority vote meaningful.
- Self-Refine, `max_rounds=4` rounds, quorum 2: 7 + 3 to 7 (an answer, then
  a critique and a revision per round). Its rounds are not independent
  samples but revisions of one answer, so its stop rule is "a revision kept
  the answer": a quorum of 2 over the rounds' answers. With a quorum of 3 an
  answer could not pass before round 3 of a 3-round budget and adaptive mode
  could save nothing. Critique and revision prompts ask for one sentence and
  for the short format, since the package's defaults draw ~250-token replies
  from this model.
- Tree-of-Thoughts, `breadth=3`, `max_depth=3`, `max_nodes=6` expanded
  nodes: at most 18 + 18 one-line steps. Three agreeing complete solutions
  stop an adaptive run (with a quorum of 2, two agreeing wrong solutions
  stopped it too often: 8/24 right against static mode's 11/24); static
  mode searches on until 6 nodes are expanded or the tree is exhausted. It gets a one-line-per-reply version of
  the demo prompt (`BENCH_STEP_PROMPT`, with the demo's worked example: a
  bare "one line of arithmetic" instruction made the model copy the
  instruction's sample line). This model often writes a whole solution as
  its "next line", so many trees end at the root in both modes.
- Long chain-of-thought, `max_tokens=384` reasoning tokens in 3 segments of
  128, probes of at most 32 tokens, quorum 2, with the method's own "think
  at length" prompt: 4 + 2 to 6 calls. A probe that agrees with the one
  before stops the thinking; a segment that already states a boxed answer
  is its own probe. Shorter segments (24-32 tokens) cut the model off
  mid-step, and its continuations then drift (3/24 right at 96 tokens).
  Static mode's single probe can never make a consensus of 2, so its
  `passed` count is 0 by construction; accuracy compares as usual. The
  token budget holds only where the server honours each call's
  `max_tokens`.

Best-of-N and Self-Refine use the demo's short-answer system prompt
(`DEMO_SYSTEM_PROMPT`) as it is. Pass `settings` to change any
of this, and `--problems N` on the command line to shorten the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NotRequired, cast

from tqdm import tqdm
from typing_extensions import TypedDict

from langchain_speedup.errors import ConfigurationError
from langchain_speedup.scaling._common import ChatRunnable
from langchain_speedup.scaling.base import Mode, ScalingResult
from langchain_speedup.scaling.engines import (
    METHODS,
    Method,
    ScalingEngine,
    check_method,
    create_engine,
)
from langchain_speedup.scoring import ConsensusScorer

from ._report import ratio, write_report
from .demo import DEMO_SYSTEM_PROMPT
from .questions import StreamQuestion

__all__ = [
    "BENCH_CRITIQUE_PROMPT",
    "BENCH_REVISE_PROMPT",
    "BENCH_STEP_PROMPT",
    "DEFAULT_SETTINGS",
    "MODES",
    "MethodBenchReport",
    "MethodRecord",
    "MethodSetting",
    "MethodSummary",
    "ModeSummary",
    "format_method_report",
    "run_method_bench",
    "write_method_json",
]

MODES: tuple[Mode, ...] = ("static", "adaptive")

BENCH_CRITIQUE_PROMPT = (
    "Check the solution above line by line. Reply in one short sentence: say "
    "that it is correct, or name the wrong line and its right value."
)
"""Self-Refine's critique, kept to one sentence so that a round stays short."""

BENCH_REVISE_PROMPT = (
    "Now write the corrected solution in the same format: only the arithmetic, "
    "one short step per line, then the line 'The final answer is "
    "\\boxed{ANSWER}.'"
)
"""Self-Refine's revision, in the demo's short format."""

BENCH_STEP_PROMPT = (
    "You solve grade-school math word problems one step at a time. Example:\n"
    "Problem: Tom has 3 bags with 5 apples in each bag. He eats 2 apples. How "
    "many apples are left?\n"
    "3 * 5 = 15\n"
    "15 - 2 = 13\n"
    "The final answer is \\boxed{13}.\n"
    "Reply with the next line of the solution only. After the last step, add "
    "the final answer line as in the example."
)
"""Tree-of-Thoughts' system prompt: the demo's format, one step per reply."""


class MethodSetting(TypedDict):
    """How one method is run: its budget, system prompt and further options."""

    budget: int
    """The budget, in the method's unit."""
    system_prompt: str | None
    """`None` keeps the method's own system prompt."""
    options: dict[str, Any]
    """Further keyword options of the method's engine."""
    quorum: NotRequired[int]
    """The consensus quorum for this method; the run's `quorum` when absent."""


DEFAULT_SETTINGS: Mapping[Method, MethodSetting] = MappingProxyType(
    {
        "best_of_n": MethodSetting(
            budget=6, system_prompt=DEMO_SYSTEM_PROMPT, options={}
        ),
        "self_refine": MethodSetting(
            budget=4,
            system_prompt=DEMO_SYSTEM_PROMPT,
            options={
                "critique_prompt": BENCH_CRITIQUE_PROMPT,
                "revise_prompt": BENCH_REVISE_PROMPT,
            },
            quorum=2,
        ),
        "tree_of_thoughts": MethodSetting(
            budget=6,
            system_prompt=BENCH_STEP_PROMPT,
            options={"breadth": 3, "max_depth": 3},
        ),
        "long_cot": MethodSetting(
            budget=384,
            system_prompt=None,
            options={"segment_tokens": 128, "probe_tokens": 32},
            quorum=2,
        ),
    }
)
"""The budgets of the default run; the module docstring explains them."""


class MethodRecord(TypedDict):
    """One problem, one method, one mode."""

    method: str
    mode: Mode
    index: int
    template: str
    question: str
    gold: int
    final_answer: str | None
    correct: bool
    passed: bool
    stop_reason: str
    budget_used: int
    budget_unit: str
    generations: int
    """Solver calls, probes and revisions included."""
    tokens: int
    """Total tokens of every call, scorer calls included."""
    scorer_tokens: int
    seconds: float


class ModeSummary(TypedDict):
    """Totals of one method in one mode."""

    questions: int
    correct: int
    accuracy: float
    passed: int
    """Answers whose score reached the threshold."""
    passed_correct: int
    """Of those, how many were right."""
    budget_used: int
    """Budget units spent, summed over the problems."""
    generations: int
    tokens: int
    scorer_tokens: int
    seconds: float


class MethodSummary(TypedDict):
    """One method: its setting, both modes and the adaptive/static ratios."""

    method: str
    unit: str
    budget: int
    system_prompt: str
    options: dict[str, Any]
    quorum: int
    static: ModeSummary
    adaptive: ModeSummary
    ratios: dict[str, float]
    """Adaptive over static, for `budget_used`, `tokens` and `seconds`
    (NaN when static spent nothing)."""


class MethodBenchReport(TypedDict):
    """The benchmark's results: a summary per method and every record."""

    model: str
    quorum: int
    problems: int
    methods: list[MethodSummary]
    records: list[MethodRecord]
    seconds: float


def _settings(
    methods: Sequence[str], overrides: Mapping[str, MethodSetting] | None
) -> dict[Method, MethodSetting]:
    if isinstance(methods, str) or not methods:
        msg = f"`methods` must be a non-empty sequence of method names, got {methods!r}"
        raise ConfigurationError(msg)
    chosen = [check_method(m) for m in methods]
    if len(set(chosen)) != len(chosen):
        msg = f"`methods` names a method twice: {list(methods)!r}"
        raise ConfigurationError(msg)
    overrides = overrides or {}
    for name in overrides:
        check_method(name)
    return {m: overrides.get(m, DEFAULT_SETTINGS[m]) for m in chosen}


def _engines(
    model: ChatRunnable, method: Method, setting: MethodSetting, quorum: int
) -> dict[Mode, ScalingEngine]:
    # One scorer object for both modes: the same scorer, not just an equal one.
    scorer = ConsensusScorer(quorum=setting.get("quorum", quorum))
    return {
        mode: create_engine(
            model,
            method,
            budget=setting["budget"],
            mode=mode,
            scorer=scorer,
            system_prompt=setting["system_prompt"],
            **setting["options"],
        )
        for mode in MODES
    }


def _record(
    method: Method, mode: Mode, index: int, item: StreamQuestion, result: ScalingResult
) -> MethodRecord:
    usage = result["usage"]
    final = result["final_answer"]
    return MethodRecord(
        method=method,
        mode=mode,
        index=index,
        template=item["template"],
        question=item["question"],
        gold=item["gold"],
        final_answer=final,
        correct=final == str(item["gold"]),
        passed=result["passed"],
        stop_reason=result["stop_reason"],
        budget_used=result["budget_used"],
        budget_unit=result["budget_unit"],
        generations=usage["generations"],
        tokens=usage["total_tokens"],
        scorer_tokens=usage["scorer_input_tokens"] + usage["scorer_output_tokens"],
        seconds=usage["seconds"],
    )


def _mode_summary(records: Sequence[MethodRecord]) -> ModeSummary:
    correct = sum(r["correct"] for r in records)
    return ModeSummary(
        questions=len(records),
        correct=correct,
        accuracy=round(correct / len(records), 4) if records else 0.0,
        passed=sum(r["passed"] for r in records),
        passed_correct=sum(r["passed"] and r["correct"] for r in records),
        budget_used=sum(r["budget_used"] for r in records),
        generations=sum(r["generations"] for r in records),
        tokens=sum(r["tokens"] for r in records),
        scorer_tokens=sum(r["scorer_tokens"] for r in records),
        seconds=round(sum(r["seconds"] for r in records), 1),
    )


def _method_summary(
    method: Method,
    engines: Mapping[Mode, ScalingEngine],
    setting: MethodSetting,
    records: Sequence[MethodRecord],
) -> MethodSummary:
    static = _mode_summary([r for r in records if r["mode"] == "static"])
    adaptive = _mode_summary([r for r in records if r["mode"] == "adaptive"])
    engine = engines["static"]
    return MethodSummary(
        method=method,
        unit=engine.unit,
        budget=engine.options.budget,
        system_prompt=engine.options.system_prompt,
        options=dict(setting["options"]),
        quorum=cast(ConsensusScorer, engine.options.active_scorer).quorum,
        static=static,
        adaptive=adaptive,
        ratios={
            key: ratio(adaptive[key], static[key])
            for key in ("budget_used", "tokens", "seconds")
        },
    )


def run_method_bench(
    model: ChatRunnable,
    *,
    problems: Sequence[StreamQuestion],
    methods: Sequence[str] = METHODS,
    settings: Mapping[str, MethodSetting] | None = None,
    quorum: int = 3,
    model_name: str = "",
    progress: bool = True,
    on_record: Callable[[MethodRecord], None] | None = None,
) -> MethodBenchReport:
    """Run each method static and adaptive on the same problems; measure both.

    Example:
        ```python
        from langchain_speedup.bench.questions import TEMPLATES, problems

        report = run_method_bench(model, problems=problems(TEMPLATES, variants=2))
        print(format_method_report(report))
        ```

    Args:
        model: The chat model (sampling temperature above 0).
        problems: The problems, each with its gold answer (used only to grade).
        methods: The methods to run, in order; all four by default.
        settings: Budgets and options per method, replacing the defaults of
            the methods they name (`DEFAULT_SETTINGS`).
        quorum: Agreeing answers the consensus scorer requires.
        model_name: Shown in the report.
        progress: Show a progress bar on stderr.
        on_record: Called with each record as it completes.

    Returns:
        The report.

    Raises:
        ConfigurationError: No problems, an unknown or repeated method, or a
            setting the method's engine rejects (raised before any model call).
        ModelError: A model call failed.
    """
    items = list(problems)
    if not items:
        msg = "`problems` must hold at least one problem"
        raise ConfigurationError(msg)
    chosen = _settings(methods, settings)
    # Build every engine first, so a bad setting fails before any model call.
    engines = {m: _engines(model, m, s, quorum) for m, s in chosen.items()}
    records: dict[Method, list[MethodRecord]] = {m: [] for m in chosen}
    started = time.perf_counter()
    bar = tqdm(
        total=len(items) * len(chosen) * len(MODES),
        disable=not progress,
        unit="run",
        desc="methods",
    )
    try:
        for method in chosen:
            for index, item in enumerate(items):
                for mode in MODES:
                    bar.set_postfix_str(f"{method} {mode}")
                    result = engines[method][mode].run(item["question"])
                    record = _record(method, mode, index, item, result)
                    records[method].append(record)
                    if on_record:
                        on_record(record)
                    bar.update()
    finally:
        bar.close()
    return MethodBenchReport(
        model=model_name,
        quorum=quorum,
        problems=len(items),
        methods=[_method_summary(m, engines[m], chosen[m], records[m]) for m in chosen],
        records=[r for m in chosen for r in records[m]],
        seconds=round(time.perf_counter() - started, 1),
    )


def _fmt_ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _setting_text(summary: MethodSummary) -> str:
    # Prompts are in the JSON; the table line shows the numbers.
    shown = {k: v for k, v in summary["options"].items() if not k.endswith("_prompt")}
    text = f"{summary['method']} {summary['budget']} {summary['unit']}"
    shown["quorum"] = summary["quorum"]
    if shown:
        text += " (" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")"
    return text


def format_method_report(report: MethodBenchReport) -> str:
    """The per-method table, static versus adaptive, as text.

    Example:
        ```text
        method            unit               accuracy        budget units      total tokens    adaptive/static
                                             static adapt.   static  adapt.    static  adapt.  units tokens
        best_of_n         generations        18/24  19/24       144      98     21000   14500   0.68   0.69
        ```
    """
    head = (
        f"{'method':<17} {'unit':<17} {'accuracy':^15} {'budget units':^17} "
        f"{'total tokens':^19} {'adaptive/static':^15}"
    )
    sub = (
        f"{'':<17} {'':<17} {'static':>7} {'adapt.':>7} {'static':>8} {'adapt.':>8} "
        f"{'static':>9} {'adapt.':>9} {'units':>7} {'tokens':>7}"
    )
    lines = [head, sub]
    for s in report["methods"]:
        st, ad = s["static"], s["adaptive"]
        lines.append(
            f"{s['method']:<17} {s['unit']:<17} "
            f"{st['correct']:>4}/{st['questions']:<2} {ad['correct']:>4}/{ad['questions']:<2} "
            f"{st['budget_used']:>8} {ad['budget_used']:>8} "
            f"{st['tokens']:>9} {ad['tokens']:>9} "
            f"{_fmt_ratio(s['ratios']['budget_used']):>7} "
            f"{_fmt_ratio(s['ratios']['tokens']):>7}"
        )
    lines += [
        "",
        "budgets: " + "; ".join(_setting_text(s) for s in report["methods"]),
        "scorer: ConsensusScorer with each method's quorum; tokens include "
        "scorer calls; gold answers only grade",
        f"problems: {report['problems']}, model: {report['model'] or 'unnamed'}, "
        f"{report['seconds']:.0f} s",
    ]
    return "\n".join(lines)


def write_method_json(report: MethodBenchReport, path: str | Path) -> Path:
    """Write the report as JSON (NaN ratios become `null`)."""
    return write_report(report, path)
