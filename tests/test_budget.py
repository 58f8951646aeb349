"""The compute ledger: calls and tokens, by role, from callbacks."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from langchain_speedup import Ledger, Usage
from langchain_speedup.budget import ROLE_TAG_PREFIX, add_usage, empty_usage
from langchain_speedup.tokens import count_message_tokens, count_tokens
from tests.fakes import FailingChatModel, FakeChatModel, constant, words

REPLY = "The final answer is \\boxed{4}."


def reported_in(prompt: str) -> int:
    """What the fake reports as input tokens for a one-message prompt."""
    return len(words(prompt))


def test_empty_usage_is_all_zero() -> None:
    usage = empty_usage()
    assert set(usage) == set(Usage.__annotations__)
    assert all(value == 0 for value in usage.values())


def test_config_tags_the_role_and_keeps_the_callers_config() -> None:
    ledger = Ledger()
    config = ledger.config({"tags": ["mine"], "metadata": {"k": 1}}, role="scorer")
    assert config["tags"] == ["mine", f"{ROLE_TAG_PREFIX}scorer"]
    assert config["metadata"] == {"k": 1}
    assert ledger in config["callbacks"]


def test_counts_solver_and_scorer_calls_by_role_tag() -> None:
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    model.invoke("what is 2 + 2", ledger.config(role="solver"))
    model.invoke("is 4 right", ledger.config(role="scorer"))
    model.invoke("is four right", ledger.config(role="scorer"))
    model.invoke("think again", ledger.config(role="reflection"))
    usage = ledger.usage()
    out = len(words(REPLY))
    assert usage["generations"] == 1
    assert usage["scorer_calls"] == 2
    assert usage["other_calls"] == 1
    assert usage["failed_calls"] == 0
    assert usage["solver_input_tokens"] == reported_in("what is 2 + 2")
    assert usage["solver_output_tokens"] == out
    assert usage["scorer_input_tokens"] == 3 + 3
    assert usage["scorer_output_tokens"] == 2 * out
    assert usage["other_tokens"] == 2 + out
    assert usage["total_tokens"] == (
        usage["solver_input_tokens"]
        + usage["solver_output_tokens"]
        + usage["scorer_input_tokens"]
        + usage["scorer_output_tokens"]
        + usage["other_tokens"]
    )
    assert len(model.calls) == 4


def test_innermost_role_wins() -> None:
    # A scorer called with a config derived from the solver's carries both tags.
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    solver_config = ledger.config(role="solver")
    model.invoke("grade this", ledger.config(solver_config, role="scorer"))
    usage = ledger.usage()
    assert usage["scorer_calls"] == 1
    assert usage["generations"] == 0


def test_untagged_calls_count_as_solver() -> None:
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    model.invoke("hi there", {"callbacks": [ledger], "tags": ["speedup:unknown"]})
    assert ledger.usage()["generations"] == 1


def test_uses_usage_metadata_when_reported() -> None:
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    prompt = [SystemMessage("be brief"), HumanMessage("what is two plus two")]
    model.invoke(prompt, ledger.config(role="solver"))
    usage = ledger.usage()
    # The fake reports words, which tiktoken would count differently.
    assert usage["solver_input_tokens"] == 2 + 5
    assert usage["solver_output_tokens"] == len(words(REPLY))
    assert usage["solver_input_tokens"] != count_message_tokens(prompt)
    assert usage["solver_output_tokens"] != count_tokens(REPLY)


def test_counts_with_tiktoken_when_usage_is_absent() -> None:
    model = FakeChatModel(responder=constant(REPLY), report_usage=False)
    ledger = Ledger()
    prompt = [SystemMessage("be brief"), HumanMessage("what is two plus two")]
    reply = model.invoke(prompt, ledger.config(role="solver"))
    assert not reply.usage_metadata
    usage = ledger.usage()
    assert usage["generations"] == 1
    assert usage["solver_input_tokens"] == count_message_tokens(prompt)
    assert usage["solver_output_tokens"] == count_tokens(REPLY)
    assert usage["solver_input_tokens"] > 0
    assert usage["solver_output_tokens"] > 0
    assert usage["total_tokens"] == (
        usage["solver_input_tokens"] + usage["solver_output_tokens"]
    )


def test_counts_a_batch() -> None:
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    prompts = ["one two", "three four five", "six"]
    model.batch(prompts, ledger.config(role="solver"))
    usage = ledger.usage()
    assert usage["generations"] == 3
    assert usage["solver_input_tokens"] == 2 + 3 + 1
    assert usage["solver_output_tokens"] == 3 * len(words(REPLY))


def test_counts_failed_calls_and_their_prompt() -> None:
    model = FailingChatModel(responder=constant(REPLY), fail_on=2)
    ledger = Ledger()
    model.invoke("first question", ledger.config(role="solver"))
    with pytest.raises(RuntimeError, match="model exploded"):
        model.invoke("second question", ledger.config(role="solver"))
    usage = ledger.usage()
    assert usage["failed_calls"] == 1
    assert usage["generations"] == 1  # the failed call produced no candidate
    # The failed prompt's tokens are counted as spent (estimated: no reply).
    failed_prompt = count_message_tokens([HumanMessage("second question")])
    assert usage["solver_input_tokens"] == reported_in("first question") + failed_prompt
    assert usage["solver_output_tokens"] == len(words(REPLY))


def test_failed_scorer_call_is_charged_to_the_scorer() -> None:
    model = FailingChatModel(responder=constant(REPLY), fail_on=1)
    ledger = Ledger()
    with pytest.raises(RuntimeError):
        model.invoke("grade", ledger.config(role="scorer"))
    usage = ledger.usage()
    assert usage["failed_calls"] == 1
    assert usage["scorer_calls"] == 0
    assert usage["scorer_input_tokens"] == count_message_tokens([HumanMessage("grade")])
    assert usage["solver_input_tokens"] == 0


def test_record_counts_calls_made_outside_langchain() -> None:
    ledger = Ledger()
    ledger.record("solver", input_tokens=10, output_tokens=5)
    ledger.record("scorer", input_tokens=3, output_tokens=1)
    ledger.record("reflection", input_tokens=2, output_tokens=2)
    usage = ledger.usage()
    assert usage["generations"] == 1
    assert usage["scorer_calls"] == 1
    assert usage["other_calls"] == 1
    assert usage["other_tokens"] == 4
    assert usage["total_tokens"] == 23


def test_usage_is_a_snapshot() -> None:
    ledger = Ledger()
    before = ledger.usage()
    ledger.record("solver", input_tokens=1, output_tokens=1)
    assert before["generations"] == 0
    assert ledger.usage()["generations"] == 1
    assert ledger.usage()["seconds"] >= 0.0


def test_add_usage_sums_every_field() -> None:
    a = empty_usage()
    b = empty_usage()
    for i, key in enumerate(a, start=1):
        a[key] = i  # type: ignore[literal-required]
        b[key] = 10 * i  # type: ignore[literal-required]
    total = add_usage(a, b, empty_usage())
    assert all(total[k] == 11 * i for i, k in enumerate(total, start=1))  # type: ignore[literal-required]
    assert add_usage() == empty_usage()
    # The inputs are left alone.
    assert a["generations"] == 1


async def test_async_calls_are_counted() -> None:
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    await model.ainvoke("one two three", ledger.config(role="solver"))
    await model.ainvoke("grade it", ledger.config(role="scorer"))
    await model.abatch(["a b", "c"], ledger.config(role="solver"))
    usage = ledger.usage()
    assert usage["generations"] == 3
    assert usage["scorer_calls"] == 1
    assert usage["solver_input_tokens"] == 3 + 2 + 1
    assert usage["scorer_input_tokens"] == 2


async def test_async_failed_call_is_counted() -> None:
    model = FailingChatModel(responder=constant(REPLY), fail_on=1)
    ledger = Ledger()
    with pytest.raises(RuntimeError):
        await model.ainvoke("boom", ledger.config(role="solver"))
    usage = ledger.usage()
    assert usage["failed_calls"] == 1
    assert usage["generations"] == 0
    assert usage["solver_input_tokens"] == count_message_tokens([HumanMessage("boom")])


async def test_async_tiktoken_fallback() -> None:
    model = FakeChatModel(responder=constant(REPLY), report_usage=False)
    ledger = Ledger()
    await model.ainvoke("what is two plus two", ledger.config(role="solver"))
    usage = ledger.usage()
    assert usage["solver_input_tokens"] == count_message_tokens(
        [HumanMessage("what is two plus two")]
    )
    assert usage["solver_output_tokens"] == count_tokens(REPLY)


def test_count_tokens_offline() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello world") >= 1
    assert count_message_tokens([]) == 0
    assert count_message_tokens([HumanMessage("")]) == 4


def test_a_config_derived_twice_from_one_ledger_counts_once() -> None:
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    config = ledger.config(ledger.config(role="solver"), role="solver")
    model.invoke("hello", config)
    assert ledger.usage()["generations"] == 1


def test_nested_ledgers_each_count_the_call() -> None:
    model = FakeChatModel(responder=constant(REPLY))
    outer, inner = Ledger(), Ledger()
    model.invoke("hello", inner.config(outer.config(role="solver"), role="scorer"))
    assert outer.usage()["scorer_calls"] == 1
    assert inner.usage()["scorer_calls"] == 1
    assert outer.usage()["generations"] == inner.usage()["generations"] == 0
