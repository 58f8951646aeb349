"""The local model's client sends the generation cap the server understands."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from langchain_speedup.local import LocalChatOpenAI, open_chat_model


def _payload(model: ChatOpenAI) -> dict:
    return model._get_request_payload([HumanMessage("hi")])


def test_max_tokens_reaches_llama_cpp_as_max_tokens() -> None:
    model = LocalChatOpenAI(
        model="m", base_url="http://127.0.0.1:1/v1", api_key="x", max_tokens=7
    )
    payload = _payload(model)
    assert payload["max_tokens"] == 7
    assert "max_completion_tokens" not in payload


def test_bound_max_tokens_is_renamed_too() -> None:
    model = LocalChatOpenAI(model="m", base_url="http://127.0.0.1:1/v1", api_key="x")
    payload = model._get_request_payload([HumanMessage("hi")], max_tokens=3)
    assert payload["max_tokens"] == 3
    assert "max_completion_tokens" not in payload


def test_plain_chat_openai_would_send_max_completion_tokens() -> None:
    # The reason `LocalChatOpenAI` exists: if this starts failing, upstream
    # changed and the override may be unnecessary.
    model = ChatOpenAI(
        model="m", base_url="http://127.0.0.1:1/v1", api_key="x", max_tokens=7
    )
    assert _payload(model).get("max_completion_tokens") == 7


def test_a_compatible_server_from_the_environment_gets_max_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with open_chat_model(max_tokens=20) as model:
        assert isinstance(model, LocalChatOpenAI)
        payload = model._get_request_payload([HumanMessage("hi")])
    assert payload["max_tokens"] == 20
    assert "max_completion_tokens" not in payload


def test_openai_itself_gets_max_completion_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with open_chat_model(max_tokens=20) as model:
        assert not isinstance(model, LocalChatOpenAI)
        payload = model._get_request_payload([HumanMessage("hi")])
    assert payload["max_completion_tokens"] == 20
