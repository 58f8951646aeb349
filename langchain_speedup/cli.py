"""The `langchain-speedup` command and its subcommands.

`demo`, `bench`, `bench-methods` and `bench-memory` run on the embedded local
model, or on the server at `OPENAI_BASE_URL`: `bench` is the study on
GSM-Symbolic and HumanEval streams, `bench-methods` and `bench-memory` the
earlier quick checks on the hand-written problems. `bench-store` and
`migrate-store` need no chat model.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_speedup.errors import SpeedupError

if TYPE_CHECKING:
    from langchain_speedup.types import ChatRunnable

__all__ = ["main"]


def _command(
    commands: Any, name: str, summary: str, description: str, what: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=description
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help=f"write the {what} as JSON"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _budget(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n", type=int, default=8, help="Best-of-N budget (default: 8)"
    )
    parser.add_argument(
        "--quorum",
        type=int,
        default=3,
        help="agreeing answers that verify one (default: 3)",
    )


def _model_names() -> list[str]:
    from langchain_speedup.local.model import MODELS

    return list(MODELS)


def _names(
    what: str, allowed: Callable[[], Sequence[str]]
) -> Callable[[str], list[str]]:
    """An argparse type: comma-separated distinct names among `allowed()`."""

    def parse(value: str) -> list[str]:
        known = allowed()
        names = [n.strip() for n in value.split(",") if n.strip()]
        if not names or not set(names) <= set(known) or len(set(names)) != len(names):
            msg = (
                f"{what} must be distinct names among {', '.join(known)}, got {value!r}"
            )
            raise argparse.ArgumentTypeError(msg)
        return names

    return parse


def _memory_arms() -> Sequence[str]:
    from langchain_speedup.bench.memory import ARMS

    return ARMS


def _methods(value: str) -> list[str]:
    from langchain_speedup.bench.methods import _check_methods

    try:
        return list(_check_methods([m.strip() for m in value.split(",") if m.strip()]))
    except SpeedupError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="langchain-speedup",
        description="Test-time scaling that gets cheaper with experience.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = _command(
        commands,
        "demo",
        "run the demo stream: static vs adaptive Best-of-N vs the speedup router",
        "Run a stream of GSM-style questions (repeats, paraphrases, new numbers, "
        "new problems) through static Best-of-N, adaptive Best-of-N and the "
        "memory-aware router, on the embedded local model unless OPENAI_BASE_URL "
        "is set, and compare their compute.",
        "summary",
    )
    demo.add_argument(
        "--memory",
        type=Path,
        metavar="PATH",
        help="keep the memory at PATH across runs (default: empty, in memory; needs a persistent default store)",
    )
    demo.add_argument(
        "--plot",
        type=Path,
        metavar="PATH",
        default=Path("speedup-demo.png"),
        help="where to save the plot of compute per question (default: %(default)s)",
    )
    _budget(demo)
    demo.add_argument(
        "--max-tokens",
        type=int,
        default=256,
        help="cap on each generation (default: 256)",
    )
    bench = _command(
        commands,
        "bench-methods",
        "run each scaling method static vs adaptive on the same problems",
        "Run Best-of-N, Self-Refine, Tree-of-Thoughts and long chain-of-thought, "
        "each in static and adaptive mode, on the same GSM-style problems, on the "
        "embedded local model unless OPENAI_BASE_URL is set, and print per method "
        "accuracy, budget units, total tokens and the adaptive/static ratios.",
        "report",
    )
    bench.add_argument(
        "--problems",
        type=int,
        default=None,
        metavar="N",
        help="run the first N problems (default: all 24)",
    )
    bench.add_argument(
        "--methods",
        type=_methods,
        metavar="A,B",
        help="comma-separated methods to run (default: all four)",
    )
    memory = _command(
        commands,
        "bench-memory",
        "run dissimilar and similar streams with no, ungated and gated memory",
        "Run a stream of dissimilar questions and a stream of similar ones "
        "through adaptive Best-of-N with no memory, with every retrieved episode "
        "in the prompt, and with the calibrated similarity gate, then with "
        "execution-verified answers without memory and with procedure memory, "
        "on the embedded local model unless OPENAI_BASE_URL is set, and compare "
        "their compute and accuracy.",
        "report",
    )
    _budget(memory)
    memory.add_argument(
        "--streams",
        type=_names("streams", lambda: ("dissimilar", "similar")),
        metavar="A,B",
        default=["dissimilar", "similar"],
        help="comma-separated streams: dissimilar, similar (default: both)",
    )
    memory.add_argument(
        "--arms",
        type=_names("arms", _memory_arms),
        metavar="A,B",
        help="comma-separated arms: none, ungated, gated, none-program, procedure "
        "(default: all)",
    )
    memory.add_argument(
        "--model",
        choices=sorted(_model_names()),
        help="the named local model (default: the 0.5B model)",
    )
    _study_command(commands)
    _store_commands(commands)
    return parser


def _study_command(commands: Any) -> None:
    from langchain_speedup.bench.study import PRESETS
    from langchain_speedup.local.model import MODELS

    study = _command(
        commands,
        "bench",
        "run the study: every arm and method on S1-S4 streams from GSM-Symbolic",
        "Run static, adaptive, a semantic cache and the router (exemplars, "
        "reflections) for each scaling method on streams at four similarity "
        "levels from GSM-Symbolic (and HumanEval with a config), on the embedded "
        "local model unless OPENAI_BASE_URL is set. Results are appended to "
        "OUT/results.jsonl as they come, so an interrupted run continues where "
        "it stopped; the Markdown report and PNG plots go to OUT.",
        "cell summaries",
    )
    study.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="the grid to run (default: %(default)s; smoke takes a few minutes)",
    )
    study.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="a TOML study config applied over the preset",
    )
    study.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        default=Path("bench-results"),
        help="results, report and plots (default: %(default)s)",
    )
    study.add_argument(
        "--model",
        choices=sorted(MODELS),
        help="the named local model (default: the config's, the 0.5B model)",
    )
    study.add_argument(
        "--methods",
        type=_methods,
        metavar="A,B",
        help="comma-separated methods to run (default: the config's)",
    )
    study.add_argument(
        "--plan",
        action="store_true",
        help="print the streams and the number of questions per arm, then stop",
    )
    study.add_argument(
        "--cache-threshold",
        type=float,
        metavar="COSINE",
        help="the semantic cache's lowest similarity for a hit (default: 0.8)",
    )


def _store_commands(commands: Any) -> None:
    store = _command(
        commands,
        "bench-store",
        "time the episodic store at 1k, 10k and 100k episodes",
        "Fill QdrantStore on disk with synthetic episodes, one put each, and "
        "report the router's decision time (p50/p95, embedding excluded and "
        "included), exact-key reuse, the first question after a reopen, put "
        "latency during the fill (p50/p99/max), reopen time, RSS and disk, "
        "against one MiniLM embedding and exact numpy search measured in the "
        "same run, and how often the router's decisions and exemplars, and a "
        "search's top 8, equal those from exact search.",
        "report",
    )
    store.add_argument(
        "--quick", action="store_true", help="1k and 10k episodes only (about a minute)"
    )
    store.add_argument(
        "--sizes",
        type=_sizes,
        metavar="N,M",
        help="comma-separated episode counts (default: 1000,10000,100000)",
    )
    store.add_argument(
        "--dir",
        type=Path,
        metavar="PATH",
        help="where to write the stores (default: a temp dir)",
    )
    store.add_argument(
        "--engine",
        choices=("auto", "edge", "client"),
        default="auto",
        help="QdrantStore's engine (default: %(default)s)",
    )
    store.add_argument(
        "--no-embedding",
        action="store_true",
        help="skip the MiniLM figures (no local extra needed)",
    )
    migrate = commands.add_parser(
        "migrate-store",
        help="copy a store written by 0.1.0 into a new QdrantStore",
        description="Copy the episodes, reflections and lessons of a store written "
        "by langchain-speedup 0.1.0 (OLD) into a new QdrantStore at NEW, keeping "
        "each question's stored vector. OLD is only read.",
    )
    migrate.add_argument("old", type=Path, metavar="OLD")
    migrate.add_argument("new", type=Path, metavar="NEW")


def _sizes(value: str) -> list[int]:
    try:
        sizes = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as e:
        msg = f"not a list of counts: {value!r}"
        raise argparse.ArgumentTypeError(msg) from e
    if not sizes or min(sizes) < 100:
        msg = "each size must be at least 100"
        raise argparse.ArgumentTypeError(msg)
    return sizes


def _open_model(
    max_tokens: int = 256, local_model: str | None = None
) -> AbstractContextManager[ChatRunnable]:
    from langchain_speedup.local import open_chat_model

    sys.stderr.write("starting the model server...\n")
    named = {} if local_model is None else {"local_model": local_model}
    return open_chat_model(temperature=0.7, max_tokens=max_tokens, **named)


def _demo(args: argparse.Namespace) -> tuple[str, Mapping[str, Any]]:
    from langchain_speedup.bench.demo import format_report, plot_report, run_demo
    from langchain_speedup.local import MiniLMEmbeddings

    embeddings = MiniLMEmbeddings()
    with _open_model(args.max_tokens) as model:
        report = run_demo(
            model,
            embeddings=embeddings,
            memory_path=args.memory,
            n=args.n,
            quorum=args.quorum,
            progress=not args.quiet,
        )
    sys.stdout.write(format_report(report) + "\n")
    return f"plot: {plot_report(report, args.plot)}", report


def _bench_methods(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[str, Mapping[str, Any]]:
    from langchain_speedup.bench.methods import format_method_report, run_method_bench
    from langchain_speedup.bench.questions import TEMPLATES, problems
    from langchain_speedup.types import METHODS

    items = problems(TEMPLATES, variants=2)
    count = args.problems or len(items)
    if count > len(items):
        parser.error(f"--problems must be between 1 and {len(items)}, got {count}")
    with _open_model() as model:
        report = run_method_bench(
            model,
            problems=items[:count],
            methods=args.methods or METHODS,
            progress=not args.quiet,
        )
    return format_method_report(report), report


def _bench_memory(args: argparse.Namespace) -> tuple[str, Mapping[str, Any]]:
    from langchain_speedup.bench.memory import (
        ARMS,
        format_memory_report,
        run_memory_bench,
    )
    from langchain_speedup.bench.questions import dissimilar_stream, similar_stream
    from langchain_speedup.local import MiniLMEmbeddings

    built = {"dissimilar": dissimilar_stream, "similar": similar_stream}
    # A fresh server per arm replays its sampling sequence: arms that send the
    # same prompts get the same samples.
    report = run_memory_bench(
        open_model=lambda: _open_model(local_model=args.model),
        embeddings=MiniLMEmbeddings(),
        streams={name: built[name]() for name in args.streams},
        arms=args.arms or ARMS,
        n=args.n,
        quorum=args.quorum,
        progress=not args.quiet,
    )
    return format_memory_report(report), report


def _plan(config: Any) -> str:
    from langchain_speedup.bench.streams import build_streams
    from langchain_speedup.bench.study import NOT_RUN_ARMS

    streams = build_streams(config.streams)
    arms = [a for a in config.arms if a not in NOT_RUN_ARMS]
    per_arm = sum(len(items) for items in streams.values())
    lines = [
        f"{family} {level}: {len(items)} questions"
        for (family, level), items in streams.items()
    ]
    lines.append(
        f"{per_arm} questions x {len(arms)} arms ({', '.join(arms)}) x "
        f"{len(config.methods)} methods ({', '.join(config.methods)}) = "
        f"{per_arm * len(arms) * len(config.methods)} answers; model {config.model}"
    )
    return "\n".join(lines)


def _study(
    args: argparse.Namespace, argv: Sequence[str]
) -> tuple[str, Mapping[str, Any]]:
    from dataclasses import replace

    from langchain_speedup.bench.study import PRESETS, load_config, run_study
    from langchain_speedup.bench.study_report import (
        format_study_report,
        plot_study,
        summarize_study,
    )
    from langchain_speedup.local import MiniLMEmbeddings, open_chat_model

    config = PRESETS[args.preset]
    if args.config:
        config = load_config(args.config, config)
    if args.model:
        config = replace(config, model=args.model)
    if args.methods:
        config = replace(config, methods=tuple(args.methods))
    if args.cache_threshold is not None:
        config = replace(config, cache_threshold=args.cache_threshold)
    if args.plan:
        return _plan(config), {}
    sys.stderr.write(f"starting the model ({config.model})...\n")
    with open_chat_model(
        local_model=config.model, temperature=0.7, max_tokens=config.max_tokens
    ) as model:
        name = str(getattr(model, "model_name", "") or config.model)
        records = run_study(
            model,
            embeddings=MiniLMEmbeddings(),
            config=config,
            out_dir=args.out,
            progress=not args.quiet,
        )
    plots = plot_study(records, args.out)
    command = "langchain-speedup " + " ".join(argv)
    report = format_study_report(
        records, config, model=name, command=command, plots=plots
    )
    target = args.out / "report.md"
    target.write_text(report, encoding="utf-8")
    summaries = summarize_study(records)
    return f"report: {target}\nresults: {args.out / 'results.jsonl'}", {
        "model": name,
        "cells": summaries,
    }


def _bench_store(args: argparse.Namespace) -> tuple[str, Mapping[str, Any]]:
    from langchain_speedup.bench.store import (
        DEFAULT_SIZES,
        QUICK_SIZES,
        format_store_report,
        run_store_bench,
    )

    embeddings = None
    if not args.no_embedding:
        from langchain_speedup.local import MiniLMEmbeddings

        embeddings = MiniLMEmbeddings()
    report = run_store_bench(
        sizes=args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES),
        embeddings=embeddings,
        directory=args.dir,
        engine=args.engine,
        progress=not args.quiet,
    )
    return format_store_report(report), report


def _migrate_store(args: argparse.Namespace) -> int:
    from langchain_speedup.memory.migrate import migrate_store

    report = migrate_store(args.old, args.new)
    sys.stdout.write(
        f"copied {report['episodes']} episodes, {report['reflections']} reflections, "
        f"{report['lessons']} lessons into {args.new} ({report['skipped']} skipped)\n"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments after the program name; `sys.argv[1:]` when `None`.

    Returns:
        The exit code: 0 on success, 1 on an error of the package, 130 when
        interrupted (bad arguments exit with 2).
    """
    from langchain_speedup.bench import write_report

    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    for name in ("n", "quorum", "max_tokens", "problems"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    started = time.perf_counter()
    try:
        if args.command == "migrate-store":
            return _migrate_store(args)
        if args.command == "bench-methods":
            text, report = _bench_methods(args, parser)
        elif args.command == "bench":
            text, report = _study(args, argv)
        elif args.command == "bench-store":
            text, report = _bench_store(args)
        else:
            text, report = (_demo if args.command == "demo" else _bench_memory)(args)
    except SpeedupError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    sys.stdout.write(text + "\n")
    if args.json:
        sys.stdout.write(f"json: {write_report(report, args.json)}\n")
    sys.stdout.write(f"total time: {time.perf_counter() - started:.0f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
