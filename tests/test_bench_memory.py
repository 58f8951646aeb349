"""The memory benchmark (no, ungated and gated memory) and its command, on fakes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from langchain_speedup import ConfigurationError
from langchain_speedup.answers import question_key
from langchain_speedup.bench import write_report
from langchain_speedup.bench.memory import (
    ARMS,
    MemoryBenchReport,
    format_memory_report,
    run_memory_bench,
)
from langchain_speedup.bench.questions import (
    TEMPLATES,
    dissimilar_stream,
    similar_stream,
)
from langchain_speedup.cli import main
from tests.fakes import FakeChatModel, HashEmbeddings, boxed, text_of
from tests.test_bench_methods import NamedFakeChatModel, serve_fakes

DISSIMILAR = dissimilar_stream(TEMPLATES[:4])
SIMILAR = similar_stream(TEMPLATES[:2])
GOLD = {item["question"]: item["gold"] for item in [*DISSIMILAR, *SIMILAR]}
GOLD.update(
    {
        item["question"]: item["gold"]
        for item in [*dissimilar_stream(), *similar_stream()]
    }
)


def gold_solver(messages: list[BaseMessage]) -> str:
    """Answers the question asked (the last human turn) right, every time."""
    asked = [text_of(m) for m in messages if isinstance(m, HumanMessage)][-1]
    return boxed(GOLD[asked])


@pytest.fixture(scope="module")
def report() -> MemoryBenchReport:
    return run_memory_bench(
        FakeChatModel(responder=gold_solver),
        embeddings=HashEmbeddings(),
        streams={"dissimilar": DISSIMILAR, "similar": SIMILAR},
        progress=False,
    )


def arm_records(report: MemoryBenchReport, stream: str, arm: str) -> list[Any]:
    return [r for r in report["records"] if r["stream"] == stream and r["arm"] == arm]


# -- streams ---------------------------------------------------------------------------


def test_the_dissimilar_stream_holds_one_problem_per_template() -> None:
    stream = dissimilar_stream()
    assert len(stream) == len(TEMPLATES)
    assert len({item["template"] for item in stream}) == len(TEMPLATES)


def test_the_similar_stream_brings_each_problem_back_without_repeats() -> None:
    stream = similar_stream()
    assert len(stream) == 16
    assert [item["kind"] for item in stream[:4]] == ["new"] * 4
    assert [item["kind"] for item in stream[4:8]] == ["paraphrase"] * 4
    assert [item["kind"] for item in stream[8:]] == ["new_numbers"] * 8
    assert {item["template"] for item in stream} == {t.key for t in TEMPLATES[:4]}
    # No exact repeat: no answer can be reused, only shown.
    assert len({question_key(item["question"]) for item in stream}) == 16


# -- the report ------------------------------------------------------------------------


def test_every_arm_runs_every_question_of_every_stream(
    report: MemoryBenchReport,
) -> None:
    assert [s["stream"] for s in report["streams"]] == ["dissimilar", "similar"]
    for summary in report["streams"]:
        assert list(summary["arms"]) == list(ARMS)
        for arm in ARMS:
            records = arm_records(report, summary["stream"], arm)
            assert [r["index"] for r in records] == list(range(summary["questions"]))
            assert summary["arms"][arm]["questions"] == summary["questions"]
            assert summary["arms"][arm]["correct"] == summary["questions"]


def test_no_memory_arm_never_sees_memory(report: MemoryBenchReport) -> None:
    for stream in ("dissimilar", "similar"):
        records = arm_records(report, stream, "none")
        assert {r["decision"] for r in records} == {"none"}
        # Adaptive Best-of-N: three agreeing samples verify each answer.
        assert [r["generations"] for r in records] == [3] * len(records)


def test_ungated_memory_admits_every_verified_episode(
    report: MemoryBenchReport,
) -> None:
    for stream, items in (("dissimilar", DISSIMILAR), ("similar", SIMILAR)):
        records = arm_records(report, stream, "ungated")
        assert records[0]["decision"] == "scratch"
        assert {r["decision"] for r in records[1:]} == {"exemplars"}
        summary = next(s for s in report["streams"] if s["stream"] == stream)
        assert summary["arms"]["ungated"]["with_memory"] == len(items) - 1
        assert summary["gate"] != []  # the gated arm's bands


def test_a_paraphrase_gets_exemplars_but_no_precedent_vote(
    report: MemoryBenchReport,
) -> None:
    none = arm_records(report, "similar", "none")
    ungated = arm_records(report, "similar", "ungated")
    paraphrases = [
        (a, b) for a, b in zip(none, ungated, strict=True) if a["kind"] == "paraphrase"
    ]
    assert paraphrases
    for a, b in paraphrases:
        # A free paraphrase is not trusted as the same problem: its stored
        # answer shows as an exemplar but is no vote, so a quorum of its own
        # samples is needed, as without memory.
        assert b["decision"] == "exemplars"
        assert b["generations"] == a["generations"] == 3
    summary = next(s for s in report["streams"] if s["stream"] == "similar")
    assert summary["ratios"]["ungated_generations"] == 1


def test_the_gate_keeps_memory_out_of_closed_bands(report: MemoryBenchReport) -> None:
    # The gate's prior opens the bands from a similarity of 0.7; its seeded
    # exploration draws no closed-band question here.
    for stream in ("dissimilar", "similar"):
        gated = arm_records(report, stream, "gated")
        assert (gated[0]["similarity"], gated[0]["band"]) == (None, None)
        for r in gated[1:]:
            assert r["band"] is not None
            assert not r["explored"]
            assert (r["decision"] == "exemplars") is (r["similarity"] >= 0.7)
    arms = {s["stream"]: s["arms"]["gated"] for s in report["streams"]}
    assert arms["dissimilar"]["with_memory"] == 0
    assert arms["similar"]["with_memory"] == 5
    # Kept out, the gated arm spends what no memory spends.
    dissimilar = next(s for s in report["streams"] if s["stream"] == "dissimilar")
    assert dissimilar["ratios"]["gated_generations"] == 1.0


def test_ratios_divide_by_the_no_memory_arm(report: MemoryBenchReport) -> None:
    for summary in report["streams"]:
        arms = summary["arms"]
        for arm in ("ungated", "gated"):
            for key in ("generations", "tokens"):
                assert summary["ratios"][f"{arm}_{key}"] == pytest.approx(
                    arms[arm][key] / arms["none"][key], abs=1e-4
                )


def test_the_table_shows_each_stream_and_the_gate(report: MemoryBenchReport) -> None:
    table = format_memory_report(report)
    assert "dissimilar stream (4 questions)" in table
    assert "similar stream (8 questions)" in table
    assert "gated keeps of ungated's saving: generations" in table
    assert "gate at the end" in table
    rows = [line.split() for line in table.splitlines() if line.split()[:1] == ["none"]]
    assert len(rows) == 2


def test_json_round_trips(report: MemoryBenchReport, tmp_path: Path) -> None:
    path = write_report(report, tmp_path / "out" / "memory.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))


def test_an_empty_stream_fails_before_any_call() -> None:
    model = FakeChatModel(responder=gold_solver)
    with pytest.raises(ConfigurationError, match="stream"):
        run_memory_bench(
            model,
            embeddings=HashEmbeddings(),
            streams={"dissimilar": DISSIMILAR, "similar": []},
            progress=False,
        )
    with pytest.raises(ConfigurationError):
        run_memory_bench(model, embeddings=HashEmbeddings(), n=0, progress=False)
    with pytest.raises(ConfigurationError, match="quorom"):
        run_memory_bench(model, embeddings=HashEmbeddings(), quorom=2)
    assert model.calls == []


def test_open_model_gives_each_arm_a_fresh_model() -> None:
    opened: list[FakeChatModel] = []

    @contextlib.contextmanager
    def open_model() -> Iterator[FakeChatModel]:
        opened.append(NamedFakeChatModel(responder=gold_solver))
        yield opened[-1]

    report = run_memory_bench(
        open_model=open_model,
        embeddings=HashEmbeddings(),
        streams={"similar": SIMILAR},
        progress=False,
    )
    assert len(opened) == len(ARMS)
    assert all(len(m.calls) > 0 for m in opened)
    assert report["model"] == "fake-model"


@pytest.mark.parametrize("both", [False, True], ids=["neither", "both"])
def test_exactly_one_way_to_get_a_model(both: bool) -> None:
    model = FakeChatModel(responder=gold_solver)
    with pytest.raises(ConfigurationError, match="exactly one"):
        run_memory_bench(
            model if both else None,
            open_model=(lambda: contextlib.nullcontext(model)) if both else None,
            embeddings=HashEmbeddings(),
            progress=False,
        )
    assert model.calls == []


# -- the command -----------------------------------------------------------------------


class TestCommand:
    def test_runs_both_streams_and_writes_json(
        self,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        opened = serve_fakes(monkeypatch, gold_solver)
        target = tmp_path / "memory.json"
        code = main(["bench-memory", "--quiet", "--n", "4", "--json", str(target)])
        assert code == 0
        # A fresh model for each of the 5 arms of the 2 streams.
        assert opened == [{"temperature": 0.7, "max_tokens": 256}] * 2 * len(ARMS)
        out = capsys.readouterr().out
        assert "dissimilar stream (12 questions)" in out
        assert "similar stream (16 questions)" in out
        loaded = json.loads(target.read_text())
        assert loaded["model"] == "fake-model"
        assert loaded["n"] == 4
        assert [s["stream"] for s in loaded["streams"]] == ["dissimilar", "similar"]


def test_the_command_runs_the_chosen_streams_on_the_chosen_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    opened = serve_fakes(monkeypatch, gold_solver)
    target = tmp_path / "memory.json"
    argv = ["bench-memory", "--quiet", "--n", "2", "--streams", "similar"]
    argv += ["--arms", "none-program,procedure"]
    code = main(
        [*argv, "--model", "qwen2.5-coder-1.5b-instruct", "--json", str(target)]
    )
    assert code == 0
    assert {o["local_model"] for o in opened} == {"qwen2.5-coder-1.5b-instruct"}
    report = json.loads(target.read_text())
    assert [s["stream"] for s in report["streams"]] == ["similar"]
    [summary] = report["streams"]
    assert list(summary["arms"]) == ["none-program", "procedure"]
    assert len(opened) == 2
    assert "procedure/none-program_generations" in summary["ratios"]


@pytest.mark.parametrize(
    "argv",
    [["--streams", "similar,other"], ["--arms", "none,cache"], ["--arms", "none,none"]],
)
def test_the_command_refuses_unknown_streams_and_arms(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench-memory", *argv])
