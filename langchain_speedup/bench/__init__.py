"""Benchmarks and the demo: question streams, their runs and their reports."""

from langchain_speedup.bench._report import Graded, Summary, write_report

__all__ = ["Graded", "Summary", "write_report"]
