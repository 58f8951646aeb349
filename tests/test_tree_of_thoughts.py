"""Tree-of-Thoughts (DFS): expansion order, pruning, stopping and memory."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from langchain_core.messages import SystemMessage
from langchain_core.runnables import RunnableConfig

from langchain_speedup import (
    ConsensusScorer,
    FunctionScorer,
    LLMJudgeScorer,
    MemoryContext,
    TreeOfThoughts,
)
from langchain_speedup.scaling.tree_of_thoughts import TREE_OF_THOUGHTS_SYSTEM_PROMPT
from tests.fakes import (
    EXEMPLAR,
    FINAL,
    QUESTION,
    QUORUM,
    SOLUTION_PATH,
    STEP_1,
    STEP_2,
    FakeChatModel,
    Responder,
    Run,
    constant,
    has_exemplar,
    path_of,
    three_steps,
)

ENGINE = TreeOfThoughts
SERIAL: RunnableConfig = {"max_concurrency": 1}
never_finishes = constant("Think about it some more.")


def per_depth(replies: dict[int, list[str]]) -> Responder:
    """Replies by depth, cycling through each depth's list in call order (which
    `SERIAL` keeps the order of the prompts)."""
    cycles = {depth: itertools.cycle(texts) for depth, texts in replies.items()}
    return lambda messages: next(cycles[len(path_of(messages))])


# -- search and stopping ---------------------------------------------------------------


async def test_adaptive_goes_depth_first_and_stops_at_a_passing_solution(
    run: Run,
) -> None:
    model = FakeChatModel(responder=three_steps)
    result = await run(model, QUESTION, breadth=2, scorer=QUORUM)
    # Root -> first child -> its first child -> two agreeing solutions.
    assert result["method"] == "tree_of_thoughts"
    assert result["budget_used"] == 3
    assert result["budget_unit"] == "expanded_nodes"
    assert result["stop_reason"] == "threshold"
    assert result["passed"] is True
    assert result["final_answer"] == "42"
    assert result["answer"] == SOLUTION_PATH
    # One batch of `breadth` identical prompts per expansion, deeper each time.
    assert [len(path_of(p)) for p in model.calls] == [0, 0, 1, 1, 2, 2]
    assert model.calls[0][0] == SystemMessage(TREE_OF_THOUGHTS_SYSTEM_PROMPT)
    assert model.calls[2][-1].text == "Write only the next step."
    candidates = result["candidates"]
    assert len(candidates) == 6
    # Partial paths carry no answer; without a number consensus values them 0,
    # and the search still goes deeper (ties broken by proposal order).
    assert [c["answer"] for c in candidates[:4]] == [None] * 4
    assert [c["text"] for c in candidates[::2]] == [
        STEP_1,
        f"{STEP_1}\n{STEP_2}",
        SOLUTION_PATH,
    ]
    assert [c["score"] for c in candidates] == [0.0] * 4 + [1.0, 1.0]
    assert result["usage"]["generations"] == 6


async def test_static_explores_the_whole_tree_within_its_limits(run: Run) -> None:
    model = FakeChatModel(responder=three_steps)
    result = await run(
        model, QUESTION, breadth=2, budget=20, mode="static", scorer=QUORUM
    )
    # 1 root + 2 at depth 1 + 4 at depth 2; depth-3 nodes are all complete.
    assert result["budget_used"] == 7
    assert len(result["candidates"]) == 7 * 2
    assert result["stop_reason"] == "budget"
    # The earliest of the equally valued solutions is kept.
    solutions = [c for c in result["candidates"] if c["answer"] is not None]
    assert len(solutions) == 8
    assert result["answer"] == solutions[0]["text"]
    assert result["candidates"].index(solutions[0]) == 4


async def test_the_loop_is_bounded_by_the_budget(run: Run) -> None:
    model = FakeChatModel(responder=never_finishes)
    always = FunctionScorer(lambda q, c: 1.0)
    result = await run(
        model, QUESTION, breadth=3, max_depth=1000, budget=6, scorer=always
    )
    assert result["budget_used"] == 6
    assert len(model.calls) == 6 * 3
    # Partial paths never stop a run, even at a full score.
    assert result["stop_reason"] == "budget"
    assert result["passed"] is False
    # No solution: the best partial path, the deepest among equals.
    assert result["final_answer"] is None
    assert result["answer"].count("\n") == 5


def test_max_depth_one_asks_for_a_finished_solution_at_once() -> None:
    model = FakeChatModel(responder=constant(FINAL))
    result = TreeOfThoughts(model, breadth=3, max_depth=1, mode="static").run(QUESTION)
    assert result["budget_used"] == 1
    assert len(model.calls) == 3
    assert "last step" in model.calls[0][-1].text
    assert result["final_answer"] == "42"


def test_dead_ends_at_max_depth_are_not_expanded() -> None:
    model = FakeChatModel(responder=never_finishes)
    result = TreeOfThoughts(
        model, breadth=1, max_depth=3, budget=50, mode="static"
    ).run(QUESTION)
    assert result["budget_used"] == 3
    assert result["final_answer"] is None
    # Only the last depth is told to finish.
    assert [p[-1].text.split(":")[0] for p in model.calls] == [
        QUESTION,
        "Write only the next step.",
        "Write the last step",
    ]


def test_adaptive_cost_never_exceeds_static_cost() -> None:
    model = FakeChatModel(responder=three_steps)
    used = []
    for nodes in range(1, 9):
        adaptive = TreeOfThoughts(model, breadth=2, budget=nodes, scorer=QUORUM).run(
            QUESTION
        )
        static = TreeOfThoughts(
            model, breadth=2, budget=nodes, mode="static", scorer=QUORUM
        ).run(QUESTION)
        assert adaptive["budget_used"] <= static["budget_used"] <= nodes
        assert (
            adaptive["candidates"]
            == static["candidates"][: len(adaptive["candidates"])]
        )
        used.append(adaptive["budget_used"])
    assert used == [1, 2, 3, 3, 3, 3, 3, 3]


# -- valuing and pruning ---------------------------------------------------------------


def test_children_are_visited_best_first() -> None:
    model = FakeChatModel(
        responder=per_depth({0: ["Try plan A.", "Try plan B."], 1: [FINAL]})
    )
    prefers_b = FunctionScorer(lambda q, c: 0.9 if "plan B" in c else 0.4)
    result = TreeOfThoughts(
        model, breadth=2, budget=2, mode="static", scorer=prefers_b
    ).run(QUESTION)
    assert result["budget_used"] == 2
    # The second expansion (calls 2 and 3) continues plan B.
    assert {path_of(m)[0] for m in model.calls[2:4]} == {"Try plan B."}


def test_low_value_nodes_are_pruned() -> None:
    model = FakeChatModel(
        responder=per_depth(
            {0: ["A dead end.", "A good idea."], 1: [STEP_2], 2: [FINAL]}
        )
    )
    scorer = FunctionScorer(lambda q, c: 0.1 if "dead end" in c else 0.8)
    result = TreeOfThoughts(
        model, breadth=2, budget=50, prune_below=0.5, mode="static", scorer=scorer
    ).run(QUESTION)
    # Only the good branch is searched: root, good idea, and its two children.
    assert result["budget_used"] == 4
    assert [path_of(m)[:1] for m in model.calls[2:]] == [["A good idea."]] * 6


def test_everything_pruned_returns_the_best_partial_path() -> None:
    model = FakeChatModel(responder=constant(STEP_1))
    scorer = FunctionScorer(lambda q, c: 0.2)
    result = TreeOfThoughts(model, prune_below=0.5, scorer=scorer).run(QUESTION)
    assert result["budget_used"] == 1
    assert result["stop_reason"] == "budget"
    assert result["answer"] == STEP_1
    assert result["final_answer"] is None
    assert result["passed"] is False


def test_a_partial_step_never_votes_nor_scores() -> None:
    # A partial sibling ending in 42 states no answer: it gives the finished
    # 42 no vote, and the consensus scorer gives it nothing.
    model = FakeChatModel(
        responder=per_depth({0: ["We get 42 so far.", "Hence \\boxed{42}."]})
    )
    result = TreeOfThoughts(model, breadth=2, budget=1, scorer=QUORUM).run(QUESTION)
    scores = {c["text"]: c["score"] for c in result["candidates"]}
    assert scores == {"We get 42 so far.": 0.0, "Hence \\boxed{42}.": 0.5}


def test_adaptive_keeps_the_first_passing_solution() -> None:
    model = FakeChatModel(
        responder=per_depth({0: ["So \\boxed{42}.", "Thus \\boxed{42}."]})
    )
    result = TreeOfThoughts(model, breadth=2, scorer=QUORUM).run(
        QUESTION, config=SERIAL
    )
    assert [c["score"] for c in result["candidates"]] == [1.0, 1.0]
    assert result["answer"] == "So \\boxed{42}."


@pytest.mark.parametrize(
    ("replies", "scores"),
    [
        # Two solutions meet the first one's 42: three votes.
        pytest.param([FINAL], [1 / 3, 0.0, 1.0, 1.0], id="complete"),
        # Partial steps state no answer: they neither meet the solution nor
        # score among themselves.
        pytest.param(
            ["We get 42.", "We get 40."], [1 / 3, 0.0, 0.0, 0.0], id="partial"
        ),
    ],
)
def test_only_complete_solutions_vote_with_earlier_ones(
    replies: list[str], scores: list[float]
) -> None:
    model = FakeChatModel(
        responder=per_depth({0: ["Hence \\boxed{42}.", STEP_1], 1: replies})
    )
    result = TreeOfThoughts(
        model, breadth=2, budget=2, scorer=ConsensusScorer(quorum=3)
    ).run(QUESTION, config=SERIAL)
    assert [c["score"] for c in result["candidates"]] == pytest.approx(scores)


async def test_the_judge_values_partial_paths_and_is_counted(run: Run) -> None:
    model = FakeChatModel(responder=three_steps)
    judge = FakeChatModel(responder=constant("Rating: 9"))
    scorer = LLMJudgeScorer(judge)
    result = await run(model, QUESTION, breadth=2, threshold=0.8, scorer=scorer)
    assert result["budget_used"] == 3
    usage = result["usage"]
    assert usage["scorer_calls"] == len(judge.calls) == len(result["candidates"]) == 6
    assert usage["generations"] == 6
    assert usage["scorer_input_tokens"] > 0
    # The judge saw a partial path first.
    assert STEP_1 in judge.calls[0][-1].text
    assert "boxed" not in judge.calls[0][-1].text


# -- memory ----------------------------------------------------------------------------


def test_memory_goes_into_every_proposal_and_to_the_scorer() -> None:
    model = FakeChatModel(responder=three_steps)
    memory = MemoryContext(
        exemplars=[EXEMPLAR], precedents=["42"], lessons="Carry the ten."
    )
    result = TreeOfThoughts(model, breadth=1, scorer=QUORUM).run(
        QUESTION, memory=memory
    )
    # One solution plus the matching precedent make a quorum.
    assert result["stop_reason"] == "threshold"
    assert result["budget_used"] == 3
    assert all(c["with_memory"] for c in result["candidates"])
    assert all(has_exemplar(call) for call in model.calls)
    assert all("Carry the ten." in call[0].text for call in model.calls)


def escalating(samples: int) -> MemoryContext:
    return MemoryContext(exemplars=[EXEMPLAR], precedents=[], samples=samples)


@pytest.mark.parametrize(
    ("responder", "samples", "quorum", "depths", "guided", "scores"),
    [
        # The plain root goes on top and is searched first; the guided child,
        # still with the exemplars, then finds the second, agreeing solution.
        pytest.param(
            per_depth({0: [STEP_1], 1: [FINAL]}),
            1,
            2,
            [0, 0, 1, 1],
            [True, False, False, True],
            [0.0, 0.0, 0.5, 1.0],
            id="start-spent",
        ),
        # The guided tree ends after one expansion, the plain one after
        # another; there is no second escalation.
        pytest.param(
            constant(FINAL),
            3,
            3,
            [0, 0],
            [True, False],
            [pytest.approx(1 / 3), pytest.approx(2 / 3)],
            id="tree-exhausted",
        ),
    ],
)
async def test_escalates_once_to_a_plain_root(
    responder: Any,
    samples: int,
    quorum: int,
    depths: list[int],
    guided: list[bool],
    scores: list[float],
    run: Run,
) -> None:
    model = FakeChatModel(responder=responder)
    scorer = ConsensusScorer(quorum=quorum)
    memory = escalating(samples)
    result = await run(model, QUESTION, breadth=1, memory=memory, scorer=scorer)
    assert [len(path_of(p)) for p in model.calls] == depths
    assert [has_exemplar(p) for p in model.calls] == guided
    assert [c["with_memory"] for c in result["candidates"]] == guided
    assert [c["score"] for c in result["candidates"]] == scores
    assert result["budget_used"] == len(depths)
    assert result["passed"] is (scores[-1] == 1.0)


@pytest.mark.parametrize(
    ("memory", "quorum", "with_memory"),
    [
        pytest.param(escalating(1), 1, True, id="after-a-pass"),
        pytest.param(escalating(0), 2, False, id="zero-samples"),
        pytest.param(
            MemoryContext(exemplars=[EXEMPLAR], precedents=[]),
            2,
            True,
            id="no-samples",
        ),
    ],
)
def test_no_escalation(memory: MemoryContext, quorum: int, with_memory: bool) -> None:
    model = FakeChatModel(responder=constant(FINAL))
    result = TreeOfThoughts(
        model, breadth=1, scorer=ConsensusScorer(quorum=quorum)
    ).run(QUESTION, memory=memory)
    # One expansion exhausts the tree; with zero samples memory stays out.
    assert result["budget_used"] == 1
    assert result["passed"] is (quorum == 1)
    assert [has_exemplar(p) for p in model.calls] == [with_memory]
    assert [c["with_memory"] for c in result["candidates"]] == [with_memory]


def test_prune_below_uses_the_scorers_range() -> None:
    wide = FunctionScorer(lambda q, c: 5.0, lower=0.0, upper=10.0)
    engine = TreeOfThoughts(
        FakeChatModel(responder=three_steps), scorer=wide, prune_below=4
    )
    assert engine.prune_below == 4.0
    assert TreeOfThoughts(FakeChatModel(responder=three_steps)).prune_below == 0.0
