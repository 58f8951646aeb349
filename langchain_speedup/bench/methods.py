"""Each scaling method, static versus adaptive, on the same problems, in one run.

Both modes share the model, scorer and budget and run back to back on each
problem, so that a drift in the machine's speed slows both alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NotRequired

from typing_extensions import TypedDict, Unpack

from langchain_speedup._internal import DEFAULT_SYSTEM_PROMPT
from langchain_speedup.errors import ConfigurationError
from langchain_speedup.sandbox import Sandbox
from langchain_speedup.scaling import ScalingEngine
from langchain_speedup.scaling.engines import check_method, create_engine
from langchain_speedup.scoring import ConsensusScorer, ProgramVerifiedScorer
from langchain_speedup.types import METHODS, ChatRunnable, Method, Mode

from ._report import Graded, Recorder, RunOptions, Summary, graded, ratio, summarize
from .questions import BENCH_STEP_PROMPT, DEMO_SYSTEM_PROMPT, StreamQuestion

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
    "program_verified",
    "run_method_bench",
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
        # Three agreeing samples stop an adaptive run at half the budget.
        "best_of_n": MethodSetting(
            budget=6, system_prompt=DEMO_SYSTEM_PROMPT, options={}
        ),
        # Rounds revise one answer rather than sample anew: a revision that
        # keeps the answer (a quorum of 2) stops the run.
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
        # Shorter segments cut the model off mid-step; a probe that agrees
        # with the one before (a quorum of 2) stops the thinking.
        "long_cot": MethodSetting(
            budget=384,
            system_prompt=None,
            options={"segment_tokens": 128, "probe_tokens": 32},
            quorum=2,
        ),
    }
)
"""The budgets of the default run: the smallest that leave adaptive mode room
to stop early, with calls kept short except long chain-of-thought's."""


class MethodRecord(Graded):
    """One problem, one method, one mode."""

    method: str
    mode: Mode
    stop_reason: str
    budget_used: int
    budget_unit: str
    scorer_tokens: int


class ModeSummary(Summary):
    """Totals of one method in one mode."""

    budget_used: int
    """Budget units spent, summed over the problems."""
    scorer_tokens: int


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


def _check_methods(methods: Sequence[str]) -> list[Method]:
    # Also checks the command line's `--methods`.
    if isinstance(methods, str) or not methods:
        msg = f"`methods` must be a non-empty sequence of method names, got {methods!r}"
        raise ConfigurationError(msg)
    chosen = [check_method(m) for m in methods]
    if len(set(chosen)) != len(chosen):
        msg = f"`methods` names a method twice: {list(methods)!r}"
        raise ConfigurationError(msg)
    return chosen


def program_verified(
    model: ChatRunnable, method: Method, system_prompt: str | None
) -> dict[str, Any]:
    """The engine options of the arms that verify by execution.

    `ProgramVerifiedScorer`, whose own prose samples use the method's system
    prompt (a long default solution is cut off by a short token cap before
    its answer). Best-of-N alternates prose and program candidates: on
    GSM-Symbolic the local 1.5B code model's programs were right 2.6x as
    often as its prose (29 of 64 against 11 of 64), so the programs that
    confirm prose come from the method's own samples, not from one program
    of the scorer's.
    """
    sandbox = Sandbox()
    scorer = ProgramVerifiedScorer(
        model, sandbox=sandbox, prose_prompt=system_prompt or DEFAULT_SYSTEM_PROMPT
    )
    if method != "best_of_n":
        return {"scorer": scorer}
    return {"scorer": scorer, "program_every": 2, "sandbox": sandbox}


def _settings(
    methods: Sequence[str], overrides: Mapping[str, MethodSetting] | None, quorum: int
) -> dict[Method, MethodSetting]:
    # Each setting comes back with its quorum, the run's unless it has its own.
    chosen = _check_methods(methods)
    overrides = overrides or {}
    for name in overrides:
        check_method(name)
    return {
        m: {"quorum": quorum, **overrides.get(m, DEFAULT_SETTINGS[m])} for m in chosen
    }


def _engines(
    model: ChatRunnable, method: Method, setting: MethodSetting
) -> dict[Mode, ScalingEngine]:
    # One scorer object for both modes: the same scorer, not just an equal one.
    scorer = ConsensusScorer(quorum=setting["quorum"])
    options = dict(setting["options"])
    if setting["system_prompt"] is not None:
        options["system_prompt"] = setting["system_prompt"]
    return {
        mode: create_engine(
            model, method, budget=setting["budget"], mode=mode, scorer=scorer, **options
        )
        for mode in MODES
    }


def _run(
    method: Method, mode: Mode, index: int, item: StreamQuestion, engine: ScalingEngine
) -> MethodRecord:
    result = engine.run(item["question"])
    usage = result["usage"]
    return MethodRecord(
        method=method,
        mode=mode,
        **graded(index, item, result["final_answer"], result["passed"], usage),
        stop_reason=result["stop_reason"],
        budget_used=result["budget_used"],
        budget_unit=result["budget_unit"],
        scorer_tokens=usage["scorer_input_tokens"] + usage["scorer_output_tokens"],
    )


def _summary(
    method: Method,
    engine: ScalingEngine,
    setting: MethodSetting,
    records: Sequence[MethodRecord],
) -> MethodSummary:
    modes: dict[str, Any] = {
        mode: summarize(
            [r for r in records if r["method"] == method and r["mode"] == mode],
            sums=("budget_used", "scorer_tokens"),
        )
        for mode in MODES
    }
    return MethodSummary(
        method=method,
        unit=engine.unit,
        budget=engine.budget,
        system_prompt=engine.system_prompt,
        options=dict(setting["options"]),
        quorum=setting["quorum"],
        static=modes["static"],
        adaptive=modes["adaptive"],
        ratios={
            key: ratio(modes["adaptive"][key], modes["static"][key])
            for key in ("budget_used", "tokens", "seconds")
        },
    )


def run_method_bench(
    model: ChatRunnable,
    *,
    problems: Sequence[StreamQuestion],
    methods: Sequence[str] = METHODS,
    settings: Mapping[str, MethodSetting] | None = None,
    **options: Unpack[RunOptions[MethodRecord]],
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
        **options: `quorum`, `model_name`, `progress`, `on_record` (`RunOptions`).

    Returns:
        The report.

    Raises:
        ConfigurationError: No problems, an unknown or repeated method, a
            setting the method's engine rejects, or an unknown or ill-typed
            option (raised before any model call).
        ModelError: A model call failed.
    """
    items = list(problems)
    if not items:
        msg = "`problems` must hold at least one problem"
        raise ConfigurationError(msg)
    quorum = options.get("quorum", 3)
    chosen = _settings(methods, settings, quorum)
    # Build every engine first, so a bad setting fails before any model call.
    engines = {m: _engines(model, m, s) for m, s in chosen.items()}
    total = len(items) * len(chosen) * len(MODES)
    with Recorder(total, desc="methods", unit="run", options=options) as run:
        for method in chosen:
            for index, item in enumerate(items):
                for mode in MODES:
                    run.label(f"{method} {mode}")
                    run.add(_run(method, mode, index, item, engines[method][mode]))
    return MethodBenchReport(
        model=run.name(model),
        quorum=quorum,
        problems=len(items),
        methods=[
            _summary(m, engines[m]["static"], chosen[m], run.records) for m in chosen
        ],
        records=run.records,
        seconds=run.elapsed(),
    )


def _fmt_ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _setting_text(summary: MethodSummary) -> str:
    # Prompts are in the JSON; the table line shows the numbers.
    shown = {k: v for k, v in summary["options"].items() if not k.endswith("_prompt")}
    shown["quorum"] = summary["quorum"]
    options = ", ".join(f"{k}={v}" for k, v in shown.items())
    return f"{summary['method']} {summary['budget']} {summary['unit']} ({options})"


def format_method_report(report: MethodBenchReport) -> str:
    """The per-method table, static versus adaptive, as text.

    Example:
        ```text
        method            unit               accuracy        budget units      total tokens    adaptive/static
                                             static adapt.   static  adapt.    static  adapt.  units tokens
        best_of_n         generations        18/24  19/24       144      98     21000   14500   0.68   0.69
        ```
    """
    lines = [
        f"{'method':<17} {'unit':<17} {'accuracy':^15} {'budget units':^17} "
        f"{'total tokens':^19} {'adaptive/static':^15}",
        f"{'':<17} {'':<17} {'static':>7} {'adapt.':>7} {'static':>8} {'adapt.':>8} "
        f"{'static':>9} {'adapt.':>9} {'units':>7} {'tokens':>7}",
    ]
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
