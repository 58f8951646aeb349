"""SFT memory: JSONL export and validation, the fine-tuner and the model switch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from langgraph.store.base import BaseStore

from langchain_speedup import (
    EpisodicMemory,
    InvalidInputError,
    ModelError,
)
from langchain_speedup._internal import DEFAULT_SYSTEM_PROMPT
from langchain_speedup.memory import (
    FineTuner,
    OpenAIFineTuner,
    export_sft_dataset,
    switch_to_tuned,
    validate_sft_jsonl,
)
from tests.fakes import BAKE, MAYA, TRAIN, make_episode, new_store


@pytest.fixture
def filled(store: BaseStore) -> BaseStore:
    memory = EpisodicMemory(store)
    for episode in [
        make_episode(MAYA, final_answer="11", created_at=1.0),
        make_episode(MAYA, final_answer="12", created_at=2.0),
        make_episode(TRAIN, final_answer="180"),
        make_episode(BAKE, final_answer="8", verified=False),
        make_episode(BAKE, final_answer="7", namespace="other"),
    ]:
        memory.put(episode)
    memory.put_lessons("default", "Lessons are not examples.")
    return store


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_writes_verified_episodes_newest_per_question(
    filled: BaseStore, tmp_path: Path
) -> None:
    path = tmp_path / "out" / "sft.jsonl"
    assert export_sft_dataset(filled, "default", path) == 2
    assert validate_sft_jsonl(path) == 2
    examples = lines(path)
    assert [e["messages"][1]["content"] for e in examples] == [MAYA, TRAIN]
    maya = examples[0]["messages"]
    assert maya[0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    assert maya[2]["role"] == "assistant"
    assert "\\boxed{12}" in maya[2]["content"]


def test_export_keeps_both_questions_of_a_pair_that_used_to_collide(
    tmp_path: Path,
) -> None:
    plus = make_episode("What is 3+2?", final_answer="5", created_at=1.0)
    minus = make_episode("What is 3-2?", final_answer="1", created_at=2.0)
    again = make_episode("  WHAT IS 3+2 ?", final_answer="5", created_at=3.0)
    for episode in (plus, minus, again):
        # The key an older version stored: the same for all three.
        episode["question_key"] = "b1e0c1e8a1f3d2c4b5a6978812345678"
    store = new_store()
    for episode in (plus, minus, again):
        EpisodicMemory(store).put(episode)
    path = tmp_path / "sft.jsonl"
    assert export_sft_dataset(store, "default", path) == 2
    examples = [
        (e["messages"][1]["content"], e["messages"][2]["content"]) for e in lines(path)
    ]
    assert examples == [
        (again["question"], again["answer"]),
        (minus["question"], minus["answer"]),
    ]


def test_export_system_prompt(filled: BaseStore, tmp_path: Path) -> None:
    path = tmp_path / "sft.jsonl"
    export_sft_dataset(filled, "default", path, system_prompt="Be brief.")
    assert lines(path)[0]["messages"][0]["content"] == "Be brief."
    export_sft_dataset(filled, "default", path, system_prompt="")
    assert [m["role"] for m in lines(path)[0]["messages"]] == ["user", "assistant"]


def test_export_of_an_empty_namespace_writes_nothing(
    filled: BaseStore, tmp_path: Path
) -> None:
    path = tmp_path / "sft.jsonl"
    with pytest.raises(InvalidInputError, match="no verified episode"):
        export_sft_dataset(filled, "nobody", path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("", "holds no examples"),
        ("not json\n", "line 1: not valid JSON"),
        ("[1, 2]\n", "line 1: each line must be a JSON object"),
        ('{"messages": []}\n', "`messages` must be a non-empty list"),
        ('{"messages": [{"role": "bot", "content": "x"}]}\n', "role 'bot'"),
        (
            '{"messages": [{"role": "user", "content": "q"}]}\n',
            "last message must be the assistant's",
        ),
        (
            '{"messages": [{"role": "user", "content": "q"}, '
            '{"role": "assistant", "content": " "}]}\n',
            "empty or non-text content",
        ),
        (
            '{"messages": [{"role": "user", "content": "q"}, '
            '{"role": "system", "content": "s"}, '
            '{"role": "assistant", "content": "a"}]}\n',
            "only the first message may be a system message",
        ),
        ('{"messages": [{"role": "assistant", "content": "a"}]}\n', "no user message"),
        (
            '{"messages": [{"role": "user", "content": "q"}, '
            '{"role": "assistant", "content": "a"}]}\n\n',
            "line 2: not valid JSON",
        ),
    ],
)
def test_invalid_files_are_rejected_naming_the_line(
    tmp_path: Path, content: str, error: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=error.replace("(", r"\(")):
        validate_sft_jsonl(path)


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read"):
        validate_sft_jsonl(tmp_path / "absent.jsonl")


# -- the fine-tuner ------------------------------------------------------------------


class FakeJobs:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.state = "validating_files"
        self.model: str | None = None

    def create(self, **options: Any) -> Any:
        self.created.append(options)
        return SimpleNamespace(id="ftjob-1")

    def retrieve(self, job_id: str) -> Any:
        if job_id != "ftjob-1":
            raise LookupError(job_id)
        return SimpleNamespace(
            id=job_id, status=self.state, fine_tuned_model=self.model
        )


class FakeFiles:
    def __init__(self) -> None:
        self.uploaded: list[tuple[bytes, str]] = []

    def create(self, *, file: Any, purpose: str) -> Any:
        self.uploaded.append((file.read(), purpose))
        return SimpleNamespace(id="file-1")


class FakeOpenAI:
    def __init__(self) -> None:
        self.files = FakeFiles()
        self.fine_tuning = SimpleNamespace(jobs=FakeJobs())


@pytest.fixture
def client() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def dataset(filled: BaseStore, tmp_path: Path) -> Path:
    path = tmp_path / "sft.jsonl"
    export_sft_dataset(filled, "default", path)
    return path


def test_start_uploads_and_creates_a_job(client: FakeOpenAI, dataset: Path) -> None:
    tuner = OpenAIFineTuner(client, base_model="base-1", suffix="speedup")
    assert isinstance(tuner, FineTuner)
    assert tuner.start(dataset) == "ftjob-1"
    assert client.files.uploaded == [(dataset.read_bytes(), "fine-tune")]
    assert client.fine_tuning.jobs.created == [
        {"training_file": "file-1", "model": "base-1", "suffix": "speedup"}
    ]


def test_start_rejects_an_invalid_file(client: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("{}\n")
    with pytest.raises(InvalidInputError):
        OpenAIFineTuner(client).start(path)
    assert client.files.uploaded == []


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("validating_files", "queued"),
        ("queued", "queued"),
        ("running", "running"),
        ("succeeded", "succeeded"),
        ("failed", "failed"),
        ("cancelled", "cancelled"),
    ],
)
def test_status(client: FakeOpenAI, raw: str, status: str) -> None:
    client.fine_tuning.jobs.state = raw
    assert OpenAIFineTuner(client).status("ftjob-1") == status


def test_unknown_status_and_client_errors_are_model_errors(client: FakeOpenAI) -> None:
    tuner = OpenAIFineTuner(client)
    client.fine_tuning.jobs.state = "paused"
    with pytest.raises(ModelError, match="unknown status 'paused'"):
        tuner.status("ftjob-1")
    with pytest.raises(ModelError, match="LookupError"):
        tuner.status("ftjob-2")


def test_importing_memory_does_not_load_langchain_openai() -> None:
    code = (
        "import sys, langchain_speedup.memory; "
        "sys.exit('langchain_openai' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def chat_model() -> ChatOpenAI:
    return ChatOpenAI(
        model="base-1", api_key="not-used", base_url="http://127.0.0.1:9/v1"
    )


def test_switch_to_tuned_after_success(client: FakeOpenAI) -> None:
    tuner = OpenAIFineTuner(client)
    client.fine_tuning.jobs.state = "succeeded"
    client.fine_tuning.jobs.model = "ft:base-1:speedup"
    assert tuner.model_name("ftjob-1") == "ft:base-1:speedup"
    model = chat_model()
    tuned = switch_to_tuned(model, tuner, "ftjob-1")
    assert tuned.model_name == "ft:base-1:speedup"
    assert model.model_name == "base-1"
    assert tuned.openai_api_base == model.openai_api_base


@pytest.mark.parametrize("state", ["running", "failed"])
def test_switch_before_success_is_refused(client: FakeOpenAI, state: str) -> None:
    tuner = OpenAIFineTuner(client)
    client.fine_tuning.jobs.state = state
    assert tuner.model_name("ftjob-1") is None
    with pytest.raises(InvalidInputError, match=f"is '{state}', not 'succeeded'"):
        switch_to_tuned(chat_model(), tuner, "ftjob-1")


def test_switch_needs_a_chat_openai(client: FakeOpenAI) -> None:
    client.fine_tuning.jobs.state = "succeeded"
    client.fine_tuning.jobs.model = "ft:base-1:speedup"
    with pytest.raises(InvalidInputError, match="must be a ChatOpenAI"):
        switch_to_tuned(object(), OpenAIFineTuner(client), "ftjob-1")  # type: ignore[arg-type]
