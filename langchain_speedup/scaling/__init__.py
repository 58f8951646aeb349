"""Test-time scaling methods, each with a static and an adaptive mode."""

from langchain_speedup.scaling.base import (
    Candidate,
    Exemplar,
    MemoryContext,
    Mode,
    ScalingOptions,
    ScalingResult,
    StopReason,
)
from langchain_speedup.scaling.best_of_n import (
    BestOfN,
    abest_of_n,
    best_of_n,
    create_best_of_n_graph,
)

__all__ = [
    "BestOfN",
    "Candidate",
    "Exemplar",
    "MemoryContext",
    "Mode",
    "ScalingOptions",
    "ScalingResult",
    "StopReason",
    "abest_of_n",
    "best_of_n",
    "create_best_of_n_graph",
]
