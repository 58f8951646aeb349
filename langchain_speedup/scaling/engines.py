"""The four scaling engines by name, each with its budget in its own unit.

`create_engine(model, "tree_of_thoughts", budget=6, breadth=2)` builds the same
engine as `TreeOfThoughts(model, max_nodes=6, breadth=2)`. The budget router
and the benchmarks use it so that one option, `budget`, means "the most
compute" whatever the method:

| method | engine | budget option | unit |
|---|---|---|---|
| `best_of_n` | `BestOfN` | `n` | generations |
| `self_refine` | `SelfRefine` | `max_rounds` | rounds |
| `tree_of_thoughts` | `TreeOfThoughts` | `max_nodes` | expanded nodes |
| `long_cot` | `LongCoT` | `max_tokens` | reasoning tokens |
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from langchain_speedup.errors import ConfigurationError
from langchain_speedup.scaling._common import ChatRunnable, check_count
from langchain_speedup.scaling.base import Mode
from langchain_speedup.scaling.best_of_n import BestOfN
from langchain_speedup.scaling.long_cot import LongCoT
from langchain_speedup.scaling.self_refine import SelfRefine
from langchain_speedup.scaling.tree_of_thoughts import TreeOfThoughts
from langchain_speedup.scoring import Scorer

__all__ = [
    "BUDGET_OPTIONS",
    "METHODS",
    "Method",
    "ScalingEngine",
    "check_method",
    "check_options",
    "create_engine",
    "engine_class",
]

Method = Literal["best_of_n", "self_refine", "tree_of_thoughts", "long_cot"]
"""The name of a scaling method, as in `ScalingResult["method"]`."""

METHODS: tuple[Method, ...] = (
    "best_of_n",
    "self_refine",
    "tree_of_thoughts",
    "long_cot",
)
"""Every method, in the order the package introduces them."""

ScalingEngine: TypeAlias = BestOfN | SelfRefine | TreeOfThoughts | LongCoT
"""Any of the four engines: `run` / `arun` / `as_graph`, `method`, `unit`, `options`."""

_CLASSES: Mapping[Method, type[ScalingEngine]] = MappingProxyType(
    {
        "best_of_n": BestOfN,
        "self_refine": SelfRefine,
        "tree_of_thoughts": TreeOfThoughts,
        "long_cot": LongCoT,
    }
)

BUDGET_OPTIONS: Mapping[Method, str] = MappingProxyType(
    {
        "best_of_n": "n",
        "self_refine": "max_rounds",
        "tree_of_thoughts": "max_nodes",
        "long_cot": "max_tokens",
    }
)
"""The keyword each engine takes its budget by."""

# Options `create_engine` sets itself; `**options` may not repeat them.
_SHARED = frozenset({"mode", "scorer", "threshold", "system_prompt", "budget"})


def check_method(method: object) -> Method:
    """Return `method` if it names a scaling method.

    Raises:
        ConfigurationError: It does not.
    """
    if not isinstance(method, str) or method not in _CLASSES:
        msg = f"`method` must be one of {', '.join(METHODS)}; got {method!r}"
        raise ConfigurationError(msg)
    return method  # type: ignore[return-value]


def engine_class(method: Method) -> type[ScalingEngine]:
    """The engine class of a method.

    Raises:
        ConfigurationError: `method` names no scaling method.
    """
    return _CLASSES[check_method(method)]


def check_options(method: Method, options: Mapping[str, Any]) -> dict[str, Any]:
    """Return a method's further engine options if its engine takes them all.

    The budget and the options every method shares (`mode`, `scorer`,
    `threshold`, `system_prompt`) are not among them: they have their own
    arguments.

    Raises:
        ConfigurationError: `method` names no scaling method, or an option is
            shared, a budget, or not one the engine takes.
    """
    cls = _CLASSES[check_method(method)]
    budget_key = BUDGET_OPTIONS[method]
    accepted = (
        {
            name
            for name, p in inspect.signature(cls).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        - _SHARED
        - {budget_key}
    )
    for name in options:
        if name in _SHARED or name in BUDGET_OPTIONS.values():
            msg = (
                f"`{name}` is not a method option here: give the budget as "
                "`budget` and the shared options by name"
            )
            raise ConfigurationError(msg)
        if name not in accepted:
            shown = ", ".join(sorted(accepted)) or "none"
            msg = f"{cls.__name__} has no option `{name}` (its options: {shown})"
            raise ConfigurationError(msg)
    return dict(options)


def create_engine(
    model: ChatRunnable,
    method: Method,
    /,
    *,
    budget: int | None = None,
    mode: Mode = "adaptive",
    scorer: Scorer | None = None,
    threshold: float | None = None,
    system_prompt: str | None = None,
    **options: Any,
) -> ScalingEngine:
    """Build a scaling engine by method name, with the budget in its unit.

    Example:
        ```python
        engine = create_engine(model, "self_refine", budget=3, mode="static")
        result = engine.run("What is 17 + 25?")
        assert result["budget_unit"] == engine.unit == "rounds"
        ```

    Args:
        model: Any chat model.
        method: `"best_of_n"`, `"self_refine"`, `"tree_of_thoughts"` or
            `"long_cot"`.
        budget: The most compute, in the method's unit (see `BUDGET_OPTIONS`);
            the engine's own default when `None`.
        mode: `"static"` or `"adaptive"`.
        scorer: Rates candidates; `ConsensusScorer()` when `None`.
        threshold: Stop score; the scorer's upper bound when `None`.
        system_prompt: Instructions for the model; the method's own default
            when `None` (Tree-of-Thoughts and long chain-of-thought have
            prompts of their own).
        **options: Further keyword options of that engine only, such as
            `breadth` for Tree-of-Thoughts or `segment_tokens` for long
            chain-of-thought.

    Returns:
        The engine.

    Raises:
        ConfigurationError: An unknown method or option, or an option out of
            range.
    """
    method = check_method(method)
    kwargs = check_options(method, options)
    if budget is not None:
        kwargs[BUDGET_OPTIONS[method]] = check_count("budget", budget)
    if system_prompt is not None:
        kwargs["system_prompt"] = system_prompt
    return _CLASSES[method](
        model, mode=mode, scorer=scorer, threshold=threshold, **kwargs
    )
