"""Scorers: consensus votes, an LLM judge, wrapped functions, range checks."""

from __future__ import annotations

import logging
import math

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.errors import GraphInterrupt

from langchain_speedup import (
    ConfigurationError,
    ConsensusScorer,
    FunctionScorer,
    Ledger,
    LLMJudgeScorer,
    ModelError,
    Scorer,
    ScoringError,
)
from langchain_speedup.scoring import check_score, check_threshold
from tests.fakes import FailingChatModel, FakeChatModel, boxed, constant

Q = "What is 2 + 2?"


class TestConsensusScorer:
    def test_is_a_scorer_in_zero_one(self) -> None:
        scorer = ConsensusScorer()
        assert isinstance(scorer, Scorer)
        assert (scorer.lower, scorer.upper) == (0.0, 1.0)

    def test_votes_over_quorum(self) -> None:
        scorer = ConsensusScorer(quorum=3)
        assert scorer.score(Q, boxed(4)) == pytest.approx(1 / 3)
        assert scorer.score(Q, boxed(4), peers=[boxed(4)]) == pytest.approx(2 / 3)
        assert scorer.score(Q, boxed(4), peers=[boxed(4), boxed(4)]) == 1.0
        # Capped at one.
        assert scorer.score(Q, boxed(4), peers=[boxed(4)] * 5) == 1.0

    def test_only_agreeing_peers_vote(self) -> None:
        scorer = ConsensusScorer(quorum=2)
        peers = [boxed(5), boxed(6), "no idea", boxed(4)]
        assert scorer.score(Q, boxed(4), peers=peers) == 1.0
        assert scorer.score(Q, boxed(5), peers=[boxed(6), "no idea"]) == 0.5

    def test_answers_compare_normalised(self) -> None:
        scorer = ConsensusScorer(quorum=2)
        assert (
            scorer.score(Q, r"\boxed{1,200}", peers=["The answer is $1200.00"]) == 1.0
        )

    def test_quorum_one_is_always_full(self) -> None:
        assert ConsensusScorer(quorum=1).score(Q, boxed(4)) == 1.0

    def test_precedent_adds_its_weight(self) -> None:
        scorer = ConsensusScorer(quorum=3)  # default weight: quorum - 1
        assert scorer.precedent_weight == 2
        assert scorer.score(Q, boxed(4), precedents=["4"]) == 1.0
        assert scorer.score(Q, boxed(5), precedents=["4"]) == pytest.approx(1 / 3)

    def test_explicit_precedent_weight(self) -> None:
        scorer = ConsensusScorer(quorum=4, precedent_weight=1)
        assert scorer.score(Q, boxed(4), precedents=["4"]) == 0.5
        assert scorer.score(Q, boxed(4), peers=[boxed(4)], precedents=["4"]) == 0.75
        zero = ConsensusScorer(quorum=2, precedent_weight=0)
        assert zero.score(Q, boxed(4), precedents=["4"]) == 0.5

    @pytest.mark.parametrize("candidate", ["", "I am not sure.", r"\boxed{}"])
    def test_no_answer_scores_zero(self, candidate: str) -> None:
        scorer = ConsensusScorer(quorum=2)
        assert scorer.score(Q, candidate, peers=[candidate, candidate]) == 0.0

    def test_custom_extract(self) -> None:
        scorer = ConsensusScorer(quorum=2, extract=lambda s: s.split()[-1] or None)
        assert scorer.score(Q, "so blue", peers=["it is blue"]) == 1.0

    async def test_ascore_matches_score(self) -> None:
        scorer = ConsensusScorer(quorum=3)
        args = {"peers": [boxed(4), boxed(5)], "precedents": ["5"]}
        assert await scorer.ascore(Q, boxed(4), **args) == scorer.score(
            Q, boxed(4), **args
        )
        assert await scorer.ascore(Q, boxed(5), **args) == 1.0

    @pytest.mark.parametrize("quorum", [0, -1, True, 2.0, "3", None])
    def test_bad_quorum(self, quorum: object) -> None:
        with pytest.raises(ConfigurationError, match="quorum"):
            ConsensusScorer(quorum=quorum)  # type: ignore[arg-type]

    @pytest.mark.parametrize("weight", [-1, True, 1.5, "2"])
    def test_bad_precedent_weight(self, weight: object) -> None:
        with pytest.raises(ConfigurationError, match="precedent_weight"):
            ConsensusScorer(quorum=3, precedent_weight=weight)  # type: ignore[arg-type]


class TestLLMJudgeScorer:
    @pytest.mark.parametrize(
        ("reply", "expected"),
        [
            ("8", 0.8),
            ("Rating: 7/10", 0.7),
            ("10", 1.0),
            ("0", 0.0),
            ("  9\n", 0.9),
            ("I'd say 3.", 0.3),
            ("8.", 0.8),
            ("10.", 1.0),
            ("Score: 8.5/10.", 0.85),
            ("On a scale of 0 to 10, I give it 6", 0.6),
            ("3 steps check out: 7 out of 10", 0.7),
        ],
    )
    def test_parses_the_rating(self, reply: str, expected: float) -> None:
        judge = LLMJudgeScorer(FakeChatModel(responder=constant(reply)))
        assert judge.score(Q, boxed(4)) == pytest.approx(expected)
        assert judge.malformed == 0

    @pytest.mark.parametrize(
        "reply", ["I think it's fine", "", "eleven", "11", "100", "1.2.3", "-"]
    )
    def test_malformed_reply_falls_back(
        self, reply: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        judge = LLMJudgeScorer(FakeChatModel(responder=constant(reply)), fallback=0.25)
        with caplog.at_level(logging.WARNING, logger="langchain_speedup.scoring"):
            assert judge.score(Q, boxed(4)) == 0.25
            assert judge.score(Q, boxed(5)) == 0.25
        assert judge.malformed == 2
        assert "no 0-10 rating" in caplog.text

    async def test_malformed_reply_falls_back_async(self) -> None:
        judge = LLMJudgeScorer(FakeChatModel(responder=constant("eleven")))
        assert await judge.ascore(Q, boxed(4)) == 0.0
        assert judge.malformed == 1

    async def test_async_parses_the_rating(self) -> None:
        judge = LLMJudgeScorer(FakeChatModel(responder=constant("Rating: 7/10")))
        assert await judge.ascore(Q, boxed(4)) == pytest.approx(0.7)

    def test_prompt_holds_question_and_candidate(self) -> None:
        model = FakeChatModel(responder=constant("6"))
        judge = LLMJudgeScorer(model, prompt="Grade it.")
        judge.score(Q, "my solution is 4")
        [call] = model.calls
        assert isinstance(call[0], SystemMessage)
        assert call[0].content == "Grade it."
        assert isinstance(call[1], HumanMessage)
        assert Q in call[1].content
        assert "my solution is 4" in call[1].content

    def test_calls_are_counted_as_scorer_with_the_config(self) -> None:
        judge = LLMJudgeScorer(FakeChatModel(responder=constant("8")))
        ledger = Ledger()
        judge.score(Q, boxed(4), config=ledger.config(role="scorer"))
        usage = ledger.usage()
        assert usage["scorer_calls"] == 1
        assert usage["generations"] == 0

    def test_failing_judge_raises_model_error(self) -> None:
        judge = LLMJudgeScorer(FailingChatModel(responder=constant("8"), fail_on=1))
        with pytest.raises(ModelError, match="scorer") as info:
            judge.score(Q, boxed(4))
        assert info.value.role == "scorer"
        assert isinstance(info.value.__cause__, RuntimeError)

    async def test_failing_judge_raises_model_error_async(self) -> None:
        judge = LLMJudgeScorer(FailingChatModel(responder=constant("8"), fail_on=1))
        with pytest.raises(ModelError) as info:
            await judge.ascore(Q, boxed(4))
        assert info.value.role == "scorer"

    def test_graph_interrupt_passes_through(self) -> None:
        model = FailingChatModel(
            responder=constant("8"), fail_on=1, error=lambda: GraphInterrupt(())
        )
        with pytest.raises(GraphInterrupt):
            LLMJudgeScorer(model).score(Q, boxed(4))

    @pytest.mark.parametrize("model", ["gpt-4", None, lambda m: m])
    def test_model_must_be_a_runnable(self, model: object) -> None:
        with pytest.raises(ConfigurationError, match="model"):
            LLMJudgeScorer(model)  # type: ignore[arg-type]

    @pytest.mark.parametrize("fallback", [-0.1, 1.5, math.nan])
    def test_bad_fallback(self, fallback: float) -> None:
        with pytest.raises(ConfigurationError, match="fallback"):
            LLMJudgeScorer(FakeChatModel(responder=constant("8")), fallback=fallback)


class TestFunctionScorer:
    def test_sync_function(self) -> None:
        scorer = FunctionScorer(lambda q, c: 1.0 if "boxed" in c else 0.0)
        assert isinstance(scorer, Scorer)
        assert scorer.score(Q, boxed(4)) == 1.0
        assert scorer.score(Q, "4") == 0.0

    def test_sees_question_and_candidate(self) -> None:
        seen: list[tuple[str, str]] = []

        def fn(question: str, candidate: str) -> float:
            seen.append((question, candidate))
            return 0.5

        FunctionScorer(fn).score(Q, "cand", peers=["x"], precedents=["y"])
        assert seen == [(Q, "cand")]

    def test_async_function_from_sync_code(self) -> None:
        async def fn(question: str, candidate: str) -> float:
            return 0.75

        assert FunctionScorer(fn).score(Q, boxed(4)) == 0.75

    async def test_ascore_sync_and_async_functions(self) -> None:
        async def afn(question: str, candidate: str) -> float:
            return 0.25

        assert await FunctionScorer(afn).ascore(Q, boxed(4)) == 0.25
        assert await FunctionScorer(lambda q, c: 0.5).ascore(Q, boxed(4)) == 0.5

    def test_custom_range(self) -> None:
        scorer = FunctionScorer(lambda q, c: 7, lower=0, upper=10)
        assert scorer.score(Q, "x") == 7.0
        assert isinstance(scorer.score(Q, "x"), float)

    @pytest.mark.parametrize(
        "value", [1.5, -0.1, math.nan, math.inf, -math.inf, "0.5", None, True, [1]]
    )
    def test_bad_values_raise(self, value: object) -> None:
        scorer = FunctionScorer(lambda q, c: value)  # type: ignore[arg-type,return-value]
        with pytest.raises(ScoringError):
            scorer.score(Q, "x")

    @pytest.mark.parametrize("value", [2.0, math.nan, "high"])
    async def test_bad_values_raise_async(self, value: object) -> None:
        async def afn(question: str, candidate: str) -> object:
            return value

        with pytest.raises(ScoringError):
            await FunctionScorer(afn).ascore(Q, "x")  # type: ignore[arg-type]

    def test_not_callable(self) -> None:
        with pytest.raises(ConfigurationError, match="callable"):
            FunctionScorer(0.5)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("lower", "upper"), [(1.0, 0.0), (0.5, 0.5), (0.0, math.inf), (math.nan, 1.0)]
    )
    def test_bad_range(self, lower: float, upper: float) -> None:
        with pytest.raises(ConfigurationError):
            FunctionScorer(lambda q, c: 0.0, lower=lower, upper=upper)


class TestChecks:
    @pytest.mark.parametrize("threshold", [0.0, 0.5, 1.0, 1])
    def test_threshold_in_range(self, threshold: float) -> None:
        assert check_threshold(ConsensusScorer(), threshold) == float(threshold)

    @pytest.mark.parametrize(
        "threshold", [1.5, -0.1, math.nan, math.inf, True, "0.5", None]
    )
    def test_threshold_out_of_range(self, threshold: object) -> None:
        with pytest.raises(ConfigurationError, match="threshold"):
            check_threshold(ConsensusScorer(), threshold)  # type: ignore[arg-type]

    def test_threshold_uses_the_scorers_range(self) -> None:
        scorer = FunctionScorer(lambda q, c: 0.0, lower=0, upper=10)
        assert check_threshold(scorer, 7) == 7.0
        with pytest.raises(ConfigurationError):
            check_threshold(scorer, 11)

    def test_check_score(self) -> None:
        scorer = ConsensusScorer()
        assert check_score(scorer, 1) == 1.0
        for bad in (1.01, -0.01, math.nan, False, "1"):
            with pytest.raises(ScoringError):
                check_score(scorer, bad)
