"""Best-of-N: static and adaptive runs, scorers, memory, usage, conversations."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_speedup import (
    BestOfN,
    ConfigurationError,
    ConsensusScorer,
    FunctionScorer,
    LLMJudgeScorer,
    MemoryContext,
    ModelError,
    create_best_of_n_graph,
    extract_answer,
)
from langchain_speedup._internal import DEFAULT_SYSTEM_PROMPT
from tests.fakes import (
    EXEMPLAR,
    QUESTION,
    FailingChatModel,
    FakeChatModel,
    Run,
    Sequenced,
    boxed,
    constant,
    has_exemplar,
    sum_solver,
    words,
)

ENGINE = BestOfN


def all_different(n: int) -> Sequenced:
    return Sequenced([boxed(i) for i in range(100, 100 + n)])


class TestStatic:
    async def test_spends_n_and_picks_the_majority(self, run: Run) -> None:
        replies = [boxed(7), boxed(42), boxed(7), boxed(42), boxed(42)]
        model = FakeChatModel(responder=Sequenced(replies))
        result = await run(model, QUESTION, budget=5, mode="static")
        assert len(model.calls) == 5
        assert result["budget_used"] == 5
        assert result["budget_unit"] == "generations"
        assert result["mode"] == "static"
        assert result["method"] == "best_of_n"
        assert result["stop_reason"] == "budget"
        assert result["final_answer"] == "42"
        assert extract_answer(result["answer"]) == "42"
        assert result["score"] == 1.0
        assert result["passed"] is True
        assert sorted(c["answer"] for c in result["candidates"]) == sorted(
            ["7", "42", "7", "42", "42"]
        )
        # A plain vote: each candidate is scored against all the others.
        for candidate in result["candidates"]:
            expected = 1.0 if candidate["answer"] == "42" else 2 / 3
            assert candidate["score"] == pytest.approx(expected)

    async def test_spends_n_even_when_the_first_answers_agree(self, run: Run) -> None:
        model = FakeChatModel(responder=sum_solver)
        result = await run(model, QUESTION, budget=6, mode="static")
        assert len(model.calls) == 6
        assert result["budget_used"] == 6
        assert result["usage"]["generations"] == 6
        assert result["stop_reason"] == "budget"
        assert result["final_answer"] == "42"

    def test_minority_never_wins(self) -> None:
        # With a plain vote the 2-of-5 answer cannot outscore the 3-of-5 one,
        # whatever order the batch returns them in.
        for _ in range(5):
            replies = [boxed(1), boxed(1), boxed(2), boxed(2), boxed(2)]
            model = FakeChatModel(responder=Sequenced(replies))
            result = BestOfN(
                model, budget=5, mode="static", scorer=ConsensusScorer(quorum=5)
            ).run(QUESTION)
            assert result["final_answer"] == "2"
            assert result["score"] == pytest.approx(3 / 5)
            assert result["passed"] is False


class TestAdaptive:
    async def test_stops_at_the_threshold(self, run: Run) -> None:
        model = FakeChatModel(responder=sum_solver)
        result = await run(model, QUESTION, budget=8)
        assert result["mode"] == "adaptive"
        assert result["stop_reason"] == "threshold"
        assert result["budget_used"] == 3  # the default quorum
        assert len(model.calls) == 3
        assert result["final_answer"] == "42"
        assert result["score"] == 1.0
        assert result["passed"] is True
        assert [c["score"] for c in result["candidates"]] == pytest.approx(
            [1 / 3, 2 / 3, 1.0]
        )

    async def test_all_different_spends_the_budget(self, run: Run) -> None:
        model = FakeChatModel(responder=all_different(8))
        result = await run(model, QUESTION, budget=8)
        assert len(model.calls) == 8
        assert result["budget_used"] == 8
        assert result["stop_reason"] == "budget"
        assert result["passed"] is False
        assert result["score"] == pytest.approx(1 / 3)
        # Equal scores: the earliest candidate is kept.
        assert result["final_answer"] == "100"
        assert len({c["answer"] for c in result["candidates"]}) == 8

    async def test_late_agreement(self, run: Run) -> None:
        replies = [boxed(1), boxed(2), boxed(3), boxed(2), boxed(4), boxed(2)]
        model = FakeChatModel(responder=Sequenced(replies))
        result = await run(model, QUESTION, budget=8)
        assert result["budget_used"] == 6
        assert result["stop_reason"] == "threshold"
        assert result["final_answer"] == "2"

    async def test_custom_threshold(self, run: Run) -> None:
        model = FakeChatModel(responder=sum_solver)
        result = await run(model, QUESTION, budget=8, threshold=0.5)
        assert result["budget_used"] == 2
        assert result["score"] == pytest.approx(2 / 3)
        assert result["stop_reason"] == "threshold"

    async def test_zero_threshold_stops_at_once(self, run: Run) -> None:
        model = FakeChatModel(responder=constant("no idea"))
        result = await run(model, QUESTION, budget=8, threshold=0.0)
        assert result["budget_used"] == 1
        assert result["final_answer"] is None

    @pytest.mark.parametrize(("parallelism", "spent"), [(1, 3), (2, 4), (3, 3), (4, 4)])
    async def test_parallelism_rounds_up_to_whole_rounds(
        self, run: Run, parallelism: int, spent: int
    ) -> None:
        # Same answer, distinct texts, so the selected candidate is identifiable.
        replies = [f"Try {i}: the final answer is \\boxed{{42}}." for i in range(8)]
        model = FakeChatModel(responder=Sequenced(replies))
        result = await run(model, QUESTION, budget=8, parallelism=parallelism)
        assert result["budget_used"] == spent
        assert len(model.calls) == spent
        assert result["usage"]["generations"] == spent
        assert result["stop_reason"] == "threshold"
        scores = [c["score"] for c in result["candidates"]]
        assert scores[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
        assert all(score == 1.0 for score in scores[3:])
        # The first passing candidate is selected, not a later one of its round.
        assert result["answer"] == result["candidates"][2]["text"]

    async def test_parallelism_never_exceeds_n(self, run: Run) -> None:
        model = FakeChatModel(responder=all_different(3))
        result = await run(model, QUESTION, budget=3, parallelism=5)
        assert len(model.calls) == 3
        assert result["budget_used"] == 3

    def test_rounds_of_the_graph(self) -> None:
        model = FakeChatModel(responder=all_different(8))
        graph = create_best_of_n_graph(model, budget=8, parallelism=3)
        sizes = []
        for update in graph.stream(
            {"messages": [HumanMessage(QUESTION)]}, stream_mode="updates"
        ):
            if "sample" in update:
                sizes.append(len(update["sample"]["candidates"]))
        assert sizes == [3, 6, 8]
        assert len(model.calls) == 8


class TestScorers:
    async def test_llm_judge_counts_scorer_calls(self, run: Run) -> None:
        solver = FakeChatModel(responder=sum_solver)
        judge_model = FakeChatModel(responder=constant("Rating: 9/10"))
        judge = LLMJudgeScorer(judge_model)
        result = await run(solver, QUESTION, budget=4, scorer=judge, threshold=0.9)
        assert result["budget_used"] == 1
        usage = result["usage"]
        assert usage["generations"] == 1
        assert usage["scorer_calls"] == 1
        assert len(judge_model.calls) == 1
        assert usage["scorer_input_tokens"] == sum(
            len(words(m.text)) for m in judge_model.calls[0]
        )
        assert usage["scorer_output_tokens"] == 3  # "rating", "9", "10"

    async def test_malformed_judge_spends_the_budget(self, run: Run) -> None:
        solver = FakeChatModel(responder=sum_solver)
        judge = LLMJudgeScorer(FakeChatModel(responder=constant("looks fine")))
        result = await run(solver, QUESTION, budget=3, scorer=judge)
        assert judge.malformed == 3
        assert result["stop_reason"] == "budget"
        assert result["score"] == 0.0
        assert result["usage"]["scorer_calls"] == 3

    async def test_failing_judge_is_a_scorer_model_error(self, run: Run) -> None:
        judge = LLMJudgeScorer(FailingChatModel(responder=constant("9"), fail_on=1))
        with pytest.raises(ModelError) as info:
            await run(FakeChatModel(responder=sum_solver), QUESTION, scorer=judge)
        assert info.value.role == "scorer"

    async def test_function_scorer_threshold(self, run: Run) -> None:
        scorer = FunctionScorer(lambda q, c: 10.0 if "42" in c else 0.0, upper=10)
        model = FakeChatModel(responder=Sequenced([boxed(1), boxed(42)]))
        result = await run(model, QUESTION, scorer=scorer)
        assert result["budget_used"] == 2
        assert result["final_answer"] == "42"
        assert result["score"] == 10.0


class TestMemory:
    async def test_exemplars_only_in_the_first_samples(self, run: Run) -> None:
        model = FakeChatModel(responder=sum_solver)
        memory = MemoryContext(exemplars=[EXEMPLAR], precedents=[], samples=2)
        result = await run(model, QUESTION, budget=8, memory=memory)
        assert len(model.calls) == 3
        assert [has_exemplar(p) for p in model.calls] == [True, True, False]
        assert [c["with_memory"] for c in result["candidates"]] == [True, True, False]
        # The exemplar is an earlier turn: its question, then its solution,
        # then the real question last.
        first = model.calls[0]
        assert isinstance(first[0], SystemMessage)
        assert [type(m) for m in first[1:]] == [HumanMessage, AIMessage, HumanMessage]
        assert first[2].content == boxed(2)
        assert first[-1].content == QUESTION
        plain = model.calls[2]
        assert [type(m) for m in plain] == [SystemMessage, HumanMessage]
        assert result["final_answer"] == "42"

    async def test_static_exemplars_only_in_the_first_samples(self, run: Run) -> None:
        model = FakeChatModel(responder=sum_solver)
        memory = MemoryContext(exemplars=[EXEMPLAR], precedents=[], samples=1)
        result = await run(model, QUESTION, budget=4, mode="static", memory=memory)
        assert sum(has_exemplar(p) for p in model.calls) == 1
        assert sum(c["with_memory"] for c in result["candidates"]) == 1

    async def test_without_samples_every_prompt_has_exemplars(self, run: Run) -> None:
        model = FakeChatModel(responder=sum_solver)
        memory = MemoryContext(exemplars=[EXEMPLAR], precedents=[])
        await run(model, QUESTION, budget=8, memory=memory)
        assert len(model.calls) == 3
        assert all(has_exemplar(p) for p in model.calls)

    async def test_no_memory_no_exemplars(self, run: Run) -> None:
        model = FakeChatModel(responder=sum_solver)
        result = await run(model, QUESTION, budget=8)
        assert not any(has_exemplar(p) for p in model.calls)
        assert not any(c["with_memory"] for c in result["candidates"])
        assert all(len(p) == 2 for p in model.calls)
        assert model.calls[0][0].content == DEFAULT_SYSTEM_PROMPT

    async def test_precedents_count_as_votes(self, run: Run) -> None:
        model = FakeChatModel(responder=sum_solver)
        memory = MemoryContext(exemplars=[], precedents=["42"])
        result = await run(model, QUESTION, budget=8, memory=memory)
        assert result["budget_used"] == 1
        assert result["score"] == 1.0
        assert result["stop_reason"] == "threshold"
        assert result["final_answer"] == "42"

    async def test_a_different_precedent_adds_nothing(self, run: Run) -> None:
        model = FakeChatModel(responder=sum_solver)
        memory = MemoryContext(exemplars=[], precedents=["41"])
        result = await run(model, QUESTION, budget=8, memory=memory)
        assert result["budget_used"] == 3
        assert result["final_answer"] == "42"


class TestUsage:
    async def test_usage_matches_the_calls(self, run: Run) -> None:
        model = FakeChatModel(responder=all_different(5))
        result = await run(model, QUESTION, budget=5)
        usage = result["usage"]
        assert usage["generations"] == len(model.calls) == 5
        assert usage["solver_input_tokens"] == sum(
            len(words(m.text)) for call in model.calls for m in call
        )
        assert usage["solver_output_tokens"] == sum(
            len(words(c["text"])) for c in result["candidates"]
        )
        assert usage["scorer_calls"] == 0
        assert usage["failed_calls"] == 0
        assert usage["total_tokens"] == (
            usage["solver_input_tokens"] + usage["solver_output_tokens"]
        )

    async def test_usage_without_usage_metadata(self, run: Run) -> None:
        from langchain_speedup.tokens import count_message_tokens, count_tokens

        model = FakeChatModel(responder=sum_solver, report_usage=False)
        result = await run(model, QUESTION, budget=8)
        usage = result["usage"]
        assert usage["generations"] == 3
        assert usage["solver_input_tokens"] == sum(
            count_message_tokens(call) for call in model.calls
        )
        assert usage["solver_output_tokens"] == 3 * count_tokens(sum_solver([]))


class TestConversation:
    async def test_answers_the_last_human_message(self, run: Run) -> None:
        model = FakeChatModel(responder=sum_solver)
        conversation = [
            SystemMessage("Be terse."),
            HumanMessage("What is 1 + 2?"),
            AIMessage("3"),
            HumanMessage(QUESTION),
        ]
        result = await run(model, conversation, budget=8)
        assert result["final_answer"] == "42"
        prompt = model.calls[0]
        assert [type(m) for m in prompt] == [
            SystemMessage,
            HumanMessage,
            AIMessage,
            HumanMessage,
        ]
        # The caller's instructions replace the default ones.
        assert prompt[0].content == "Be terse."

    async def test_an_explicit_system_prompt_follows_the_callers(
        self, run: Run
    ) -> None:
        model = FakeChatModel(responder=sum_solver)
        conversation = [SystemMessage("Be terse."), HumanMessage(QUESTION)]
        await run(model, conversation, budget=2, system_prompt="Box the answer.")
        assert model.calls[0][0].content == "Be terse.\n\nBox the answer."
        await run(model, [HumanMessage(QUESTION)], budget=2)
        assert model.calls[-1][0].content == DEFAULT_SYSTEM_PROMPT


class TestConfiguration:
    def test_threshold_follows_the_scorer_range(self) -> None:
        model = FakeChatModel(responder=sum_solver)
        scorer = FunctionScorer(lambda q, c: 0.0, lower=0, upper=10)
        assert BestOfN(model, scorer=scorer, threshold=7).threshold == 7
        assert BestOfN(model, scorer=scorer).threshold == 10
        with pytest.raises(ConfigurationError):
            BestOfN(model, scorer=scorer, threshold=10.5)

    def test_good_options(self) -> None:
        engine = BestOfN(FakeChatModel(responder=sum_solver), budget=1, mode="static")
        assert (engine.budget, engine.mode, engine.threshold) == (1, "static", 1.0)
        assert (engine.method, engine.unit) == ("best_of_n", "generations")
