"""Final-answer extraction and question identity."""

from __future__ import annotations

import pytest

from langchain_speedup import extract_answer, question_key, same_problem
from langchain_speedup.answers import normalize_answer, states_answer

MAYA = (
    "Maya buys 3 pens at 4 dollars each and 2 notebooks at 5 dollars each. "
    "How many dollars does Maya spend in total?"
)


class TestExtractAnswer:
    @pytest.mark.parametrize(
        ("solution", "expected"),
        [
            (r"So she has \boxed{42} apples.", "42"),
            (r"\boxed {7}", "7"),
            (r"First \boxed{1}, no wait: \boxed{2}.", "2"),
            (r"\boxed{1,200} dollars", "1200"),
            (r"\boxed{\$1,200.00}", "1200"),
            (r"\boxed{3.50}", "3.5"),
            (r"\boxed{-4}", "-4"),
        ],
    )
    def test_boxed(self, solution: str, expected: str) -> None:
        assert extract_answer(solution) == expected

    def test_boxed_beats_later_numbers_and_phrases(self) -> None:
        text = r"The answer is 5. Actually \boxed{6}. Then 7 + 8 = 15."
        assert extract_answer(text) == "6"

    def test_nested_braces(self) -> None:
        assert extract_answer(r"\boxed{\text{42}} apples") == "42"
        assert extract_answer(r"\boxed{\text{\$1,200.00}}") == "1200"
        # A naive `\boxed\{([^}]*)\}` would stop at the first `}` and read "1".
        half = extract_answer(r"\boxed{\frac{1}{2}}")
        assert half not in (None, "1")
        assert half != extract_answer(r"\boxed{\frac{1}{3}}")

    def test_unclosed_box_falls_back(self) -> None:
        assert extract_answer(r"\boxed{12 and then 13") == "13"

    @pytest.mark.parametrize(
        "raw", ["$1,200.00", "1200", "1,200", "$1200", "1200.0", r"\$1,200"]
    )
    def test_money_normalises(self, raw: str) -> None:
        assert extract_answer(raw) == "1200"
        assert normalize_answer(raw) == "1200"

    @pytest.mark.parametrize(
        ("solution", "expected"),
        [
            ("The final answer is 7.", "7"),
            ("The final answer is 7. Check: 7 + 3 = 10.", "7"),
            ("final answer: $1,200.00, i.e. 12 hundreds", "1200"),
            ("So the answer is -3, and 9 was wrong.", "-3"),
            ("The answer = 2.5 hours, not 4", "2.5"),
            # Without a box or a phrase, the last number.
            ("She has 3 apples, buys 4 more, so 7", "7"),
            ("3 + 4 = 7 and 7 * 2 = 14 in all.", "14"),
            ("about .5 of it", "0.5"),
            ("it costs 1,234,567 dollars", "1234567"),
        ],
    )
    def test_final_answer_phrase_then_last_number(
        self, solution: str, expected: str
    ) -> None:
        assert extract_answer(solution) == expected

    @pytest.mark.parametrize("solution", ["", "I do not know.", r"\boxed{}", "   "])
    def test_no_answer(self, solution: str) -> None:
        assert extract_answer(solution) is None

    def test_word_answer_is_lower_cased(self) -> None:
        assert extract_answer(r"\boxed{Tuesday}") == "tuesday"
        assert extract_answer(r"\boxed{ TUESDAY }") == extract_answer(
            r"\boxed{tuesday}"
        )


class TestQuestionKey:
    def test_blind_to_case_spacing_and_punctuation(self) -> None:
        variant = (
            "  maya BUYS 3 pens at 4 dollars each, and 2 notebooks at 5 dollars "
            "each -- how many dollars does maya spend in total  "
        )
        assert question_key(variant) == question_key(MAYA)

    def test_differs_on_different_numbers(self) -> None:
        assert question_key(MAYA.replace("3 pens", "7 pens")) != question_key(MAYA)
        assert question_key("What is 12 + 3?") != question_key("What is 1 + 23?")

    def test_differs_on_word_order(self) -> None:
        assert question_key("Is 3 more than 4?") != question_key("Is 4 more than 3?")

    def test_is_a_stable_hex_id(self) -> None:
        key = question_key(MAYA)
        assert key == question_key(MAYA)
        assert len(key) == 32
        int(key, 16)


class TestSameProblem:
    def test_rewording_with_same_numbers_and_names(self) -> None:
        reworded = (
            "In total, how many dollars does Maya spend if she buys 3 pens at "
            "4 dollars each and 2 notebooks at 5 dollars each?"
        )
        assert same_problem(MAYA, reworded)
        assert same_problem(reworded, MAYA)

    def test_number_formatting_does_not_matter(self) -> None:
        assert same_problem(
            "Tom pays $1,200 for 2 bikes.", "For 2 bikes, Tom pays 1200."
        )

    @pytest.mark.parametrize(
        "variant",
        [
            MAYA.replace("3 pens", "7 pens"),
            MAYA.replace("5 dollars", "6 dollars"),
            MAYA + " She also has 1 coupon.",
            MAYA.replace("3 pens", "pens"),
        ],
    )
    def test_new_numbers(self, variant: str) -> None:
        assert not same_problem(MAYA, variant)
        assert not same_problem(variant, MAYA)

    def test_repeated_number_counts(self) -> None:
        assert not same_problem("Add 3 and 3 apples.", "Add 3 apples.")
        assert same_problem("Add 3 and 3 apples.", "Add 3 apples and 3.")

    def test_new_names(self) -> None:
        variant = MAYA.replace("Maya", "Liam")
        assert not same_problem(MAYA, variant)
        assert not same_problem(variant, MAYA)

    def test_a_new_name_in_only_one_of_them(self) -> None:
        a = "How many apples do Ann and Bob have if each has 3?"
        b = "How many apples do Ann and Carl have if each has 3?"
        assert not same_problem(a, b)


class TestStatesAnswer:
    @pytest.mark.parametrize(
        "text",
        [
            "3 * 4 = 12\nThe final answer is \\boxed{12}.",
            "So the final answer is 12.",
            "Final answer: 1,200",
            "The final answer is $8.",
            "the final answer is 42 dollars.",
        ],
    )
    def test_stated(self, text: str) -> None:
        assert states_answer(text)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "3 * 4 = 12",
            "The answer is 48 minus 5, so",
            "The final answer is 48 - 5 = 43, then",
            "\\boxed{}",
            "\\boxed{12",
            "Let me find the final answer.",
        ],
    )
    def test_not_stated(self, text: str) -> None:
        assert not states_answer(text)
