"""Procedure memory: verified programs kept as functions of the question's numbers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.store.base import BaseStore

from langchain_speedup import (
    BestOfN,
    BudgetRouter,
    ConfigurationError,
    ConsensusScorer,
    Procedure,
    ProcedureMemory,
    ProgramVerifiedScorer,
    Sandbox,
)
from langchain_speedup._internal import adrive, drive
from langchain_speedup.memory.procedures import (
    evidence_of,
    instantiate,
    procedure_from_program,
    question_quantities,
)
from langchain_speedup.types import EpisodeMatch, ProcedureTrial
from tests.fakes import (
    FakeChatModel,
    HashEmbeddings,
    boxed,
    episodes_in,
    last_human,
    make_episode,
)

PENS = (
    "Maya buys 3 pens at $4 each and 2 notebooks at $5 each. How much does she spend?"
)
NEW_PENS = (
    "Tom buys 7 pens at $2 each and 3 notebooks at $6 each. How much does he spend?"
)
REWORDED_PENS = (
    "How much is spent on 6 notebooks costing $1 each together with 5 pens "
    "costing $8 each?"
)
PEN_PROGRAM = "pens = {0}\nprice = {1}\nbooks = {2}\ncost = {3}\nanswer = pens * price + books * cost"


def pens_total(question: str) -> int:
    a, b, c, d = (int(n) for n in re.findall(r"\d+", question))
    if question.startswith("How much"):  # REWORDED_PENS states notebooks first
        c, d, a, b = a, b, c, d
    return a * b + c * d


def asks_program(messages: list[BaseMessage]) -> bool:
    first = messages[0]
    return isinstance(first, SystemMessage) and "Python program" in first.text


class Solver:
    """Programs follow the question's numbers; prose answers are right unless told."""

    def __init__(self, *, wrong_prose: bool = False, reader: str | None = None) -> None:
        self.wrong_prose = wrong_prose
        self.reader = reader  # the reply to a quantity-reading call

    def __call__(self, messages: list[BaseMessage]) -> str:
        question = last_human(messages)
        if "Problem B" in question:
            assert self.reader is not None, "no quantity reading expected"
            return self.reader
        numbers = re.findall(r"\d+", question)
        if asks_program(messages):
            return f"```python\n{PEN_PROGRAM.format(*numbers)}\n```"
        total = pens_total(question)
        return boxed(total + 1 if self.wrong_prose else total)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


def procedure_of(
    program: str, question: str, answer: str, box: Sandbox
) -> Procedure | None:
    return drive(procedure_from_program(program, question, answer, box))


class TestQuantities:
    def test_numbers_in_order_normalised_with_their_words(self) -> None:
        found = question_quantities(
            "Ann pays $1,200.50 for 3 chairs on the 2nd day, 15% off."
        )
        assert [(q["name"], q["value"]) for q in found] == [
            ("qty_1", "1200.50"),
            ("qty_2", "3"),
            ("qty_3", "15"),
        ]
        assert found[1]["context"] == "for 3 chairs"

    def test_number_words_are_quantities(self) -> None:
        found = question_quantities("Two thirds are red; Bo picks twice as many.")
        assert [(q["value"], q["context"]) for q in found] == [
            ("2", "Two thirds"),
            ("3", "Two thirds are"),
            ("2", "picks twice as"),
        ]
        assert question_quantities("Someone bought stones.") == []

    def test_no_numbers(self) -> None:
        assert question_quantities("How many legs does a spider have?") == []


class TestProcedureFromProgram:
    def test_question_numbers_become_parameters_and_the_check_reruns_it(
        self, sandbox: Sandbox
    ) -> None:
        procedure = procedure_of(PEN_PROGRAM.format(3, 4, 2, 5), PENS, "22", sandbox)
        assert procedure is not None
        assert [p["name"] for p in procedure["parameters"]] == [
            "qty_1",
            "qty_2",
            "qty_3",
            "qty_4",
        ]
        assert procedure["program"].startswith("pens = qty_1\nprice = qty_2\n")
        assert sandbox.run(instantiate(procedure))["answer"] == "22"

    def test_a_repeated_value_names_its_places_in_order(self, sandbox: Sandbox) -> None:
        question = (
            "Lu picks 383 figs on Monday and 383 figs on Tuesday, then two times "
            "Monday's figs. How many figs?"
        )
        program = "mon = 383\ntue = 383\nlater = 2 * mon\nanswer = mon + tue + later"
        procedure = procedure_of(program, question, "1532", sandbox)
        assert procedure is not None
        assert procedure["program"].startswith("mon = qty_1\ntue = qty_2\n")
        assert "later = qty_3 * mon" in procedure["program"]
        variant = question.replace("383", "140", 1).replace("383", "258")
        variant = variant.replace("two times", "four times")
        memory = ProcedureMemory(sandbox=sandbox)
        model = FakeChatModel(responder=Solver())
        trial, _ = drive(
            memory.recall(
                variant, [match_of(question, procedure)], model=model, config=None
            )
        )
        assert trial is not None
        assert trial["read_by"] == "position"
        assert trial["procedure"]["answer"] == str(140 + 258 + 4 * 140)

    def test_constants_that_are_not_quantities_stay(self, sandbox: Sandbox) -> None:
        program = "answer = 3 * 4 + 2 * 5 + 0 * 7"
        procedure = procedure_of(program, PENS, "22", sandbox)
        assert procedure is not None
        assert "7" in procedure["program"]

    def test_a_program_using_no_quantity_is_no_procedure(
        self, sandbox: Sandbox
    ) -> None:
        assert procedure_of("answer = 22", PENS, "22", sandbox) is None

    def test_a_program_that_does_not_compute_the_answer_is_no_procedure(
        self, sandbox: Sandbox
    ) -> None:
        assert procedure_of("answer = 3 * 4 * 2 * 5", PENS, "22", sandbox) is None
        assert procedure_of("answer = 3 +", PENS, "22", sandbox) is None

    def test_a_program_using_the_parameter_names_is_no_procedure(
        self, sandbox: Sandbox
    ) -> None:
        program = "qty_1 = 3\nanswer = qty_1 * 4 + 2 * 5"
        assert procedure_of(program, PENS, "22", sandbox) is None


def match_of(
    question: str, procedure: Procedure | None, similarity: float = 0.9
) -> EpisodeMatch:
    episode = make_episode(
        question, final_answer=procedure["answer"] if procedure else "22"
    )
    if procedure is not None:
        episode["procedure"] = procedure
    return EpisodeMatch(episode=episode, similarity=similarity)


async def recall(
    memory: ProcedureMemory,
    question: str,
    matches: list[EpisodeMatch],
    model: FakeChatModel,
    *,
    is_async: bool,
) -> tuple[ProcedureTrial | None, str]:
    step = memory.recall(question, matches, model=model, config=None)
    return await adrive(step) if is_async else drive(step)


class TestRecall:
    @pytest.fixture
    def stored(self, sandbox: Sandbox) -> Procedure:
        procedure = procedure_of(PEN_PROGRAM.format(3, 4, 2, 5), PENS, "22", sandbox)
        assert procedure is not None
        return procedure

    async def test_same_template_is_read_by_position_without_a_call(
        self, stored: Procedure, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = FakeChatModel(responder=Solver())
        memory = ProcedureMemory(sandbox=sandbox)
        trial, why = await recall(
            memory, NEW_PENS, [match_of(PENS, stored)], model, is_async=is_async
        )
        assert trial is not None
        assert trial["read_by"] == "position"
        assert trial["procedure"]["answer"] == str(pens_total(NEW_PENS))
        assert model.calls == []
        assert "computes 32" in why

    async def test_another_wording_is_read_by_one_model_call(
        self, stored: Procedure, sandbox: Sandbox, is_async: bool
    ) -> None:
        reader = "qty_1 = 5\nqty_2 = 8\nqty_3 = 6\nqty_4 = 1"
        model = FakeChatModel(responder=Solver(reader=reader))
        memory = ProcedureMemory(sandbox=sandbox)
        trial, _ = await recall(
            memory, REWORDED_PENS, [match_of(PENS, stored)], model, is_async=is_async
        )
        assert trial is not None
        assert trial["read_by"] == "model"
        assert trial["procedure"]["answer"] == str(pens_total(REWORDED_PENS))
        assert len(model.calls) == 1

    async def test_a_reply_missing_a_quantity_tries_nothing(
        self, stored: Procedure, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = FakeChatModel(responder=Solver(reader="qty_1 = 5\nqty_2 = 8"))
        memory = ProcedureMemory(sandbox=sandbox)
        trial, why = await recall(
            memory, REWORDED_PENS, [match_of(PENS, stored)], model, is_async=is_async
        )
        assert trial is None
        assert "found no values" in why

    async def test_the_most_similar_procedure_runs_and_matches_without_one_are_skipped(
        self, stored: Procedure, sandbox: Sandbox, is_async: bool
    ) -> None:
        other = Procedure(
            program="answer = qty_1 * qty_2 * qty_3 * qty_4",
            parameters=stored["parameters"],
            answer="120",
        )
        matches = [
            match_of(PENS, other, similarity=0.8),
            match_of(PENS, stored, similarity=0.9),
            match_of(PENS, None, similarity=0.99),
        ]
        model = FakeChatModel(responder=Solver())
        trial, _ = await recall(
            ProcedureMemory(sandbox=sandbox),
            NEW_PENS,
            matches,
            model,
            is_async=is_async,
        )
        assert trial is not None
        assert trial["episode_id"] == matches[1]["episode"]["id"]

    async def test_matches_below_the_lowest_similarity_are_not_tried(
        self, stored: Procedure, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = FakeChatModel(responder=Solver())
        memory = ProcedureMemory(sandbox=sandbox, min_similarity=0.6)
        trial, why = await recall(
            memory, NEW_PENS, [match_of(PENS, stored, 0.59)], model, is_async=is_async
        )
        assert (trial, why) == (None, "")

    async def test_no_procedure_no_trial(
        self, sandbox: Sandbox, is_async: bool
    ) -> None:
        model = FakeChatModel(responder=Solver())
        trial, why = await recall(
            ProcedureMemory(sandbox=sandbox),
            NEW_PENS,
            [match_of(PENS, None)],
            model,
            is_async=is_async,
        )
        assert (trial, why) == (None, "")

    def test_evidence_is_an_executed_solution_stating_its_answer(
        self, stored: Procedure, sandbox: Sandbox
    ) -> None:
        trial = ProcedureTrial(episode_id="x", procedure=stored, read_by="position")
        text = evidence_of(trial)
        assert text.endswith("\\boxed{22}.")
        scorer = ProgramVerifiedScorer(
            FakeChatModel(responder=Solver()), sandbox=sandbox
        )
        assert scorer.score(PENS, boxed(22), peers=[text]) == 1.0
        assert scorer.own_samples == 0  # the procedure's program verified it

    def test_options_are_checked(self) -> None:
        with pytest.raises(ConfigurationError, match="sandbox"):
            ProcedureMemory(sandbox="box")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="min_similarity"):
            ProcedureMemory(min_similarity=2)
        with pytest.raises(ConfigurationError, match="write_programs"):
            ProcedureMemory(write_programs=1)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="procedures"):
            BudgetRouter(FakeChatModel(responder=Solver()), procedures=object())  # type: ignore[arg-type]


# -- through the router ----------------------------------------------------------------


class Bench:
    """A router with procedure memory over adaptive Best-of-N, on one store."""

    def __init__(
        self,
        store: BaseStore,
        solver: Solver,
        *,
        scorer: str = "program",
        is_async: bool,
        write_programs: bool = True,
        model: FakeChatModel | None = None,
        program_every: int = 0,
    ) -> None:
        self.model = model or FakeChatModel(responder=solver)
        self.sandbox = Sandbox()
        chosen = (
            ProgramVerifiedScorer(self.model, sandbox=self.sandbox)
            if scorer == "program"
            else ConsensusScorer(quorum=2)
        )
        engine = BestOfN(
            self.model,
            mode="adaptive",
            budget=4,
            scorer=chosen,
            program_every=program_every,
            sandbox=self.sandbox,
        )
        self.router = BudgetRouter(
            engine,
            store=store,
            similarity_gate=0.0,
            # HashEmbeddings rate rewordings far apart: every stored
            # procedure is tried.
            procedures=ProcedureMemory(
                sandbox=self.sandbox, write_programs=write_programs, min_similarity=-1
            ),
        )
        self.is_async = is_async

    async def solve(self, question: str) -> Any:
        if self.is_async:
            return await self.router.asolve(question)
        return self.router.solve(question)


@pytest.fixture
def pens_store(
    make_store: Callable[[Embeddings], BaseStore],
) -> Iterator[BaseStore]:
    store = make_store(HashEmbeddings())
    yield store
    close = getattr(store, "close", None)
    if close is not None:
        close()


async def test_a_verified_answer_keeps_the_scorers_program_as_a_procedure(
    pens_store: BaseStore, is_async: bool
) -> None:
    bench = Bench(pens_store, Solver(), is_async=is_async)
    first = await bench.solve(PENS)
    assert first["final_answer"] == "22"
    assert first["usage"]["other_calls"] == 0  # the scorer's program was enough
    [episode] = episodes_in(pens_store)
    assert episode["procedure"]["answer"] == "22"
    assert len(episode["procedure"]["parameters"]) == 4


class SeesExemplars(Solver):
    """Fails the test if a sample is shown an exemplar alongside a procedure."""

    def __call__(self, messages: list[BaseMessage]) -> str:
        assert sum(isinstance(m, HumanMessage) for m in messages) <= 1 or (
            "Problem B" in last_human(messages)
        ), "a sample saw an exemplar"
        return super().__call__(messages)


async def test_samples_checked_against_a_procedure_see_no_exemplar(
    pens_store: BaseStore, is_async: bool
) -> None:
    # An exemplar's method and the procedure drawn from it agree, right or
    # wrong: a sample that saw the one proves nothing about the other.
    bench = Bench(pens_store, Solver(), is_async=is_async)
    await bench.solve(PENS)
    bench.model.responder = SeesExemplars()
    second = await bench.solve(NEW_PENS)
    assert second["route"]["decision"] == "procedure"


async def test_a_new_number_variant_passes_on_one_generation(
    pens_store: BaseStore, is_async: bool
) -> None:
    bench = Bench(pens_store, Solver(), is_async=is_async)
    await bench.solve(PENS)
    second = await bench.solve(NEW_PENS)
    assert second["final_answer"] == str(pens_total(NEW_PENS))
    route = second["route"]
    assert route["procedure"]["read_by"] == "position"
    assert (route["decision"], route["exemplar_ids"], route["memory_samples"]) == (
        "procedure",
        [],
        0,
    )
    assert "procedure computes 32" in second["route"]["reason"]
    usage = second["usage"]
    assert (usage["generations"], usage["scorer_calls"], usage["other_calls"]) == (
        1,
        0,
        0,
    )
    # The variant's episode carries the procedure on, with its own numbers.
    stored = {e["question"]: e for e in episodes_in(pens_store)}[NEW_PENS]
    assert [p["value"] for p in stored["procedure"]["parameters"]] == [
        "7",
        "2",
        "3",
        "6",
    ]


async def test_a_program_sample_never_confirms_a_procedure(
    pens_store: BaseStore, is_async: bool
) -> None:
    # Both are programs of one code model: measured, a fresh program repeats
    # a wrong procedure's modelling as often as not.
    bench = Bench(pens_store, Solver(), is_async=is_async, program_every=1)
    await bench.solve(PENS)
    bench.model.responder = Solver(wrong_prose=True)
    second = await bench.solve(NEW_PENS)
    assert second["route"]["decision"] == "procedure"
    assert second["result"]["passed"] is False  # right programs, wrong prose
    assert second["usage"]["generations"] == 4


async def test_a_disagreeing_sample_leaves_the_method_to_go_on(
    pens_store: BaseStore, is_async: bool
) -> None:
    bench = Bench(pens_store, Solver(), is_async=is_async)
    await bench.solve(PENS)
    bench.model.responder = Solver(wrong_prose=True)
    second = await bench.solve(NEW_PENS)
    # Every prose sample is off by one: nothing verifies, the budget is spent.
    assert second["route"]["decision"] == "procedure"
    assert second["result"]["passed"] is False
    assert second["usage"]["generations"] == 4
    assert second["final_answer"] != "32"
    stored = {e["question"]: e for e in episodes_in(pens_store)}[NEW_PENS]
    assert not stored["verified"]
    assert "procedure" not in stored


async def test_a_model_read_procedure_is_stored_under_the_new_questions_places(
    pens_store: BaseStore, is_async: bool
) -> None:
    reader = "qty_1 = 5\nqty_2 = 8\nqty_3 = 6\nqty_4 = 1"
    bench = Bench(pens_store, Solver(reader=reader), is_async=is_async)
    await bench.solve(PENS)
    second = await bench.solve(REWORDED_PENS)
    assert second["final_answer"] == "46"
    assert second["usage"]["other_calls"] == 1  # the reading call, under `memory`
    stored = {e["question"]: e for e in episodes_in(pens_store)}[REWORDED_PENS]
    procedure = stored["procedure"]
    # REWORDED_PENS states the notebooks first: the pens are its 3rd and 4th numbers.
    assert [p["name"] for p in procedure["parameters"]] == [
        "qty_1",
        "qty_2",
        "qty_3",
        "qty_4",
    ]
    assert "pens = qty_3" in procedure["program"]
    with Sandbox() as box:
        assert box.run(instantiate(procedure))["answer"] == "46"


async def test_with_consensus_a_written_program_becomes_the_procedure(
    pens_store: BaseStore, is_async: bool
) -> None:
    bench = Bench(pens_store, Solver(), scorer="consensus", is_async=is_async)
    first = await bench.solve(PENS)
    assert first["usage"]["other_calls"] == 1  # the program written for memory
    [episode] = episodes_in(pens_store)
    assert episode["procedure"]["answer"] == "22"
    second = await bench.solve(NEW_PENS)
    # The procedure is one vote: with a quorum of 2, one sample agreeing passes.
    assert second["usage"]["generations"] == 1
    assert second["final_answer"] == "32"


async def test_without_written_programs_consensus_answers_get_no_procedure(
    pens_store: BaseStore, is_async: bool
) -> None:
    bench = Bench(
        pens_store,
        Solver(),
        scorer="consensus",
        is_async=is_async,
        write_programs=False,
    )
    first = await bench.solve(PENS)
    assert first["usage"]["other_calls"] == 0
    [episode] = episodes_in(pens_store)
    assert "procedure" not in episode


class ReaderFails(FakeChatModel):
    """Fails the quantity-reading calls only."""

    def _result(self, messages: list[BaseMessage], **kwargs: Any) -> Any:
        if "Problem B" in last_human(messages):
            msg = "reader down"
            raise RuntimeError(msg)
        return super()._result(messages, **kwargs)


async def test_a_failing_reading_call_costs_the_procedure_not_the_question(
    pens_store: BaseStore, is_async: bool, caplog: pytest.LogCaptureFixture
) -> None:
    model = ReaderFails(responder=Solver())
    bench = Bench(pens_store, Solver(), is_async=is_async, model=model)
    await bench.solve(PENS)
    second = await bench.solve(REWORDED_PENS)
    assert second["final_answer"] == "46"
    assert "procedure not tried" in second["route"]["reason"]
    assert second["usage"]["failed_calls"] == 1
    assert len(episodes_in(pens_store)) == 2


def test_an_answer_verified_by_a_procedure_is_reused_when_asked_again(
    pens_store: BaseStore,
) -> None:
    bench = Bench(pens_store, Solver(), is_async=False)
    bench.router.solve(PENS)
    bench.router.solve(NEW_PENS)
    again = bench.router.solve(NEW_PENS)
    assert again["route"]["decision"] == "reuse"


def test_the_store_refuses_a_malformed_or_oversized_procedure(
    pens_store: BaseStore,
) -> None:
    from langchain_speedup import EpisodicMemory, InvalidInputError

    memory = EpisodicMemory(pens_store)
    episode = make_episode(PENS, final_answer="22")
    episode["procedure"] = Procedure(program="x" * 70_000, parameters=[], answer="22")
    with pytest.raises(InvalidInputError, match="procedure has"):
        memory.put(episode)
    episode["procedure"] = {"program": "answer = 1", "parameters": 3, "answer": "1"}  # type: ignore[typeddict-item]
    with pytest.raises(InvalidInputError, match="procedure"):
        memory.put(episode)
    assert episodes_in(pens_store) == []


async def test_a_question_served_by_a_procedure_teaches_the_gate_nothing(
    pens_store: BaseStore, is_async: bool
) -> None:
    from langchain_speedup import EpisodicMemory

    bench = Bench(pens_store, Solver(), is_async=is_async)
    await bench.solve(PENS)
    before = EpisodicMemory(pens_store).outcomes("default")
    observed = bench.router.gate.stats()
    second = await bench.solve(NEW_PENS)
    assert "procedure" in second["route"]
    assert EpisodicMemory(pens_store).outcomes("default") == before
    assert bench.router.gate.stats() == observed
