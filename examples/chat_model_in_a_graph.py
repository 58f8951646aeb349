"""`SpeedupChatModel` in a hand-made LangGraph graph: a method in a model slot.

The graph's `answer` node calls a chat model as any node would; the model is
a `SpeedupChatModel`, so each answer is the pick of an adaptive Best-of-N
(it stops once enough samples agree). The user's system message takes
precedence over the method's built-in instructions.

Install: `pip install "langchain-speedup[local]"`. Runs on the embedded local
model, or on the server at `OPENAI_BASE_URL` (with `OPENAI_API_KEY` and
`SPEEDUP_MODEL`) when set. Run: `python examples/chat_model_in_a_graph.py`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_speedup import SpeedupChatModel

INSTRUCTIONS = (
    "You are a careful tutor. Explain in two or three sentences, then end with "
    "the line 'The final answer is \\boxed{ANSWER}.'"
)
QUESTION = "A train travels 60 km in 45 minutes. What is its speed in km per hour?"


def main(model: BaseChatModel) -> dict[str, Any]:
    """Answer `QUESTION` through the graph; return its final state."""
    speedup = SpeedupChatModel(model=model, method="best_of_n", budget=4)

    def answer(state: MessagesState) -> dict[str, Any]:
        return {
            "messages": [
                speedup.invoke([SystemMessage(INSTRUCTIONS), *state["messages"]])
            ]
        }

    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    state = builder.compile().invoke({"messages": [("user", QUESTION)]})
    reply = state["messages"][-1]
    print(
        f"samples={reply.response_metadata['speedup_budget_used']} "
        f"stop={reply.response_metadata['speedup_stop_reason']} "
        f"tokens={reply.usage_metadata['total_tokens']}\n{reply.text}"
    )
    return state


if __name__ == "__main__":
    from langchain_speedup.local import open_chat_model

    with open_chat_model(temperature=0.7, max_tokens=256) as chat_model:
        main(chat_model)
