"""Long chain-of-thought: token budgets, probing, native thinking kwargs, memory."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI

from langchain_speedup import (
    ConfigurationError,
    FunctionScorer,
    LLMJudgeScorer,
    LongCoT,
    MemoryContext,
)
from langchain_speedup.scaling.long_cot import (
    CONTINUE_PROMPT,
    LONG_COT_SYSTEM_PROMPT,
    PROBE_PROMPT,
    native_thinking_kwargs,
)
from langchain_speedup.tokens import count_tokens
from tests.fakes import (
    EXEMPLAR,
    QUESTION,
    QUORUM,
    FakeChatModel,
    Responder,
    Run,
    boxed,
    constant,
    has_exemplar,
    last_human,
    thinker,
    thinking_of,
    words,
)

ENGINE = LongCoT


class ChatAnthropic(FakeChatModel):
    """Named like langchain-anthropic's model, for provider detection."""

    model: str = "claude-sonnet-4-5"
    honours_max_tokens: bool = True

    @property
    def _llm_type(self) -> str:
        return "anthropic-chat"


class ChatGoogleGenerativeAI(FakeChatModel):
    model: str = "gemini-2.5-flash"

    @property
    def _llm_type(self) -> str:
        return "chat-google-generative-ai"


class SomeWrapper(FakeChatModel):
    """Detected by `_llm_type` alone."""

    model_name: str = "claude-opus-4-1"

    @property
    def _llm_type(self) -> str:
        return "anthropic-chat"


def budgeted(responder: Responder = thinker) -> FakeChatModel:
    """A fake that stops at `max_tokens` words, as a real model does."""
    return FakeChatModel(responder=responder, honours_max_tokens=True)


def max_tokens_seen(model: FakeChatModel) -> list[int]:
    return [kwargs["max_tokens"] for kwargs in model.call_kwargs]


# -- budgets and stopping --------------------------------------------------------------


async def test_adaptive_probes_each_segment_and_stops_at_the_threshold(
    run: Run,
) -> None:
    model = budgeted()
    result = await run(model, QUESTION, budget=100, segment_tokens=10, scorer=QUORUM)
    # 41 after 10 tokens (0.5), 42 after 20 (0.5), 42 after 30 (1.0): stop.
    assert [c["answer"] for c in result["candidates"]] == ["41", "42", "42"]
    assert [c["score"] for c in result["candidates"]] == [0.5, 0.5, 1.0]
    assert result["stop_reason"] == "threshold"
    assert result["budget_used"] == 30
    assert result["budget_unit"] == "reasoning_tokens"
    assert result["method"] == "long_cot"
    assert result["final_answer"] == "42"
    # Segments get the segment allowance, probes the probe allowance.
    assert max_tokens_seen(model) == [10, 256] * 3
    assert result["usage"]["generations"] == 6


async def test_static_spends_the_whole_budget_then_probes_once(run: Run) -> None:
    model = budgeted()
    result = await run(model, QUESTION, budget=100, segment_tokens=10, mode="static")
    assert result["budget_used"] == 100
    assert max_tokens_seen(model) == [10] * 10 + [256]
    assert len(result["candidates"]) == 1
    assert result["final_answer"] == "42"
    assert result["stop_reason"] == "budget"
    assert result["mode"] == "static"


def answering_thinker(messages: list[BaseMessage]) -> str:
    """Thinks briefly and states its answer in every segment."""
    if last_human(messages) == PROBE_PROMPT:
        return boxed(99)
    return "so the answer is \\boxed{42}."


async def test_a_segment_that_states_its_answer_needs_no_probe(run: Run) -> None:
    model = budgeted(answering_thinker)
    result = await run(model, QUESTION, budget=100, segment_tokens=10, scorer=QUORUM)
    # Two segments, each read as its own probe: no probe call, and 99 (the
    # probe's answer) never appears.
    assert max_tokens_seen(model) == [10, 10]
    assert [c["answer"] for c in result["candidates"]] == ["42", "42"]
    assert result["stop_reason"] == "threshold"
    assert result["candidates"][-1]["text"] == "so the answer is \\boxed{42}."
    assert result["usage"]["generations"] == 2


async def test_static_reads_a_stated_answer_from_its_last_segment(run: Run) -> None:
    model = budgeted(answering_thinker)
    result = await run(model, QUESTION, budget=30, segment_tokens=10, mode="static")
    assert max_tokens_seen(model) == [10, 10, 10]
    assert result["final_answer"] == "42"
    assert result["usage"]["generations"] == 3


async def test_the_last_segment_gets_what_is_left(run: Run) -> None:
    model = budgeted()
    result = await run(model, QUESTION, budget=25, segment_tokens=10, mode="static")
    assert max_tokens_seen(model)[:3] == [10, 10, 5]
    assert result["budget_used"] == 25


def test_segment_tokens_are_capped_at_the_budget() -> None:
    engine = LongCoT(budgeted(), budget=8)
    assert engine.segment_tokens == 8
    assert engine.max_segments == 1


def test_the_defaults() -> None:
    model = budgeted()
    engine = LongCoT(model)
    assert (engine.budget, engine.segment_tokens, engine.probe_tokens) == (
        4096,
        512,
        256,
    )
    engine.run(QUESTION)
    assert max_tokens_seen(model)[:2] == [512, 256]
    assert model.calls[0][0].content == LONG_COT_SYSTEM_PROMPT


async def test_adaptive_without_a_passing_answer_spends_the_budget(run: Run) -> None:
    model = budgeted()
    result = await run(
        model,
        QUESTION,
        budget=40,
        segment_tokens=10,
        scorer=FunctionScorer(lambda q, c: 0.5),
    )
    assert result["budget_used"] == 40
    assert len(result["candidates"]) == 4
    assert result["stop_reason"] == "budget"
    assert result["passed"] is False
    # Equal scores: the answer after the most thought wins.
    assert result["answer"] == result["candidates"][-1]["text"]


async def test_the_loop_is_bounded_when_the_model_says_nothing(run: Run) -> None:
    model = FakeChatModel(
        responder=lambda m: boxed(42) if last_human(m) == PROBE_PROMPT else ""
    )
    result = await run(model, QUESTION, budget=100, segment_tokens=25, mode="static")
    # No tokens are ever spent, so the segment count bounds the run.
    assert result["budget_used"] == 0
    assert len(model.calls) == 4 + 1


async def test_a_model_that_ignores_max_tokens_is_counted_honestly(run: Run) -> None:
    model = FakeChatModel(responder=thinker)  # ignores `max_tokens`
    result = await run(model, QUESTION, budget=100, segment_tokens=10)
    assert result["budget_used"] == 1000
    assert result["stop_reason"] == "budget"
    assert len(model.calls) == 2


async def test_without_usage_metadata_tokens_are_counted_offline(run: Run) -> None:
    segment = "Let me think about the tens and the ones."
    model = FakeChatModel(
        responder=lambda m: boxed(42) if last_human(m) == PROBE_PROMPT else segment,
        report_usage=False,
    )
    result = await run(model, QUESTION, budget=1000, segment_tokens=500, mode="static")
    assert result["budget_used"] == 2 * count_tokens(segment)


async def test_a_plain_runnable_is_called_without_binding(run: Run) -> None:
    def reply(messages: list[BaseMessage]) -> AIMessage:
        if last_human(messages) == PROBE_PROMPT:
            return AIMessage(boxed(42))
        return AIMessage("two tokens")

    model = RunnableLambda(reply)
    result = await run(model, QUESTION, budget=4, segment_tokens=2, mode="static")
    assert result["final_answer"] == "42"
    assert result["budget_used"] == 2 * count_tokens("two tokens")


def test_adaptive_cost_never_exceeds_static_cost() -> None:
    for budget in (5, 10, 25, 40, 80):
        adaptive = LongCoT(budgeted(), budget=budget, segment_tokens=10, scorer=QUORUM)
        static = LongCoT(budgeted(), budget=budget, segment_tokens=10, mode="static")
        used = adaptive.run(QUESTION)["budget_used"]
        assert used <= static.run(QUESTION)["budget_used"] == budget


# -- prompts ---------------------------------------------------------------------------


def test_segments_continue_the_thinking_and_probes_force_an_answer() -> None:
    model = budgeted()
    LongCoT(model, budget=20, segment_tokens=10, mode="static").run(QUESTION)
    first, second, probe = model.calls
    assert last_human(first) == QUESTION
    assert not any(isinstance(m, AIMessage) for m in first)
    assert [m.content for m in second[-2:]] == [
        " ".join(["think"] * 10),
        CONTINUE_PROMPT,
    ]
    assert probe[-1].content == PROBE_PROMPT
    assert len(words(thinking_of(probe))) == 20
    assert PROBE_PROMPT == "Stop thinking; give the final answer now as \\boxed{...}."


# -- native thinking budgets -----------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "budget", "expected"),
    [
        (ChatOpenAI(model="o3-mini", api_key="sk-test"), 512, "low"),
        (ChatOpenAI(model="o4-mini", api_key="sk-test"), 4096, "medium"),
        (ChatOpenAI(model="gpt-5", api_key="sk-test"), 16384, "high"),
    ],
)
def test_openai_reasoning_models_get_a_reasoning_effort(
    model: Any, budget: int, expected: str
) -> None:
    assert native_thinking_kwargs(model, budget) == {
        "reasoning_effort": expected,
        "max_tokens": budget + 1024,
    }


def test_other_openai_compatible_models_get_nothing() -> None:
    local = ChatOpenAI(model="qwen2.5-coder-0.5b", api_key="sk-test")
    assert native_thinking_kwargs(local, 4096) == {}
    assert native_thinking_kwargs(ChatOpenAI(model="gpt-4o", api_key="x"), 4096) == {}


def test_anthropic_models_get_a_thinking_budget() -> None:
    model = ChatAnthropic(responder=thinker)
    assert native_thinking_kwargs(model, 2048) == {
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "max_tokens": 2048 + 1024,
    }
    # Below the API's minimum, and on models without extended thinking: none.
    assert native_thinking_kwargs(model, 512) == {}
    old = ChatAnthropic(responder=thinker, model="claude-3-5-haiku-latest")
    assert native_thinking_kwargs(old, 4096) == {}
    newer = ChatAnthropic(responder=thinker, model="claude-3-7-sonnet-latest")
    assert "thinking" in native_thinking_kwargs(newer, 4096)


def test_gemini_models_get_a_thinking_budget() -> None:
    flash = ChatGoogleGenerativeAI(responder=thinker)
    assert native_thinking_kwargs(flash, 0) == {
        "thinking_budget": 0,
        "max_tokens": 1024,
    }
    pro = ChatGoogleGenerativeAI(responder=thinker, model="models/gemini-2.5-pro")
    assert native_thinking_kwargs(pro, 0)["thinking_budget"] == 128
    old = ChatGoogleGenerativeAI(responder=thinker, model="gemini-1.5-flash")
    assert native_thinking_kwargs(old, 4096) == {}


def test_detection_reads_llm_type_and_sees_through_wrappers() -> None:
    model = SomeWrapper(responder=thinker)
    expected = {
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "max_tokens": 2048,
    }
    assert native_thinking_kwargs(model, 1024) == expected
    wrapped = model.bind(temperature=0).with_config(tags=["x"])
    assert native_thinking_kwargs(wrapped, 1024) == expected


def test_unknown_models_get_nothing() -> None:
    assert native_thinking_kwargs(FakeChatModel(responder=thinker), 4096) == {}
    assert native_thinking_kwargs(RunnableLambda(lambda x: x), 4096) == {}
    assert native_thinking_kwargs(object(), 4096) == {}


@pytest.mark.parametrize("budget", [-1, 1.5, True, "1024"])
def test_native_kwargs_reject_a_bad_budget(budget: Any) -> None:
    with pytest.raises(ConfigurationError):
        native_thinking_kwargs(FakeChatModel(responder=thinker), budget)


def test_native_budgets_are_bound_per_segment() -> None:
    model = ChatAnthropic(responder=thinker)
    LongCoT(model, budget=4096, segment_tokens=2048, mode="static").run(QUESTION)
    segment, _, probe = model.call_kwargs
    assert segment == {
        "max_tokens": 2048 + 1024,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    # Probes ask for an answer, not for more thinking.
    assert probe == {"max_tokens": 256}


def test_native_thinking_can_be_turned_off() -> None:
    model = ChatAnthropic(responder=thinker)
    LongCoT(
        model, budget=2048, segment_tokens=2048, mode="static", native_thinking=False
    ).run(QUESTION)
    assert model.call_kwargs == [{"max_tokens": 2048}, {"max_tokens": 256}]


# -- accounting and memory -------------------------------------------------------------


async def test_usage_counts_segments_probes_and_scorer_calls(run: Run) -> None:
    model = budgeted()
    judge = FakeChatModel(responder=constant("Rating: 3"))
    result = await run(
        model,
        QUESTION,
        budget=30,
        segment_tokens=10,
        scorer=LLMJudgeScorer(judge),
    )
    usage = result["usage"]
    assert usage["generations"] == 3 + 3
    assert usage["scorer_calls"] == len(judge.calls) == 3
    # Reasoning tokens are the segments' output; probes add their own.
    assert result["budget_used"] == 30
    assert usage["solver_output_tokens"] == 30 + 3 * len(words(boxed(42)))
    assert usage["scorer_input_tokens"] > 0


def test_exemplars_go_into_every_prompt_and_precedents_to_the_scorer() -> None:
    model = budgeted()
    memory = MemoryContext(exemplars=[EXEMPLAR], precedents=["41"])
    result = LongCoT(model, budget=100, segment_tokens=10, scorer=QUORUM).run(
        QUESTION, memory=memory
    )
    # The first probe's 41 matches the precedent: a quorum at once.
    assert result["budget_used"] == 10
    assert result["final_answer"] == "41"
    assert result["candidates"][0]["with_memory"] is True
    assert all(has_exemplar(call) for call in model.calls)
