"""Final-answer extraction and question identity."""

from __future__ import annotations

import random

import pytest

from langchain_speedup import (
    InvalidInputError,
    extract_answer,
    question_key,
    same_problem,
)
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


COLLIDING_PAIRS = [
    ("What is 3+2?", "What is 3-2?"),
    ("What is 2^10?", "What is 2*10?"),
    ("What is 1,000 + 1?", "What is 1.000 + 1?"),
    ("What is -5 squared?", "What is 5 squared?"),
    ("What is 3/4 of 8?", "What is 3 4 of 8?"),
    ("What is 10% of 50?", "What is 10 of 50?"),
    ("Solve x²+1 = 5.", "Solve x+1 = 5."),
    ("Сколько будет 2+3?", "Сколько будет 2*3?"),
    ("二加三等于几？", "五乘六等于几？"),  # noqa: RUF001
    ("🍎+🍎=?", "🍌×🍌=?"),  # noqa: RUF001
    ("Is 3 > 2?", "Is 3 < 2?"),
]
"""Pairs of different questions whose old keys (`[a-z0-9]` words) were equal."""


class TestQuestionKey:
    @pytest.mark.parametrize(
        "variant",
        [
            "  WHAT IS 2+3?!! ",
            "what   is\t2+3",
            "What is 2+3 ?",
            "What is ２＋３？",  # noqa: RUF001 - full-width forms (NFKC)
            "What is 2+3…",
        ],
    )
    def test_blind_to_case_spacing_and_trailing_punctuation(self, variant: str) -> None:
        assert question_key(variant) == question_key("What is 2+3?")

    def test_is_the_normalised_text(self) -> None:
        # Not a hash: the store compares the text itself, so keys cannot collide.
        assert question_key("  Maya BUYS 3 pens.\nHow many?! ") == (
            "maya buys 3 pens. how many"
        )

    @pytest.mark.parametrize(("a", "b"), COLLIDING_PAIRS)
    def test_reuse_key_keeps_what_changes_the_answer(self, a: str, b: str) -> None:
        assert question_key(a) != question_key(b)

    def test_reuse_key_differs_on_any_one_changed_character(self) -> None:
        # Questions that differ in one operator, sign, digit, separator or
        # non-Latin character never share a key.
        rng = random.Random(10)
        swaps = [*"+-*/^%=<>×÷", *"0123456789", *",.", *"αβγжщ二三五🍎🍌"]  # noqa: RUF001
        for _ in range(2000):
            n = rng.randint(1, 4)
            parts = [str(rng.randint(0, 999)) for _ in range(n)]
            ops = [rng.choice(swaps) for _ in range(n)]
            question = "What is " + " ".join(
                f"{p}{o}" for p, o in zip(parts, ops, strict=True)
            )
            question += " 7?"
            i = rng.randrange(len(question) - 1)
            if question[i] not in swaps:
                continue
            other = question[:i] + rng.choice(swaps) + question[i + 1 :]
            assert (question_key(question) == question_key(other)) is (
                question == other
            ), (question, other)

    def test_sign_and_superscripts_count(self) -> None:
        assert question_key("x² = 4") != question_key("x2 = 4")
        assert question_key("What is -5?") != question_key("What is 5?")
        assert question_key("What is 12 + 3?") != question_key("What is 1 + 23?")
        assert question_key("What is 3 4?") != question_key("What is 34?")

    def test_differs_on_different_numbers(self) -> None:
        assert question_key(MAYA.replace("3 pens", "7 pens")) != question_key(MAYA)

    def test_differs_on_word_order(self) -> None:
        assert question_key("Is 3 more than 4?") != question_key("Is 4 more than 3?")

    @pytest.mark.parametrize("question", [None, 3, b"What is 2+3?"])
    def test_rejects_what_is_not_text(self, question: object) -> None:
        with pytest.raises(InvalidInputError, match="string"):
            question_key(question)  # type: ignore[arg-type]


class TestSameProblem:
    def test_rewording_with_same_numbers_and_names(self) -> None:
        reworded = (
            "In total, how many dollars does Maya spend if she buys 3 pens at "
            "4 dollars each and 2 notebooks at 5 dollars each?"
        )
        assert same_problem(MAYA, reworded)
        assert same_problem(reworded, MAYA)

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            ("Tom pays $1,200 for 2 bikes.", "For 2 bikes, Tom pays 1200."),
            ("How much does Ann's pen cost?", "How many does Ann\u2019s pen cost?"),
            ("Ann has 3 pens. How many?", "HOW MANY — if Ann has 3 pens?"),
            ("Ann has ３ pens.", "Ann has 3 pens."),  # noqa: RUF001
        ],
    )
    def test_the_documented_rewordings(self, a: str, b: str) -> None:
        assert same_problem(a, b)
        assert same_problem(b, a)

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

    @pytest.mark.parametrize("verb", ["eats", "gets", "loses"])
    def test_same_problem_rejects_a_changed_word(self, verb: str) -> None:
        # A copied exemplar answer must not pass on the precedent's vote.
        bought = "Sam has 3 apples and buys 5 more. How many apples does Sam have?"
        assert not same_problem(bought, bought.replace("buys", verb))

    def test_a_word_added_or_dropped_is_another_problem(self) -> None:
        full = "A baker sells every full box of 6 cookies for $5."
        assert not same_problem(full, full.replace("full ", ""))

    @pytest.mark.parametrize(("a", "b"), COLLIDING_PAIRS)
    def test_operators_symbols_and_scripts_count(self, a: str, b: str) -> None:
        assert not same_problem(a, b)
        assert not same_problem("What is 3 + 2?", "What is 3 - 2?")

    def test_a_free_paraphrase_is_not_trusted(self) -> None:
        # Words outside the documented rewordings change: in doubt, no.
        paraphrase = (
            "Paying with a $20 bill, Maya gets 3 notebooks that cost $4 apiece. "
            "How many dollars of change should Maya receive?"
        )
        original = (
            "Maya buys 3 notebooks at $4 each and pays with a $20 bill. "
            "How much change does Maya get, in dollars?"
        )
        assert not same_problem(original, paraphrase)


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
