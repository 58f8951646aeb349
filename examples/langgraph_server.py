"""The speedup graph as a LangGraph server deployment (`langgraph dev`).

`langgraph.json` serves `graph` from this file. The server's runs set
`budget`, `threshold` and `namespace` per run through the run context, and
stream the router's `route` event (`stream_mode="custom"`, with
`subgraphs=True` for the method's own events) before the answer.

Install: `pip install "langchain-speedup[local]" "langgraph-cli[inmem]"`.
The chat model is the OpenAI-compatible server at `OPENAI_BASE_URL` (with
`OPENAI_API_KEY` and `SPEEDUP_MODEL`); episodes go to the deployment's own
store, whose vector index `langgraph.json` configures with this file's
`embeddings`, so every thread and run of the deployment shares them. Run:
`langgraph dev`, or `python examples/langgraph_server.py` for two questions
in process on the embedded local model.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.memory import InMemorySaver

from langchain_speedup import BestOfN, create_speedup_graph

QUESTION = "Maya buys 3 notebooks at $4 each and pays with a $20 bill. How much change does Maya get, in dollars?"


def make_graph(model: BaseChatModel, embeddings: Embeddings, **options: Any) -> Any:
    """The speedup graph: adaptive Best-of-N over `model`.

    Its memory is the runtime's store (the deployment's), else a default
    store over `embeddings`.
    """
    return create_speedup_graph(
        BestOfN(model, budget=4), embeddings=embeddings, **options
    )


@functools.cache
def _minilm() -> Embeddings:
    from langchain_speedup.local import MiniLMEmbeddings

    return MiniLMEmbeddings()


def embed(texts: list[str]) -> list[list[float]]:
    """The deployment store's index embeddings (`langgraph.json`)."""
    return _minilm().embed_documents(texts)


def _served() -> Any:
    from langchain_speedup.local import DEFAULT_MODEL, LocalChatOpenAI

    model = LocalChatOpenAI(
        model=os.environ.get("SPEEDUP_MODEL", DEFAULT_MODEL),
        base_url=os.environ["OPENAI_BASE_URL"],
        api_key=os.environ.get("OPENAI_API_KEY", "none"),
        temperature=0.7,
        max_tokens=256,
    )
    # One MiniLM for the store's index and the graph's fallback store.
    return make_graph(model, _minilm())


# The served graph, built where a model server is configured (`langgraph dev`
# with `OPENAI_BASE_URL` set), so that importing this file needs no server.
if os.environ.get("OPENAI_BASE_URL"):
    graph = _served()


def main(model: BaseChatModel, embeddings: Embeddings) -> list[str]:
    """Ask `QUESTION` on two checkpointed threads; return the decisions.

    The second thread's question is the same question (same conversation) and
    is reused; asked again on the first thread, after its answer, it would be
    a new conversation's question (solved with the first as an exemplar).
    """
    graph = make_graph(model, embeddings, checkpointer=InMemorySaver())
    decisions = []
    for thread in ("first", "second"):
        for mode, chunk in graph.stream(
            {"messages": [("user", QUESTION)]},
            {"configurable": {"thread_id": thread}},
            context={"budget": 4},
            stream_mode=["custom", "values"],
        ):
            if mode == "custom" and chunk.get("event") == "route":
                decisions.append(chunk["decision"])
                print(f"route: {chunk['decision']} ({chunk['reason']})")
            elif mode == "values" and "speedup" in chunk:
                print(f"answer: {chunk['speedup']['final_answer']}")
    return decisions


if __name__ == "__main__":
    from langchain_speedup.local import MiniLMEmbeddings, open_chat_model

    with open_chat_model(temperature=0.7, max_tokens=256) as chat_model:
        main(chat_model, MiniLMEmbeddings())
