"""The benchmark problems: wordings, gold answers as slot arithmetic."""

from __future__ import annotations

import dataclasses
import re

import pytest

from langchain_speedup.bench.questions import TEMPLATES


def test_every_template_fills_its_slots_and_has_integer_answers() -> None:
    assert len({t.key for t in TEMPLATES}) == len(TEMPLATES) == 12
    for template in TEMPLATES:
        for variant in range(len(template.variants)):
            for paraphrased in (False, True):
                text = template.question(variant, paraphrased=paraphrased)
                assert not re.search(r"[{}]", text)
            assert isinstance(template.answer(variant), int)


def test_gold_answers_follow_the_expressions() -> None:
    by_key = {t.key: t for t in TEMPLATES}
    # $20 - 3 * $4; then $50 - 5 * $3.
    assert [by_key["change"].answer(v) for v in range(3)] == [8, 35, 6]
    # 48 // 6 boxes at $5; the floor division of a partial box.
    assert by_key["boxes"].answer(0) == 40
    # (14 + 10) // 4 teams: brackets bind first.
    assert by_key["class"].answer(0) == 6
    assert by_key["change"].question(0).startswith("Maya buys 3 notebooks at $4")


@pytest.mark.parametrize(
    "gold",
    ["__import__('os').getcwd()", "name * 2", "n ** p", "missing + 1", "n / p"],
)
def test_gold_is_only_integer_arithmetic_over_the_slots(gold: str) -> None:
    template = dataclasses.replace(TEMPLATES[0], gold=gold)
    with pytest.raises(ValueError, match="not integer arithmetic"):
        template.answer(0)
