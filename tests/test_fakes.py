"""The fakes themselves: the other tests are only as good as these."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from tests.fakes import (
    FailingChatModel,
    FakeChatModel,
    HashEmbeddings,
    Sequenced,
    constant,
    cosine,
    invoke,
    sum_solver,
)

PROMPTS = [f"What is {i} + {i + 1}?" for i in range(12)]
EXPECTED = [str(2 * i + 1) for i in range(12)]


def _answers(replies: list[AIMessage]) -> list[str]:
    return [r.content.rsplit("{", 1)[1].split("}")[0] for r in replies]  # type: ignore[union-attr]


async def test_reply_depends_only_on_the_input(is_async: bool) -> None:
    model = FakeChatModel(responder=sum_solver)
    for config in ({}, {"max_concurrency": 3}):
        if is_async:
            replies = await model.abatch(PROMPTS, config)
        else:
            replies = model.batch(PROMPTS, config)
        assert _answers(replies) == EXPECTED
    assert _answers([await invoke(model, PROMPTS[0], is_async=is_async)]) == ["1"]
    assert len(model.calls) == 25


def test_calls_are_per_instance() -> None:
    first = FakeChatModel(responder=sum_solver)
    second = FakeChatModel(responder=sum_solver)
    first.invoke("1 + 1")
    assert len(first.calls) == 1
    assert second.calls == []
    assert first.calls[0] == [HumanMessage("1 + 1")]


def test_usage_metadata_on_and_off() -> None:
    reply = FakeChatModel(responder=lambda m: "one two three").invoke("a b")
    assert reply.usage_metadata == {
        "input_tokens": 2,
        "output_tokens": 3,
        "total_tokens": 5,
    }
    quiet = FakeChatModel(responder=lambda m: "x", report_usage=False).invoke("a")
    assert not quiet.usage_metadata


def test_call_kwargs_are_recorded_and_max_tokens_honoured_on_request() -> None:
    reply = "one two three four"
    assert (
        FakeChatModel(responder=constant(reply)).invoke("a", max_tokens=2).content
        == reply
    )
    model = FakeChatModel(responder=constant(reply), honours_max_tokens=True)
    assert model.bind(max_tokens=2).invoke("a").content == "one two"
    assert model.invoke("a").content == reply
    assert model.call_kwargs == [{"max_tokens": 2}, {}]


def test_failing_model_fails_on_the_kth_call_only() -> None:
    model = FailingChatModel(responder=sum_solver, fail_on=2)
    model.invoke("1")
    with pytest.raises(RuntimeError):
        model.invoke("2")
    model.invoke("3")
    assert len(model.calls) == 3


def test_sequenced_runs_out_loudly() -> None:
    responder = Sequenced(["a"])
    assert responder([]) == "a"
    with pytest.raises(AssertionError):
        responder([])
    assert Sequenced([], then="z")([]) == "z"


def test_embeddings() -> None:
    emb = HashEmbeddings(dim=64)
    a = emb.embed_query("Tom has 3 apples")
    assert len(a) == 64
    assert cosine(a, a) == pytest.approx(1.0)
    assert sum(x * x for x in a) == pytest.approx(1.0)
    assert emb.embed_query("TOM has 3 apples!") == a
    assert cosine(a, emb.embed_query("Tom has 3 red apples")) > 0.8
    assert cosine(a, emb.embed_query("The train leaves at noon")) < 0.3
    assert emb.embed_documents(["Tom has 3 apples", "x"])[0] == a
    assert HashEmbeddings(dim=64).embed_query("") == [1.0] + [0.0] * 63
    with pytest.raises(ValueError, match="dim"):
        HashEmbeddings(dim=0)


def test_environment_is_hermetic() -> None:
    import os

    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "QDRANT_URL", "QDRANT_API_KEY"):
        assert name not in os.environ
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"
