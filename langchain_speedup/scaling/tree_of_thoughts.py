r"""Tree-of-Thoughts, depth-first: propose steps, value them, go deeper on the best.

Each expansion asks for `breadth` next steps of one partial solution and the
scorer values every child by its path so far (Yao et al., 2023, DFS variant).
Budget unit: expanded nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, Unpack

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from langchain_speedup._internal import GraphOptions, check_count, question_of
from langchain_speedup.answers import states_answer
from langchain_speedup.scaling._base import (
    Generate,
    ScalingEngine,
    ScalingInput,
    ScalingOptions,
    ScalingState,
    Score,
    Step,
    chain_exemplars,
)
from langchain_speedup.scoring import check_threshold
from langchain_speedup.types import (
    Candidate,
    ChatRunnable,
    MemoryContext,
    ScalingResult,
)

__all__ = [
    "TREE_OF_THOUGHTS_SYSTEM_PROMPT",
    "TreeOfThoughts",
    "TreeOfThoughtsOptions",
    "create_tree_of_thoughts_graph",
]

TREE_OF_THOUGHTS_SYSTEM_PROMPT = (
    "Solve the problem one step at a time. Reply with the next step only: a "
    "short paragraph of reasoning that moves the solution forward. When a step "
    "reaches the final answer, end it with the line "
    "'The final answer is \\boxed{ANSWER}.'"
)
_NEXT_STEP = "Write only the next step."
_LAST_STEP = (
    "Write the last step: finish the solution and end with the line "
    "'The final answer is \\boxed{ANSWER}.'"
)


class _Thought(TypedDict):
    """A node of the search tree: the reasoning steps from the root."""

    steps: list[str]
    complete: bool  # its last step states a final answer
    index: int  # its place in the candidates; -1 for a root
    with_memory: bool  # False under an escalation's fresh root: no exemplars


def _root(*, with_memory: bool) -> _Thought:
    return _Thought(steps=[], complete=False, index=-1, with_memory=with_memory)


def _path(thought: _Thought) -> str:
    return "\n".join(thought["steps"])


class _State(ScalingState):
    stack: NotRequired[list[_Thought]]  # to expand; the next one last
    children: NotRequired[list[_Thought]]  # of the node expanded last
    thoughts: NotRequired[list[_Thought]]  # every valued node, as the candidates
    expanded: NotRequired[int]


class TreeOfThoughtsOptions(ScalingOptions, total=False):
    """The keyword options of `TreeOfThoughts`."""

    breadth: int
    max_depth: int
    prune_below: float | None


class TreeOfThoughtsGraphOptions(TreeOfThoughtsOptions, GraphOptions, total=False):
    """The keyword options of `create_tree_of_thoughts_graph`."""


class TreeOfThoughts(ScalingEngine):
    """Depth-first Tree-of-Thoughts over one chat model.

    Children are visited depth first, best value first (proposal order breaks
    ties); a child is not expanded when complete (its step states a final
    answer), at `max_depth`, or valued below `prune_below`. Every valued node
    is a candidate. A child is scored against its siblings of the same kind
    and, when complete, against every solution found before (a partial path
    states no answer, so a `ConsensusScorer` gives it nothing and proposal
    order ranks partial siblings; a judge or function scorer can value
    them). The pick is the
    first passing complete solution (adaptive mode), else the best complete
    one, else the best partial path, deeper among equals, which never passes.

    Memory's exemplars go into every prompt and its precedents to the scorer.
    When memory limits them to its first `samples` expansions and those are
    spent (or their tree is exhausted) with no pass, the search pushes a
    fresh root whose subtree leaves the exemplars out.

    A run makes at most `budget` batches of `breadth` model calls and as many
    scorer calls.

    Args:
        model: Any chat model (or runnable returning a message).
        breadth: Step proposals per expanded node; default 3.
        max_depth: The most steps in a solution; default 4. Proposals at the
            last depth are asked to finish.
        prune_below: Children valued below this are not expanded; the
            scorer's lower bound (prune nothing) when `None`.
        **options: The options every engine takes (see `ScalingEngine`):
            `budget` in expanded nodes, default 10; `mode`, `scorer`,
            `threshold` and `system_prompt` (by default it asks for
            one step per reply).

    Raises:
        ConfigurationError: An option is out of range.
    """

    method = "tree_of_thoughts"
    unit = "expanded_nodes"
    default_budget = 10
    default_system_prompt = TREE_OF_THOUGHTS_SYSTEM_PROMPT
    State = _State

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        breadth: int = 3,
        max_depth: int = 4,
        prune_below: float | None = None,
        **options: Unpack[ScalingOptions],
    ) -> None:
        super().__init__(model, **options)
        self.breadth = check_count("breadth", breadth)
        self.max_depth = check_count("max_depth", max_depth)
        self.prune_below = (
            float(self.scorer.lower)
            if prune_below is None
            else check_threshold(self.scorer, prune_below, name="prune_below")
        )

    def _fresh(self) -> dict[str, Any]:
        return {
            "stack": [_root(with_memory=True)],
            "children": [],
            "thoughts": [],
            "expanded": 0,
        }

    def _expand(self, state: Mapping[str, Any]) -> Step:
        """Propose `breadth` next steps of the node on top of the stack."""
        _, conversation = question_of(state["messages"])
        memory: MemoryContext | None = state.get("memory")
        *stack, node = state["stack"]
        exemplars = chain_exemplars(memory) if node["with_memory"] else []
        prompt: list[AnyMessage] = self.prompt(conversation, memory, exemplars)
        depth = len(node["steps"])
        if depth:
            prompt.append(AIMessage(_path(node)))
        if depth == self.max_depth - 1:
            prompt.append(HumanMessage(_LAST_STEP))
        elif depth:
            prompt.append(HumanMessage(_NEXT_STEP))
        replies = yield Generate([prompt] * self.breadth)
        children = [
            _Thought(
                steps=[*node["steps"], step],
                complete=states_answer(step),
                index=len(state["candidates"]) + i,
                with_memory=node["with_memory"],
            )
            for i, step in enumerate(reply.text.strip() for reply in replies)
        ]
        for child in children:
            self.candidate_event(child["index"], _path(child))
        return {"stack": stack, "children": children, "expanded": state["expanded"] + 1}

    def _evaluate(self, state: Mapping[str, Any]) -> Step:
        """Value every child of the node just expanded."""
        question, _ = question_of(state["messages"])
        memory: MemoryContext | None = state.get("memory")
        children: list[_Thought] = state["children"]
        texts = [_path(child) for child in children]
        solutions = [c["text"] for c in self._solutions(state)]
        peers = []
        for i, child in enumerate(children):
            siblings = [
                text
                for j, (other, text) in enumerate(zip(children, texts, strict=True))
                if j != i and other["complete"] == child["complete"]
            ]
            # Partial paths vote only among themselves: their last number is
            # an intermediate result and must not count for a final answer.
            peers.append([*solutions, *siblings] if child["complete"] else siblings)
        precedents = memory["precedents"] if memory else []
        scores = yield Score(question, texts, peers, precedents)
        with_memory = bool(chain_exemplars(memory))
        valued = []
        for child, text, score in zip(children, texts, scores, strict=True):
            complete = child["complete"]
            memorised = with_memory and child["with_memory"]
            valued.append(
                self.candidate(text, score, with_memory=memorised, complete=complete)
            )
            self.score_event(child["index"], valued[-1], complete=complete)
        return {
            "thoughts": [*state["thoughts"], *children],
            "candidates": [*state["candidates"], *valued],
        }

    def _prune(self, state: _State) -> dict[str, Any]:
        """Push the children worth expanding, best on top; escalate if due."""
        candidates: list[Candidate] = state["candidates"]
        open_ = [
            child
            for child in state["children"]
            if not child["complete"]
            and len(child["steps"]) < self.max_depth
            and candidates[child["index"]]["score"] >= self.prune_below
        ]
        # `sorted` is stable: equal values keep proposal order.
        ranked = sorted(open_, key=lambda c: -candidates[c["index"]]["score"])
        stack = [*state["stack"], *ranked[::-1]]
        if self._escalates(state, stack):
            stack.append(_root(with_memory=False))
        return {"stack": stack}

    def _escalates(self, state: Mapping[str, Any], stack: Sequence[_Thought]) -> bool:
        """Whether to push a plain root: memory's start is over, the first time."""
        memory: MemoryContext | None = state.get("memory")
        samples = memory.get("samples") if memory else None
        return (
            samples is not None
            and bool(chain_exemplars(memory))
            and (state["expanded"] >= samples or not stack)
            # The plain root is expanded next, so its children show it was.
            and all(t["with_memory"] for t in state["thoughts"])
        )

    @staticmethod
    def _solutions(state: Mapping[str, Any]) -> list[Candidate]:
        """The complete solutions among the candidates, in order."""
        pairs = zip(state["thoughts"], state["candidates"], strict=True)
        return [candidate for thought, candidate in pairs if thought["complete"]]

    def _solved(self, state: Mapping[str, Any]) -> bool:
        return self.stops(self._solutions(state))

    def _after_prune(self, state: Mapping[str, Any]) -> Literal["expand", "select"]:
        finished = (
            state["expanded"] >= self.budget
            or not state["stack"]
            or self._solved(state)
        )
        # Another expansion is expand, evaluate, prune: three supersteps.
        return "select" if finished or not self.steps_left(state, 3) else "expand"

    def _add_steps(self, builder: StateGraph[Any, Any, Any, Any]) -> None:
        builder.add_node("expand", self.node("expand", self._expand))
        builder.add_node("evaluate", self.node("evaluate", self._evaluate))
        builder.add_node("prune", self._prune)
        builder.add_edge("prepare", "expand")
        builder.add_edge("expand", "evaluate")
        builder.add_edge("evaluate", "prune")
        builder.add_conditional_edges("prune", self._after_prune)

    def _select(self, state: Mapping[str, Any]) -> ScalingResult:
        complete = self._solutions(state)
        passing = [c for c in complete if self.passed(c)]
        if self.mode == "adaptive" and passing:
            best = passing[0]
        elif complete:
            best = max(complete, key=lambda c: c["score"])  # the earliest of equals
        else:
            pairs = zip(state["candidates"], state["thoughts"], strict=True)
            best, _ = max(pairs, key=lambda p: (p[0]["score"], len(p[1]["steps"])))
        return self.result(state, best, state["expanded"], complete=bool(complete))


def create_tree_of_thoughts_graph(
    model: ChatRunnable,
    /,
    *,
    name: str = "tree_of_thoughts",
    **options: Unpack[TreeOfThoughtsGraphOptions],
) -> CompiledStateGraph[Any, None, ScalingInput, Any]:
    """Build depth-first Tree-of-Thoughts as a compiled graph.

    `prepare`, then a loop (`expand` the node on top of the stack, `evaluate`
    its children, `prune` to push those worth expanding) that ends at a pass
    (adaptive mode), the budget, an empty stack or near the caller's recursion
    limit, then `select`. The answer is appended to `messages` and the
    `ScalingResult` is under the key `name`.

    Example:
        ```python
        graph = create_tree_of_thoughts_graph(model, breadth=2, max_depth=3)
        question = {"messages": [("user", "What is 17 + 25?")]}
        for event in graph.stream(question, stream_mode="custom"):
            print(event["event"], event.get("score"))  # candidates, scores, stop
        ```

    Options are those of `TreeOfThoughts` and LangGraph's `compile` (`checkpointer`,
    `store`, `interrupt_before`, `interrupt_after`, `debug`); an unknown or
    out-of-range one raises `ConfigurationError` here, not at run time.
    """
    return TreeOfThoughts.graph_of(model, name, options)
