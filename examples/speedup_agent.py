"""Answer a stream of related questions with the speedup graph.

Shows the router's three decisions: a new problem is solved from scratch, its
exact repeat is answered from memory with no generation, and a variant with
new numbers is solved with the first problem as an exemplar.

Install: `pip install "langchain-speedup[local]"`. Runs on the embedded local
model, or on the server at `OPENAI_BASE_URL` (with `OPENAI_API_KEY` and
`SPEEDUP_MODEL`) when set. Run: `python examples/speedup_agent.py`.
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langgraph.store.memory import InMemoryStore

from langchain_speedup import BestOfN, create_speedup_graph, memory_index

QUESTIONS = [
    "Maya buys 3 notebooks at $4 each and pays with a $20 bill. How much change does Maya get, in dollars?",
    "Maya buys 3 notebooks at $4 each and pays with a $20 bill. How much change does Maya get, in dollars?",
    "Omar buys 5 notebooks at $3 each and pays with a $50 bill. How much change does Omar get, in dollars?",
]


def main(model: BaseChatModel, embeddings: Embeddings) -> list[str]:
    """Run the questions; return the router's decision for each."""
    # Any LangGraph store with a vector index holds the memory; the graph is
    # compiled with it, so a parent graph sees the same store.
    store = InMemoryStore(index=memory_index(embeddings))
    graph = create_speedup_graph(BestOfN(model, budget=6), store=store)
    decisions = []
    for question in QUESTIONS:
        out = graph.invoke({"messages": [("user", question)]})
        result = out["speedup"]
        decisions.append(result["route"]["decision"])
        print(
            f"{result['route']['decision']:<9} answer={result['final_answer']} "
            f"generations={result['usage']['generations']} "
            f"tokens={result['usage']['total_tokens']}  ({result['route']['reason']})"
        )
    return decisions


if __name__ == "__main__":
    from langchain_speedup.local import MiniLMEmbeddings, open_chat_model

    with open_chat_model(temperature=0.7, max_tokens=256) as chat_model:
        main(chat_model, MiniLMEmbeddings())
