"""Program-of-thought and the execution verifier, with scripted fake models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import BaseMessage

from langchain_speedup import (
    PROGRAM_PROMPT,
    BestOfN,
    ConfigurationError,
    ConsensusScorer,
    InvalidInputError,
    Ledger,
    ModelError,
    ProgramVerifiedScorer,
    Sandbox,
    answers_equal,
    aprogram_of_thought,
    extract_answer,
    extract_program,
    program_of_thought,
    program_solution,
)
from tests.fakes import FailingChatModel, FakeChatModel, boxed, constant

QUESTION = "Ann has 17 apples and buys 25 more. How many apples does she have?"


def program(body: str) -> str:
    return f"Here is the program:\n```python\n{body}\n```\n"


RIGHT_PROGRAM = program("apples = 17 + 25\nanswer = apples")
WRONG_PROGRAM = program("answer = 17 - 25")
# Candidates of a method that samples programs: each states what it computed.
RIGHT_SOLUTION = RIGHT_PROGRAM + "The final answer is \\boxed{42}."
WRONG_SOLUTION = WRONG_PROGRAM + "The final answer is \\boxed{-8}."


def asks_for_a_program(messages: list[BaseMessage]) -> bool:
    return messages[0].text == PROGRAM_PROMPT


def both_kinds(program_reply: str, prose_reply: str) -> FakeChatModel:
    """Writes `program_reply` when asked for a program, else `prose_reply`."""
    return FakeChatModel(
        responder=lambda m: program_reply if asks_for_a_program(m) else prose_reply
    )


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


class TestExtractProgram:
    @pytest.mark.parametrize(
        ("reply", "expected"),
        [
            (RIGHT_PROGRAM, "apples = 17 + 25\nanswer = apples"),
            ("```py\nanswer = 1\n```", "answer = 1"),
            ("```\nanswer = 2\n```", "answer = 2"),
            (
                "```python\nanswer = 1\n```\nor\n```python\nanswer = 3\n```",
                "answer = 3",
            ),
            ("```python\nanswer = 4", "answer = 4"),  # cut off at the token limit
            ("answer = 5", "answer = 5"),
            ("print(6)", "print(6)"),
            ("The answer is 7.", None),
            ("x = 1", None),
            ("```text\nhello\n```", None),
        ],
        ids=[
            "python-block",
            "py-tag",
            "untagged-block",
            "last-block",
            "unclosed-block",
            "bare-assignment",
            "bare-print",
            "prose",
            "bare-code-stating-nothing",
            "other-language",
        ],
    )
    def test_finds_the_program(self, reply: str, expected: str | None) -> None:
        assert extract_program(reply) == expected


class TestProgramOfThought:
    @pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
    async def test_asks_runs_and_answers_like_extract_answer(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = FakeChatModel(responder=constant(RIGHT_PROGRAM))
        ledger = Ledger()
        config = ledger.config(role="solver")
        if is_async:
            found = await aprogram_of_thought(
                model, QUESTION, sandbox=sandbox, config=config
            )
        else:
            found = program_of_thought(model, QUESTION, sandbox=sandbox, config=config)
        assert found["answer"] == "42" == extract_answer(boxed(42))
        assert found["program"] == "apples = 17 + 25\nanswer = apples"
        assert found["result"] is not None
        assert found["result"]["status"] == "ok"
        assert model.calls[0][0].text == PROGRAM_PROMPT
        assert model.calls[0][-1].text == QUESTION
        assert ledger.usage()["generations"] == 1

    def test_program_solution_states_the_executed_answer(
        self, sandbox: Sandbox
    ) -> None:
        model = FakeChatModel(responder=constant(RIGHT_PROGRAM))
        found = program_of_thought(model, QUESTION, sandbox=sandbox)
        text = program_solution(found)
        assert text is not None
        assert extract_answer(text) == "42"
        assert text.startswith(RIGHT_PROGRAM.rstrip())
        none = program_of_thought(
            FakeChatModel(responder=constant("no")), QUESTION, sandbox=sandbox
        )
        assert program_solution(none) is None

    def test_a_reply_without_a_program_has_no_answer(self, sandbox: Sandbox) -> None:
        model = FakeChatModel(responder=constant("It is 42."))
        found = program_of_thought(model, QUESTION, sandbox=sandbox)
        assert (found["program"], found["result"], found["answer"]) == (
            None,
            None,
            None,
        )

    def test_a_hostile_program_gives_no_answer(self, sandbox: Sandbox) -> None:
        model = FakeChatModel(responder=constant(program("import os\nanswer = 1")))
        found = program_of_thought(model, QUESTION, sandbox=sandbox)
        assert found["result"] is not None
        assert found["result"]["status"] == "refused"
        assert found["answer"] is None

    def test_without_a_sandbox_it_uses_and_closes_its_own(self) -> None:
        model = FakeChatModel(responder=constant(RIGHT_PROGRAM))
        assert program_of_thought(model, QUESTION)["answer"] == "42"

    def test_bad_input_raises(self, sandbox: Sandbox) -> None:
        model = FakeChatModel(responder=constant(RIGHT_PROGRAM))
        with pytest.raises(InvalidInputError):
            program_of_thought(model, "  ", sandbox=sandbox)
        with pytest.raises(ConfigurationError):
            program_of_thought("model", QUESTION)  # type: ignore[arg-type]

    def test_a_failing_model_is_a_model_error(self, sandbox: Sandbox) -> None:
        model = FailingChatModel(responder=constant(RIGHT_PROGRAM), fail_on=1)
        with pytest.raises(ModelError):
            program_of_thought(model, QUESTION, sandbox=sandbox)


class TestProgramVerifiedScorer:
    async def score(
        self,
        scorer: ProgramVerifiedScorer,
        candidate: str,
        *,
        is_async: bool,
        peers: tuple[str, ...] = (),
        precedents: tuple[str, ...] = (),
        ledger: Ledger | None = None,
    ) -> float:
        config = None if ledger is None else ledger.config(role="scorer")
        options = {"peers": peers, "precedents": precedents, "config": config}
        if is_async:
            return await scorer.ascore(QUESTION, candidate, **options)
        return scorer.score(QUESTION, candidate, **options)

    async def test_prose_confirmed_by_its_own_program_is_verified_and_counted(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(RIGHT_PROGRAM, boxed(42))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        ledger = Ledger()
        score = await self.score(scorer, boxed(42), is_async=is_async, ledger=ledger)
        assert score == ProgramVerifiedScorer.VERIFIED
        assert ledger.usage()["scorer_calls"] == 1
        assert ledger.usage()["generations"] == 0
        assert scorer.own_samples == 1

    async def test_the_scorers_program_is_asked_once_per_question(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(RIGHT_PROGRAM, boxed(42))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        for candidate in (boxed(42), boxed(41), boxed(42)):
            await self.score(scorer, candidate, is_async=is_async)
        assert len(model.calls) == 1

    async def test_prose_agreeing_with_prose_is_never_verified(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        # Every prose sample says 41; the program computes 42.
        model = both_kinds(RIGHT_PROGRAM, boxed(41))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        peers = (boxed(41), boxed(41), boxed(41))
        score = await self.score(scorer, boxed(41), peers=peers, is_async=is_async)
        assert score == ProgramVerifiedScorer.CONTRADICTED

    async def test_two_programs_agreeing_are_never_verified(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(WRONG_PROGRAM, "I cannot tell.")
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        score = await self.score(
            scorer, WRONG_SOLUTION, peers=(WRONG_SOLUTION,), is_async=is_async
        )
        assert score == ProgramVerifiedScorer.UNCONFIRMED

    async def test_a_program_candidate_confirmed_by_a_prose_peer(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(WRONG_PROGRAM, boxed(0))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        score = await self.score(
            scorer, RIGHT_SOLUTION, peers=(boxed(42),), is_async=is_async
        )
        assert score == ProgramVerifiedScorer.VERIFIED
        assert model.calls == []  # the peers verified it: no call

    async def test_a_program_candidate_confirmed_by_a_precedent(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(WRONG_PROGRAM, boxed(0))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        score = await self.score(
            scorer, RIGHT_SOLUTION, precedents=("42",), is_async=is_async
        )
        assert score == ProgramVerifiedScorer.VERIFIED

    async def test_a_precedent_never_confirms_prose(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds("no program", boxed(0))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        score = await self.score(
            scorer, boxed(42), precedents=("42",), is_async=is_async
        )
        assert score == ProgramVerifiedScorer.UNCONFIRMED

    async def test_a_program_candidate_confirmed_by_the_scorers_prose(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(WRONG_PROGRAM, "17 + 25 = 42. The final answer is 42.")
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        ledger = Ledger()
        score = await self.score(
            scorer, RIGHT_SOLUTION, is_async=is_async, ledger=ledger
        )
        assert score == ProgramVerifiedScorer.VERIFIED
        assert not asks_for_a_program(model.calls[0])
        assert ledger.usage()["scorer_calls"] == 1

    async def test_a_peers_program_confirms_prose_without_a_call(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(WRONG_PROGRAM, boxed(0))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        score = await self.score(
            scorer, boxed(42), peers=(RIGHT_PROGRAM,), is_async=is_async
        )
        assert score == ProgramVerifiedScorer.VERIFIED
        assert model.calls == []

    async def test_a_failing_or_hostile_program_leaves_prose_unconfirmed(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        hostile = program("().__class__.__bases__[0].__subclasses__()")
        model = both_kinds(hostile, boxed(42))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        score = await self.score(scorer, boxed(42), is_async=is_async)
        assert score == ProgramVerifiedScorer.UNCONFIRMED

    async def test_no_stated_answer_scores_zero(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(RIGHT_PROGRAM, boxed(42))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        assert await self.score(scorer, "try again in 42s", is_async=is_async) == 0.0
        assert await self.score(scorer, program("x = 1"), is_async=is_async) == 0.0
        # A bare program states no answer: the method would report none.
        assert await self.score(scorer, RIGHT_PROGRAM, is_async=is_async) == 0.0
        assert model.calls == []

    async def test_a_candidate_whose_program_disagrees_with_it_is_contradicted(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(RIGHT_PROGRAM, boxed(42))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        candidate = RIGHT_PROGRAM + "The final answer is \\boxed{41}."
        score = await self.score(
            scorer, candidate, peers=(boxed(41),), is_async=is_async
        )
        assert score == ProgramVerifiedScorer.CONTRADICTED

    async def test_a_bare_peer_program_still_confirms(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(WRONG_PROGRAM, boxed(0))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        score = await self.score(
            scorer, boxed(42), peers=(RIGHT_PROGRAM,), is_async=is_async
        )
        assert score == ProgramVerifiedScorer.VERIFIED

    async def test_illustrative_code_that_does_not_run_leaves_prose(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(RIGHT_PROGRAM, boxed(0))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        candidate = program("total = apples +") + "So \\boxed{42}."
        score = await self.score(scorer, candidate, is_async=is_async)
        assert score == ProgramVerifiedScorer.VERIFIED  # by the scorer's program

    async def test_equal_answers_in_other_forms_verify(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(
            program("from fractions import Fraction\nanswer = Fraction(3, 4)"), ""
        )
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        score = await self.score(scorer, r"\boxed{\frac{3}{4}}", is_async=is_async)
        assert score == ProgramVerifiedScorer.VERIFIED

    async def test_a_program_printing_a_sentence_verifies_by_its_last_number(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        printed = program("a, b = 17, 25\nprint(f'Ann has {a} + {b} = {a + b} apples')")
        model = both_kinds(printed, "")
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        score = await self.score(scorer, boxed(42), is_async=is_async)
        assert score == ProgramVerifiedScorer.VERIFIED

    def test_a_failing_scorer_model_is_a_scorer_model_error(
        self, sandbox: Sandbox
    ) -> None:
        model = FailingChatModel(responder=constant(RIGHT_PROGRAM), fail_on=1)
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        with pytest.raises(ModelError) as info:
            scorer.score(QUESTION, boxed(42))
        assert info.value.role == "scorer"

    def test_bad_options_raise(self) -> None:
        model = FakeChatModel(responder=constant(""))
        with pytest.raises(ConfigurationError):
            ProgramVerifiedScorer("model")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            ProgramVerifiedScorer(model, sandbox="box")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            ProgramVerifiedScorer(model, cache_size=-1)
        with pytest.raises(ConfigurationError):
            ProgramVerifiedScorer(model, program_prompt=" ")

    @pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
    async def test_best_of_n_uses_it_unchanged_and_counts_its_call(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        # The solver's prose says 42 each time; consensus would need a quorum,
        # the execution verifier needs one sample and one program.
        model = both_kinds(RIGHT_PROGRAM, boxed(42))
        engine = BestOfN(
            model, budget=4, scorer=ProgramVerifiedScorer(model, sandbox=sandbox)
        )
        result = await engine.arun(QUESTION) if is_async else engine.run(QUESTION)
        assert result["passed"]
        assert result["final_answer"] == "42"
        assert result["budget_used"] == 1
        assert result["usage"]["generations"] == 1
        assert result["usage"]["scorer_calls"] == 1

    def test_best_of_n_does_not_pass_an_answer_only_prose_agrees_on(
        self, sandbox: Sandbox
    ) -> None:
        model = both_kinds(RIGHT_PROGRAM, boxed(41))
        verified = BestOfN(
            model, budget=3, scorer=ProgramVerifiedScorer(model, sandbox=sandbox)
        ).run(QUESTION)
        consensus = BestOfN(model, budget=3, scorer=ConsensusScorer(quorum=2)).run(
            QUESTION
        )
        assert consensus["passed"]  # two wrong prose answers agree
        assert not verified["passed"]
        assert verified["stop_reason"] == "budget"


class TestProgramCandidates:
    @pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
    async def test_every_second_candidate_is_an_executed_program(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = both_kinds(RIGHT_PROGRAM, boxed(41))
        engine = BestOfN(
            model,
            budget=4,
            mode="static",
            scorer=ConsensusScorer(quorum=2),
            program_every=2,
            sandbox=sandbox,
        )
        result = await engine.arun(QUESTION) if is_async else engine.run(QUESTION)
        # Static mode sends the four calls at once, in no fixed order.
        assert sum(asks_for_a_program(call) for call in model.calls) == 2
        answers = [c["answer"] for c in result["candidates"]]
        assert answers == ["41", "42", "41", "42"]
        assert result["candidates"][1]["text"].endswith("\\boxed{42}.")
        assert result["usage"]["generations"] == 4

    def test_programs_and_prose_verify_each_other_without_scorer_samples(
        self, sandbox: Sandbox
    ) -> None:
        model = both_kinds(RIGHT_PROGRAM, boxed(42))
        scorer = ProgramVerifiedScorer(model, sandbox=sandbox)
        engine = BestOfN(
            model,
            budget=4,
            parallelism=2,
            scorer=scorer,
            program_every=2,
            sandbox=sandbox,
        )
        result = engine.run(QUESTION)
        assert result["passed"]
        assert result["final_answer"] == "42"
        assert result["usage"]["generations"] == 2
        # The prose candidate drew the scorer's program; the program
        # candidate was confirmed by the prose before it.
        assert scorer.own_samples == 1

    def test_a_program_that_computes_nothing_stays_as_written(
        self, sandbox: Sandbox
    ) -> None:
        model = both_kinds(program("answer = 1 / 0"), boxed(42))
        result = BestOfN(
            model, budget=2, mode="static", program_every=1, sandbox=sandbox
        ).run(QUESTION)
        assert [c["answer"] for c in result["candidates"]] == [None, None]
        assert not result["passed"]

    def test_options_are_checked(self) -> None:
        model = both_kinds(RIGHT_PROGRAM, boxed(42))
        with pytest.raises(ConfigurationError, match="program_every"):
            BestOfN(model, program_every=-1)
        with pytest.raises(ConfigurationError, match="sandbox"):
            BestOfN(model, program_every=2, sandbox="box")  # type: ignore[arg-type]
        assert BestOfN(model).sandbox is None  # no worker unless programs are asked


class TestAnswersEqual:
    @pytest.mark.parametrize(
        ("a", "b", "equal"),
        [
            ("42", "42", True),
            ("1,200", "1200.00", True),
            ("$1200", "1200", True),
            ("0.1", "0.10000000001", True),
            ("12", "13", False),
            ("12", "-12", False),
            (None, "1", False),
            ("", "", False),
            ("3 apples", "3 apples", True),
            (r"\frac{3}{4}", "0.75", True),
        ],
    )
    def test_plain_forms(self, a: str | None, b: str | None, equal: bool) -> None:
        assert answers_equal(a, b) is equal
        assert answers_equal(b, a) is equal

    @pytest.mark.parametrize(
        ("a", "b", "equal"),
        [
            (r"2\sqrt{3}", r"\sqrt{12}", True),
            (r"\frac{\pi}{2}", r"\pi/2", True),
            (r"\frac{1}{3}", "0.333333", True),
            (r"2\sqrt{3}", r"\sqrt{13}", False),
        ],
    )
    def test_symbolic_forms_with_math_verify(self, a: str, b: str, equal: bool) -> None:
        pytest.importorskip("math_verify")
        assert answers_equal(a, b) is equal

    def test_without_math_verify_only_plain_forms_compare(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import sys

        monkeypatch.setitem(sys.modules, "math_verify", None)
        assert not answers_equal(r"2\sqrt{3}", r"\sqrt{12}")
        assert answers_equal("1,200", "1200")
