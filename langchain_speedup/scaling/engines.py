"""The four scaling engines by name: `create_engine(model, "self_refine", budget=3)`."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from langchain_speedup.errors import ConfigurationError
from langchain_speedup.scaling._base import ScalingEngine
from langchain_speedup.scaling.best_of_n import BestOfN
from langchain_speedup.scaling.long_cot import LongCoT
from langchain_speedup.scaling.self_refine import SelfRefine
from langchain_speedup.scaling.tree_of_thoughts import TreeOfThoughts
from langchain_speedup.types import METHODS, ChatRunnable, Method

__all__ = ["ENGINES", "check_method", "create_engine"]

ENGINES: Mapping[Method, type[ScalingEngine]] = MappingProxyType(
    {
        "best_of_n": BestOfN,
        "self_refine": SelfRefine,
        "tree_of_thoughts": TreeOfThoughts,
        "long_cot": LongCoT,
    }
)
"""Each method's engine class."""


def check_method(method: object) -> Method:
    """Return `method` if it names a scaling method.

    Raises:
        ConfigurationError: It does not.
    """
    if not isinstance(method, str) or method not in ENGINES:
        msg = f"`method` must be one of {', '.join(METHODS)}; got {method!r}"
        raise ConfigurationError(msg)
    return method  # type: ignore[return-value]


def create_engine(
    model: ChatRunnable, method: Method, /, **options: Any
) -> ScalingEngine:
    """Build a scaling engine by method name.

    Every engine takes `budget` in its own unit (`engine.unit`), and `mode`,
    `scorer`, `threshold` and `system_prompt`; the rest are the engine's own
    (see `BestOfN`, `SelfRefine`, `TreeOfThoughts`, `LongCoT`).

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
        **options: The engine's keyword options.

    Returns:
        The engine.

    Raises:
        ConfigurationError: An unknown method or option, or an option out of
            range.
    """
    return ENGINES[check_method(method)].from_options(model, options)
