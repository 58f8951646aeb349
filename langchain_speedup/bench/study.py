"""The study: every arm on the same streams, for each method, resumable.

Arms (each starts every stream level with empty memory):

- `static`: the method in static mode, no memory (the paper's baseline).
- `adaptive`: the method stopping at the threshold, no memory (as DSPy's
  `BestOfN`/`Refine` do).
- `cache`: a semantic answer cache in front of the adaptive method: a question
  whose embedding is at least `cache_threshold` similar to a cached one gets
  that answer, free (as GPTCache does).
- `router`: `BudgetRouter` over the adaptive method, memory as exemplars
  (in-context, the default mechanism).
- `router-reflect`: `BudgetRouter` with `ReflectUpdateMemory`, the lessons
  rewritten after every solved question (Reflect-Update, the paper's best
  reflection); the rewrite's tokens count.
- `router-sft`: parametric memory needs a fine-tuning service; listed in the
  report as not run.
- `adaptive-program`: `adaptive` with `ProgramVerifiedScorer` (an answer
  passes when an executed program and a prose answer agree) instead of
  consensus, and Best-of-N alternating prose and program candidates
  (`methods.program_verified`); not in the default grid.
- `router-procedure`: `BudgetRouter` over `adaptive-program`'s method with
  `ProcedureMemory`: verified programs kept as procedures and run on new
  questions as evidence; not in the default grid.

Every answered question is one JSON line in `results.jsonl`, keyed by
`(arm, method, family/level, position)`; a rerun reads the file and computes
only what is missing. Router memory lives on disk per cell, so a resumed cell
continues with what it had learnt; the cache is rebuilt from the records.
"""

from __future__ import annotations

import json
import math
import os
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, NotRequired, Protocol, cast

from langchain_core.embeddings import Embeddings
from typing_extensions import TypedDict

from langchain_speedup.budget import Ledger
from langchain_speedup.errors import ConfigurationError
from langchain_speedup.scaling import ScalingEngine
from langchain_speedup.scaling.engines import check_method, create_engine
from langchain_speedup.scoring import (
    ConsensusScorer,
    FunctionScorer,
    Scorer,
)
from langchain_speedup.types import METHODS, ChatRunnable, Method, Mode, Usage

from .code_runner import extract_program, passes_examples, passes_tests
from .methods import DEFAULT_SETTINGS, MethodSetting, program_verified
from .streams import Family, StreamConfig, StreamItem, build_streams

__all__ = [
    "ARMS",
    "NOT_RUN_ARMS",
    "PRESETS",
    "Arm",
    "SemanticCache",
    "StudyConfig",
    "StudyRecord",
    "grade",
    "load_config",
    "load_records",
    "record_key",
    "run_study",
]

Arm = Literal[
    "static",
    "adaptive",
    "cache",
    "router",
    "router-reflect",
    "router-sft",
    "adaptive-program",
    "router-procedure",
]
ARMS: tuple[Arm, ...] = ("static", "adaptive", "cache", "router", "router-reflect")
PROGRAM_ARMS: tuple[Arm, ...] = ("adaptive-program", "router-procedure")
"""The arms that verify math by execution (`methods.program_verified`)."""
NOT_RUN_ARMS: dict[str, str] = {
    "router-sft": "SFT export needs a fine-tuning service (a `FineTuner`); none "
    "serves the local model, so parametric memory was not run"
}
_ALL_ARMS: tuple[str, ...] = (*ARMS, *NOT_RUN_ARMS, *PROGRAM_ARMS)
_CODE_SYSTEM_PROMPT = (
    "You write Python. Complete the function the user gives: reply with the "
    "whole function in one ```python block, nothing else."
)


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """What the study runs.

    Attributes:
        streams: The streams' data and sizes.
        methods: The scaling methods.
        arms: The arms (see the module's docstring).
        settings: Budget and options per method (`bench.methods.DEFAULT_SETTINGS`).
        quorum: Agreeing answers that verify one (math).
        cache_threshold: The cache peer's lowest cosine similarity for a hit.
        max_tokens: The cap on each generation.
        model: A named local model (`local.MODELS`); ignored when
            `OPENAI_BASE_URL` points to a server.
    """

    streams: StreamConfig = field(default_factory=StreamConfig)
    methods: tuple[Method, ...] = METHODS
    arms: tuple[Arm, ...] = ARMS
    settings: Mapping[Method, MethodSetting] = field(
        default_factory=lambda: dict(DEFAULT_SETTINGS)
    )
    quorum: int = 3
    cache_threshold: float = 0.8
    max_tokens: int = 256
    model: str = "qwen2.5-coder-0.5b-instruct"

    def __post_init__(self) -> None:
        for method in self.methods:
            check_method(method)
        if not self.methods or len(set(self.methods)) != len(self.methods):
            msg = f"`methods` must name distinct methods, got {self.methods!r}"
            raise ConfigurationError(msg)
        bad = [a for a in self.arms if a not in _ALL_ARMS]
        if bad or not self.arms or len(set(self.arms)) != len(self.arms):
            msg = f"`arms` must be distinct names among {_ALL_ARMS}, got {self.arms!r}"
            raise ConfigurationError(msg)
        if not -1.0 <= self.cache_threshold <= 1.0:
            msg = f"`cache_threshold` must be in [-1, 1], got {self.cache_threshold!r}"
            raise ConfigurationError(msg)
        for name in ("quorum", "max_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                msg = f"`{name}` must be a positive integer, got {value!r}"
                raise ConfigurationError(msg)


PRESETS: dict[str, StudyConfig] = {
    # Proves the pipeline end to end in a few minutes.
    "smoke": StudyConfig(
        streams=StreamConfig(templates=(0, 4), length=2, levels=("S1", "S3")),
        methods=("best_of_n",),
        settings={
            "best_of_n": {**DEFAULT_SETTINGS["best_of_n"], "budget": 2, "quorum": 2}
        },
    ),
    # Sized to finish within 60 minutes on 2 cores with the 0.5B model: 120
    # answers, at most 726 model calls at about 4 s each on GSM-Symbolic.
    "default": StudyConfig(
        streams=StreamConfig(
            templates=(0, 4, 8, 12), length=3, levels=("S1", "S2", "S3", "S4")
        ),
        methods=("best_of_n", "self_refine"),
    ),
    # `bench-methods` on real data: each method static against adaptive on
    # distinct problems (S4 streams), no memory.
    "methods": StudyConfig(
        streams=StreamConfig(
            templates=tuple(range(0, 100, 4)), length=6, levels=("S4",)
        ),
        arms=("static", "adaptive"),
    ),
    # Procedure memory on new-number variants (S3, one stream per template),
    # against adaptive stopping with the same program-verified scorer and
    # with consensus, no memory.
    "procedures": StudyConfig(
        streams=StreamConfig(
            templates=tuple(range(0, 32, 4)), length=4, streams=8, levels=("S3",)
        ),
        methods=("best_of_n",),
        arms=("adaptive", "adaptive-program", "router-procedure"),
        model="qwen2.5-coder-1.5b-instruct",
    ),
    # The default streams verified by execution: the router with procedure
    # memory against static, adaptive-program and the cache, 1.5B model.
    "programs": StudyConfig(
        streams=StreamConfig(
            templates=(0, 4, 8, 12),
            length=3,
            streams=3,
            levels=("S1", "S2", "S3", "S4"),
        ),
        methods=("best_of_n",),
        arms=("static", "adaptive-program", "cache", "router-procedure"),
        model="qwen2.5-coder-1.5b-instruct",
    ),
    # The full grid: all methods, more templates and streams, code included.
    "large": StudyConfig(
        streams=StreamConfig(
            templates=tuple(range(0, 100, 4)),
            length=4,
            streams=4,
            code_levels=("S1", "S2", "S4"),
        ),
    ),
}
"""Named configurations of `langchain-speedup bench --preset`."""


def load_config(path: str | Path, base: StudyConfig | None = None) -> StudyConfig:
    """Read a study config from TOML: top-level study keys and a `[streams]` table.

    Example:
        ```toml
        methods = ["best_of_n", "long_cot"]
        cache_threshold = 0.85
        [streams]
        templates = [0, 4, 8, 12, 16]
        length = 4
        [settings.best_of_n]
        budget = 8
        ```

    Raises:
        ConfigurationError: The file is unreadable or holds an unknown key.
    """
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        msg = f"cannot read the study config {str(path)!r}: {e}"
        raise ConfigurationError(msg) from e
    base = base or StudyConfig()
    study_keys = {f.name for f in fields(StudyConfig)}
    stream_keys = {f.name for f in fields(StreamConfig)}
    unknown = (set(raw) - study_keys) | (set(raw.get("streams", {})) - stream_keys)
    if unknown:
        msg = f"unknown study config keys: {sorted(unknown)}"
        raise ConfigurationError(msg)
    stream_changes: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in raw.pop("streams", {}).items()
    }
    streams = replace(base.streams, **stream_changes)
    settings = dict(base.settings)
    for method, values in raw.pop("settings", {}).items():
        settings[check_method(method)] = {
            **DEFAULT_SETTINGS[check_method(method)],
            **values,
        }
    rest: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()
    }
    return replace(base, streams=streams, settings=settings, **rest)


class StudyRecord(TypedDict):
    """One question answered by one arm with one method."""

    arm: str
    method: str
    family: str
    level: str
    position: int
    stream: int
    template: str
    variant: str
    seed: int | None
    draw: int
    question: str
    gold: str
    """For grading only; for code, the entry point."""
    answer: str
    """The selected reply's text."""
    final_answer: str | None
    correct: bool
    passed: bool
    """Whether the method verified the answer; for a reused episode, whether
    its stored score passes; for a cache hit, always (the cache vouches for
    it), so the cache's scorer precision is its hits' precision too."""
    decision: str
    """The router's decision, `hit`/`miss` for the cache, the mode otherwise."""
    reason: NotRequired[str]
    """Why the router decided so (router arms)."""
    similarity: float | None
    budget: int
    budget_used: int
    """In the method's unit; 0 for a reused or cached answer."""
    budget_unit: str
    generations: int
    calls: NotRequired[int]
    """Every model call: solver, scorer, router, reflection and memory."""
    tokens: int
    """Every model call's tokens: solver, scorer, router and reflection."""
    seconds: float
    """Wall time of the whole question, retrieval and reflection included."""


def record_key(arm: str, method: str, family: str, level: str, position: int) -> str:
    """The resume key of one question's result."""
    return f"{arm}|{method}|{family}/{level}|{position}"


def _key_of(record: Mapping[str, Any]) -> str:
    return record_key(
        record["arm"],
        record["method"],
        record["family"],
        record["level"],
        record["position"],
    )


def load_records(path: str | Path) -> list[StudyRecord]:
    """The records of a results file; a torn last line (an interrupted write) is dropped."""
    target = Path(path)
    if not target.exists():
        return []
    records: list[StudyRecord] = []
    for line in target.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


_NUMERIC = str.maketrans("", "", ",$ ")


def grade(item: StreamItem, answer_text: str, final_answer: str | None) -> bool:
    """Whether an answer is right, by the item's gold (used for grading only).

    Math: the final answer equals the gold number. Code: the reply's program
    passes the problem's unit tests, run by `code_runner.passes_tests`.
    """
    if item["family"] == "code":
        program = extract_program(answer_text, item["question"], item["gold"])
        return passes_tests(program, item.get("tests", ""), item["gold"])
    if final_answer is None:
        return False
    try:
        return math.isclose(
            float(final_answer.translate(_NUMERIC)), float(item["gold"]), abs_tol=1e-6
        )
    except ValueError:
        return final_answer.strip() == item["gold"]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class SemanticCache:
    """The semantic answer cache peer: the nearest cached answer above a threshold.

    Every answer that states a final answer is cached under its question's
    embedding, verified or not, as GPTCache caches every model reply.

    Args:
        embeddings: Embeds questions.
        threshold: The lowest cosine similarity that returns a cached answer.
    """

    def __init__(self, embeddings: Embeddings, *, threshold: float = 0.8) -> None:
        self.embeddings = embeddings
        self.threshold = threshold
        self._entries: list[tuple[list[float], str, str | None]] = []

    def lookup(
        self, question: str
    ) -> tuple[tuple[str, str | None] | None, float | None, list[float]]:
        """Look a question up.

        Returns:
            The cached `(answer, final_answer)` if one is similar enough, the
            best similarity found, and the question's vector.
        """
        vector = self.embeddings.embed_query(question)
        best, best_sim = None, None
        for cached, answer, final in self._entries:
            similarity = _cosine(vector, cached)
            if best_sim is None or similarity > best_sim:
                best, best_sim = (answer, final), similarity
        hit = best if best_sim is not None and best_sim >= self.threshold else None
        return hit, best_sim, vector

    def add(self, vector: list[float], answer: str, final_answer: str | None) -> None:
        """Cache an answer under a question's vector (answers stating nothing are skipped)."""
        if final_answer is not None:
            self._entries.append((vector, answer, final_answer))


class _Solver(Protocol):
    def answer(self, item: StreamItem) -> StudyRecord: ...

    def replay(self, record: StudyRecord) -> None: ...


def _scorer(family: Family, setting: MethodSetting, quorum: int) -> Scorer:
    if family == "code":
        # The docstring's own examples: part of the question, not the hidden tests.
        return FunctionScorer(passes_examples)
    return ConsensusScorer(quorum=setting.get("quorum", quorum))


def _engine(
    model: ChatRunnable,
    method: Method,
    family: Family,
    mode: Mode,
    config: StudyConfig,
    *,
    programs: bool = False,
) -> ScalingEngine:
    setting = config.settings.get(method, DEFAULT_SETTINGS[method])
    options = dict(setting["options"])
    prompt = _CODE_SYSTEM_PROMPT if family == "code" else setting["system_prompt"]
    if prompt is not None:
        options["system_prompt"] = prompt
    if programs and family == "math":
        options |= program_verified(model, method, prompt)
    else:
        options["scorer"] = _scorer(family, setting, config.quorum)
    return create_engine(model, method, budget=setting["budget"], mode=mode, **options)


def _calls(usage: Usage) -> int:
    return usage["generations"] + usage["scorer_calls"] + usage["other_calls"]


def _record(arm: str, method: str, item: StreamItem, **found: Any) -> StudyRecord:
    return cast(
        StudyRecord,
        {
            "arm": arm,
            "method": method,
            "family": item["family"],
            "level": item["level"],
            "position": item["position"],
            "stream": item["stream"],
            "template": item["template"],
            "variant": item["variant"],
            "seed": item["seed"],
            "draw": item["draw"],
            "question": item["question"],
            "gold": item["gold"],
            **found,
        },
    )


class _EngineSolver:
    def __init__(self, arm: str, method: Method, engine: ScalingEngine) -> None:
        self.arm, self.method, self.engine = arm, method, engine

    def replay(self, record: StudyRecord) -> None:
        pass

    def answer(self, item: StreamItem) -> StudyRecord:
        started = time.perf_counter()
        result = self.engine.run(item["question"])
        return _record(
            self.arm,
            self.method,
            item,
            answer=result["answer"],
            final_answer=result["final_answer"],
            correct=grade(item, result["answer"], result["final_answer"]),
            passed=result["passed"],
            decision=result["mode"],
            similarity=None,
            budget=self.engine.budget,
            budget_used=result["budget_used"],
            budget_unit=result["budget_unit"],
            generations=result["usage"]["generations"],
            calls=_calls(result["usage"]),
            tokens=result["usage"]["total_tokens"],
            seconds=round(time.perf_counter() - started, 3),
        )


class _CacheSolver(_EngineSolver):
    def __init__(
        self, method: Method, engine: ScalingEngine, cache: SemanticCache
    ) -> None:
        super().__init__("cache", method, engine)
        self.cache = cache

    def replay(self, record: StudyRecord) -> None:
        if record["decision"] == "miss":
            vector = self.cache.embeddings.embed_query(record["question"])
            self.cache.add(vector, record["answer"], record["final_answer"])

    def answer(self, item: StreamItem) -> StudyRecord:
        started = time.perf_counter()
        hit, similarity, vector = self.cache.lookup(item["question"])
        if hit is None:
            record = super().answer(item)
            self.cache.add(vector, record["answer"], record["final_answer"])
            record["decision"], record["similarity"] = "miss", similarity
        else:
            answer, final = hit
            record = _record(
                self.arm,
                self.method,
                item,
                answer=answer,
                final_answer=final,
                correct=grade(item, answer, final),
                passed=True,
                decision="hit",
                similarity=similarity,
                budget=self.engine.budget,
                budget_used=0,
                budget_unit=self.engine.unit,
                generations=0,
                calls=0,
                tokens=0,
                seconds=0.0,
            )
        record["seconds"] = round(time.perf_counter() - started, 3)
        return record


class _RouterSolver:
    def __init__(
        self,
        arm: str,
        method: Method,
        router: Any,
        reflection_model: ChatRunnable | None,
    ) -> None:
        self.arm, self.method, self.router = arm, method, router
        self.reflection_model = reflection_model

    def replay(self, record: StudyRecord) -> None:
        pass  # the router's memory is on disk

    def answer(self, item: StreamItem) -> StudyRecord:
        from langchain_speedup.memory import reflect_update

        started = time.perf_counter()
        found = self.router.solve(item["question"])
        method, route, usage = found["result"], found["route"], found["usage"]
        engine = self.router.engine
        passed = (
            method["passed"]
            if method
            else found["score"] is not None and found["score"] >= engine.threshold
        )
        tokens, reflection_calls = usage["total_tokens"], 0
        if self.reflection_model is not None and method is not None:
            ledger = Ledger()
            reflect_update(
                self.reflection_model,
                {
                    "question": item["question"],
                    "answer": found["answer"],
                    "verified": passed,
                },
                store=self.router.store,
                namespace=self.router.namespace,
                ledger=ledger,
            )
            tokens += ledger.usage()["total_tokens"]
            reflection_calls = _calls(ledger.usage())
        return _record(
            self.arm,
            self.method,
            item,
            answer=found["answer"],
            final_answer=found["final_answer"],
            correct=grade(item, found["answer"], found["final_answer"]),
            passed=passed,
            decision=route["decision"],
            reason=route["reason"],
            similarity=route["similarity"],
            budget=engine.budget,
            budget_used=method["budget_used"] if method else 0,
            budget_unit=engine.unit,
            generations=usage["generations"],
            calls=_calls(usage) + reflection_calls,
            tokens=tokens,
            seconds=round(time.perf_counter() - started, 3),
        )


@contextmanager
def _store_for(arm: str, path: Path, embeddings: Embeddings) -> Iterator[Any]:
    """The memory store of a router arm's cell: the one place stores are built.

    On disk under `path`, so an interrupted cell resumes with its memory.
    """
    from langchain_speedup.memory import QdrantStore, memory_index

    with QdrantStore(path=path, index=memory_index(embeddings)) as store:
        yield store


@contextmanager
def _solver_for(
    arm: Arm,
    method: Method,
    family: Family,
    model: ChatRunnable,
    embeddings: Embeddings,
    config: StudyConfig,
    cell_dir: Path,
) -> Iterator[_Solver]:
    mode: Mode = "static" if arm == "static" else "adaptive"
    engine = _engine(model, method, family, mode, config, programs=arm in PROGRAM_ARMS)
    if arm in ("static", "adaptive", "adaptive-program"):
        yield _EngineSolver(arm, method, engine)
        return
    if arm == "cache":
        cache = SemanticCache(embeddings, threshold=config.cache_threshold)
        yield _CacheSolver(method, engine, cache)
        return
    from langchain_speedup.memory import ProcedureMemory, ReflectUpdateMemory
    from langchain_speedup.router import BudgetRouter

    reflect = arm == "router-reflect"
    with _store_for(arm, cell_dir / "memory", embeddings) as store:
        router = BudgetRouter(
            engine,
            store=store,
            namespace="study",
            memory=ReflectUpdateMemory() if reflect else None,
            procedures=ProcedureMemory() if arm == "router-procedure" else None,
        )
        yield _RouterSolver(arm, method, router, model if reflect else None)


def run_study(
    model: ChatRunnable,
    *,
    embeddings: Embeddings,
    config: StudyConfig,
    out_dir: str | Path,
    progress: bool = True,
    on_record: Callable[[StudyRecord], None] | None = None,
) -> list[StudyRecord]:
    """Run every arm and method on the config's streams; resume what was started.

    Results go to `out_dir/results.jsonl` as they are computed, one line per
    question; questions already there are not asked again.

    Args:
        model: The chat model (sampling temperature above 0).
        embeddings: Embeds questions for the routers and the cache.
        config: What to run.
        out_dir: Where results and the routers' memory are kept.
        progress: Show a progress bar on stderr.
        on_record: Called with each new record.

    Returns:
        Every record of the run, old and new, in the config's order.

    Raises:
        ConfigurationError: The config cannot supply its streams.
        ModelError: A model call failed (what was finished is kept).
    """
    from tqdm import tqdm

    streams = build_streams(config.streams)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    results = root / "results.jsonl"
    done = {_key_of(r): r for r in load_records(results)}
    arms = [a for a in config.arms if a not in NOT_RUN_ARMS]
    plan = [
        (method, family, level, arm)
        for method in config.methods
        for (family, level) in streams
        for arm in arms
    ]
    total = sum(len(streams[(f, lv)]) for _, f, lv, _ in plan)
    ordered: list[StudyRecord] = []
    with (
        tqdm(total=total, disable=not progress, unit="q", desc="bench") as bar,
        results.open("a", encoding="utf-8") as out,
    ):
        for method, family, level, arm in plan:
            items = streams[(family, level)]
            keys = [
                record_key(arm, method, family, level, i["position"]) for i in items
            ]
            if all(k in done for k in keys):
                ordered += [done[k] for k in keys]
                bar.update(len(items))
                continue
            bar.set_postfix_str(f"{method} {family} {level} {arm}")
            cell_dir = root / "cells" / f"{method}-{family}-{level}-{arm}"
            with _solver_for(
                arm, method, family, model, embeddings, config, cell_dir
            ) as solver:
                for item, key in zip(items, keys, strict=True):
                    if key in done:
                        solver.replay(done[key])
                        ordered.append(done[key])
                    else:
                        record = solver.answer(item)
                        out.write(json.dumps(record) + "\n")
                        out.flush()
                        os.fsync(out.fileno())
                        done[key] = record
                        ordered.append(record)
                        if on_record:
                            on_record(record)
                    bar.update()
    return ordered
