"""Test-time scaling methods, each with a static and an adaptive mode.

All four share one contract: the same options where they make sense (`mode`,
`threshold`, `scorer`, `system_prompt` and a maximum budget in the method's
unit), the same `ScalingResult`, a `create_<method>_graph` factory, a sync and
an async functional core, and an engine class with `run` / `arun` / `as_graph`.

| method | engine | budget option | unit |
|---|---|---|---|
| Best-of-N | `BestOfN` | `n` | generations |
| Self-Refine | `SelfRefine` | `max_rounds` | rounds |
| Tree-of-Thoughts (DFS) | `TreeOfThoughts` | `max_nodes` | expanded nodes |
| Long chain-of-thought | `LongCoT` | `max_tokens` | reasoning tokens |

`create_engine(model, method, budget=...)` builds any of them by name, with
the budget in the method's unit.
"""

from langchain_speedup.scaling.base import (
    Candidate,
    Exemplar,
    MemoryContext,
    Mode,
    ScalingEvent,
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
from langchain_speedup.scaling.engines import (
    METHODS,
    Method,
    ScalingEngine,
    create_engine,
)
from langchain_speedup.scaling.long_cot import (
    LongCoT,
    along_cot,
    create_long_cot_graph,
    long_cot,
    native_thinking_kwargs,
)
from langchain_speedup.scaling.self_refine import (
    SelfRefine,
    aself_refine,
    create_self_refine_graph,
    self_refine,
)
from langchain_speedup.scaling.tree_of_thoughts import (
    TreeOfThoughts,
    atree_of_thoughts,
    create_tree_of_thoughts_graph,
    tree_of_thoughts,
)

__all__ = [
    "METHODS",
    "BestOfN",
    "Candidate",
    "Exemplar",
    "LongCoT",
    "MemoryContext",
    "Method",
    "Mode",
    "ScalingEngine",
    "ScalingEvent",
    "ScalingOptions",
    "ScalingResult",
    "SelfRefine",
    "StopReason",
    "TreeOfThoughts",
    "abest_of_n",
    "along_cot",
    "aself_refine",
    "atree_of_thoughts",
    "best_of_n",
    "create_best_of_n_graph",
    "create_engine",
    "create_long_cot_graph",
    "create_self_refine_graph",
    "create_tree_of_thoughts_graph",
    "long_cot",
    "native_thinking_kwargs",
    "self_refine",
    "tree_of_thoughts",
]
