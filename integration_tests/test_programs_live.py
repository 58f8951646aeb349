"""Program-of-thought and the execution verifier against the real local model.

A handful of the demo's problems: the model writes programs, the sandbox runs
them in its worker process, and `ProgramVerifiedScorer` uses an executed
program as the check of Best-of-N's prose answers. The checks are structural
(a program is generated, run and counted; "verified" always means a program
and a prose answer agreed); accuracy against gold is logged, never asserted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from langchain_openai import ChatOpenAI

from langchain_speedup import (
    BestOfN,
    Ledger,
    ProgramVerifiedScorer,
    Sandbox,
    answers_equal,
    aprogram_of_thought,
    extract_program,
    program_of_thought,
    question_key,
)
from langchain_speedup.bench.questions import TEMPLATES

pytestmark = pytest.mark.integration

logger = logging.getLogger(__name__)

PROBLEMS = TEMPLATES[:4]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


def test_the_model_writes_programs_that_run(
    chat_model: ChatOpenAI, sandbox: Sandbox
) -> None:
    ran, right = 0, 0
    for template in PROBLEMS:
        ledger = Ledger()
        found = program_of_thought(
            chat_model,
            template.question(0),
            sandbox=sandbox,
            config=ledger.config(role="solver"),
        )
        assert ledger.usage()["generations"] == 1
        assert ledger.usage()["solver_output_tokens"] > 0
        if found["result"] is not None and found["result"]["status"] == "ok":
            ran += 1
            right += found["answer"] == str(template.answer(0))
        logger.info("program %r -> %r", found["program"], found["result"])
    logger.info("programs ran: %d of %d, right: %d", ran, len(PROBLEMS), right)
    # The shipped coder model writes runnable Python for these problems.
    assert ran >= 2


async def test_async_program_of_thought(
    chat_model: ChatOpenAI, sandbox: Sandbox
) -> None:
    found = await aprogram_of_thought(
        chat_model, PROBLEMS[0].question(0), sandbox=sandbox
    )
    assert found["program"] is not None
    assert found["result"] is not None


def test_best_of_n_verified_by_an_executed_program(
    chat_model: ChatOpenAI, sandbox: Sandbox
) -> None:
    scorer = ProgramVerifiedScorer(chat_model, sandbox=sandbox)
    programs_run = 0
    for template in PROBLEMS[:2]:
        question = template.question(0)
        asked = scorer.own_samples
        result = BestOfN(chat_model, budget=2, scorer=scorer).run(question)
        # Each sample the scorer asked its model for is a counted scorer call
        # (at most one program and one prose sample per question).
        own_calls = scorer.own_samples - asked
        assert result["usage"]["scorer_calls"] == own_calls <= 2
        assert all(c["score"] in {0.0, 0.25, 0.5, 1.0} for c in result["candidates"])
        # Every executed answer of the question: the scorer's own program's,
        # and those of programs the candidates hold.
        executed = []
        own = scorer._samples.get_item((True, question_key(question)))
        if own is not None and own[0] is not None:
            executed.append(own[0])
        for candidate in result["candidates"]:
            program = extract_program(candidate["text"])
            if program is not None:
                ran = sandbox.run(program)
                if ran["answer"] is not None:
                    executed.append(ran["answer"])
        programs_run += len(executed)
        if result["passed"]:  # verified means an executed program agreed
            assert any(answers_equal(result["final_answer"], e) for e in executed)
        logger.info(
            "%s: passed=%s answer=%s gold=%s executed=%s",
            question[:40],
            result["passed"],
            result["final_answer"],
            template.answer(0),
            executed,
        )
    assert programs_run >= 1
