"""The `langchain-speedup` command.

`langchain-speedup demo` runs a stream of GSM-style questions three ways on
the embedded local model (or the server at `OPENAI_BASE_URL`) and prints what
each cost: static Best-of-N, adaptive Best-of-N, and the memory-aware router.

`langchain-speedup bench-methods` runs each scaling method (Best-of-N,
Self-Refine, Tree-of-Thoughts, long chain-of-thought) static and adaptive on
the same GSM-style problems and prints accuracy, budget units, total tokens
and the adaptive/static ratios per method.

`langchain-speedup bench-memory` runs a stream of dissimilar questions and a
stream of similar ones with no memory, ungated memory and gated memory, and
prints what memory cost or saved in each.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_speedup.errors import SpeedupError

if TYPE_CHECKING:
    from langchain_speedup.scaling._common import ChatRunnable

__all__ = ["main"]

logger = logging.getLogger("langchain_speedup")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="langchain-speedup",
        description="Test-time scaling that gets cheaper with experience.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run the demo stream: static vs adaptive Best-of-N vs the speedup router",
        description=(
            "Run a stream of GSM-style questions (repeats, paraphrases, new numbers, "
            "new problems) through static Best-of-N, adaptive Best-of-N and the "
            "memory-aware router, on the embedded local model unless OPENAI_BASE_URL "
            "is set, and compare their compute."
        ),
    )
    demo.add_argument(
        "--json", type=Path, metavar="PATH", help="write the summary as JSON"
    )
    demo.add_argument(
        "--memory",
        type=Path,
        metavar="PATH",
        help="keep the episodic store at PATH across runs (default: empty, in memory)",
    )
    demo.add_argument(
        "--plot",
        type=Path,
        metavar="PATH",
        default=Path("speedup-demo.png"),
        help="where to save the plot of compute per question (default: %(default)s)",
    )
    demo.add_argument("--n", type=int, default=8, help="Best-of-N budget (default: 8)")
    demo.add_argument(
        "--quorum",
        type=int,
        default=3,
        help="agreeing answers that verify one (default: 3)",
    )
    demo.add_argument(
        "--max-tokens",
        type=int,
        default=256,
        help="cap on each generation (default: 256)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    bench = commands.add_parser(
        "bench-methods",
        help="run each scaling method static vs adaptive on the same problems",
        description=(
            "Run Best-of-N, Self-Refine, Tree-of-Thoughts and long chain-of-thought, "
            "each in static and adaptive mode, on the same GSM-style problems, on the "
            "embedded local model unless OPENAI_BASE_URL is set, and print per method "
            "accuracy, budget units, total tokens and the adaptive/static ratios."
        ),
    )
    bench.add_argument(
        "--json", type=Path, metavar="PATH", help="write the report as JSON"
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
        default=None,
        metavar="A,B",
        help="comma-separated methods to run (default: all four)",
    )
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    memory = commands.add_parser(
        "bench-memory",
        help="run dissimilar and similar streams with no, ungated and gated memory",
        description=(
            "Run a stream of dissimilar questions and a stream of similar ones "
            "through adaptive Best-of-N with no memory, with every retrieved episode "
            "in the prompt, and with the calibrated similarity gate, on the embedded "
            "local model unless OPENAI_BASE_URL is set, and compare their compute "
            "and accuracy."
        ),
    )
    memory.add_argument(
        "--json", type=Path, metavar="PATH", help="write the report as JSON"
    )
    memory.add_argument(
        "--n", type=int, default=8, help="Best-of-N budget (default: 8)"
    )
    memory.add_argument(
        "--quorum",
        type=int,
        default=3,
        help="agreeing answers that verify one (default: 3)",
    )
    memory.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _positive(parser: argparse.ArgumentParser, name: str, value: int) -> None:
    if value < 1:
        parser.error(f"--{name} must be >= 1, got {value}")


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    _positive(parser, "n", args.n)
    _positive(parser, "quorum", args.quorum)
    _positive(parser, "max-tokens", args.max_tokens)
    from langchain_speedup.bench.demo import (
        format_report,
        plot_report,
        run_demo,
        write_json,
    )
    from langchain_speedup.local import MiniLMEmbeddings, open_chat_model

    started = time.perf_counter()
    embeddings = MiniLMEmbeddings()
    sys.stderr.write("starting the model server...\n")
    with open_chat_model(temperature=0.7, max_tokens=args.max_tokens) as model:
        report = run_demo(
            model,
            embeddings=embeddings,
            memory_path=args.memory,
            n=args.n,
            quorum=args.quorum,
            model_name=str(model.model_name),
            progress=not args.quiet,
        )
    sys.stdout.write(format_report(report) + "\n")
    plot = plot_report(report, args.plot)
    sys.stdout.write(f"plot: {plot}\n")
    if args.json:
        sys.stdout.write(f"json: {write_json(report, args.json)}\n")
    sys.stdout.write(f"total time: {time.perf_counter() - started:.0f} s\n")
    return 0


def _methods(parser: argparse.ArgumentParser, value: str | None) -> list[str]:
    from langchain_speedup.scaling.engines import METHODS

    if value is None:
        return list(METHODS)
    chosen = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METHODS]
    if not chosen or unknown:
        shown = ", ".join(unknown) or repr(value)
        parser.error(f"--methods: unknown {shown}; choose from {', '.join(METHODS)}")
    if len(set(chosen)) != len(chosen):
        parser.error(f"--methods names a method twice: {value}")
    return chosen


def _bench_methods(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from langchain_speedup.bench.methods import (
        format_method_report,
        run_method_bench,
        write_method_json,
    )
    from langchain_speedup.bench.questions import TEMPLATES, problems

    items = problems(TEMPLATES, variants=2)
    count = len(items) if args.problems is None else args.problems
    if not 1 <= count <= len(items):
        parser.error(f"--problems must be between 1 and {len(items)}, got {count}")
    methods = _methods(parser, args.methods)
    from langchain_speedup.local import open_chat_model

    started = time.perf_counter()
    sys.stderr.write("starting the model server...\n")
    with open_chat_model(temperature=0.7, max_tokens=256) as model:
        report = run_method_bench(
            model,
            problems=items[:count],
            methods=methods,
            model_name=str(model.model_name),
            progress=not args.quiet,
        )
    sys.stdout.write(format_method_report(report) + "\n")
    if args.json:
        sys.stdout.write(f"json: {write_method_json(report, args.json)}\n")
    sys.stdout.write(f"total time: {time.perf_counter() - started:.0f} s\n")
    return 0


def _bench_memory(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    _positive(parser, "n", args.n)
    _positive(parser, "quorum", args.quorum)
    from langchain_speedup.bench.memory import (
        format_memory_report,
        run_memory_bench,
        write_memory_json,
    )
    from langchain_speedup.local import MiniLMEmbeddings, open_chat_model

    started = time.perf_counter()
    embeddings = MiniLMEmbeddings()

    def open_model() -> AbstractContextManager[ChatRunnable]:
        # A fresh server per arm replays its sampling sequence: arms that
        # send the same prompts get the same samples.
        sys.stderr.write("starting the model server...\n")
        return open_chat_model(temperature=0.7, max_tokens=256)

    report = run_memory_bench(
        open_model=open_model,
        embeddings=embeddings,
        n=args.n,
        quorum=args.quorum,
        progress=not args.quiet,
    )
    sys.stdout.write(format_memory_report(report) + "\n")
    if args.json:
        sys.stdout.write(f"json: {write_memory_json(report, args.json)}\n")
    sys.stdout.write(f"total time: {time.perf_counter() - started:.0f} s\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "bench-methods":
            return _bench_methods(args, parser)
        if args.command == "bench-memory":
            return _bench_memory(args, parser)
        return _demo(args, parser)
    except SpeedupError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
