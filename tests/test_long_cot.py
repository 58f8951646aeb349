"""Long chain-of-thought: token budgets, probing, native thinking kwargs, graph."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from pydantic import Field

from langchain_speedup import (
    ConfigurationError,
    ConsensusScorer,
    FunctionScorer,
    InvalidInputError,
    LLMJudgeScorer,
    LongCoT,
    MemoryContext,
    ModelError,
    ScalingResult,
    create_long_cot_graph,
)
from langchain_speedup.scaling.long_cot import (
    CONTINUE_PROMPT,
    LONG_COT_SYSTEM_PROMPT,
    PROBE_PROMPT,
    native_thinking_kwargs,
)
from langchain_speedup.tokens import count_tokens
from tests.fakes import (
    FailingChatModel,
    FakeChatModel,
    boxed,
    constant,
    last_human,
    solve,
    text_of,
    words,
)

QUESTION = "What is 17 + 25?"
QUORUM = ConsensusScorer(quorum=2)  # stateless: safe to share

MERMAID = """graph TD;
\t__start__ --> prepare;
\tprepare --> think;
\tprobe --> score;
\tscore -.-> select;
\tscore -.-> think;
\tthink -.-> probe;
\tselect --> __end__;
\tthink -.-> think;
"""


def thinking_of(messages: list[BaseMessage]) -> str:
    shown = [m for m in messages if isinstance(m, AIMessage)]
    return str(shown[-1].content) if shown else ""


def thinker(messages: list[BaseMessage]) -> str:
    """Thinks at length; answers 41 after little thought, 42 after more."""
    if last_human(messages) == PROBE_PROMPT:
        return boxed(41) if len(words(thinking_of(messages))) < 20 else boxed(42)
    return "think " * 1000


class BudgetedChatModel(FakeChatModel):
    """A fake that records call kwargs and stops at `max_tokens` words."""

    kwargs_seen: list[dict[str, Any]] = Field(default_factory=list)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.kwargs_seen.append(dict(kwargs))
        self._record(messages)
        text = self.responder(list(messages))
        if "max_tokens" in kwargs:
            text = " ".join(text.split()[: kwargs["max_tokens"]])
        prompt, output = sum(len(words(text_of(m))) for m in messages), len(words(text))
        usage = {
            "input_tokens": prompt,
            "output_tokens": output,
            "total_tokens": prompt + output,
        }
        message = AIMessage(content=text, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, **kwargs)

    def max_tokens_seen(self) -> list[int]:
        return [k["max_tokens"] for k in self.kwargs_seen]


class ChatAnthropic(BudgetedChatModel):
    """Named like langchain-anthropic's model, for provider detection."""

    model: str = "claude-sonnet-4-5"

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


def without_seconds(result: ScalingResult) -> dict[str, Any]:
    usage = {k: v for k, v in result["usage"].items() if k != "seconds"}
    return {**result, "usage": usage}


Run = Callable[..., Awaitable[ScalingResult]]


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Run:
    """`long_cot` or `along_cot`, awaitable either way."""

    async def call(model: Any, question: Any, **options: Any) -> ScalingResult:
        is_async = request.param == "async"
        return await solve(LongCoT, model, question, is_async=is_async, **options)

    return call


# -- budgets and stopping --------------------------------------------------------------


async def test_adaptive_probes_each_segment_and_stops_at_the_threshold(
    run: Run,
) -> None:
    model = BudgetedChatModel(responder=thinker)
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
    assert model.max_tokens_seen() == [10, 256] * 3
    assert result["usage"]["generations"] == 6


async def test_static_spends_the_whole_budget_then_probes_once(run: Run) -> None:
    model = BudgetedChatModel(responder=thinker)
    result = await run(model, QUESTION, budget=100, segment_tokens=10, mode="static")
    assert result["budget_used"] == 100
    assert model.max_tokens_seen() == [10] * 10 + [256]
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
    model = BudgetedChatModel(responder=answering_thinker)
    result = await run(model, QUESTION, budget=100, segment_tokens=10, scorer=QUORUM)
    # Two segments, each read as its own probe: no probe call, and 99 (the
    # probe's answer) never appears.
    assert model.max_tokens_seen() == [10, 10]
    assert [c["answer"] for c in result["candidates"]] == ["42", "42"]
    assert result["stop_reason"] == "threshold"
    assert result["candidates"][-1]["text"] == "so the answer is \\boxed{42}."
    assert result["usage"]["generations"] == 2


async def test_static_reads_a_stated_answer_from_its_last_segment(run: Run) -> None:
    model = BudgetedChatModel(responder=answering_thinker)
    result = await run(model, QUESTION, budget=30, segment_tokens=10, mode="static")
    assert model.max_tokens_seen() == [10, 10, 10]
    assert result["final_answer"] == "42"
    assert result["usage"]["generations"] == 3


async def test_the_last_segment_gets_what_is_left(run: Run) -> None:
    model = BudgetedChatModel(responder=thinker)
    result = await run(model, QUESTION, budget=25, segment_tokens=10, mode="static")
    assert model.max_tokens_seen()[:3] == [10, 10, 5]
    assert result["budget_used"] == 25


def test_segment_tokens_are_capped_at_the_budget() -> None:
    engine = LongCoT(BudgetedChatModel(responder=thinker), budget=8)
    assert engine.segment_tokens == 8
    assert engine.max_segments == 1


def test_the_defaults() -> None:
    model = BudgetedChatModel(responder=thinker)
    engine = LongCoT(model)
    assert (engine.budget, engine.segment_tokens, engine.probe_tokens) == (
        4096,
        512,
        256,
    )
    engine.run(QUESTION)
    assert model.max_tokens_seen()[:2] == [512, 256]
    assert model.calls[0][0].content == LONG_COT_SYSTEM_PROMPT


async def test_adaptive_without_a_passing_answer_spends_the_budget(run: Run) -> None:
    model = BudgetedChatModel(responder=thinker)
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
    seen: list[int] = []

    def reply(messages: list[BaseMessage]) -> AIMessage:
        seen.append(len(messages))
        if last_human(messages) == PROBE_PROMPT:
            return AIMessage(boxed(42))
        return AIMessage("two tokens")

    model = RunnableLambda(reply)
    result = await run(model, QUESTION, budget=4, segment_tokens=2, mode="static")
    assert result["final_answer"] == "42"
    assert result["budget_used"] == 2 * count_tokens("two tokens")


def test_adaptive_cost_never_exceeds_static_cost() -> None:
    scorer = QUORUM
    for budget in (5, 10, 25, 40, 80):
        options: dict[str, Any] = {
            "budget": budget,
            "segment_tokens": 10,
            "scorer": scorer,
        }
        adaptive = LongCoT.from_options(
            BudgetedChatModel(responder=thinker), options
        ).run(QUESTION)
        static = LongCoT.from_options(
            BudgetedChatModel(responder=thinker), {"mode": "static", **options}
        ).run(QUESTION)
        assert adaptive["budget_used"] <= static["budget_used"] == budget


# -- prompts ---------------------------------------------------------------------------


def test_segments_continue_the_thinking_and_probes_force_an_answer() -> None:
    model = BudgetedChatModel(responder=thinker)
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
    segment, _, probe = model.kwargs_seen
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
    assert model.kwargs_seen == [{"max_tokens": 2048}, {"max_tokens": 256}]


# -- accounting and memory -------------------------------------------------------------


async def test_usage_counts_segments_probes_and_scorer_calls(run: Run) -> None:
    model = BudgetedChatModel(responder=thinker)
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
    model = BudgetedChatModel(responder=thinker)
    memory = MemoryContext(
        exemplars=[{"question": "What is 1 + 1?", "solution": boxed(2)}],
        precedents=["41"],
    )
    result = LongCoT(model, budget=100, segment_tokens=10, scorer=QUORUM).run(
        QUESTION, memory=memory
    )
    # The first probe's 41 matches the precedent: a quorum at once.
    assert result["budget_used"] == 10
    assert result["final_answer"] == "41"
    assert result["candidates"][0]["with_memory"] is True
    for call in model.calls:
        assert "What is 1 + 1?" in [m.content for m in call]


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"budget": 0},
        {"budget": -100},
        {"max_tokens": 100},
        {"segment_tokens": 0},
        {"segment_tokens": 2.5},
        {"probe_tokens": -1},
        {"native_thinking": "yes"},
        {"probe_prompt": ""},
        {"threshold": 3},
        {"mode": "long"},
    ],
)
async def test_invalid_options_fail_before_any_call(
    options: dict[str, Any], run: Run
) -> None:
    model = BudgetedChatModel(responder=thinker)
    with pytest.raises(ConfigurationError):
        LongCoT.from_options(model, options)
    with pytest.raises(ConfigurationError):
        create_long_cot_graph(model, **options)
    with pytest.raises(ConfigurationError):
        await run(model, QUESTION, **options)
    assert model.calls == []


async def test_an_empty_question_is_invalid_input(run: Run) -> None:
    model = BudgetedChatModel(responder=thinker)
    with pytest.raises(InvalidInputError):
        await run(model, "")
    assert model.calls == []


async def test_a_failing_probe_raises_a_solver_model_error(run: Run) -> None:
    model = FailingChatModel(responder=thinker, fail_on=2)
    with pytest.raises(ModelError) as caught:
        await run(model, QUESTION, budget=10, segment_tokens=10)
    assert caught.value.role == "solver"


# -- the graph -------------------------------------------------------------------------


def test_graph_shape_snapshot() -> None:
    graph = create_long_cot_graph(BudgetedChatModel(responder=thinker))
    assert graph.get_graph().draw_mermaid(with_styles=False) == MERMAID


async def test_graph_output_is_the_answer_and_the_result(run: Run) -> None:
    options: dict[str, Any] = {"budget": 60, "segment_tokens": 10, "mode": "static"}
    expected = await run(BudgetedChatModel(responder=thinker), QUESTION, **options)
    graph = create_long_cot_graph(BudgetedChatModel(responder=thinker), **options)
    inputs = {"messages": [HumanMessage(QUESTION)]}
    for state in (graph.invoke(inputs), await graph.ainvoke(inputs)):
        assert set(state) == {"messages", "long_cot"}
        assert without_seconds(state["long_cot"]) == without_seconds(expected)
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        assert (last.name, last.content) == ("long_cot", boxed(42))


async def test_graph_streams_candidates_scores_and_the_stop() -> None:
    model = BudgetedChatModel(responder=thinker)
    graph = create_long_cot_graph(model, budget=100, segment_tokens=10, scorer=QUORUM)
    inputs = {"messages": [HumanMessage(QUESTION)]}
    events = list(graph.stream(inputs, stream_mode="custom"))
    aevents = [e async for e in graph.astream(inputs, stream_mode="custom")]
    assert events == aevents
    assert [e["event"] for e in events] == ["candidate", "score"] * 3 + ["stop"]
    assert {e["method"] for e in events} == {"long_cot"}
    assert events[0]["text"] == boxed(41)
    assert events[-1] == {
        "method": "long_cot",
        "event": "stop",
        "answer": "42",
        "score": 1.0,
        "passed": True,
        "stop_reason": "threshold",
        "budget_used": 30,
        "budget_unit": "reasoning_tokens",
    }


def test_graph_stops_gracefully_near_the_recursion_limit() -> None:
    model = BudgetedChatModel(responder=thinker)
    graph = create_long_cot_graph(model, budget=1000, segment_tokens=10, mode="static")
    config: RunnableConfig = {"recursion_limit": 10}
    out = graph.invoke({"messages": [HumanMessage(QUESTION)]}, config)
    result = out["long_cot"]
    assert result["stop_reason"] == "budget"
    # prepare, 5 segments, then probe, score and select fill the 10 steps.
    assert result["budget_used"] == 50
    assert len(result["candidates"]) == 1
    assert len(model.calls) == 5 + 1


def test_graph_runs_as_a_node_of_a_parent_graph() -> None:
    model = BudgetedChatModel(responder=thinker)
    builder = StateGraph(MessagesState)
    builder.add_node(
        create_long_cot_graph(model, budget=40, segment_tokens=10, scorer=QUORUM)
    )
    builder.add_edge(START, "long_cot")
    builder.add_edge("long_cot", END)
    out = builder.compile().invoke({"messages": [("user", QUESTION)]})
    assert out["messages"][-1].content == boxed(42)
