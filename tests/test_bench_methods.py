"""The static-versus-adaptive method benchmark and its command, on fake models."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from langchain_speedup import ConfigurationError
from langchain_speedup.bench import write_report
from langchain_speedup.bench.methods import (
    BENCH_CRITIQUE_PROMPT,
    BENCH_REVISE_PROMPT,
    BENCH_STEP_PROMPT,
    DEFAULT_SETTINGS,
    MODES,
    MethodBenchReport,
    MethodSetting,
    format_method_report,
    run_method_bench,
)
from langchain_speedup.bench.questions import DEMO_SYSTEM_PROMPT, TEMPLATES, problems
from langchain_speedup.cli import main
from langchain_speedup.scaling.long_cot import LONG_COT_SYSTEM_PROMPT
from langchain_speedup.types import METHODS
from tests.fakes import FakeChatModel, HashEmbeddings, boxed, text_of

PROBLEMS = problems(TEMPLATES[:2], variants=1)
# The first problem is answered right, the second consistently wrong: both
# pass the consensus scorer, one is graded correct.
ANSWERS = {PROBLEMS[0]["question"]: PROBLEMS[0]["gold"]}
ANSWERS[PROBLEMS[1]["question"]] = PROBLEMS[1]["gold"] + 1

RECORD_KEYS = {
    "method",
    "mode",
    "index",
    "template",
    "question",
    "gold",
    "final_answer",
    "correct",
    "passed",
    "stop_reason",
    "budget_used",
    "budget_unit",
    "generations",
    "tokens",
    "scorer_tokens",
    "seconds",
}
MODE_KEYS = {
    "questions",
    "correct",
    "accuracy",
    "passed",
    "passed_correct",
    "budget_used",
    "generations",
    "tokens",
    "scorer_tokens",
    "seconds",
}
UNITS = {
    "best_of_n": "generations",
    "self_refine": "rounds",
    "tree_of_thoughts": "expanded_nodes",
    "long_cot": "reasoning_tokens",
}


def bench_solver(messages: list[BaseMessage]) -> str:
    """Approves in critiques; otherwise the fixed answer to the question asked."""
    if text_of(messages[-1]) == BENCH_CRITIQUE_PROMPT:
        return "It is correct."
    question = next(text_of(m) for m in messages if isinstance(m, HumanMessage))
    return boxed(ANSWERS[question])


class NamedFakeChatModel(FakeChatModel):
    """A fake with a `model_name`, as the command reads one."""

    model_name: str = "fake-model"


def serve_fakes(
    monkeypatch: pytest.MonkeyPatch, responder: Callable[[list[BaseMessage]], str]
) -> list[dict[str, Any]]:
    """Stand fakes in for the local model server and embeddings.

    Returns the keyword arguments of every server start, in order.
    """
    opened: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def open_chat_model(**kwargs: Any) -> Iterator[NamedFakeChatModel]:
        opened.append(kwargs)
        yield NamedFakeChatModel(responder=responder)

    monkeypatch.setattr("langchain_speedup.local.open_chat_model", open_chat_model)
    monkeypatch.setattr("langchain_speedup.local.MiniLMEmbeddings", HashEmbeddings)
    return opened


@pytest.fixture(scope="module")
def report() -> MethodBenchReport:
    model = FakeChatModel(responder=bench_solver)
    return run_method_bench(model, problems=PROBLEMS, progress=False)


class TestReport:
    def test_shape(self, report: MethodBenchReport) -> None:
        assert set(report) == {
            "model",
            "quorum",
            "problems",
            "methods",
            "records",
            "seconds",
        }
        assert report["quorum"] == 3
        assert report["problems"] == 2
        assert [s["method"] for s in report["methods"]] == list(METHODS)
        for summary in report["methods"]:
            assert set(summary) == {
                "method",
                "unit",
                "budget",
                "system_prompt",
                "options",
                "quorum",
                "static",
                "adaptive",
                "ratios",
            }
            assert summary["quorum"] == DEFAULT_SETTINGS[summary["method"]].get(
                "quorum", 3
            )
            assert summary["unit"] == UNITS[summary["method"]]
            assert summary["budget"] == DEFAULT_SETTINGS[summary["method"]]["budget"]
            assert set(summary["ratios"]) == {"budget_used", "tokens", "seconds"}
            for mode in MODES:
                assert set(summary[mode]) == MODE_KEYS
                assert summary[mode]["questions"] == 2

    def test_records_pair_the_modes_on_the_same_problems(
        self, report: MethodBenchReport
    ) -> None:
        records = report["records"]
        assert len(records) == len(METHODS) * len(PROBLEMS) * len(MODES)
        assert all(set(r) == RECORD_KEYS for r in records)
        expected = [
            (m, i, mode)
            for m in METHODS
            for i in range(len(PROBLEMS))
            for mode in MODES
        ]
        assert [(r["method"], r["index"], r["mode"]) for r in records] == expected
        for r in records:
            assert r["question"] == PROBLEMS[r["index"]]["question"]
            assert r["gold"] == PROBLEMS[r["index"]]["gold"]
            assert r["budget_unit"] == UNITS[r["method"]]

    def test_gold_answers_only_grade(self, report: MethodBenchReport) -> None:
        for r in report["records"]:
            # Only the gold answer tells the two problems apart: the scorer
            # passes both alike (static long CoT probes once, so it never
            # reaches a consensus of 3).
            once = r["method"] == "long_cot" and r["mode"] == "static"
            assert r["passed"] is not once
            assert r["correct"] is (r["index"] == 0)
            assert r["correct"] is (r["final_answer"] == str(r["gold"]))
        for summary in report["methods"]:
            for mode in MODES:
                once = summary["method"] == "long_cot" and mode == "static"
                assert summary[mode]["correct"] == 1
                assert summary[mode]["accuracy"] == 0.5
                assert summary[mode]["passed"] == (0 if once else 2)
                assert summary[mode]["passed_correct"] == (0 if once else 1)

    def test_units_and_ratios(self, report: MethodBenchReport) -> None:
        by_method = {s["method"]: s for s in report["methods"]}
        units = {
            m: (s["static"]["budget_used"], s["adaptive"]["budget_used"])
            for m, s in by_method.items()
        }
        # Best-of-N: static spends 6 a problem, adaptive stops at 3 agreeing.
        assert units["best_of_n"] == (12, 6)
        # Self-Refine: static revises 4 rounds; adaptive stops once a revision
        # keeps the answer (quorum 2), at round 2.
        assert units["self_refine"] == (8, 4)
        # Tree-of-Thoughts: three whole solutions at the root end both runs.
        assert units["tree_of_thoughts"] == (2, 2)
        # Long CoT: the fake thinks 14 tokens a segment; static uses all 3
        # segments, adaptive stops once a second probe agrees (quorum 2).
        assert units["long_cot"] == (2 * 42, 2 * 28)
        for summary in by_method.values():
            st, ad = summary["static"], summary["adaptive"]
            assert summary["ratios"]["budget_used"] == pytest.approx(
                ad["budget_used"] / st["budget_used"], abs=1e-4
            )
            assert summary["ratios"]["tokens"] == pytest.approx(
                ad["tokens"] / st["tokens"], abs=1e-4
            )
            assert st["tokens"] > 0
            assert ad["tokens"] > 0
        records = report["records"]
        for summary in by_method.values():
            for mode in MODES:
                mine = [
                    r
                    for r in records
                    if r["method"] == summary["method"] and r["mode"] == mode
                ]
                assert summary[mode]["tokens"] == sum(r["tokens"] for r in mine)
                assert summary[mode]["budget_used"] == sum(
                    r["budget_used"] for r in mine
                )

    def test_settings_reach_the_engines(self, report: MethodBenchReport) -> None:
        by_method = {s["method"]: s for s in report["methods"]}
        assert by_method["best_of_n"]["system_prompt"] == DEMO_SYSTEM_PROMPT
        assert by_method["self_refine"]["system_prompt"] == DEMO_SYSTEM_PROMPT
        assert by_method["long_cot"]["system_prompt"] == LONG_COT_SYSTEM_PROMPT
        assert by_method["tree_of_thoughts"]["system_prompt"] == BENCH_STEP_PROMPT
        assert by_method["tree_of_thoughts"]["options"] == {
            "breadth": 3,
            "max_depth": 3,
        }


class TestTableAndJson:
    def test_table(self, report: MethodBenchReport) -> None:
        table = format_method_report(report)
        lines = table.splitlines()
        assert "accuracy" in lines[0]
        assert "budget units" in lines[0]
        assert "total tokens" in lines[0]
        assert "adaptive/static" in lines[0]
        rows = {line.split()[0]: line.split() for line in lines[2:6]}
        assert list(rows) == list(METHODS)
        for method, cells in rows.items():
            summary = next(s for s in report["methods"] if s["method"] == method)
            assert cells[1] == UNITS[method]
            assert cells[2:4] == ["1/2", "1/2"]
            assert [int(c) for c in cells[4:8]] == [
                summary["static"]["budget_used"],
                summary["adaptive"]["budget_used"],
                summary["static"]["tokens"],
                summary["adaptive"]["tokens"],
            ]
            assert cells[8] == f"{summary['ratios']['budget_used']:.2f}"
            assert cells[9] == f"{summary['ratios']['tokens']:.2f}"
        assert rows["best_of_n"][8] == "0.50"
        assert "quorum=3" in table
        assert (
            "tree_of_thoughts 6 expanded_nodes (breadth=3, max_depth=3, quorum=3)"
            in table
        )
        assert "self_refine 4 rounds (quorum=2)" in table
        assert "critique_prompt" not in table

    def test_json_round_trips(self, report: MethodBenchReport, tmp_path: Path) -> None:
        path = write_report(report, tmp_path / "out" / "bench.json")
        loaded = json.loads(path.read_text())
        assert set(loaded) == set(report)
        assert loaded["records"] == report["records"]
        for got, summary in zip(loaded["methods"], report["methods"], strict=True):
            assert {k: v for k, v in got.items() if k != "ratios"} == {
                k: v for k, v in summary.items() if k != "ratios"
            }
            for key, ratio in summary["ratios"].items():
                # The fake takes no measurable time: a NaN ratio, written as null.
                assert got["ratios"][key] == (None if math.isnan(ratio) else ratio)
        assert [s["method"] for s in loaded["methods"]] == list(METHODS)
        assert len(loaded["records"]) == len(report["records"])

    def test_nan_ratios_become_null(
        self, report: MethodBenchReport, tmp_path: Path
    ) -> None:
        nan = dict.fromkeys(("budget_used", "tokens", "seconds"), math.nan)
        summary = {**report["methods"][0], "ratios": nan}
        broken: Any = {**report, "methods": [summary]}
        text = write_report(broken, tmp_path / "nan.json").read_text()

        def refuse(constant: str) -> None:
            raise AssertionError(f"non-standard JSON constant {constant}")

        loaded = json.loads(text, parse_constant=refuse)
        assert loaded["methods"][0]["ratios"]["budget_used"] is None
        assert "n/a" in format_method_report(broken)


class TestRunner:
    def test_methods_subset_in_order_and_callback(self) -> None:
        model = FakeChatModel(responder=bench_solver)
        seen: list[tuple[str, str]] = []
        out = run_method_bench(
            model,
            problems=PROBLEMS[:1],
            methods=["long_cot", "best_of_n"],
            progress=False,
            model_name="fake",
            on_record=lambda r: seen.append((r["method"], r["mode"])),
        )
        assert [s["method"] for s in out["methods"]] == ["long_cot", "best_of_n"]
        assert seen == [
            ("long_cot", "static"),
            ("long_cot", "adaptive"),
            ("best_of_n", "static"),
            ("best_of_n", "adaptive"),
        ]
        assert out["model"] == "fake"
        assert "fake" in format_method_report(out)

    def test_settings_override(self) -> None:
        model = FakeChatModel(responder=bench_solver)
        out = run_method_bench(
            model,
            problems=PROBLEMS[:1],
            methods=["best_of_n"],
            settings={
                "best_of_n": MethodSetting(budget=4, system_prompt=None, options={})
            },
            progress=False,
        )
        [summary] = out["methods"]
        assert summary["budget"] == 4
        assert summary["static"]["budget_used"] == 4
        assert summary["adaptive"]["budget_used"] == 3
        assert summary["system_prompt"] != DEMO_SYSTEM_PROMPT

    def test_the_settings_prompts_reach_the_model(self) -> None:
        model = FakeChatModel(responder=bench_solver)
        run_method_bench(
            model,
            problems=PROBLEMS[:1],
            methods=["self_refine", "tree_of_thoughts", "long_cot"],
            progress=False,
        )
        systems = {text_of(call[0]) for call in model.calls}
        assert systems == {
            DEMO_SYSTEM_PROMPT,
            BENCH_STEP_PROMPT,
            LONG_COT_SYSTEM_PROMPT,
        }
        asked = {text_of(call[-1]) for call in model.calls}
        assert {BENCH_CRITIQUE_PROMPT, BENCH_REVISE_PROMPT} <= asked

    def test_static_mode_spends_the_whole_budget(self) -> None:
        model = FakeChatModel(responder=bench_solver)
        out = run_method_bench(
            model, problems=PROBLEMS[:1], methods=["best_of_n"], progress=False
        )
        static = [r for r in out["records"] if r["mode"] == "static"]
        assert [r["stop_reason"] for r in static] == ["budget"]
        adaptive = [r for r in out["records"] if r["mode"] == "adaptive"]
        assert [r["stop_reason"] for r in adaptive] == ["threshold"]

    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({"problems": []}, id="no-problems"),
            pytest.param({"methods": []}, id="no-methods"),
            pytest.param({"methods": "best_of_n"}, id="methods-a-string"),
            pytest.param({"methods": ["beam_search"]}, id="unknown-method"),
            pytest.param({"methods": ["long_cot", "long_cot"]}, id="twice"),
            pytest.param(
                {"settings": {"mcts": DEFAULT_SETTINGS["best_of_n"]}},
                id="unknown-setting",
            ),
            pytest.param(
                {
                    "methods": ["tree_of_thoughts"],
                    "settings": {
                        "tree_of_thoughts": MethodSetting(
                            budget=3, system_prompt=None, options={"breadth": 0}
                        )
                    },
                },
                id="bad-option",
            ),
            pytest.param(
                {
                    "methods": ["best_of_n"],
                    "settings": {
                        "best_of_n": MethodSetting(
                            budget=0, system_prompt=None, options={}
                        )
                    },
                },
                id="bad-budget",
            ),
            pytest.param({"quorum": 0}, id="quorum=0"),
            pytest.param({"quorom": 2}, id="unknown-option"),
            pytest.param({"on_record": "print"}, id="ill-typed-option"),
        ],
    )
    def test_bad_arguments_fail_before_any_call(self, kwargs: dict[str, Any]) -> None:
        model = FakeChatModel(responder=bench_solver)
        options: dict[str, Any] = {"problems": PROBLEMS, "progress": False, **kwargs}
        with pytest.raises(ConfigurationError):
            run_method_bench(model, **options)
        assert model.calls == []


class TestCommand:
    @pytest.fixture
    def fake_server(self, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
        return serve_fakes(monkeypatch, bench_solver)

    def test_runs_and_writes_json(
        self,
        fake_server: list[dict[str, Any]],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The command's problems are the benchmark's; answer them all right.
        for item in problems(TEMPLATES, variants=2):
            monkeypatch.setitem(ANSWERS, item["question"], item["gold"])
        target = tmp_path / "bench.json"
        code = main(
            [
                "bench-methods",
                "--problems",
                "3",
                "--methods",
                "best_of_n, long_cot",
                "--quiet",
                "--json",
                str(target),
            ]
        )
        assert code == 0
        assert fake_server == [{"temperature": 0.7, "max_tokens": 256}]
        out = capsys.readouterr().out
        assert "best_of_n" in out
        assert "long_cot" in out
        assert "self_refine" not in out
        assert f"json: {target}" in out
        loaded = json.loads(target.read_text())
        assert loaded["problems"] == 3
        assert loaded["model"] == "fake-model"
        assert [s["method"] for s in loaded["methods"]] == ["best_of_n", "long_cot"]
        assert all(s["static"]["correct"] == 3 for s in loaded["methods"])

    @pytest.mark.parametrize(
        "argv",
        [
            ["bench-methods", "--problems", "0"],
            ["bench-methods", "--problems", "25"],
            ["bench-methods", "--methods", "best_of_n,mcts"],
            ["bench-methods", "--methods", ","],
            ["bench-methods", "--methods", "long_cot,long_cot"],
            ["bench-memory", "--n", "0"],
            ["bench-memory", "--quorum", "0"],
            ["demo", "--n", "0"],
            ["demo", "--quorum", "-1"],
            ["demo", "--max-tokens", "0"],
        ],
    )
    def test_bad_arguments_exit_before_starting_a_server(
        self, fake_server: list[dict[str, Any]], argv: list[str]
    ) -> None:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert fake_server == []
