"""Final answers and question identity, shared by scorers, router and memory."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence

from langchain_core.messages import BaseMessage

from langchain_speedup.errors import InvalidInputError

__all__ = [
    "answers_equal",
    "extract_answer",
    "normalize_answer",
    "question_key",
    "reuse_key",
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
_LETTERS = re.compile(r"[^\W\d_]+")
_POSSESSIVE = re.compile(r"(?<=[^\W\d_])['\u2019]s\b")
_FRACTION = re.compile(r"-?\\[dt]?frac\{(\d+)\}\{([1-9]\d*)\}")


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


def stated_answer_text(solution: str) -> str | None:
    r"""The final answer a solution states, as written (not normalised).

    The last `\\boxed{...}` content, else the number of a closing "final
    answer is N"; `None` when the solution states no answer
    (`states_answer`).
    """
    if not states_answer(solution):
        return None
    boxed = [b for b in _boxed_contents(solution) if b.strip()]
    if boxed:
        return boxed[-1].strip()
    final = _FINAL.findall(solution)
    return final[-1] if final else None


def _as_number(answer: str | None) -> float | None:
    if answer is None or _NUMBER.fullmatch(answer) is None:
        return None
    value = float(answer.replace(",", ""))
    return value if math.isfinite(value) else None


_MATH_VERIFY_MAX_CHARS = 200  # sympy's parsing time grows fast with the input


def _math_verify_equal(a: str, b: str) -> bool:
    """Whether math-verify finds `a` and `b` equal; `False` without it."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return False
    if max(len(a), len(b)) > _MATH_VERIFY_MAX_CHARS:
        return False
    # Its timeout uses SIGALRM, which works only in the main thread; elsewhere
    # the length cap above bounds the work instead.
    main = threading.current_thread() is threading.main_thread()
    timeout = 5 if main else None
    # Without a timeout it warns once that there is none: the cap is ours.
    quiet = [logging.getLogger(f"math_verify.{m}") for m in ("parser", "grader")]
    previous = [q.disabled for q in quiet]
    for q in quiet:
        q.disabled = True
    try:
        left = parse(f"${a}$", parsing_timeout=timeout)
        right = parse(f"${b}$", parsing_timeout=timeout)
        if not left or not right:
            return False
        return bool(verify(left, right, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001  an unparsable answer is no match
        return False
    finally:
        for q, was in zip(quiet, previous, strict=True):
            q.disabled = was


def answers_equal(a: str | None, b: str | None) -> bool:
    r"""Whether two final answers are the same answer.

    Plain numbers compare by value (`"1,200"`, `"1200.0"` and `"$1200"` are
    equal; floats to a relative 1e-6). Other answers compare by their
    `normalize_answer` form, then, when the optional `math-verify` package is
    installed (the `math` extra), by math-verify's symbolic equivalence of
    the texts as written (`"\frac{1}{2}"` and `"0.5"`, `"2\sqrt{3}"` and
    `"\sqrt{12}"`). Without math-verify only the first two checks apply.
    `None` equals nothing.

    Example:
        ```python
        assert answers_equal("1,200", "1200.00")
        assert answers_equal(r"\frac{3}{4}", "0.75")
        assert not answers_equal("12", "13")
        ```

    Args:
        a: One answer, as stated or as `extract_answer` returns it.
        b: The other.

    Returns:
        Whether they are equal.
    """
    if a is None or b is None:
        return False
    if a.strip() == b.strip():
        return bool(a.strip())
    left, right = normalize_answer(a), normalize_answer(b)
    x, y = _as_number(left), _as_number(right)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
    if left is not None and left == right and (x is None) == (y is None):
        return True
    return _math_verify_equal(a.strip(), b.strip())


def states_answer(text: str) -> bool:
    r"""Whether a text states its final answer.

    It does when it holds a non-empty `\\boxed{...}`, or a sentence ending in
    "final answer is <number>" (also "Final answer: <number>"). A number
    in mid-sentence ("the answer is 48 minus 5") does not count.
    """
    if any(content.strip() for content in _boxed_contents(text)):
        return True
    return _STATED.search(text) is not None


def _normal_form(text: str) -> str:
    # NFKC folds full-width forms, ligatures and the like, but it would also
    # read "x²" as "x2": superscripts and subscripts keep their form.
    kept = ("<super>", "<sub>")
    return unicodedata.normalize(
        "NFC",
        "".join(
            ch
            if unicodedata.decomposition(ch).startswith(kept)
            else unicodedata.normalize("NFKC", ch)
            for ch in unicodedata.normalize("NFC", text)
        ),
    ).lower()


_TRAILING = ".?!。؟"  # sentence punctuation, dropped from the end of a question


def question_key(question: str) -> str:
    """The identity of a question's text: equal keys mean the same question.

    The key is the normalised text itself, not a hash, so two questions share
    a key only when they are equal after normalising what cannot change their
    answer: Unicode compatibility forms (NFKC, except superscripts and
    subscripts), letter case, runs of whitespace, and sentence punctuation at
    the end. Every digit, sign, separator, operator, symbol, emoji and letter
    of any script is kept, so `"What is 3+2?"` and `"What is 3-2?"` differ.

    Example:
        ```python
        assert question_key("  WHAT IS 2+3?!! ") == question_key("What is 2+3?")
        assert question_key("2^10") != question_key("2*10")
        ```

    Args:
        question: The question's text.

    Returns:
        The key, compared exactly by the episodic store.

    Raises:
        InvalidInputError: `question` is not a string.
    """
    if not isinstance(question, str):
        msg = f"the question must be a string, got {type(question).__name__}"
        raise InvalidInputError(msg)
    text = " ".join(_normal_form(question).split())
    return text.rstrip(_TRAILING + " ")


_FUNCTION_WORDS = frozenset(
    "a an the he she it they him her them his its their "  # noqa: SIM905
    "is are was were be do does did if then so".split()
)
_SYNONYMS = {"much": "many"}

_PROSE = frozenset(".,;!?¿¡\"'“”\u2018\u2019«»—。、،؟")  # every other symbol counts


def reuse_key(question: str, context: Sequence[BaseMessage] = ()) -> str:
    """The identity of a question in its conversation: equal keys, same answer.

    A question asked on its own is its `question_key`. Asked within a
    conversation, the answer depends on the whole conversation: the system
    instructions, the earlier turns and any tool results. Their digest
    (SHA-256 of each message's type, text, tool calls and which call a tool
    result answers) is added, so "What is double that?" in two conversations
    are two questions, while a run that repeats the same tool calls with
    new call ids asks the same one.

    Args:
        question: The question's text (the conversation's last human turn).
        context: Every other message of the conversation, in order.

    Returns:
        The key the episodic store compares exactly.
    """
    key = question_key(question)
    if not context:
        return key
    # Tool call ids differ on every run: only how they link a call to its
    # result counts, so each is replaced by its order of first appearance.
    ids: dict[str, int] = {}

    def link(call_id: object) -> int | None:
        return None if call_id is None else ids.setdefault(str(call_id), len(ids))

    parts = [
        [
            m.type,
            m.text,
            [
                [c["name"], c["args"], link(c.get("id"))]
                for c in getattr(m, "tool_calls", None) or []
            ],
            link(getattr(m, "tool_call_id", None)),
        ]
        for m in context
    ]
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    return f"{key}\n[conversation {digest.hexdigest()}]"


def _terms(text: str) -> tuple[Counter[str | None], set[str], Counter[str]]:
    """A question's numbers, words and symbols, as `same_problem` compares them."""
    text = _POSSESSIVE.sub("", _normal_form(text))
    # Normalised, so that "1,200" and "1200" count as one number.
    numbers = Counter(normalize_answer(raw) for raw in _NUMBER.findall(text))
    rest = _NUMBER.sub(" ", text)
    words = {_SYNONYMS.get(w, w) for w in _LETTERS.findall(rest)} - _FUNCTION_WORDS
    symbols = Counter(
        ch
        for ch in _LETTERS.sub(" ", rest)
        if not ch.isspace()
        and ch not in _PROSE
        and unicodedata.category(ch) != "Sc"  # "$1,200" states the number 1200
    )
    return numbers, words, symbols


def same_problem(a: str, b: str) -> bool:
    """Whether two questions state the same problem in other words.

    They do when they hold the same numbers (as many times each), the same
    symbols and operators, and the same words. The only rewordings allowed:
    word order, letter case, Unicode compatibility forms, the formatting of a
    number (`"1,200"` = `"1200"`), currency signs, a possessive "'s", prose
    punctuation (`. , ; ! ?`, quotes, em dashes), and these function words:
    a, an, the, he, she, it, they, him, her, them, his, its, their, is, are,
    was, were, be, do, does, did, if, then, so; and "much" reads as "many".
    Any other word changed makes another problem: "buys 5 more" is not "eats
    5 more", nor "gets 5 more". When in doubt the answer is no; callers also
    require high similarity.

    Args:
        a: One question.
        b: The other.

    Returns:
        Whether `b` is `a` reworded.

    Example:
        ```python
        assert same_problem(
            "Ann has 3 pens. How many pens does she have?",
            "How many pens does Ann have if she has 3 pens?",
        )
        assert not same_problem(
            "Ann has 3 pens and buys 5 more. How many?",
            "Ann has 3 pens and eats 5 more. How many?",
        )
        ```
    """
    return _terms(a) == _terms(b)
