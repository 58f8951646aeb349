"""Test-time scaling methods, each with a static and an adaptive mode.

| method | engine | budget unit |
|---|---|---|
| Best-of-N | `BestOfN` | generations |
| Self-Refine | `SelfRefine` | rounds |
| Tree-of-Thoughts (DFS) | `TreeOfThoughts` | expanded nodes |
| Long chain-of-thought | `LongCoT` | reasoning tokens |

Each engine is written once, as the steps of its LangGraph graph; `run` /
`arun` and the factories (`create_best_of_n_graph`, ...) run that graph.
"""

from langchain_speedup.scaling._base import RunContext, ScalingEngine, ScalingInput
from langchain_speedup.scaling.best_of_n import (
    BestOfN,
    BestOfNOptions,
    create_best_of_n_graph,
)
from langchain_speedup.scaling.engines import ENGINES, check_method, create_engine
from langchain_speedup.scaling.long_cot import (
    CONTINUE_PROMPT,
    LONG_COT_SYSTEM_PROMPT,
    PROBE_PROMPT,
    LongCoT,
    LongCoTOptions,
    create_long_cot_graph,
    native_thinking_kwargs,
)
from langchain_speedup.scaling.self_refine import (
    CRITIQUE_PROMPT,
    REVISE_PROMPT,
    SelfRefine,
    SelfRefineOptions,
    create_self_refine_graph,
)
from langchain_speedup.scaling.tree_of_thoughts import (
    TREE_OF_THOUGHTS_SYSTEM_PROMPT,
    TreeOfThoughts,
    TreeOfThoughtsOptions,
    create_tree_of_thoughts_graph,
)

__all__ = [
    "CONTINUE_PROMPT",
    "CRITIQUE_PROMPT",
    "ENGINES",
    "LONG_COT_SYSTEM_PROMPT",
    "PROBE_PROMPT",
    "REVISE_PROMPT",
    "TREE_OF_THOUGHTS_SYSTEM_PROMPT",
    "BestOfN",
    "BestOfNOptions",
    "LongCoT",
    "LongCoTOptions",
    "RunContext",
    "ScalingEngine",
    "ScalingInput",
    "SelfRefine",
    "SelfRefineOptions",
    "TreeOfThoughts",
    "TreeOfThoughtsOptions",
    "check_method",
    "create_best_of_n_graph",
    "create_engine",
    "create_long_cot_graph",
    "create_self_refine_graph",
    "create_tree_of_thoughts_graph",
    "native_thinking_kwargs",
]
