"""Several workers share experience through one Qdrant store.

Each worker has its own router (its own method, gate and in-flight state);
they read and write one `QdrantStore`. What one worker verified, the others
reuse at no cost, and a variant with new numbers gets the verified episode as
an exemplar, whichever worker solved it.

Workers here are threads of one process sharing the embedded store. Workers in
several processes or machines share a Qdrant server or cluster instead: set
`QDRANT_URL` (and `QDRANT_API_KEY`), and `QdrantStore.from_env` connects to it.

Install: `pip install "langchain-speedup[local]"`. Runs on the embedded local
model, or on the server at `OPENAI_BASE_URL` (with `OPENAI_API_KEY` and
`SPEEDUP_MODEL`) when set. Run: `python examples/shared_memory_workers.py`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel

from langchain_speedup import BestOfN, BudgetRouter, QdrantStore, memory_index

QUESTION = "Maya buys 3 notebooks at $4 each and pays with a $20 bill. How much change does Maya get, in dollars?"
VARIANT = "Omar buys 5 notebooks at $3 each and pays with a $50 bill. How much change does Omar get, in dollars?"


def main(model: BaseChatModel, embeddings: Embeddings, workers: int = 3) -> list[str]:
    """One worker solves `QUESTION`, the others ask it again, the last a variant.

    Returns:
        Each answer's route decision, in that order.
    """
    with QdrantStore.from_env(index=memory_index(embeddings)) as store:
        routers = [
            BudgetRouter(BestOfN(model, budget=4), store=store, namespace="team")
            for _ in range(workers)
        ]
        results = [routers[0].solve(QUESTION)]
        with ThreadPoolExecutor(workers - 1) as pool:
            results += pool.map(lambda router: router.solve(QUESTION), routers[1:])
        results.append(routers[-1].solve(VARIANT))
    for worker, result in zip(
        [0, *range(1, workers), workers - 1], results, strict=True
    ):
        route = result["route"]
        print(
            f"worker {worker}: {route['decision']:<9} answer={result['final_answer']} "
            f"generations={result['usage']['generations']}  ({route['reason']})"
        )
    return [result["route"]["decision"] for result in results]


if __name__ == "__main__":
    from langchain_speedup.local import MiniLMEmbeddings, open_chat_model

    with open_chat_model(temperature=0.7, max_tokens=256) as chat_model:
        main(chat_model, MiniLMEmbeddings())
