"""The GSM-style word problems of `problems.toml`, their streams and prompts."""

from __future__ import annotations

import ast
import operator
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from typing_extensions import TypedDict

__all__ = [
    "BENCH_STEP_PROMPT",
    "DEMO_SYSTEM_PROMPT",
    "TEMPLATES",
    "Kind",
    "ProblemTemplate",
    "StreamQuestion",
    "build_stream",
    "dissimilar_stream",
    "problems",
    "similar_stream",
]

Kind = Literal["new", "repeat", "paraphrase", "new_numbers"]
"""How a question of a stream relates to the questions before it."""

Values = Mapping[str, int | str]

_EXAMPLE = (
    "Example:\n"
    "Problem: Tom has 3 bags with 5 apples in each bag. He eats 2 apples. How "
    "many apples are left?\n"
    "3 * 5 = 15\n"
    "15 - 2 = 13\n"
    "The final answer is \\boxed{13}."
)

DEMO_SYSTEM_PROMPT = (
    "You solve grade-school math word problems. Write only the arithmetic, one "
    "short step per line, then the final answer. " + _EXAMPLE
)
"""Short answers keep runs fast on a CPU; the example is not from any stream."""

BENCH_STEP_PROMPT = (
    "You solve grade-school math word problems one step at a time. "
    + _EXAMPLE
    + "\nReply with the next line of the solution only. After the last step, add "
    "the final answer line as in the example."
)
"""Tree-of-Thoughts' system prompt: the demo's format, one step per reply."""

_OPERATORS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
}


def _evaluate(node: ast.expr, values: Values) -> int:
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        apply = _OPERATORS[type(node.op)]
        return apply(_evaluate(node.left, values), _evaluate(node.right, values))
    value: object = values.get(node.id) if isinstance(node, ast.Name) else None
    if isinstance(node, ast.Constant):
        value = node.value
    if not isinstance(value, int):
        msg = f"not integer arithmetic over the slots: {ast.unparse(node)!r}"
        raise ValueError(msg)
    return value


@dataclass(frozen=True, kw_only=True)
class ProblemTemplate:
    """A word problem with slots, a paraphrase, and its answer as an expression."""

    key: str
    """Short stable name of the problem."""
    text: str
    """The wording, with `str.format` slots."""
    paraphrase: str
    """Another wording of the same problem, with the same slots."""
    gold: str
    """The gold answer: `+`, `-`, `*` and `//` over the slots, e.g. `bill - n * p`."""
    variants: tuple[Values, ...]
    """Value sets; the first is the original problem."""

    def question(self, variant: int = 0, *, paraphrased: bool = False) -> str:
        """The question text of one variant."""
        wording = self.paraphrase if paraphrased else self.text
        return wording.format(**self.variants[variant])

    def answer(self, variant: int = 0) -> int:
        """The gold answer of one variant."""
        expression = ast.parse(self.gold, mode="eval").body
        return _evaluate(expression, self.variants[variant])


_PROBLEMS = Path(__file__).with_name("problems.toml").read_text(encoding="utf-8")
TEMPLATES: tuple[ProblemTemplate, ...] = tuple(
    ProblemTemplate(**{**row, "variants": tuple(row["variants"])})
    for row in tomllib.loads(_PROBLEMS)["problem"]
)
"""The problems of `problems.toml`, in order."""


class StreamQuestion(TypedDict):
    """One question of a stream, with what is needed to grade it."""

    question: str
    gold: int
    template: str
    variant: int
    kind: Kind


def _item(template: ProblemTemplate, variant: int, kind: Kind) -> StreamQuestion:
    return StreamQuestion(
        question=template.question(variant, paraphrased=kind == "paraphrase"),
        gold=template.answer(variant),
        template=template.key,
        variant=variant,
        kind=kind,
    )


def build_stream(
    templates: Sequence[ProblemTemplate] = TEMPLATES[:5],
) -> list[StreamQuestion]:
    """Lay problems out as a stream mixing S1-S4 similarity.

    Every template first appears as a new problem; later it comes back as an
    exact repeat, as a paraphrase, and with new numbers, interleaved with the
    other templates so that memory has to find the right precedent.

    Args:
        templates: The problems to use, at least two.

    Returns:
        The stream, `4 * len(templates) - 1` questions for the default plan.
    """
    if len(templates) < 2:
        msg = f"`build_stream` needs at least 2 templates, got {len(templates)}"
        raise ValueError(msg)
    plan: list[tuple[int, int, Kind]] = []
    n = len(templates)
    for i in range(n):
        plan.append((i, 0, "new"))
        if i >= 1:
            plan.append((i - 1, 0, "repeat"))
        if i >= 2:
            plan.append((i - 2, 0, "paraphrase"))
            plan.append((i - 2, 1, "new_numbers"))
    plan += [(n - 1, 0, "repeat"), (n - 2, 0, "paraphrase"), (n - 2, 1, "new_numbers")]
    plan += [(n - 1, 0, "paraphrase"), (n - 1, 1, "new_numbers")]
    return [_item(templates[i], v, kind) for i, v, kind in plan]


def problems(
    templates: Sequence[ProblemTemplate] = TEMPLATES, *, variants: int = 2
) -> list[StreamQuestion]:
    """Distinct problems for static-versus-adaptive benchmarks (no repeats).

    Args:
        templates: The problems to draw from.
        variants: How many value sets of each template to include.

    Returns:
        `len(templates) * variants` questions, every one a new problem.
    """
    return [_item(t, v, "new") for v in range(variants) for t in templates]


def dissimilar_stream(
    templates: Sequence[ProblemTemplate] = TEMPLATES,
) -> list[StreamQuestion]:
    """One problem of each template: no two questions share a problem."""
    return problems(templates, variants=1)


def similar_stream(
    templates: Sequence[ProblemTemplate] = TEMPLATES[:4],
) -> list[StreamQuestion]:
    """Each problem, then its paraphrase and two variants with new numbers.

    The problems come first, then the paraphrases, then each round of new
    numbers, so every question after the first `len(templates)` has a solved
    relative earlier in the stream, and none repeats one exactly.
    """
    plan: list[tuple[int, Kind]] = [
        (0, "new"),
        (0, "paraphrase"),
        (1, "new_numbers"),
        (2, "new_numbers"),
    ]
    return [_item(t, v, kind) for v, kind in plan for t in templates]
