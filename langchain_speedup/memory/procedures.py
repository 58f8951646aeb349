"""Procedure memory: a verified program, reused as a function of the question's numbers.

In-context memory makes the model re-derive a solved problem with a longer
prompt; a new-number variant of it needs the same computation on other
numbers. When a question is verified and a program computed its answer, that
program becomes a *procedure*: every number literal of the program that is
one of the question's quantities (a numeral or a number word) becomes a
parameter named after the quantity's place in the question (`qty_1` for its
first), and the procedure is kept only if running it on the question's own
quantities gives the verified answer again.

For a new question with a similar verified episode that has a procedure,
the procedure runs on the new question's quantities. They are read by
position when both questions state as many quantities with the same word
beside one side of each (a template with new numbers and names), else by
one short model call. What the procedure computes is *evidence*, never an
answer: the router decides `procedure`, the method solves the question
without exemplars, and its scorer reads the procedure's solution as an
executed peer's (`MemoryContext.evidence`). With `ProgramVerifiedScorer` the
first prose sample that states the same answer passes; a sample that
disagrees leaves the method to go on, the units it spent counted.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Generator, Sequence
from fractions import Fraction
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from langchain_speedup._internal import Call, check_number, check_prompt, model_call
from langchain_speedup.answers import answers_equal, stated_answer_text
from langchain_speedup.errors import ConfigurationError, ModelError, SandboxError
from langchain_speedup.programs import PROGRAM_PROMPT, extract_program, program_step
from langchain_speedup.sandbox import Sandbox
from langchain_speedup.types import (
    ChatRunnable,
    Episode,
    EpisodeMatch,
    Procedure,
    ProcedureTrial,
    Quantity,
)

__all__ = [
    "PROCEDURE_ERRORS",
    "ProcedureMemory",
    "evidence_of",
    "instantiate",
    "procedure_from_program",
    "question_quantities",
]

logger = logging.getLogger(__name__)


# Number words a template varies ("two times", "one fifth", "a dozen"),
# with the value a program writes for them: a fraction's word is its
# denominator, as in `x * 2 / 3` for "two thirds".
def _counted(words: str, start: int, step: int = 1) -> dict[str, int]:
    return {word: start + step * i for i, word in enumerate(words.split())}


_WORD_VALUES = {
    **_counted("one two three four five six seven eight nine ten eleven twelve", 1),
    **_counted("twenty thirty forty fifty", 20, 10),
    **_counted("third fourth fifth sixth seventh eighth ninth tenth", 3),
    **_counted("thirds fourths fifths sixths sevenths eighths ninths tenths", 3),
    **_counted("twice double half halves", 2, 0),
    **_counted("triple thrice", 3, 0),
    **_counted("quarter quarters", 4, 0),
    "dozen": 12,
    "hundred": 100,
}
# A number as a question states it: "3", "1,200", "4.50", not part of a word
# or an ordinal ("3rd", "COVID19") nor a list marker's dot; or a number word.
_NUMBER = re.compile(
    r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w]|\.\d|,\d{3})"
    rf"|\b(?:{'|'.join(sorted(_WORD_VALUES, key=len, reverse=True))})\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z]+")
_QUANTITY_LINE = re.compile(r"(qty_\d+)\s*[=:]\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")
_MAX_QUANTITIES = 32
"""Questions stating more numbers than this get no procedure."""

_READ_SYSTEM = (
    "You read the numbers of a word problem. Reply with one line per name, "
    "`name = number`, with the number as a plain numeral, and nothing else."
)


def _value(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def _normal(text: str) -> str:
    word = _WORD_VALUES.get(text.lower())
    if word is not None:
        return str(word)
    value = _value(text)
    return str(value.numerator) if value.denominator == 1 else text.replace(",", "")


def _stated(question: str) -> list[tuple[Quantity, str, str]]:
    # Each number with the words just before and after it ("" where none).
    found = []
    for i, match in enumerate(_NUMBER.finditer(question), start=1):
        before = _WORD.findall(question[max(0, match.start() - 40) : match.start()])
        after = _WORD.findall(question[match.end() : match.end() + 40])
        context = " ".join([*before[-1:], match.group(), *after[:1]])
        quantity = Quantity(
            name=f"qty_{i}", value=_normal(match.group()), context=context
        )
        found.append(
            (quantity, "".join(before[-1:]).lower(), "".join(after[:1]).lower())
        )
    return found


def question_quantities(question: str) -> list[Quantity]:
    """The numbers `question` states, in order, named `qty_1`, `qty_2`, ...

    Numerals and number words ("two times", "one fifth": 2 and 5, a
    fraction's word being its denominator), each with the words around it,
    which show a reader which quantity it is.

    Example:
        ```python
        found = question_quantities("Maya buys 3 pens at $1,200 each.")
        [(q["name"], q["value"]) for q in found]  # [("qty_1", "3"), ("qty_2", "1200")]
        ```
    """
    return [quantity for quantity, _, _ in _stated(question)]


class _Parameterise(ast.NodeTransformer):
    """Replaces number literals that are question quantities by their names.

    A value the question states more than once ("383 on Saturday, 383 on
    Sunday") is a guess: the program's k-th literal of it names the
    question's k-th place, later ones the first place. A wrong guess
    computes another answer on a new question, which its sample then
    contradicts.
    """

    def __init__(self, quantities: Sequence[Quantity]) -> None:
        self.places: dict[Fraction, list[str]] = {}
        for q in quantities:
            self.places.setdefault(_value(q["value"]), []).append(q["name"])
        self.seen: dict[Fraction, int] = {}
        self.used: list[str] = []

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float) or value == 0:
            return node
        try:
            number = Fraction(value)
        except (OverflowError, ValueError):  # inf, nan
            return node
        places = self.places.get(number)
        if places is None:
            return node
        seen = self.seen[number] = self.seen.get(number, 0) + 1
        name = places[seen - 1] if seen <= len(places) else places[0]
        if name not in self.used:
            self.used.append(name)
        return ast.copy_location(ast.Name(id=name, ctx=ast.Load()), node)


def _literal(value: str) -> str:
    number = _value(value)
    if number.denominator == 1:
        return str(number.numerator)
    return repr(float(number))


def instantiate(procedure: Procedure) -> str:
    """The procedure's program, preceded by one assignment per parameter.

    The program the sandbox runs: `qty_1 = 3`, `qty_2 = 4`, ..., then the
    procedure's own lines, which read the parameters as variables.
    """
    lines = [f"{p['name']} = {_literal(p['value'])}" for p in procedure["parameters"]]
    return "\n".join([*lines, procedure["program"]])


def _parameterised(program: str, question: str) -> tuple[str, list[Quantity]] | None:
    quantities = question_quantities(question)
    if not quantities or len(quantities) > _MAX_QUANTITIES:
        return None
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return None
    taken = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    if any(q["name"] in taken for q in quantities):
        return None  # the program already uses one of the names
    rewrite = _Parameterise(quantities)
    body = ast.unparse(rewrite.visit(tree))
    if not rewrite.used:
        return None  # computes from no quantity of the question
    by_name = {q["name"]: q for q in quantities}
    return body, [by_name[n] for n in sorted(rewrite.used, key=_place)]


def _place(name: str) -> int:
    return int(name.removeprefix("qty_"))


def procedure_from_program(
    program: str, question: str, answer: str, sandbox: Sandbox
) -> Generator[Call, Any, Procedure | None]:
    """A step: `program` as a procedure of `question`'s quantities, or `None`.

    `None` when no number literal of the program is a quantity of the
    question, or when running the parameterised program on the question's
    own quantities does not give `answer`.
    """
    found = _parameterised(program, question)
    if found is None:
        return None
    body, parameters = found
    procedure = Procedure(program=body, parameters=parameters, answer=answer)
    result = yield Call(
        lambda: sandbox.run(instantiate(procedure)),
        lambda: sandbox.arun(instantiate(procedure)),
    )
    if result["answer"] is None or not answers_equal(result["answer"], answer):
        return None
    procedure["answer"] = result["answer"]
    return procedure


def _by_position(
    source: str, procedure: Procedure, question: str
) -> list[Quantity] | None:
    # The parameters' quantities in the new question, if it states as many
    # numbers as the source with the same word before or after each: the
    # same template with new numbers.
    old, new = _stated(source), _stated(question)
    if not old or len(old) != len(new):
        return None
    for (_, before, after), (_, new_before, new_after) in zip(old, new, strict=True):
        if not ((before and before == new_before) or (after and after == new_after)):
            return None
    stated = {q["name"]: q for q, _, _ in new}
    return [stated[p["name"]] for p in procedure["parameters"]]


def _read_prompt(source: str, procedure: Procedure, question: str) -> list[Any]:
    listed = "\n".join(
        f'{p["name"]} = {p["value"]}  ("{p["context"]}")'
        for p in procedure["parameters"]
    )
    names = ", ".join(p["name"] for p in procedure["parameters"])
    return [
        SystemMessage(_READ_SYSTEM),
        HumanMessage(
            f"Problem A:\n{source}\n\nIts numbers:\n{listed}\n\n"
            f"Problem B:\n{question}\n\n"
            f"The same quantities in problem B ({names}):"
        ),
    ]


def _read_reply(text: str, procedure: Procedure) -> dict[str, str] | None:
    read: dict[str, str] = {}
    for name, number in _QUANTITY_LINE.findall(text):
        read.setdefault(name, number)
    try:
        return {p["name"]: _normal(read[p["name"]]) for p in procedure["parameters"]}
    except (KeyError, ValueError, ZeroDivisionError):
        return None


class ProcedureMemory:
    """Keeps verified programs as procedures and runs them on new questions.

    Give it to `BudgetRouter(procedures=...)` (or `create_speedup_graph`).
    When a question is verified, the router asks it for a procedure
    (`learn`): from the procedure that served the question, if the answer
    agrees with it; else from a candidate's program that computes the
    verified answer; else from the scorer's own program
    (`ProgramVerifiedScorer.program_for`); else, with `write_programs`, from
    one program the model writes for the question, kept only if it computes
    the verified answer. When a similar episode has a procedure, the router
    asks it to run the procedure on the question (`recall`) and, when it
    computes an answer, hands that to the method as evidence. Model calls
    count under the `memory` role, in `Route.usage` for `recall` and in the
    answer's usage for `learn`. See the module's docstring for the rules.

    With `ProgramVerifiedScorer` a prose sample that states the procedure's
    answer is verified by it, so a new-number variant of a solved question
    costs one generation when the procedure holds. With `ConsensusScorer`
    the evidence is one more vote.

    Example:
        ```python
        router = BudgetRouter(
            BestOfN(model, mode="adaptive", scorer=ProgramVerifiedScorer(model)),
            store=store,
            procedures=ProcedureMemory(),
        )
        ```

    Args:
        model: The model that reads quantities and writes programs; the
            router's solver model when `None`.
        sandbox: Where procedures run; a `Sandbox()` of its own when `None`.
        write_programs: Ask the model for a program when a verified answer
            came with none (one call per such question).
        program_prompt: The system prompt asking for a program.
        min_similarity: The lowest similarity of an episode whose procedure
            is tried. The similarity gate does not apply: evidence never
            enters the prompt, so it cannot mislead the model the way an
            exemplar can.

    Raises:
        ConfigurationError: An option is invalid.
    """

    def __init__(
        self,
        model: ChatRunnable | None = None,
        *,
        sandbox: Sandbox | None = None,
        write_programs: bool = True,
        program_prompt: str = PROGRAM_PROMPT,
        min_similarity: float = 0.6,
    ) -> None:
        if not isinstance(write_programs, bool):
            msg = f"`write_programs` must be a bool, got {write_programs!r}"
            raise ConfigurationError(msg)
        self.model = model
        self.sandbox = Sandbox.checked(sandbox) or Sandbox()
        self.write_programs = write_programs
        self.program_prompt = check_prompt("program_prompt", program_prompt)
        self.min_similarity = check_number(
            "min_similarity", min_similarity, low=-1.0, high=1.0
        )

    def recall(
        self,
        question: str,
        matches: Sequence[EpisodeMatch],
        *,
        model: ChatRunnable,
        config: RunnableConfig | None,
    ) -> Generator[Call, Any, tuple[ProcedureTrial | None, str]]:
        """A step: a similar episode's procedure run on `question`.

        The most similar match (at least `min_similarity`) whose procedure
        reads the question's numbers by position; else the most similar
        match with a procedure, its quantities read by one model call.

        Returns:
            The trial (`None` when no match has a procedure or it could not
            run on the question) and a sentence saying what happened.
        """
        candidates = sorted(
            (
                m
                for m in matches
                if m["episode"].get("procedure")
                and m["similarity"] >= self.min_similarity
            ),
            key=lambda m: -m["similarity"],
        )
        if not candidates:
            return None, ""
        read_by: Literal["position", "model"] = "position"
        episode, parameters = next(
            (
                (m["episode"], found)
                for m in candidates
                if (
                    found := _by_position(
                        m["episode"]["question"], m["episode"]["procedure"], question
                    )
                )
                is not None
            ),
            (candidates[0]["episode"], None),
        )
        stored = episode["procedure"]
        if parameters is None:
            read_by = "model"
            parameters = yield from self._read(episode, question, model, config)
            if parameters is None:
                return None, (
                    f"episode {episode['id']}'s procedure found no values for its "
                    "quantities in the question"
                )
        procedure = Procedure(
            program=stored["program"], parameters=parameters, answer=""
        )
        result = yield Call(
            lambda: self.sandbox.run(instantiate(procedure)),
            lambda: self.sandbox.arun(instantiate(procedure)),
        )
        if result["answer"] is None:
            why = result["error"] or "it stated no answer"
            return None, f"episode {episode['id']}'s procedure did not run: {why}"
        procedure["answer"] = result["answer"]
        trial = ProcedureTrial(
            episode_id=episode["id"], procedure=procedure, read_by=read_by
        )
        return trial, (
            f"episode {episode['id']}'s procedure computes {result['answer']} from "
            f"the quantities read by {read_by}"
        )

    def _read(
        self,
        episode: Episode,
        question: str,
        model: ChatRunnable,
        config: RunnableConfig | None,
    ) -> Generator[Call, Any, list[Quantity] | None]:
        # One model call reads the values of the procedure's quantities.
        stored = episode["procedure"]
        prompt = _read_prompt(episode["question"], stored, question)
        reader = self.model or model
        reply = yield model_call(
            lambda: reader.invoke(prompt, config),
            lambda: reader.ainvoke(prompt, config),
            role="memory",
        )
        values = _read_reply(reply.text, stored)
        if values is None:
            return None
        return [
            Quantity(name=p["name"], value=values[p["name"]], context="")
            for p in stored["parameters"]
        ]

    def learn(
        self,
        question: str,
        final_answer: str,
        *,
        trial: ProcedureTrial | None,
        solutions: Sequence[str],
        programs: Sequence[str],
        model: ChatRunnable,
        config: RunnableConfig | None,
    ) -> Generator[Call, Any, Procedure | None]:
        """A step: the procedure to store with `question`'s verified answer.

        Args:
            question: The question.
            final_answer: Its verified final answer.
            trial: The procedure that served the question, if one did.
            solutions: The method's candidates, whose programs are tried.
            programs: Other programs run for the question (a scorer's own).
            model: The model asked to write a program (unless `model` was given).
            config: Passed to that call, under the `memory` role.

        Returns:
            The procedure, or `None` when no program computes the answer.
        """
        if trial is not None and answers_equal(
            trial["procedure"]["answer"], final_answer
        ):
            carried = _carried(trial, question)
            if carried is not None:
                return carried
        found = [
            p
            for text in solutions
            if answers_equal(stated_answer_text(text), final_answer)
            and (p := extract_program(text)) is not None
        ]
        for program in [*found, *programs]:
            procedure = yield from procedure_from_program(
                program, question, final_answer, self.sandbox
            )
            if procedure is not None:
                return procedure
        if not self.write_programs:
            return None
        written = yield from program_step(
            self.model or model,
            question,
            sandbox=self.sandbox,
            prompt=self.program_prompt,
            config=config,
            role="memory",
        )
        if written["program"] is None or not answers_equal(
            written["answer"], final_answer
        ):
            return None
        return (
            yield from procedure_from_program(
                written["program"], question, final_answer, self.sandbox
            )
        )


class _Rename(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.names:
            return ast.copy_location(
                ast.Name(id=self.names[node.id], ctx=node.ctx), node
            )
        return node


def _carried(trial: ProcedureTrial, question: str) -> Procedure | None:
    """The trial's procedure as a procedure of `question`, which it served.

    Parameters read by position keep their names; parameters a model read
    are renamed after the place of their value in `question`, so the next
    question can be read by position too. `None` when a value is not one
    of the question's numbers.
    """
    used = trial["procedure"]
    stated = {q["name"]: q for q in question_quantities(question)}
    if trial["read_by"] == "position":
        names = {p["name"]: p["name"] for p in used["parameters"]}
    else:
        by_value: dict[Fraction, str] = {}
        for q in stated.values():
            by_value.setdefault(_value(q["value"]), q["name"])
        names = {}
        for p in used["parameters"]:
            if (name := by_value.get(_value(p["value"]))) is None:
                return None
            names[p["name"]] = name
        if len(set(names.values())) != len(names):
            return None  # two parameters read as one number
    if any(name not in stated for name in names.values()):
        return None
    program = ast.unparse(_Rename(names).visit(ast.parse(used["program"])))
    parameters = sorted(
        (stated[names[p["name"]]] for p in used["parameters"]),
        key=lambda q: _place(q["name"]),
    )
    return Procedure(program=program, parameters=parameters, answer=used["answer"])


def evidence_of(trial: ProcedureTrial) -> str:
    """The trial as a solution a scorer reads: the program, then the answer it computed.

    A fenced program followed by its answer stated, so that scorers count it
    as an executed peer (`ProgramVerifiedScorer`) or as a vote (consensus).
    """
    procedure = trial["procedure"]
    reply = f"```python\n{instantiate(procedure)}\n```"
    return f"{reply}\n\nThe final answer is \\boxed{{{procedure['answer']}}}."


PROCEDURE_ERRORS = (ModelError, SandboxError)
"""What a procedure's own work may raise; the question goes on without it."""
