"""`SpeedupChatModel` over the local model: LangChain's standard integration suite."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_speedup import SpeedupChatModel

pytestmark = pytest.mark.integration


class TestSpeedupChatModelLive(ChatModelIntegrationTests):
    """Best-of-N with a budget of 2 over the session's local model."""

    underlying: ChatOpenAI | None = None

    @pytest.fixture(autouse=True)
    def _on_the_local_model(self, chat_model: ChatOpenAI) -> None:
        type(self).underlying = chat_model

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return SpeedupChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": self.underlying, "budget": 2}

    # What the wrapper over the local model truly does: llama-cpp-python's
    # default chat format returns tool calls as text, so no tool calling or
    # structured output; usage is reported.
    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True
