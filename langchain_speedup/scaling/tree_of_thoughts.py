r"""Tree-of-Thoughts, depth-first: propose steps, value them, go deeper on the best.

A node is a partial solution: the reasoning steps so far. Expanding a node
asks the model for `breadth` proposals of the next step (one parallel
`batch`), and the scorer values each child by its path so far (Yao et al.,
2023, DFS variant). Children are ranked by value, then by proposal order, and
visited depth first, best first. A child is not expanded further when it is
complete (its step states a final answer: `answers.states_answer`), when it
reaches `max_depth`, or when its value is below `prune_below` (pruned).
Static mode searches until `max_nodes` nodes are expanded or the tree is
exhausted, then keeps the best-valued complete solution; adaptive mode stops
at the first complete solution whose score reaches the threshold. Budget
unit: expanded nodes.

Every valued node is a candidate in the result, in the order it was valued;
partial ones have `answer=None`. Each child is scored against its siblings of
the same kind and, when complete, against every complete solution found
before. With a `ConsensusScorer` a partial path without a number scores 0, so
value ties are common and the proposal order breaks them: the search still
goes deeper. When no complete solution is found the best partial path is
returned (`final_answer` is then `None`).

Memory enters through a `MemoryContext`: its exemplars go into the prompt
every node shares, and its precedents go to the scorer. When memory limits
them to its first `samples` expansions (the router's smaller start), the
search escalates once those are spent, or once the memory-guided tree is
exhausted, without a passing solution: it pushes a fresh root whose subtree
never sees the exemplars and searches on from there, while every solution
found so far keeps voting.

`tree_of_thoughts` / `atree_of_thoughts` are the functional core;
`create_tree_of_thoughts_graph` wraps the same steps in a compiled subgraph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps
from typing_extensions import TypedDict

from langchain_speedup._internal import message_text
from langchain_speedup.answers import states_answer
from langchain_speedup.budget import Ledger, Usage, add_usage, empty_usage
from langchain_speedup.errors import ConfigurationError
from langchain_speedup.scaling import _common
from langchain_speedup.scaling._common import ChatRunnable
from langchain_speedup.scaling.base import (
    Candidate,
    MemoryContext,
    Mode,
    ScalingOptions,
    ScalingResult,
    build_prompt,
    question_of,
)
from langchain_speedup.scoring import Scorer

__all__ = [
    "TREE_OF_THOUGHTS_SYSTEM_PROMPT",
    "Thought",
    "TreeOfThoughts",
    "TreeOfThoughtsInput",
    "TreeOfThoughtsOutput",
    "TreeOfThoughtsState",
    "atree_of_thoughts",
    "create_tree_of_thoughts_graph",
    "tree_of_thoughts",
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


class Thought(TypedDict):
    """A node of the search tree: a partial (or complete) solution."""

    steps: list[str]
    """The reasoning steps from the root; the depth is their count."""
    complete: bool
    """Whether the last step gave a final answer."""
    index: int
    """Its position in the candidates; -1 for the root."""
    with_memory: NotRequired[bool]
    """`False` on the subtree of the fresh root an escalating search starts:
    its prompts leave the exemplars out. Absent: as memory allows."""


_ROOT = Thought(steps=[], complete=False, index=-1)
_PLAIN_ROOT = Thought(steps=[], complete=False, index=-1, with_memory=False)


def _path(steps: Sequence[str]) -> str:
    return "\n".join(steps)


class TreeOfThoughts:
    """Depth-first Tree-of-Thoughts over one chat model, with validated options.

    The shared engine behind `tree_of_thoughts`, `atree_of_thoughts` and the
    graph; build it once and call `run` / `arun` for many questions. A run
    makes at most `max_nodes * breadth` model calls (in `max_nodes` batches)
    and as many scorer calls.

    Args:
        model: Any chat model (or runnable returning a message).
        max_nodes: The most nodes to expand (the budget); default 10.
        breadth: Step proposals per expanded node; default 3.
        max_depth: The most steps in a solution; default 4. Proposals at the
            last depth are asked to finish.
        prune_below: Children valued below this are not expanded; the
            scorer's lower bound (prune nothing) when `None`.
        mode: `"static"` or `"adaptive"` (default).
        scorer: Values partial and complete paths; `ConsensusScorer()` when
            `None`.
        threshold: Score of a complete solution that stops an adaptive run;
            the scorer's upper bound when `None`.
        system_prompt: Instructions placed before the exemplars and question;
            the default asks for one step per reply.

    Raises:
        ConfigurationError: An option is out of range.
    """

    method = "tree_of_thoughts"
    unit = "expanded_nodes"

    def __init__(
        self,
        model: ChatRunnable,
        /,
        *,
        max_nodes: int = 10,
        breadth: int = 3,
        max_depth: int = 4,
        prune_below: float | None = None,
        mode: Mode = "adaptive",
        scorer: Scorer | None = None,
        threshold: float | None = None,
        system_prompt: str = TREE_OF_THOUGHTS_SYSTEM_PROMPT,
    ) -> None:
        _common.check_model(model)
        _common.check_count("max_nodes", max_nodes)
        self.breadth = _common.check_count("breadth", breadth)
        self.max_depth = _common.check_count("max_depth", max_depth)
        self.model = model
        self.options = ScalingOptions(
            mode=mode,
            budget=max_nodes,
            scorer=scorer,
            threshold=threshold,
            system_prompt=system_prompt,
        )
        active = self.options.active_scorer
        if prune_below is None:
            self.prune_below = active.lower
        elif (
            isinstance(prune_below, bool)
            or not isinstance(prune_below, int | float)
            or not math.isfinite(prune_below)
            or not active.lower <= prune_below <= active.upper
        ):
            msg = (
                f"`prune_below` must be a number in the scorer's range "
                f"[{active.lower}, {active.upper}], got {prune_below!r}"
            )
            raise ConfigurationError(msg)
        else:
            self.prune_below = float(prune_below)

    @property
    def max_nodes(self) -> int:
        """The most nodes one run expands."""
        return self.options.budget

    # -- expand: propose the next steps of one node ----------------------------------

    def _prompt(
        self,
        conversation: Sequence[BaseMessage],
        node: Thought,
        memory: MemoryContext | None,
    ) -> list[AnyMessage]:
        exemplars, _ = _common.chain_exemplars(memory)
        prompt = build_prompt(
            conversation,
            system_prompt=self.options.system_prompt,
            exemplars=exemplars if node.get("with_memory", True) else (),
            lessons=_common.lessons_of(memory),
        )
        depth = len(node["steps"])
        if depth:
            prompt.append(AIMessage(_path(node["steps"])))
        if depth == self.max_depth - 1:
            prompt.append(HumanMessage(_LAST_STEP))
        elif depth:
            prompt.append(HumanMessage(_NEXT_STEP))
        return prompt

    def _expand(
        self,
        conversation: Sequence[BaseMessage],
        node: Thought,
        memory: MemoryContext | None,
        config: RunnableConfig | None,
    ) -> tuple[list[str], Usage]:
        ledger = Ledger()
        prompt = self._prompt(conversation, node, memory)
        replies = _common.batch(
            self.model,
            [prompt] * self.breadth,
            ledger.config(config, role="solver"),
            role="solver",
        )
        return [message_text(r).strip() for r in replies], ledger.usage()

    async def _aexpand(
        self,
        conversation: Sequence[BaseMessage],
        node: Thought,
        memory: MemoryContext | None,
        config: RunnableConfig | None,
    ) -> tuple[list[str], Usage]:
        ledger = Ledger()
        prompt = self._prompt(conversation, node, memory)
        replies = await _common.abatch(
            self.model,
            [prompt] * self.breadth,
            ledger.config(config, role="solver"),
            role="solver",
        )
        return [message_text(r).strip() for r in replies], ledger.usage()

    # -- evaluate: value every child -------------------------------------------------

    def _children(
        self, parent: Thought, proposals: Sequence[str], first_index: int
    ) -> list[Thought]:
        children = [
            Thought(
                steps=[*parent["steps"], step],
                complete=states_answer(step),
                index=first_index + i,
            )
            for i, step in enumerate(proposals)
        ]
        if "with_memory" in parent:
            for child in children:
                child["with_memory"] = parent["with_memory"]
        return children

    def _peers(
        self,
        children: Sequence[Thought],
        i: int,
        solutions: Sequence[str],
    ) -> list[str]:
        # Partial paths vote only among themselves: their last number is an
        # intermediate result and must not count for a final answer.
        child = children[i]
        siblings = [
            _path(c["steps"])
            for j, c in enumerate(children)
            if j != i and c["complete"] == child["complete"]
        ]
        return [*solutions, *siblings] if child["complete"] else siblings

    def _solutions(
        self, thoughts: Sequence[Thought], candidates: Sequence[Candidate]
    ) -> list[str]:
        return [candidates[t["index"]]["text"] for t in thoughts if t["complete"]]

    def _valued(
        self,
        children: Sequence[Thought],
        scores: Sequence[float],
        memory: MemoryContext | None,
    ) -> list[Candidate]:
        scorer = self.options.active_scorer
        with_memory = _common.chain_exemplars(memory)[1]
        return [
            _common.make_candidate(
                scorer,
                _path(child["steps"]),
                score,
                with_memory=with_memory and child.get("with_memory", True),
                complete=child["complete"],
            )
            for child, score in zip(children, scores, strict=True)
        ]

    def _evaluate(
        self,
        question: str,
        parent: Thought,
        proposals: Sequence[str],
        thoughts: Sequence[Thought],
        candidates: Sequence[Candidate],
        memory: MemoryContext | None,
        config: RunnableConfig | None,
    ) -> tuple[list[Thought], list[Candidate], Usage]:
        ledger = Ledger()
        children = self._children(parent, proposals, len(candidates))
        solutions = self._solutions(thoughts, candidates)
        scorer_config = ledger.config(config, role="scorer")
        scores = [
            self.options.active_scorer.score(
                question,
                _path(child["steps"]),
                peers=self._peers(children, i, solutions),
                precedents=_common.precedents_of(memory),
                config=scorer_config,
            )
            for i, child in enumerate(children)
        ]
        return children, self._valued(children, scores, memory), ledger.usage()

    async def _aevaluate(
        self,
        question: str,
        parent: Thought,
        proposals: Sequence[str],
        thoughts: Sequence[Thought],
        candidates: Sequence[Candidate],
        memory: MemoryContext | None,
        config: RunnableConfig | None,
    ) -> tuple[list[Thought], list[Candidate], Usage]:
        ledger = Ledger()
        children = self._children(parent, proposals, len(candidates))
        solutions = self._solutions(thoughts, candidates)
        scorer_config = ledger.config(config, role="scorer")
        scores = [
            await self.options.active_scorer.ascore(
                question,
                _path(child["steps"]),
                peers=self._peers(children, i, solutions),
                precedents=_common.precedents_of(memory),
                config=scorer_config,
            )
            for i, child in enumerate(children)
        ]
        return children, self._valued(children, scores, memory), ledger.usage()

    # -- prune: what goes on the stack -----------------------------------------------

    def _prune(
        self, children: Sequence[Thought], candidates: Sequence[Candidate]
    ) -> list[Thought]:
        """The children to visit, in stack order (the best one last, on top)."""
        open_ = [
            c
            for c in children
            if not c["complete"]
            and len(c["steps"]) < self.max_depth
            and candidates[c["index"]]["score"] >= self.prune_below
        ]
        # `sorted` is stable: equal values keep proposal order.
        ranked = sorted(open_, key=lambda c: -candidates[c["index"]]["score"])
        return ranked[::-1]

    # -- escalation: leave memory's start behind --------------------------------------

    def _escalation(
        self,
        memory: MemoryContext | None,
        expanded: int,
        stack: Sequence[Thought],
        thoughts: Sequence[Thought],
        candidates: Sequence[Candidate],
    ) -> list[Thought]:
        """What to push before the next expansion: a plain root, once, or nothing.

        The search escalates when memory limits the exemplars to its first
        `samples` expansions and those are spent (or the memory-guided tree is
        exhausted first), budget remains and no solution has passed.
        """
        if not memory or not _common.chain_exemplars(memory)[1]:
            return []
        samples = memory.get("samples")
        if samples is None or expanded >= self.max_nodes:
            return []
        if expanded < samples and stack:
            return []
        if any(t.get("with_memory", True) is False for t in (*stack, *thoughts)):
            return []  # escalated already
        if self._solved(thoughts, candidates):
            return []
        return [_PLAIN_ROOT]

    # -- stopping and selection ------------------------------------------------------

    def passed(self, candidate: Candidate) -> bool:
        """Whether a candidate's score reaches the threshold."""
        return candidate["score"] >= self.options.active_threshold

    def _solved(
        self, thoughts: Sequence[Thought], candidates: Sequence[Candidate]
    ) -> bool:
        # Adaptive runs stop at a passing complete solution.
        return self.options.mode == "adaptive" and any(
            self.passed(candidates[t["index"]]) for t in thoughts if t["complete"]
        )

    def _finished(
        self,
        expanded: int,
        stack: Sequence[Thought],
        thoughts: Sequence[Thought],
        candidates: Sequence[Candidate],
    ) -> bool:
        if expanded >= self.max_nodes or not stack:
            return True
        return self._solved(thoughts, candidates)

    def _select(
        self,
        thoughts: Sequence[Thought],
        candidates: Sequence[Candidate],
        expanded: int,
        usage: Usage,
    ) -> ScalingResult:
        assert thoughts, "selection needs at least one valued node"
        complete = [candidates[t["index"]] for t in thoughts if t["complete"]]
        passing = [c for c in complete if self.passed(c)]
        if self.options.mode == "adaptive" and passing:
            best = passing[0]
        elif complete:
            # `max` keeps the earliest of equal scores.
            best = max(complete, key=lambda c: c["score"])
        else:
            # No complete solution: the best partial path, deeper among equals.
            deepest = max(
                thoughts,
                key=lambda t: (candidates[t["index"]]["score"], len(t["steps"])),
            )
            best = candidates[deepest["index"]]
        return _common.build_result(
            method=self.method,
            unit=self.unit,
            options=self.options,
            best=best,
            candidates=candidates,
            budget_used=expanded,
            usage=usage,
            complete=bool(complete),
        )

    # -- whole runs ------------------------------------------------------------------

    def run(
        self,
        question: str | Sequence[BaseMessage],
        *,
        memory: MemoryContext | None = None,
        config: RunnableConfig | None = None,
    ) -> ScalingResult:
        """Answer one question (a string or a conversation).

        Args:
            question: The question, or a conversation ending in it.
            memory: Exemplars and precedents from memory, if any.
            config: Passed to every model and scorer call.

        Returns:
            The selected solution with every valued node, score and the usage.

        Raises:
            InvalidInputError: The question is empty or not text.
            ModelError: A model call failed; nothing partial is returned.
            ScoringError: The scorer returned an unusable score.
        """
        text, conversation = question_of(question)
        stack = [_ROOT]
        thoughts: list[Thought] = []
        candidates: list[Candidate] = []
        expanded = 0
        usage = empty_usage()
        # Bounded: every pass expands one node and `_finished` caps the count.
        while True:
            stack += self._escalation(memory, expanded, stack, thoughts, candidates)
            if self._finished(expanded, stack, thoughts, candidates):
                break
            node = stack.pop()
            proposals, spent = self._expand(conversation, node, memory, config)
            expanded += 1
            children, valued, scored = self._evaluate(
                text, node, proposals, thoughts, candidates, memory, config
            )
            thoughts += children
            candidates += valued
            stack += self._prune(children, candidates)
            usage = add_usage(usage, spent, scored)
        return self._select(thoughts, candidates, expanded, usage)

    async def arun(
        self,
        question: str | Sequence[BaseMessage],
        *,
        memory: MemoryContext | None = None,
        config: RunnableConfig | None = None,
    ) -> ScalingResult:
        """Async form of `run`."""
        text, conversation = question_of(question)
        stack = [_ROOT]
        thoughts: list[Thought] = []
        candidates: list[Candidate] = []
        expanded = 0
        usage = empty_usage()
        while True:
            stack += self._escalation(memory, expanded, stack, thoughts, candidates)
            if self._finished(expanded, stack, thoughts, candidates):
                break
            node = stack.pop()
            proposals, spent = await self._aexpand(conversation, node, memory, config)
            expanded += 1
            children, valued, scored = await self._aevaluate(
                text, node, proposals, thoughts, candidates, memory, config
            )
            thoughts += children
            candidates += valued
            stack += self._prune(children, candidates)
            usage = add_usage(usage, spent, scored)
        return self._select(thoughts, candidates, expanded, usage)

    # -- as a graph ------------------------------------------------------------------

    def as_graph(
        self, *, name: str = "tree_of_thoughts"
    ) -> CompiledStateGraph[
        TreeOfThoughtsState, None, TreeOfThoughtsInput, TreeOfThoughtsOutput
    ]:
        """This engine as a compiled subgraph; see `create_tree_of_thoughts_graph`.

        Args:
            name: The graph's name, used as its node name in a parent graph.

        Returns:
            The compiled graph, with `messages` in and out and the result
            under `tree_of_thoughts`.
        """
        engine = self
        method = self.method

        def _spent(state: TreeOfThoughtsState, spent: Usage) -> Usage:
            return add_usage(state.get("usage", empty_usage()), spent)

        def _expanded(
            state: TreeOfThoughtsState,
            stack: list[Thought],
            proposals: list[str],
            spent: Usage,
        ) -> dict[str, Any]:
            node = stack[-1]
            first = len(state.get("candidates", []))
            for i, step in enumerate(proposals):
                text = _path([*node["steps"], step])
                _common.emit(_common.candidate_event(method, first + i, text))
            return {
                "stack": stack[:-1],
                "parent": node,
                "proposals": proposals,
                "expanded": state.get("expanded", 0) + 1,
                "usage": _spent(state, spent),
            }

        def expand(
            state: TreeOfThoughtsState, config: RunnableConfig
        ) -> dict[str, Any]:
            _, conversation = question_of(state["messages"])
            stack = state.get("stack", [_ROOT])
            proposals, spent = engine._expand(
                conversation, stack[-1], state.get("memory"), config
            )
            return _expanded(state, stack, proposals, spent)

        async def aexpand(
            state: TreeOfThoughtsState, config: RunnableConfig
        ) -> dict[str, Any]:
            _, conversation = question_of(state["messages"])
            stack = state.get("stack", [_ROOT])
            proposals, spent = await engine._aexpand(
                conversation, stack[-1], state.get("memory"), config
            )
            return _expanded(state, stack, proposals, spent)

        def _evaluated(
            state: TreeOfThoughtsState,
            children: list[Thought],
            valued: list[Candidate],
            spent: Usage,
        ) -> dict[str, Any]:
            for child, candidate in zip(children, valued, strict=True):
                event = _common.score_event(
                    method,
                    child["index"],
                    candidate,
                    engine.options,
                    complete=child["complete"],
                )
                _common.emit(event)
            return {
                "children": children,
                "thoughts": [*state.get("thoughts", []), *children],
                "candidates": [*state.get("candidates", []), *valued],
                "usage": _spent(state, spent),
            }

        def evaluate(
            state: TreeOfThoughtsState, config: RunnableConfig
        ) -> dict[str, Any]:
            text, _ = question_of(state["messages"])
            children, valued, spent = engine._evaluate(
                text,
                state["parent"],
                state["proposals"],
                state.get("thoughts", []),
                state.get("candidates", []),
                state.get("memory"),
                config,
            )
            return _evaluated(state, children, valued, spent)

        async def aevaluate(
            state: TreeOfThoughtsState, config: RunnableConfig
        ) -> dict[str, Any]:
            text, _ = question_of(state["messages"])
            children, valued, spent = await engine._aevaluate(
                text,
                state["parent"],
                state["proposals"],
                state.get("thoughts", []),
                state.get("candidates", []),
                state.get("memory"),
                config,
            )
            return _evaluated(state, children, valued, spent)

        def prune(state: TreeOfThoughtsState) -> dict[str, Any]:
            pushed = engine._prune(state["children"], state["candidates"])
            stack = [*state.get("stack", []), *pushed]
            stack += engine._escalation(
                state.get("memory"),
                state["expanded"],
                stack,
                state["thoughts"],
                state["candidates"],
            )
            return {"stack": stack}

        def after_prune(state: TreeOfThoughtsState) -> Literal["expand", "select"]:
            finished = engine._finished(
                state["expanded"],
                state["stack"],
                state["thoughts"],
                state["candidates"],
            )
            # Another expansion is expand, evaluate, prune: three supersteps.
            if finished or not _common.steps_left(state, 3):
                return "select"
            return "expand"

        def select(state: TreeOfThoughtsState) -> dict[str, Any]:
            result = engine._select(
                state["thoughts"],
                state["candidates"],
                state["expanded"],
                state.get("usage", empty_usage()),
            )
            _common.emit(_common.stop_event(result))
            return {
                "tree_of_thoughts": result,
                "messages": [AIMessage(result["answer"], name=name)],
            }

        builder = StateGraph(
            TreeOfThoughtsState,
            input_schema=TreeOfThoughtsInput,
            output_schema=TreeOfThoughtsOutput,
        )
        builder.add_node("expand", RunnableLambda(expand, afunc=aexpand, name="expand"))
        builder.add_node(
            "evaluate", RunnableLambda(evaluate, afunc=aevaluate, name="evaluate")
        )
        builder.add_node("prune", prune)
        builder.add_node("select", select)
        builder.add_edge(START, "expand")
        builder.add_edge("expand", "evaluate")
        builder.add_edge("evaluate", "prune")
        builder.add_conditional_edges("prune", after_prune)
        builder.add_edge("select", END)
        return builder.compile(name=name)


def tree_of_thoughts(
    model: ChatRunnable,
    question: str | Sequence[BaseMessage],
    *,
    memory: MemoryContext | None = None,
    config: RunnableConfig | None = None,
    **options: Any,
) -> ScalingResult:
    """Answer a question with depth-first Tree-of-Thoughts.

    Example:
        ```python
        result = tree_of_thoughts(model, "What is 17 + 25?", breadth=2, max_depth=3)
        print(result["final_answer"], result["budget_used"], result["stop_reason"])
        ```

    Args:
        model: Any chat model.
        question: The question, or a conversation ending in it.
        memory: Exemplars and precedents from memory, if any.
        config: Passed to every model call.
        **options: The keyword options of `TreeOfThoughts`.

    Returns:
        The selected solution with every valued node, score and the usage.

    Raises:
        ConfigurationError: An option is out of range.
        InvalidInputError: The question is empty or not text.
        ModelError: A model call failed.
        ScoringError: The scorer returned an unusable score.
    """
    return TreeOfThoughts(model, **options).run(question, memory=memory, config=config)


async def atree_of_thoughts(
    model: ChatRunnable,
    question: str | Sequence[BaseMessage],
    *,
    memory: MemoryContext | None = None,
    config: RunnableConfig | None = None,
    **options: Any,
) -> ScalingResult:
    """Async form of `tree_of_thoughts`."""
    return await TreeOfThoughts(model, **options).arun(
        question, memory=memory, config=config
    )


# -- the graph -----------------------------------------------------------------------


class TreeOfThoughtsInput(TypedDict):
    """Input of the Tree-of-Thoughts graph: a conversation ending in the question."""

    messages: Annotated[list[AnyMessage], add_messages]
    memory: NotRequired[MemoryContext]


class TreeOfThoughtsOutput(TypedDict):
    """Output: the answer appended to `messages`, details under `tree_of_thoughts`."""

    messages: Annotated[list[AnyMessage], add_messages]
    tree_of_thoughts: ScalingResult


class TreeOfThoughtsState(TreeOfThoughtsInput):
    """Internal state; the search stays private to the subgraph."""

    stack: NotRequired[list[Thought]]
    """Nodes still to expand; the next one is last."""
    parent: NotRequired[Thought]
    """The node expanded last."""
    proposals: NotRequired[list[str]]
    """Its proposed next steps, not yet valued."""
    children: NotRequired[list[Thought]]
    """Its children, valued."""
    thoughts: NotRequired[list[Thought]]
    """Every valued node; `thoughts[i]` is `candidates[i]`."""
    candidates: NotRequired[list[Candidate]]
    expanded: NotRequired[int]
    usage: NotRequired[Usage]
    tree_of_thoughts: NotRequired[ScalingResult]
    remaining_steps: RemainingSteps


def create_tree_of_thoughts_graph(
    model: ChatRunnable,
    /,
    *,
    max_nodes: int = 10,
    breadth: int = 3,
    max_depth: int = 4,
    prune_below: float | None = None,
    mode: Mode = "adaptive",
    scorer: Scorer | None = None,
    threshold: float | None = None,
    system_prompt: str = TREE_OF_THOUGHTS_SYSTEM_PROMPT,
    name: str = "tree_of_thoughts",
) -> CompiledStateGraph[
    TreeOfThoughtsState, None, TreeOfThoughtsInput, TreeOfThoughtsOutput
]:
    """Build depth-first Tree-of-Thoughts as a compiled subgraph.

    `expand` takes the node on top of the stack and proposes `breadth` next
    steps in one batch, `evaluate` values each child with the scorer, and
    `prune` pushes the children worth expanding, best on top. The loop ends at
    the first complete solution reaching the threshold (adaptive mode), after
    `max_nodes` expansions, when the stack is empty, or early when the
    caller's recursion limit is near. Cost: at most `max_nodes * breadth`
    model calls and as many scorer calls.

    It runs standalone and as a node of a parent graph with a `messages` key.
    The answer is appended to `messages` and the `ScalingResult` is under
    `tree_of_thoughts`. With `stream_mode="custom"` each proposed path, its
    value and the stop decision arrive as `ScalingEvent`s.

    Example:
        ```python
        graph = create_tree_of_thoughts_graph(model, breadth=2, max_depth=3)
        out = graph.invoke({"messages": [("user", "What is 17 + 25?")]})
        print(out["messages"][-1].content, out["tree_of_thoughts"]["budget_used"])
        ```

    Args:
        model: Any chat model.
        max_nodes: The most nodes to expand; default 10.
        breadth: Step proposals per expanded node; default 3.
        max_depth: The most steps in a solution; default 4.
        prune_below: Children valued below this are not expanded; the
            scorer's lower bound (prune nothing) when `None`.
        mode: `"static"` or `"adaptive"` (default).
        scorer: Values paths; `ConsensusScorer()` when `None`.
        threshold: Stop score for adaptive mode; the scorer's upper bound when
            `None`.
        system_prompt: Instructions placed before the question.
        name: The graph's name, used as its node name in a parent graph.

    Returns:
        The compiled graph.

    Raises:
        ConfigurationError: An option is out of range (raised here, not at run
            time).
    """
    engine = TreeOfThoughts(
        model,
        max_nodes=max_nodes,
        breadth=breadth,
        max_depth=max_depth,
        prune_below=prune_below,
        mode=mode,
        scorer=scorer,
        threshold=threshold,
        system_prompt=system_prompt,
    )
    return engine.as_graph(name=name)
