"""Add `SpeedupMiddleware` to an agent you already have: one line.

The agent is a `create_agent` agent with two real tools, a calculator and a
unit converter. With the middleware, tool-calling turns run exactly as
before; answer turns go through the budget router, so the second time the
same question is asked its verified answer is reused and it costs less.

Install: `pip install "langchain-speedup[local,agents]"`. Runs on the
embedded local model, or on the server at `OPENAI_BASE_URL` (with
`OPENAI_API_KEY` and `SPEEDUP_MODEL`) when set. Run:
`python examples/agent_with_middleware.py`.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

from langchain.agents import create_agent
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import tool
from langgraph.store.memory import InMemoryStore

from langchain_speedup import SpeedupMiddleware, memory_index

_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_PER_KM = {"km": 1.0, "m": 0.001, "miles": 1.609344, "mile": 1.609344, "ft": 0.0003048}

# The agent's instructions replace the method's, so they ask for the answer
# line that answers are compared (and verified) by.
SYSTEM_PROMPT = (
    "Use the tools for arithmetic and unit conversions. After the tool result, "
    "end with the line 'The final answer is \\boxed{ANSWER}.'"
)
QUESTIONS = [
    "Use the calculator: what is 37 * 12 + 5?",
    "Use the calculator: what is 37 * 12 + 5?",
    "How many km is 26.2 miles? Use the unit converter.",
]


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))  # type: ignore[no-any-return]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    msg = "only numbers and + - * / are allowed"
    raise ValueError(msg)


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with + - * / and parentheses, e.g. `37 * 12 + 5`."""
    try:
        value = _evaluate(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError) as e:
        return f"error: {e}"
    return f"{value:g}"


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a length between km, m, miles and ft."""
    if from_unit not in _PER_KM or to_unit not in _PER_KM:
        return f"error: units must be among {', '.join(_PER_KM)}"
    return f"{value * _PER_KM[from_unit] / _PER_KM[to_unit]:.3f}"


def main(model: BaseChatModel, embeddings: Embeddings) -> list[dict[str, Any]]:
    """Ask the questions; return each answer's route, text and cost."""
    store = InMemoryStore(index=memory_index(embeddings))
    agent = create_agent(
        model,
        [calculator, convert_units],
        system_prompt=SYSTEM_PROMPT,
        # The one line the middleware adds:
        middleware=[SpeedupMiddleware(budget=4, store=store)],
    )
    answers = []
    for question in QUESTIONS:
        messages = agent.invoke({"messages": [("user", question)]})["messages"]
        answer = messages[-1]
        usage = answer.usage_metadata or {}
        tools = [c["name"] for m in messages for c in getattr(m, "tool_calls", [])]
        answers.append(
            {
                "decision": answer.response_metadata.get("speedup_decision"),
                "answer": answer.text,
                "tools": tools,
                "tokens": usage.get("total_tokens", 0),
            }
        )
        print(
            f"{answers[-1]['decision']!s:<9} tools={tools} tokens={answers[-1]['tokens']} "
            f"answer={answer.text[-80:]!r}"
        )
    return answers


if __name__ == "__main__":
    from langchain_speedup.local import MiniLMEmbeddings, open_chat_model

    with open_chat_model(temperature=0.7, max_tokens=256) as chat_model:
        main(chat_model, MiniLMEmbeddings())
