"""Pieces every benchmark report shares: ratios and JSON output."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def ratio(a: float, b: float) -> float:
    """`a / b` to four places; NaN when `b` is 0 (nothing to compare with)."""
    return round(a / b, 4) if b else math.nan


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value


def write_report(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write a report as JSON, NaN as `null`, creating the parent folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(_without_nan(report), indent=2) + "\n")
    return target
