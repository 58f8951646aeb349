"""The demo (static vs adaptive Best-of-N vs the speedup router) and its command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage

from langchain_speedup import ConfigurationError, default_store
from langchain_speedup.bench.demo import (
    PHASES,
    DemoReport,
    format_report,
    run_demo,
)
from langchain_speedup.bench.questions import TEMPLATES, build_stream
from langchain_speedup.cli import main
from tests.fakes import FakeChatModel, HashEmbeddings, boxed, last_human
from tests.test_bench_methods import serve_fakes

STREAM = build_stream(TEMPLATES[:3])
WRONG = TEMPLATES[1].key
# Every sample agrees; the `garden` problems are answered wrong every time,
# so they pass the consensus scorer yet are graded wrong.
ANSWERS = {
    item["question"]: item["gold"] + (item["template"] == WRONG)
    for item in [*STREAM, *build_stream(TEMPLATES[:4])]
}


def solver(messages: list[BaseMessage]) -> str:
    return boxed(ANSWERS[last_human(messages)])


@pytest.fixture(scope="module")
def run() -> tuple[DemoReport, FakeChatModel]:
    model = FakeChatModel(responder=solver)
    report = run_demo(
        model, embeddings=HashEmbeddings(), stream=STREAM, n=4, progress=False
    )
    return report, model


def phase(report: DemoReport, name: str) -> list[dict]:
    return [dict(r) for r in report["records"] if r["phase"] == name]


def test_each_phase_answers_the_stream_in_order(run) -> None:
    report, _ = run
    assert [r["phase"] for r in report["records"]] == [
        p for p in PHASES for _ in STREAM
    ]
    for name in PHASES:
        records = phase(report, name)
        assert [r["question"] for r in records] == [i["question"] for i in STREAM]
        assert [r["correct"] for r in records] == [
            i["template"] != WRONG for i in STREAM
        ]
        assert all(r["passed"] for r in records)


def test_static_spends_the_budget_and_adaptive_stops_at_the_quorum(run) -> None:
    report, _ = run
    assert [r["generations"] for r in phase(report, "baseline")] == [4] * len(STREAM)
    assert {r["decision"] for r in phase(report, "baseline")} == {"static"}
    assert [r["generations"] for r in phase(report, "adaptive")] == [3] * len(STREAM)
    assert {r["decision"] for r in phase(report, "adaptive")} == {"adaptive"}


def test_the_router_reuses_repeats_and_uses_memory_for_relatives(run) -> None:
    report, model = run
    records = phase(report, "speedup")
    assert [r["kind"] for r in records] == [item["kind"] for item in STREAM]
    assert [r["decision"] for r in records] == [
        *("scratch", "scratch", "reuse", "scratch", "reuse", "scratch"),
        *("exemplars", "reuse", "exemplars", "exemplars", "exemplars", "exemplars"),
    ]
    # Exemplars leave the budget whole. A free paraphrase is not trusted as the
    # same problem, so its stored answer is no precedent vote: it needs a
    # quorum of its own samples too.
    assert [r["generations"] for r in records] == [3, 3, 0, 3, 0, 3, 3, 0, 3, 3, 3, 3]
    assert all(r["tokens"] == 0 for r in records if r["decision"] == "reuse")
    # The consensus scorer makes no call: every call is a generation.
    assert len(model.calls) == sum(r["generations"] for r in report["records"])


def test_summaries_and_ratios(run) -> None:
    report, _ = run
    for name in PHASES:
        records, summary = phase(report, name), report[name]
        assert summary["questions"] == len(STREAM)
        assert summary["correct"] == 8
        assert summary["accuracy"] == round(8 / 12, 4)
        assert summary["passed"] == 12
        assert summary["passed_correct"] == 8
        assert summary["generations"] == sum(r["generations"] for r in records)
        assert summary["tokens"] == sum(r["tokens"] for r in records)
    assert [report[p]["generations"] for p in PHASES] == [48, 36, 27]
    base = report["baseline"]
    for name in ("adaptive", "speedup"):
        for key in ("generations", "tokens"):
            assert report["ratios"][f"{name}_{key}"] == round(
                report[name][key] / base[key], 4
            )


def test_the_table(run) -> None:
    report, _ = run
    lines = format_report(report).splitlines()
    rows = [" ".join(line.split()) for line in lines[2 : 2 + len(STREAM)]]
    assert rows[1] == "2 new garden 43 | 44 n 4 360 | 44 n 3 270 | 44 n S 3 270"
    assert rows[2] == "3 repeat change 8 | 8 y 4 352 | 8 y 3 264 | 8 y R 0 0"
    tags = "".join(row.split()[-3] for row in rows)
    assert tags == "SSRSRSMRMMMM"
    summary = {line.split()[0]: line.split()[1:] for line in lines[-7:-4]}
    assert summary["speedup"][:4] == [
        "8/12",
        "27",
        str(report["speedup"]["tokens"]),
        "8/12",
    ]
    assert lines[-3] == (
        "speedup / baseline: generations 0.56, "
        f"tokens {report['ratios']['speedup_tokens']:.2f}"
    )


@pytest.mark.parametrize(
    "options",
    [{"n": 0}, {"quorum": 0}, {"quorom": 2}, {"progress": "no"}],
    ids=["n=0", "quorum=0", "unknown", "ill-typed"],
)
def test_bad_options_fail_before_any_call_or_store(
    options: dict[str, Any], tmp_path: Path
) -> None:
    model = FakeChatModel(responder=solver)
    with pytest.raises(ConfigurationError):
        run_demo(
            model,
            embeddings=HashEmbeddings(),
            memory_path=tmp_path / "memory",
            stream=STREAM,
            **options,
        )
    assert model.calls == []
    assert not (tmp_path / "memory").exists()


def _persistent_default_store(path: Path) -> bool:
    try:
        default_store(HashEmbeddings(), path=path)
    except ConfigurationError:
        return False
    return True


def test_the_command_plots_and_writes_json(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve_fakes(monkeypatch, solver)
    plot, target = tmp_path / "demo.png", tmp_path / "demo.json"
    argv = ["demo", "--quiet", "--n", "4", "--plot", str(plot), "--json", str(target)]
    assert main(argv) == 0
    assert plot.stat().st_size > 0
    report = json.loads(target.read_text())
    assert (report["memory"], report["memory_episodes_at_start"]) == (None, 0)
    assert "total time:" in capsys.readouterr().out


def test_the_command_plots_writes_json_and_keeps_memory(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not _persistent_default_store(tmp_path / "probe"):
        pytest.skip("the default store keeps memory in the process only")
    opened = serve_fakes(monkeypatch, solver)
    argv = ["demo", "--quiet", "--n", "4", "--memory", str(tmp_path / "memory")]
    plot, target = tmp_path / "demo.png", tmp_path / "demo.json"
    assert main([*argv, "--plot", str(plot), "--json", str(target)]) == 0
    assert opened == [{"temperature": 0.7, "max_tokens": 256}]
    out = capsys.readouterr().out
    assert f"plot: {plot}" in out
    assert f"json: {target}" in out
    assert "total time:" in out
    assert plot.stat().st_size > 0
    first = json.loads(target.read_text())
    assert first["model"] == "fake-model"
    assert (first["n"], first["quorum"]) == (4, 3)
    assert first["memory_episodes_at_start"] == 0
    # A second run on the kept store starts with the first run's episodes and
    # reuses every answer the first run verified.
    assert main([*argv, "--plot", str(plot), "--json", str(target)]) == 0
    second = json.loads(target.read_text())
    assert second["memory_episodes_at_start"] > 0
    speedup = [r for r in second["records"] if r["phase"] == "speedup"]
    assert {r["decision"] for r in speedup} == {"reuse"}
    assert second["speedup"]["generations"] == 0
