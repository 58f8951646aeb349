"""Final answers and question identity, shared by scorers, router and memory."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

__all__ = [
    "extract_answer",
    "normalize_answer",
    "question_key",
    "same_problem",
    "states_answer",
]

_BOXED = re.compile(r"\\boxed\s*\{")
_FINAL = re.compile(
    r"(?:final answer|answer)\s*(?:is|:|=)\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE
)
_STATED = re.compile(
    r"final answer\s*(?:is|:)\s*\$?\s*-?[\d,]*\.?\d+\s*(?:dollars\s*)?(?:\.|$)",
    re.IGNORECASE | re.MULTILINE,
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_WORD = re.compile(r"[a-z0-9]+")
_FRACTION = re.compile(r"-?\\[dt]?frac\{(\d+)\}\{([1-9]\d*)\}")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")


def _boxed_contents(text: str) -> list[str]:
    found = []
    for match in _BOXED.finditer(text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    found.append(text[start:i])
                    break
    return found


def normalize_answer(raw: str) -> str | None:
    """Canonical form of an answer: a plain number when it holds one.

    Returns:
        `"42"` for `"$42.00"`, `"3.5"` for `"3.50"`, the lower-cased words of a
        non-numeric answer, or `None` when nothing is left.
    """
    text = raw.replace("\\$", "").replace("$", "").replace("\\%", "").strip()
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", text)
    fraction = _FRACTION.fullmatch(text)
    if fraction:
        value = int(fraction.group(1)) / int(fraction.group(2))
        return str(int(value)) if value.is_integer() else f"{value:.6g}"
    numbers = _NUMBER.findall(text)
    if len(numbers) == 1:
        value = float(numbers[0].replace(",", ""))
        return str(int(value)) if value.is_integer() else f"{value:.6g}"
    words = " ".join(_WORD.findall(text.lower()))
    return words or None


def extract_answer(solution: str) -> str | None:
    r"""The normalised final answer of a solution, or `None` if it has none.

    Example:
        ```python
        assert extract_answer(r"... so she has \\boxed{1,200} dollars.") == "1200"
        assert extract_answer("The final answer is 7.") == "7"
        ```
    """
    boxed = _boxed_contents(solution)
    if boxed:
        return normalize_answer(boxed[-1])
    final = _FINAL.findall(solution)
    if final:
        return normalize_answer(final[-1])
    numbers = _NUMBER.findall(solution)
    return normalize_answer(numbers[-1]) if numbers else None


def states_answer(text: str) -> bool:
    r"""Whether a text states its final answer.

    It does when it holds a non-empty `\\boxed{...}`, or a sentence ending in
    "final answer is <number>" (also "Final answer: <number>"). A number
    in mid-sentence ("the answer is 48 minus 5") does not count.
    """
    if any(content.strip() for content in _boxed_contents(text)):
        return True
    return _STATED.search(text) is not None


def question_key(question: str) -> str:
    """A stable id of a question's text, blind to case, spacing and punctuation."""
    words = " ".join(_WORD.findall(question.lower()))
    return hashlib.sha256(words.encode()).hexdigest()[:32]


def _numbers(text: str) -> Counter[str | None]:
    # Normalised, so that "1,200" and "1200" count as one number.
    return Counter(normalize_answer(raw) for raw in _NUMBER.findall(text))


def _names(text: str) -> set[str]:
    # Capitalised words inside a sentence are names; sentence-initial words are
    # left out because a rewording moves them.
    return {m.group(0).lower() for m in _NAME.finditer(text)}


def same_problem(a: str, b: str) -> bool:
    """Whether two questions state the same problem: same numbers, same names.

    A rewording passes; a variant with any number or name changed does not.
    This is a necessary condition only: callers also require high similarity.
    """
    if _numbers(a) != _numbers(b):
        return False
    words_a, words_b = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return _names(a) <= words_b and _names(b) <= words_a
