"""`bench-store` on a small store: every figure is there and consistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_speedup.bench.store import format_store_report, run_store_bench
from langchain_speedup.cli import main
from tests.fakes import HashEmbeddings


def test_small_run_reports_every_figure(tmp_path: Path) -> None:
    report = run_store_bench(
        sizes=[300],
        embeddings=HashEmbeddings(32),
        dims=32,
        directory=tmp_path,
        queries=20,
        progress=False,
    )
    (entry,) = report["sizes"]
    assert entry["episodes"] == 300
    assert entry["engine"] == "edge"
    for key in (
        "route",
        "route_with_embedding",
        "search_k",
        "exact_reuse",
        "put",
        "exact_numpy",
    ):
        assert 0 < entry[key]["p50_ms"] <= entry[key]["p95_ms"] <= entry[key]["p99_ms"]
    assert entry["put"]["p99_ms"] <= entry["put"]["max_ms"]
    # Below the indexing threshold the engine scans exactly: full agreement.
    assert set(entry["agreement"].values()) == {1.0}
    assert entry["fill_per_s"] > 0
    assert entry["reopen_s"] > 0
    assert entry["disk_mb"] > 0
    assert 0 < entry["store_rss_mb"] < 2048
    assert entry["route_x_exact_numpy"] == pytest.approx(  # ratios are rounded
        entry["route"]["p50_ms"] / entry["exact_numpy"]["p50_ms"], rel=1e-3
    )
    table = format_store_report(report)
    assert "| episodes | 300 |" in table
    assert "top-8 set = exact | 100%" in table
    assert "decision + exemplars = exact | 100%" in table


def test_command_rejects_tiny_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench-store", "--sizes", "10"])
    assert "at least 100" in capsys.readouterr().err
