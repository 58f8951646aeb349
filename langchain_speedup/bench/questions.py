"""GSM-style word problems for the demo and benchmarks, and the prompt they use.

Each `ProblemTemplate` has a wording, a paraphrase with the same numbers and
names, value sets for variants with new numbers, and its gold answer as a
function; gold answers only ever grade.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from typing_extensions import TypedDict

__all__ = [
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

DEMO_SYSTEM_PROMPT = (
    "You solve grade-school math word problems. Write only the arithmetic, one "
    "short step per line, then the final answer. Example:\n"
    "Problem: Tom has 3 bags with 5 apples in each bag. He eats 2 apples. How "
    "many apples are left?\n"
    "3 * 5 = 15\n"
    "15 - 2 = 13\n"
    "The final answer is \\boxed{13}."
)
"""Short answers keep runs fast on a CPU; the example is not from any stream."""


@dataclass(frozen=True, kw_only=True)
class ProblemTemplate:
    """A word problem with slots, a paraphrase, and its answer as a function."""

    key: str
    """Short stable name of the problem."""
    text: str
    """The wording, with `str.format` slots."""
    paraphrase: str
    """Another wording of the same problem, with the same slots."""
    solve: Callable[[Values], int]
    """Computes the gold answer from one value set."""
    variants: tuple[Values, ...]
    """Value sets; the first is the original problem."""

    def question(self, variant: int = 0, *, paraphrased: bool = False) -> str:
        """The question text of one variant."""
        wording = self.paraphrase if paraphrased else self.text
        return wording.format(**self.variants[variant])

    def answer(self, variant: int = 0) -> int:
        """The gold answer of one variant."""
        return self.solve(self.variants[variant])


def _int(values: Values, key: str) -> int:
    value = values[key]
    assert isinstance(value, int), key
    return value


TEMPLATES: tuple[ProblemTemplate, ...] = (
    ProblemTemplate(
        key="change",
        text="{name} buys {n} notebooks at ${p} each and pays with a ${bill} bill. How much change does {name} get, in dollars?",
        paraphrase="Paying with a ${bill} bill, {name} gets {n} notebooks that cost ${p} apiece. How many dollars of change should {name} receive?",
        solve=lambda v: _int(v, "bill") - _int(v, "n") * _int(v, "p"),
        variants=(
            {"name": "Maya", "n": 3, "p": 4, "bill": 20},
            {"name": "Omar", "n": 5, "p": 3, "bill": 50},
            {"name": "Lena", "n": 4, "p": 6, "bill": 30},
        ),
    ),
    ProblemTemplate(
        key="garden",
        text="{name} plants {rows} rows of {crop} with {per} plants in each row. Then {lost} of the plants die. How many plants are left?",
        paraphrase="In {name}'s garden there are {rows} rows of {crop}, each row holding {per} plants. If {lost} plants die, how many plants remain?",
        solve=lambda v: _int(v, "rows") * _int(v, "per") - _int(v, "lost"),
        variants=(
            {"name": "Ben", "rows": 6, "crop": "tomatoes", "per": 8, "lost": 5},
            {"name": "Ana", "rows": 4, "crop": "peppers", "per": 9, "lost": 7},
            {"name": "Raj", "rows": 7, "crop": "beans", "per": 5, "lost": 3},
        ),
    ),
    ProblemTemplate(
        key="reading",
        text="{name} reads {p} pages every day for {d} days, then reads {extra} more pages on Sunday. How many pages does {name} read in total?",
        paraphrase="For {d} days {name} reads {p} pages a day, and on Sunday {name} reads another {extra} pages. What is the total number of pages read?",
        solve=lambda v: _int(v, "p") * _int(v, "d") + _int(v, "extra"),
        variants=(
            {"name": "Nina", "p": 12, "d": 5, "extra": 9},
            {"name": "Tom", "p": 15, "d": 4, "extra": 11},
            {"name": "Ivy", "p": 8, "d": 6, "extra": 14},
        ),
    ),
    ProblemTemplate(
        key="savings",
        text="{name} saves ${w} every week. After {n} weeks, {name} spends ${s} on a {thing}. How many dollars does {name} have left?",
        paraphrase="Each week {name} puts away ${w}. Once {n} weeks have passed, {name} buys a {thing} for ${s}. How much money, in dollars, is left?",
        solve=lambda v: _int(v, "w") * _int(v, "n") - _int(v, "s"),
        variants=(
            {"name": "Leo", "w": 7, "n": 6, "s": 15, "thing": "kite"},
            {"name": "Sara", "w": 9, "n": 5, "s": 18, "thing": "game"},
            {"name": "Kim", "w": 6, "n": 8, "s": 20, "thing": "book"},
        ),
    ),
    ProblemTemplate(
        key="tickets",
        text="Adult tickets cost ${a} and child tickets cost ${c}. A family buys {na} adult tickets and {nc} child tickets. What is the total cost in dollars?",
        paraphrase="A family gets {na} tickets for adults at ${a} each and {nc} tickets for children at ${c} each. How many dollars do they pay altogether?",
        solve=lambda v: _int(v, "a") * _int(v, "na") + _int(v, "c") * _int(v, "nc"),
        variants=(
            {"a": 12, "c": 5, "na": 2, "nc": 3},
            {"a": 10, "c": 4, "na": 3, "nc": 2},
            {"a": 15, "c": 6, "na": 2, "nc": 4},
        ),
    ),
    ProblemTemplate(
        key="pizza",
        text="A pizza is cut into {s} slices. {name} orders {p} pizzas, and {k} friends eat {e} slices each. How many slices are left?",
        paraphrase="{name} orders {p} pizzas with {s} slices in each. If {k} friends each eat {e} slices, how many slices remain?",
        solve=lambda v: _int(v, "s") * _int(v, "p") - _int(v, "k") * _int(v, "e"),
        variants=(
            {"name": "Eva", "s": 8, "p": 3, "k": 5, "e": 4},
            {"name": "Sam", "s": 6, "p": 4, "k": 7, "e": 3},
            {"name": "Zoe", "s": 10, "p": 2, "k": 4, "e": 3},
        ),
    ),
    ProblemTemplate(
        key="boxes",
        text="A baker has {total} cookies and puts {per} cookies in each box. She sells every full box for ${price}. How many dollars does she make?",
        paraphrase="{total} cookies are packed {per} to a box, and each box sells for ${price}. How much money, in dollars, do the boxes bring in?",
        solve=lambda v: _int(v, "total") // _int(v, "per") * _int(v, "price"),
        variants=(
            {"total": 48, "per": 6, "price": 5},
            {"total": 36, "per": 4, "price": 7},
            {"total": 60, "per": 5, "price": 3},
        ),
    ),
    ProblemTemplate(
        key="ages",
        text="{a} is {x} years old. {b} is {y} years older than {a}. How old will {b} be in {z} years?",
        paraphrase="{b} is {y} years older than {a}, who is {x} now. What will {b}'s age be {z} years from now?",
        solve=lambda v: _int(v, "x") + _int(v, "y") + _int(v, "z"),
        variants=(
            {"a": "Mia", "b": "Jon", "x": 9, "y": 4, "z": 6},
            {"a": "Ali", "b": "Rosa", "x": 12, "y": 7, "z": 3},
            {"a": "Tia", "b": "Max", "x": 15, "y": 5, "z": 8},
        ),
    ),
    ProblemTemplate(
        key="marbles",
        text="{name} has {total} marbles and shares them equally among {k} friends. Each friend then finds {more} more marbles. How many marbles does each friend have now?",
        paraphrase="{k} friends split {name}'s {total} marbles evenly, and afterwards each of them finds another {more}. How many marbles does each friend hold?",
        solve=lambda v: _int(v, "total") // _int(v, "k") + _int(v, "more"),
        variants=(
            {"name": "Luis", "total": 24, "k": 4, "more": 3},
            {"name": "Emma", "total": 35, "k": 5, "more": 6},
            {"name": "Noah", "total": 42, "k": 6, "more": 2},
        ),
    ),
    ProblemTemplate(
        key="train",
        text="A train travels at {v} miles per hour for {h} hours, then {extra} more miles to the last stop. How many miles does it travel in all?",
        paraphrase="Moving at {v} miles per hour, a train runs for {h} hours and then covers another {extra} miles to reach its last stop. What total distance, in miles, does it cover?",
        solve=lambda v: _int(v, "v") * _int(v, "h") + _int(v, "extra"),
        variants=(
            {"v": 60, "h": 3, "extra": 25},
            {"v": 45, "h": 4, "extra": 18},
            {"v": 70, "h": 2, "extra": 33},
        ),
    ),
    ProblemTemplate(
        key="apples",
        text="{name} picks {a} apples in the morning and twice as many in the afternoon. {name} gives away {g} apples. How many apples are left?",
        paraphrase="In the morning {name} picks {a} apples, and in the afternoon double that number. After giving {g} apples away, how many does {name} keep?",
        solve=lambda v: _int(v, "a") * 3 - _int(v, "g"),
        variants=(
            {"name": "Ella", "a": 14, "g": 10},
            {"name": "Finn", "a": 11, "g": 8},
            {"name": "Gia", "a": 16, "g": 13},
        ),
    ),
    ProblemTemplate(
        key="class",
        text="A class has {g} girls and {b} boys. The teacher puts all of them into teams of {s}. How many teams are there?",
        paraphrase="There are {b} boys and {g} girls in a class, and the teacher makes teams of {s} students from all of them. How many teams does she make?",
        solve=lambda v: (_int(v, "g") + _int(v, "b")) // _int(v, "s"),
        variants=(
            {"g": 14, "b": 10, "s": 4},
            {"g": 12, "b": 15, "s": 3},
            {"g": 16, "b": 14, "s": 5},
        ),
    ),
)


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
