"""The study's metrics, its Markdown report and its plots.

Per cell (method, family, level, arm): accuracy, budget in the method's unit,
total tokens, wall time, reduction against the static baseline of the same
cell, the compute-over-the-stream curve, the Pearson correlation between a
question's compute and its correctness, and the scorer's precision against
gold (of the answers it verified, the share that were right).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from typing_extensions import TypedDict

from langchain_speedup.scaling.engines import check_method

from .methods import DEFAULT_SETTINGS
from .study import NOT_RUN_ARMS, StudyConfig, StudyRecord

__all__ = [
    "CellSummary",
    "Target",
    "check_targets",
    "format_study_report",
    "pearson",
    "plot_study",
    "summarize_study",
]

BASELINE = "static"
PROCEDURE = "router-procedure"
ROUTERS = {
    "router": "adaptive",
    "router-reflect": "adaptive",
    PROCEDURE: "adaptive-program",
}
"""Each router arm, and the arm that runs its method adaptively without memory."""


class CellSummary(TypedDict):
    """One arm's results on one level's streams with one method."""

    method: str
    family: str
    level: str
    arm: str
    questions: int
    correct: int
    accuracy: float
    budget_used: int
    budget_unit: str
    calls: int
    """Every model call: solver, scorer, router, reflection and memory."""
    tokens: int
    seconds: float
    passed: int
    passed_correct: int
    scorer_precision: float | None
    """Right answers among the verified ones; `None` when none was verified."""
    budget_reduction: float | None
    """`1 - budget_used / baseline's`; `None` for the baseline or when it spent nothing."""
    token_reduction: float | None
    pearson: float | None
    """Per question, compute (tokens) against correctness; `None` when either is constant."""
    curve: list[int]
    """Budget used per position."""


class Target(TypedDict):
    """One acceptance target of a router arm, checked on one cell."""

    arm: str
    method: str
    family: str
    level: str
    target: str
    met: bool | None
    """`None` when a needed arm did not run."""
    detail: str


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's r of two equally long series; `None` when undefined."""
    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return round(statistics.correlation(xs, ys), 4)


def _reduction(value: float, base: float) -> float | None:
    return round(1 - value / base, 4) if base else None


def summarize_study(records: Sequence[StudyRecord]) -> list[CellSummary]:
    """One summary per cell, in the records' order of first appearance."""
    cells: dict[tuple[str, str, str, str], list[StudyRecord]] = {}
    for r in records:
        cells.setdefault((r["method"], r["family"], r["level"], r["arm"]), []).append(r)
    out: list[CellSummary] = []
    for (method, family, level, arm), rows in cells.items():
        rows = sorted(rows, key=lambda r: r["position"])
        base = cells.get((method, family, level, BASELINE), [])
        budget = sum(r["budget_used"] for r in rows)
        tokens = sum(r["tokens"] for r in rows)
        passed = sum(r["passed"] for r in rows)
        passed_correct = sum(r["passed"] and r["correct"] for r in rows)
        is_base = arm == BASELINE or not base
        out.append(
            CellSummary(
                method=method,
                family=family,
                level=level,
                arm=arm,
                questions=len(rows),
                correct=sum(r["correct"] for r in rows),
                accuracy=round(sum(r["correct"] for r in rows) / len(rows), 4),
                budget_used=budget,
                budget_unit=rows[0]["budget_unit"],
                calls=sum(r.get("calls", r["generations"]) for r in rows),
                tokens=tokens,
                seconds=round(sum(r["seconds"] for r in rows), 1),
                passed=passed,
                passed_correct=passed_correct,
                scorer_precision=round(passed_correct / passed, 4) if passed else None,
                budget_reduction=None
                if is_base
                else _reduction(budget, sum(r["budget_used"] for r in base)),
                token_reduction=None
                if is_base
                else _reduction(tokens, sum(r["tokens"] for r in base)),
                pearson=pearson(
                    [float(r["tokens"]) for r in rows],
                    [float(r["correct"]) for r in rows],
                ),
                curve=[r["budget_used"] for r in rows],
            )
        )
    return out


_TARGETS = {"S1": 0.9, "S2": 0.75, "S3": 0.5, "S4": 0.0}


def check_targets(summaries: Sequence[CellSummary]) -> list[Target]:
    """The issue's targets for every router arm, checked cell by cell.

    Against the static baseline: at least 90% less compute (budget units) at
    S1, 75% at S2, 50% at S3, no increase at S4, each with accuracy at least
    the baseline's; strictly higher accuracy than the cache at S3; no worse
    than its method adaptive without memory (compute and accuracy) anywhere:
    `adaptive`, or `adaptive-program` for `router-procedure`, which verifies
    by execution as that arm does.
    """
    index = {(s["method"], s["family"], s["level"], s["arm"]): s for s in summaries}
    out: list[Target] = _procedure_targets(index)
    for (method, family, level, arm), s in index.items():
        if arm not in ROUTERS:
            continue
        base = index.get((method, family, level, BASELINE))
        no_memory = ROUTERS[arm]
        adaptive = index.get((method, family, level, no_memory))
        cache = index.get((method, family, level, "cache"))

        cell = {"arm": arm, "method": method, "family": family, "level": level}

        def add(
            target: str, met: bool | None, detail: str, cell: dict[str, str] = cell
        ) -> None:
            out.append(_target(cell, target, met, detail))

        if level in _TARGETS:
            goal = _TARGETS[level]
            name = (
                f"{goal:.0%} less compute than static, accuracy >= static"
                if goal
                else "no more compute than static, accuracy >= static"
            )
            if base is None or s["budget_reduction"] is None:
                add(name, None, "no static baseline with compute in this run")
            else:
                cut = s["budget_reduction"]
                ok = cut >= goal and s["accuracy"] >= base["accuracy"]
                add(
                    name,
                    ok,
                    f"reduction {cut:.0%}, accuracy {s['accuracy']:.0%} vs "
                    f"static {base['accuracy']:.0%}",
                )
        if level == "S3":
            if cache is None:
                add("accuracy > cache", None, "the cache arm did not run")
            else:
                add(
                    "accuracy > cache",
                    s["accuracy"] > cache["accuracy"],
                    f"{s['accuracy']:.0%} vs cache {cache['accuracy']:.0%}",
                )
        if adaptive is None:
            add(f"no worse than {no_memory}", None, f"{no_memory} did not run")
        else:
            ok = (
                s["budget_used"] <= adaptive["budget_used"]
                and s["accuracy"] >= adaptive["accuracy"]
            )
            add(
                f"no worse than {no_memory}",
                ok,
                f"budget {s['budget_used']} vs {adaptive['budget_used']}, accuracy "
                f"{s['accuracy']:.0%} vs {adaptive['accuracy']:.0%}",
            )
    return out


def _target(
    cell: Mapping[str, str], target: str, met: bool | None, detail: str
) -> Target:
    return cast(Target, {**cell, "target": target, "met": met, "detail": detail})


def _procedure_targets(
    index: Mapping[tuple[str, str, str, str], CellSummary],
) -> list[Target]:
    # Procedure memory against adaptive stopping without memory, same scorer:
    # at most 0.5x the budget and 0.4x the tokens, accuracy at least its; and
    # a scorer precision of at least 0.9.
    out: list[Target] = []
    for (method, family, level, arm), s in index.items():
        base = index.get((method, family, level, ROUTERS[PROCEDURE]))
        if arm != PROCEDURE or base is None:
            continue
        cell = {"arm": arm, "method": method, "family": family, "level": level}
        budget, tokens, calls = (
            s[key] / base[key] if base[key] else None
            for key in ("budget_used", "tokens", "calls")
        )
        met = (
            budget is not None
            and tokens is not None
            and budget <= 0.5
            and tokens <= 0.4
            and s["accuracy"] >= base["accuracy"]
        )
        detail = (
            f"{_num(budget)}x the budget, {_num(tokens)}x the tokens, "
            f"{_num(calls)}x the model calls; accuracy {s['correct']}/{s['questions']} "
            f"vs {base['correct']}/{base['questions']}"
        )
        name = "<= 0.5x budget, <= 0.4x tokens of adaptive-program, accuracy >= its"
        precision = s["scorer_precision"]
        out += [
            _target(cell, name, met, detail),
            _target(
                cell,
                "scorer precision >= 0.9",
                None if precision is None else precision >= 0.9,
                f"{s['passed_correct']}/{s['passed']} passing answers right",
            ),
        ]
    return out


def _fmt_reduction(value: float | None) -> str:
    # A reduction of 0.4 reads "40% less"; a negative one is an increase.
    if value is None:
        return "-"
    return f"{value:.0%} less" if value >= 0 else f"{-value:.0%} more"


def _setting_text(config: StudyConfig, method: str, unit: str) -> str:
    name = check_method(method)
    setting = config.settings.get(name) or DEFAULT_SETTINGS[name]
    options = {k: v for k, v in setting["options"].items() if not k.endswith("_prompt")}
    shown = ", ".join(f"{k} {v}" for k, v in options.items())
    quorum = setting.get("quorum", config.quorum)
    return f"budget {setting['budget']} {unit}, consensus quorum {quorum}" + (
        f", {shown}" if shown else ""
    )


def _num(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def format_study_report(
    records: Sequence[StudyRecord],
    config: StudyConfig,
    *,
    model: str,
    command: str,
    plots: Sequence[Path] = (),
) -> str:
    """The study's Markdown report: setup, a table per method, targets, notes."""
    summaries = summarize_study(records)
    s_cfg = config.streams
    lines = [
        "# Study results",
        "",
        f"- Command: `{command}`",
        f"- Model: {model}; max tokens per generation {config.max_tokens}",
        f"- Streams: GSM-Symbolic templates {list(s_cfg.templates)}, seeds from "
        f"{s_cfg.seeds[0]} ({len(s_cfg.seeds)} available), {s_cfg.streams} stream(s) "
        f"per level of {s_cfg.length} questions; math levels {list(s_cfg.levels)}; "
        f"code levels {list(s_cfg.code_levels) or 'none'}",
        f"- Arms: {', '.join(a for a in config.arms if a not in NOT_RUN_ARMS)}; "
        f"cache threshold {config.cache_threshold}",
        f"- Questions answered: {len(records)}; wall time of the answers "
        f"{sum(r['seconds'] for r in records) / 60:.1f} min",
        "",
        "Compute is the method's budget unit; tokens count every model call "
        "(solver, scorer, router, reflection, memory), and calls counts them. "
        "Reduction is against the static arm on the same questions. Gold "
        "answers only grade. The `-program` and `-procedure` arms verify with "
        "`ProgramVerifiedScorer` (an executed program and a prose answer must "
        "agree), not consensus.",
    ]
    for method in config.methods:
        rows = [s for s in summaries if s["method"] == method]
        if not rows:
            continue
        lines += [
            "",
            f"## {method} ({_setting_text(config, method, rows[0]['budget_unit'])})",
            "",
            "| family | level | arm | accuracy | budget | calls | tokens | budget reduction "
            "| token reduction | scorer precision | r(compute, correct) | seconds |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in rows:
            precision = (
                "-"
                if s["scorer_precision"] is None
                else f"{s['passed_correct']}/{s['passed']}"
            )
            lines.append(
                f"| {s['family']} | {s['level']} | {s['arm']} | "
                f"{s['correct']}/{s['questions']} | {s['budget_used']} | {s['calls']} | "
                f"{s['tokens']} | "
                f"{_fmt_reduction(s['budget_reduction'])} | "
                f"{_fmt_reduction(s['token_reduction'])} | {precision} | "
                f"{_num(s['pearson'])} | {s['seconds']:.0f} |"
            )
    cells = [
        s
        for s in summaries
        if s["arm"] != BASELINE and s["token_reduction"] is not None
    ]
    r_cells = pearson(
        [1 - (s["token_reduction"] or 0.0) for s in cells],
        [s["accuracy"] for s in cells],
    )
    lines += [
        "",
        "## Compute and accuracy",
        "",
        f"Pearson r between a cell's compute (tokens relative to static) and its "
        f"accuracy, over {len(cells)} non-baseline cells: {_num(r_cells)} "
        "(the paper reports r = -0.41: less compute went with higher accuracy).",
        "",
        "## Targets (same run: each router arm against the static baseline; "
        "procedure memory against adaptive-program)",
        "",
        "| arm | method | family | level | target | met | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in check_targets(summaries):
        met = "not tested" if t["met"] is None else "met" if t["met"] else "missed"
        lines.append(
            f"| {t['arm']} | {t['method']} | {t['family']} | {t['level']} | "
            f"{t['target']} | {met} | {t['detail']} |"
        )
    lines += ["", "## Not run", ""]
    lines += [f"- `{arm}`: {why}" for arm, why in NOT_RUN_ARMS.items()]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


_STYLES = ("s-", "o--", "^-.", "D:", "v-", "P--")


def _pyplot() -> Any:
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        msg = 'plotting needs matplotlib: `pip install "langchain-speedup[local]"`'
        raise ImportError(msg) from e
    return plt


def plot_study(records: Sequence[StudyRecord], out_dir: str | Path) -> list[Path]:
    """Write the plots: compute per question over each stream, and reduction against accuracy.

    Returns:
        The PNG files written: one `curve-<method>.png` per method (a panel
        per family and level, a line per arm) and `reduction-accuracy.png`.

    Raises:
        ImportError: matplotlib is not installed.
    """
    plt = _pyplot()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    summaries = summarize_study(records)
    written: list[Path] = []
    methods = list(dict.fromkeys(s["method"] for s in summaries))
    for method in methods:
        rows = [s for s in summaries if s["method"] == method]
        panels = list(dict.fromkeys((s["family"], s["level"]) for s in rows))
        figure, axes = plt.subplots(
            1, len(panels), figsize=(3.2 * len(panels) + 1, 3.4), squeeze=False
        )
        arm_order = list(dict.fromkeys(s["arm"] for s in rows))
        for ax, (family, level) in zip(axes[0], panels, strict=True):
            for s in rows:
                if (s["family"], s["level"]) == (family, level):
                    # Distinct markers and dashes: equal curves stay visible.
                    k = arm_order.index(s["arm"])
                    ax.plot(
                        range(1, len(s["curve"]) + 1),
                        s["curve"],
                        _STYLES[k % len(_STYLES)],
                        label=s["arm"],
                        markersize=8 - k,
                        alpha=0.8,
                    )
            ax.set_title(f"{family} {level}")
            ax.set_xlabel("position in stream")
            ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0][0].set_ylabel(rows[0]["budget_unit"])
        axes[0][-1].legend(fontsize=7)
        figure.suptitle(f"{method}: compute per question")
        figure.tight_layout()
        target = root / f"curve-{method}.png"
        figure.savefig(target, dpi=100)
        plt.close(figure)
        written.append(target)
    figure, ax = plt.subplots(figsize=(6, 4.5))
    arms: dict[str, list[CellSummary]] = {}
    for s in summaries:
        if s["token_reduction"] is not None:
            arms.setdefault(s["arm"], []).append(s)
    for arm, cells in arms.items():
        ax.scatter(
            [c["token_reduction"] for c in cells],
            [c["accuracy"] for c in cells],
            label=arm,
        )
    ax.set_xlabel("token reduction vs static")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.05, 1.05)
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.legend(fontsize=8)
    ax.set_title("Reduction against accuracy, one point per cell")
    figure.tight_layout()
    target = root / "reduction-accuracy.png"
    figure.savefig(target, dpi=100)
    plt.close(figure)
    written.append(target)
    return written
