"""Use adaptive Best-of-N as a node of your own LangGraph graph.

The Best-of-N subgraph reads and writes the `messages` key, so it drops into
any graph built on `MessagesState`. Here it answers, and a second node reports
what the answer cost.

Install: `pip install "langchain-speedup[local]"`. Run:
`python examples/best_of_n_in_a_graph.py`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_speedup import ConsensusScorer, create_best_of_n_graph


def main(model: BaseChatModel) -> dict[str, Any]:
    """Build the parent graph, answer one question, return the final state."""
    solver = create_best_of_n_graph(
        model, budget=6, mode="adaptive", scorer=ConsensusScorer(quorum=2)
    )

    def report(state: MessagesState) -> dict[str, Any]:
        answer = state["messages"][-1]
        return {"messages": [AIMessage(f"(answered by {answer.name})")]}

    builder = StateGraph(MessagesState)
    builder.add_node(solver)  # the subgraph's name, "best_of_n", is its node name
    builder.add_node("report", report)
    builder.add_edge(START, "best_of_n")
    builder.add_edge("best_of_n", "report")
    builder.add_edge("report", END)
    graph = builder.compile()

    state = graph.invoke({"messages": [("user", "What is 17 + 25?")]})
    for message in state["messages"]:
        print(f"{message.type}: {message.content}")
    return state


if __name__ == "__main__":
    from langchain_speedup.local import open_chat_model

    with open_chat_model(temperature=0.7, max_tokens=256) as chat_model:
        main(chat_model)
