"""Self-Refine: rounds, stopping, prompts, memory and accounting."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage

from langchain_speedup import (
    ConsensusScorer,
    FunctionScorer,
    LLMJudgeScorer,
    MemoryContext,
    SelfRefine,
)
from langchain_speedup.scaling.self_refine import CRITIQUE_PROMPT, REVISE_PROMPT
from tests.fakes import (
    EXEMPLAR,
    FEEDBACK,
    QUESTION,
    QUORUM,
    FakeChatModel,
    Run,
    boxed,
    constant,
    has_exemplar,
    last_human,
    refiner,
    tokens_by_role,
)

ENGINE = SelfRefine


# -- rounds and stopping ---------------------------------------------------------------


async def test_adaptive_stops_at_the_threshold(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(model, QUESTION, scorer=QUORUM)
    # 41 (0.5), 42 against [41] (0.5), 42 against [41, 42] (1.0): stop.
    assert [c["answer"] for c in result["candidates"]] == ["41", "42", "42"]
    assert [c["score"] for c in result["candidates"]] == [0.5, 0.5, 1.0]
    assert result["stop_reason"] == "threshold"
    assert result["passed"] is True
    assert result["final_answer"] == "42"
    assert (result["method"], result["mode"]) == ("self_refine", "adaptive")
    assert (result["budget_used"], result["budget_unit"]) == (3, "rounds")


async def test_static_spends_every_round_and_keeps_the_latest_best(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(model, QUESTION, mode="static", budget=4, scorer=QUORUM)
    assert result["budget_used"] == 4
    assert [c["score"] for c in result["candidates"]] == [0.5, 0.5, 1.0, 1.0]
    # Static never stops on the threshold; equal scores go to the latest.
    assert result["stop_reason"] == "budget"
    assert result["passed"] is True
    assert result["answer"] == result["candidates"][3]["text"]


async def test_adaptive_without_a_passing_answer_spends_the_budget(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(model, QUESTION, budget=2, scorer=ConsensusScorer(quorum=3))
    assert result["stop_reason"] == "budget"
    assert result["passed"] is False
    assert result["budget_used"] == 2
    # Both score 1/3; the revision wins the tie.
    assert result["final_answer"] == "42"


async def test_a_first_draft_that_passes_costs_one_round(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(model, QUESTION, scorer=FunctionScorer(lambda q, c: 1.0))
    assert result["budget_used"] == 1
    assert len(model.calls) == 1
    assert result["usage"]["other_calls"] == 0


async def test_the_loop_is_bounded_by_the_budget(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    result = await run(
        model, QUESTION, budget=5, scorer=FunctionScorer(lambda q, c: 0.0)
    )
    assert result["budget_used"] == 5
    # One draft, then a critique and a revision per further round.
    assert len(model.calls) == 5 + 4
    assert result["stop_reason"] == "budget"


def test_the_default_budget_is_four_rounds() -> None:
    model = FakeChatModel(responder=refiner)
    result = SelfRefine(model, scorer=FunctionScorer(lambda q, c: 0.0)).run(QUESTION)
    assert result["budget_used"] == SelfRefine(model).budget == 4


def test_adaptive_cost_never_exceeds_static_cost() -> None:
    model = FakeChatModel(responder=refiner)
    for rounds in range(1, 6):
        adaptive = SelfRefine(model, budget=rounds, scorer=QUORUM).run(QUESTION)
        static = SelfRefine(model, budget=rounds, mode="static", scorer=QUORUM).run(
            QUESTION
        )
        assert adaptive["budget_used"] <= static["budget_used"] == rounds
        assert (
            adaptive["candidates"]
            == static["candidates"][: len(adaptive["candidates"])]
        )


# -- prompts ---------------------------------------------------------------------------


def test_critique_and_revision_see_the_current_answer() -> None:
    model = FakeChatModel(responder=refiner)
    SelfRefine(model, budget=3, mode="static").run(QUESTION)
    draft, critique, revision, critique2, _ = model.calls
    assert last_human(draft) == QUESTION
    assert isinstance(critique[-2], AIMessage)
    assert critique[-2].content == boxed(41)
    assert critique[-1].content == CRITIQUE_PROMPT
    assert revision[:-2] == critique
    assert [m.content for m in revision[-2:]] == [FEEDBACK, REVISE_PROMPT]
    # The next critique is of the revision, not of the first draft.
    assert critique2[-2].content == boxed(42)
    assert critique2[:-2] == draft


def test_custom_prompts_are_used() -> None:
    model = FakeChatModel(responder=constant(boxed(3)))
    SelfRefine(
        model,
        budget=2,
        mode="static",
        system_prompt="Be terse.",
        critique_prompt="Find the flaw.",
        revise_prompt="Fix it.",
    ).run(QUESTION)
    assert model.calls[0][0].content == "Be terse."
    assert model.calls[1][-1].content == "Find the flaw."
    assert model.calls[2][-1].content == "Fix it."


def test_a_conversation_is_answered_in_context() -> None:
    model = FakeChatModel(responder=refiner)
    conversation = [HumanMessage("Hi"), AIMessage("Hello"), HumanMessage(QUESTION)]
    result = SelfRefine(model, scorer=QUORUM).run(conversation)
    assert result["final_answer"] == "42"
    assert [m.content for m in model.calls[0][1:]] == ["Hi", "Hello", QUESTION]


# -- accounting ------------------------------------------------------------------------


async def test_usage_counts_rounds_critiques_and_scorer_calls(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    judge = FakeChatModel(responder=constant("Rating: 7"))
    result = await run(
        model, QUESTION, budget=3, mode="static", scorer=LLMJudgeScorer(judge)
    )
    usage = result["usage"]
    assert usage["generations"] == result["budget_used"] == 3
    assert usage["other_calls"] == 2  # critiques, under the reflection role
    assert usage["scorer_calls"] == len(judge.calls) == 3
    assert usage["solver_output_tokens"] > 0
    assert usage["other_tokens"] > 0
    assert usage["scorer_input_tokens"] > 0
    assert usage["total_tokens"] == tokens_by_role(usage)
    assert [c["score"] for c in result["candidates"]] == [0.7, 0.7, 0.7]


# -- memory ----------------------------------------------------------------------------


def test_exemplars_go_into_every_prompt_and_precedents_to_the_scorer() -> None:
    model = FakeChatModel(responder=refiner)
    memory = MemoryContext(exemplars=[EXEMPLAR], precedents=["41"])
    result = SelfRefine(model, scorer=QUORUM).run(QUESTION, memory=memory)
    # The precedent adds a vote to the first draft's 41, which then passes.
    assert result["budget_used"] == 1
    assert result["final_answer"] == "41"
    assert result["candidates"][0]["with_memory"] is True
    assert has_exemplar(model.calls[0])
    assert boxed(2) in [m.content for m in model.calls[0]]


def test_memory_that_allows_no_samples_keeps_exemplars_out() -> None:
    model = FakeChatModel(responder=refiner)
    memory = MemoryContext(exemplars=[EXEMPLAR], precedents=[], samples=0)
    result = SelfRefine(model, budget=1).run(QUESTION, memory=memory)
    assert result["candidates"][0]["with_memory"] is False
    assert not has_exemplar(model.calls[0])


async def test_rounds_past_the_memory_samples_draft_afresh(run: Run) -> None:
    model = FakeChatModel(responder=refiner)
    memory = MemoryContext(exemplars=[EXEMPLAR], precedents=[], samples=2)
    result = await run(model, QUESTION, memory=memory, budget=4, mode="static")
    assert [c["with_memory"] for c in result["candidates"]] == [True] * 2 + [False] * 2
    # Round 3 is a plain draft, not a revision: no critique precedes it.
    asked = [last_human(p) for p in model.calls]
    assert asked == [QUESTION, CRITIQUE_PROMPT, REVISE_PROMPT] * 2
    assert [has_exemplar(p) for p in model.calls] == [True] * 3 + [False] * 3
    assert len(model.calls[3]) == 2  # system prompt, question
    # The new chain critiques its own draft.
    assert model.calls[4][:2] == model.calls[3]
    assert result["usage"]["other_calls"] == 2
