"""The budget router driving each of the four scaling methods, fully offline.

Every decision must come out in the chosen method's budget unit: `scratch`
grants the full budget without memory, `exemplars` puts memory in the prompt
(a small start, then escalation, where the method supports it), `reuse`
spends nothing. The speedup graph must solve with the method's own subgraph.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from langchain_speedup import (
    BudgetRouter,
    ConfigurationError,
    ConsensusScorer,
    MemoryContext,
    QdrantEpisodicStore,
    create_speedup_graph,
)
from langchain_speedup.scaling import (
    METHODS,
    BestOfN,
    LongCoT,
    SelfRefine,
    TreeOfThoughts,
    create_engine,
)
from langchain_speedup.scaling.best_of_n import create_best_of_n_graph
from langchain_speedup.scaling.engines import BUDGET_OPTIONS, check_method
from langchain_speedup.scaling.long_cot import (
    CONTINUE_PROMPT,
    LONG_COT_SYSTEM_PROMPT,
    PROBE_PROMPT,
)
from langchain_speedup.scaling.self_refine import CRITIQUE_PROMPT, REVISE_PROMPT
from langchain_speedup.scaling.tree_of_thoughts import (
    TREE_OF_THOUGHTS_SYSTEM_PROMPT,
    create_tree_of_thoughts_graph,
)
from tests.fakes import FakeChatModel, HashEmbeddings, boxed, make_episode, text_of

MAYA = (
    "Maya buys 3 pens at 4 dollars each and 2 notebooks at 5 dollars each. "
    "How many dollars does Maya spend in total?"
)
MAYA_SUM = "14"
NEW_NUMBERS = MAYA.replace("3 pens", "7 pens")
NEW_NUMBERS_SUM = "18"
UNRELATED = "A train travels 60 miles per hour for 3 hours. How far does the train go?"

# The engines' own defaults, in their units.
DEFAULT_BUDGETS = {
    "best_of_n": 8,
    "self_refine": 4,
    "tree_of_thoughts": 10,
    "long_cot": 4096,
}
UNITS = {
    "best_of_n": "generations",
    "self_refine": "rounds",
    "tree_of_thoughts": "expanded_nodes",
    "long_cot": "reasoning_tokens",
}
CRITIQUE_REPLY = "The solution is correct."
_CONTROL = {
    CRITIQUE_PROMPT,
    REVISE_PROMPT,
    CONTINUE_PROMPT,
    PROBE_PROMPT,
    "Write only the next step.",
}
_NUMBERS = re.compile(r"\d+")


def question_in(messages: Sequence[BaseMessage]) -> str:
    """The question a prompt asks: its last human turn that is no method's control prompt."""
    humans = [text_of(m) for m in messages if isinstance(m, HumanMessage)]
    asked = [
        h for h in humans if h not in _CONTROL and not h.startswith("Write the last")
    ]
    return asked[-1]


def method_solver(messages: list[BaseMessage]) -> str:
    """Right for every method: answers with the sum of the question's integers.

    Critiques approve; every other call (a draft, a revision, a step, a
    thinking segment, a probe) gives the boxed sum, so answers agree.
    """
    if text_of(messages[-1]) == CRITIQUE_PROMPT:
        return CRITIQUE_REPLY
    return boxed(sum(int(n) for n in _NUMBERS.findall(question_in(messages))))


def has_exemplar(prompt: Sequence[BaseMessage], question: str) -> bool:
    """Whether `question` is shown as an exemplar: a turn, but not the one asked."""
    humans = [text_of(m) for m in prompt if isinstance(m, HumanMessage)]
    return question in humans and question_in(prompt) != question


def fake() -> FakeChatModel:
    return FakeChatModel(responder=method_solver)


def remember_maya(store: QdrantEpisodicStore) -> None:
    """Store a verified episode of MAYA, as a solved question would leave."""
    store.put(
        make_episode(MAYA, final_answer=MAYA_SUM), HashEmbeddings().embed_query(MAYA)
    )


def make_router(model: Any, store: Any, method: str, **options: Any) -> BudgetRouter:
    return BudgetRouter(
        model, store=store, embeddings=HashEmbeddings(), method=method, **options
    )


async def solve(router: BudgetRouter, question: Any, is_async: bool) -> Any:
    return await router.asolve(question) if is_async else router.solve(question)


async def invoke(graph: Any, state: Any, is_async: bool) -> Any:
    return await graph.ainvoke(state) if is_async else graph.invoke(state)


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def is_async(request: pytest.FixtureRequest) -> bool:
    return request.param


@pytest.fixture(params=METHODS)
def method(request: pytest.FixtureRequest) -> str:
    return request.param


def test_the_four_methods() -> None:
    assert METHODS == ("best_of_n", "self_refine", "tree_of_thoughts", "long_cot")
    assert dict(BUDGET_OPTIONS) == {
        "best_of_n": "n",
        "self_refine": "max_rounds",
        "tree_of_thoughts": "max_nodes",
        "long_cot": "max_tokens",
    }


# -- each decision, in each method's unit ----------------------------------------------


class TestDecisions:
    async def test_scratch_grants_the_full_budget_without_memory(
        self, store: QdrantEpisodicStore, method: str, is_async: bool
    ) -> None:
        model = fake()
        router = make_router(model, store, method)
        assert router.method == method
        assert router.engine.method == method
        assert router.budget == DEFAULT_BUDGETS[method]
        out = await solve(router, MAYA, is_async)
        route = out["route"]
        assert route["decision"] == "scratch"
        assert route["method"] == method
        assert route["unit"] == UNITS[method]
        assert route["budget"] == DEFAULT_BUDGETS[method]
        assert route["memory_samples"] == 0
        result = out["result"]
        assert result["method"] == method
        assert result["budget_unit"] == UNITS[method]
        assert 1 <= result["budget_used"] <= route["budget"]
        assert result["passed"] is True
        assert out["final_answer"] == MAYA_SUM
        assert not any(c["with_memory"] for c in result["candidates"])
        assert not any(has_exemplar(p, MAYA) for p in model.calls)
        [episode] = store.episodes("default")
        assert episode["method"] == method
        assert episode["budget_unit"] == UNITS[method]
        assert episode["verified"] is True

    async def test_reuse_spends_nothing(
        self, store: QdrantEpisodicStore, method: str, is_async: bool
    ) -> None:
        model = fake()
        router = make_router(model, store, method)
        first = await solve(router, MAYA, is_async)
        calls = len(model.calls)
        again = await solve(router, MAYA, is_async)
        route = again["route"]
        assert route["decision"] == "reuse"
        assert route["budget"] == 0
        assert route["memory_samples"] == 0
        assert route["method"] == method
        assert route["unit"] == UNITS[method]
        assert again["result"] is None
        assert again["answer"] == first["answer"]
        assert again["usage"]["total_tokens"] == 0
        assert len(model.calls) == calls

    async def test_exemplars_put_memory_in_the_prompt(
        self, store: QdrantEpisodicStore, method: str, is_async: bool
    ) -> None:
        model = fake()
        router = make_router(model, store, method)
        await solve(router, MAYA, is_async)
        before = len(model.calls)
        out = await solve(router, NEW_NUMBERS, is_async)
        route = out["route"]
        assert route["decision"] == "exemplars"
        assert route["precedents"] == []
        assert route["budget"] == DEFAULT_BUDGETS[method]
        # A small start where the method escalates; throughout for long CoT.
        expected_start = DEFAULT_BUDGETS[method] if method == "long_cot" else 2
        assert route["memory_samples"] == expected_start
        assert out["final_answer"] == NEW_NUMBERS_SUM
        result = out["result"]
        assert result["budget_used"] <= route["budget"]
        assert result["candidates"][0]["with_memory"] is True
        prompts = model.calls[before:]
        assert has_exemplar(prompts[0], MAYA)

    async def test_unrelated_question_is_scratch(
        self, store: QdrantEpisodicStore, method: str, is_async: bool
    ) -> None:
        model = fake()
        router = make_router(model, store, method)
        await solve(router, MAYA, is_async)
        before = len(model.calls)
        out = await solve(router, UNRELATED, is_async)
        assert out["route"]["decision"] == "scratch"
        assert out["route"]["budget"] == DEFAULT_BUDGETS[method]
        assert not any(has_exemplar(p, MAYA) for p in model.calls[before:])
        assert out["final_answer"] == "63"

    async def test_budget_option_sets_the_unit_budget(
        self, store: QdrantEpisodicStore, method: str, is_async: bool
    ) -> None:
        budget = 3 if method != "long_cot" else 60
        router = make_router(fake(), store, method, budget=budget)
        assert router.budget == budget
        out = await solve(router, MAYA, is_async)
        assert out["route"]["budget"] == budget
        assert out["result"]["budget_used"] <= budget


class TestPerMethodTranslation:
    async def test_best_of_n_keeps_its_first_samples_behaviour(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        model = fake()
        router = make_router(model, store, "best_of_n", n=5, memory_samples=1)
        await solve(router, MAYA, is_async)
        before = len(model.calls)
        out = await solve(router, NEW_NUMBERS, is_async)
        assert out["route"]["budget"] == 5
        assert out["route"]["memory_samples"] == 1
        assert [has_exemplar(p, MAYA) for p in model.calls[before:]] == [
            True,
            False,
            False,
        ]

    async def test_self_refine_escalates_to_a_fresh_plain_draft(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        model = fake()
        router = make_router(model, store, "self_refine")
        await solve(router, MAYA, is_async)
        before = len(model.calls)
        out = await solve(router, NEW_NUMBERS, is_async)
        result = out["result"]
        # Two rounds with memory, then a fresh plain draft makes the quorum.
        assert result["budget_used"] == 3
        assert [c["with_memory"] for c in result["candidates"]] == [
            True,
            True,
            False,
        ]
        prompts = model.calls[before:]
        asked = [text_of(p[-1]) for p in prompts]
        assert asked == [NEW_NUMBERS, CRITIQUE_PROMPT, REVISE_PROMPT, NEW_NUMBERS]
        assert [has_exemplar(p, MAYA) for p in prompts] == [True, True, True, False]
        # The fresh draft starts from the plain prompt: system, question.
        assert [type(m) for m in prompts[-1]] == [SystemMessage, HumanMessage]

    async def test_tree_of_thoughts_escalates_to_a_fresh_root(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        model = fake()
        router = make_router(
            model,
            store,
            "tree_of_thoughts",
            budget=4,
            memory_samples=1,
            method_options={"breadth": 2},
        )
        remember_maya(store)
        out = await solve(router, NEW_NUMBERS, is_async)
        assert out["route"]["decision"] == "exemplars"
        assert out["route"]["memory_samples"] == 1
        result = out["result"]
        # Expansion 1 (with memory): two agreeing solutions, 2 of 3 votes.
        # Expansion 2 starts a fresh root without memory; its solutions make
        # the quorum with the earlier ones.
        assert result["budget_used"] == 2
        assert result["passed"] is True
        assert [c["with_memory"] for c in result["candidates"]] == [
            True,
            True,
            False,
            False,
        ]
        assert [has_exemplar(p, MAYA) for p in model.calls] == [
            True,
            True,
            False,
            False,
        ]

    async def test_long_cot_keeps_exemplars_throughout(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        model = fake()
        router = make_router(
            model,
            store,
            "long_cot",
            budget=200,
            memory_samples=1,
            method_options={"segment_tokens": 20},
        )
        remember_maya(store)
        out = await solve(router, NEW_NUMBERS, is_async)
        assert out["route"]["decision"] == "exemplars"
        assert out["route"]["budget"] == 200
        assert out["route"]["memory_samples"] == 200
        result = out["result"]
        assert len(result["candidates"]) == 3
        assert all(c["with_memory"] for c in result["candidates"])
        # Three segments; each states its answer, so none needs a probe call.
        assert len(model.calls) == 3
        assert all(has_exemplar(p, MAYA) for p in model.calls)

    async def test_method_default_system_prompt(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        for method, prompt in (
            ("tree_of_thoughts", TREE_OF_THOUGHTS_SYSTEM_PROMPT),
            ("long_cot", LONG_COT_SYSTEM_PROMPT),
        ):
            model = fake()
            router = make_router(model, store, method, namespace=method)
            await solve(router, MAYA, is_async)
            assert text_of(model.calls[0][0]) == prompt

    async def test_given_system_prompt_reaches_every_method(
        self, store: QdrantEpisodicStore, method: str, is_async: bool
    ) -> None:
        model = fake()
        router = make_router(model, store, method, system_prompt="Be brief.")
        await solve(router, MAYA, is_async)
        assert all(text_of(p[0]) == "Be brief." for p in model.calls)

    async def test_mode_static_spends_the_whole_budget(
        self, store: QdrantEpisodicStore, is_async: bool
    ) -> None:
        router = make_router(
            fake(),
            store,
            "self_refine",
            mode="static",
            budget=3,
            scorer=ConsensusScorer(quorum=2),
        )
        out = await solve(router, MAYA, is_async)
        assert out["result"]["mode"] == "static"
        assert out["result"]["budget_used"] == 3
        assert out["result"]["stop_reason"] == "budget"


# -- the speedup graph ----------------------------------------------------------------


class TestGraph:
    async def test_solves_with_the_methods_own_subgraph(
        self, store: QdrantEpisodicStore, method: str, is_async: bool
    ) -> None:
        model = fake()
        graph = create_speedup_graph(
            model, store=store, embeddings=HashEmbeddings(), method=method
        )
        assert set(graph.get_graph().nodes) == {
            "__start__",
            "route",
            "reuse",
            method,
            "remember",
            "__end__",
        }
        out = await invoke(graph, {"messages": [("user", MAYA)]}, is_async)
        assert set(out) == {"messages", "speedup"}
        first = out["speedup"]
        assert first["route"]["decision"] == "scratch"
        assert first["route"]["unit"] == UNITS[method]
        assert first["result"]["method"] == method
        assert first["final_answer"] == MAYA_SUM
        assert out["messages"][-1].content == first["answer"]
        assert out["messages"][-1].name == method
        [episode] = store.episodes("default")
        assert episode["id"] == first["episode_id"]
        assert episode["method"] == method

        again = await invoke(graph, {"messages": [HumanMessage(MAYA)]}, is_async)
        assert again["speedup"]["route"]["decision"] == "reuse"
        assert again["speedup"]["route"]["budget"] == 0

    async def test_graph_and_router_agree(self, method: str, is_async: bool) -> None:
        outs = []
        for use_graph in (False, True):
            model = fake()
            with QdrantEpisodicStore() as store:
                if use_graph:
                    graph = create_speedup_graph(
                        model, store=store, embeddings=HashEmbeddings(), method=method
                    )
                    for q in (MAYA, NEW_NUMBERS):
                        state = {"messages": [HumanMessage(q)]}
                        out = (await invoke(graph, state, is_async))["speedup"]
                else:
                    router = make_router(model, store, method)
                    for q in (MAYA, NEW_NUMBERS):
                        out = await solve(router, q, is_async)
            outs.append((out, [[text_of(m) for m in p] for p in model.calls]))
        (solved, solved_calls), (graphed, graphed_calls) = outs
        assert (
            graphed["route"]["decision"] == solved["route"]["decision"] == "exemplars"
        )
        assert graphed["route"]["budget"] == solved["route"]["budget"]
        assert graphed["route"]["memory_samples"] == solved["route"]["memory_samples"]
        assert graphed["final_answer"] == solved["final_answer"] == NEW_NUMBERS_SUM
        assert graphed["result"]["budget_used"] == solved["result"]["budget_used"]
        assert [c["with_memory"] for c in graphed["result"]["candidates"]] == [
            c["with_memory"] for c in solved["result"]["candidates"]
        ]
        assert sorted(map(tuple, graphed_calls)) == sorted(map(tuple, solved_calls))


# -- engine-level escalation, sync, async and graph alike ------------------------------


ESCALATING_MEMORY = MemoryContext(
    exemplars=[{"question": "What is 1 + 1?", "solution": boxed(2)}],
    precedents=[],
    samples=1,
)


class TestEngineEscalation:
    async def test_self_refine_paths_agree(self, is_async: bool) -> None:
        runs = []
        for via_graph in (False, True):
            model = fake()
            engine = SelfRefine(model, max_rounds=3)
            if via_graph:
                state = {"messages": [HumanMessage(MAYA)], "memory": ESCALATING_MEMORY}
                out = await invoke(engine.as_graph(), state, is_async)
                result = out["self_refine"]
            elif is_async:
                result = await engine.arun(MAYA, memory=ESCALATING_MEMORY)
            else:
                result = engine.run(MAYA, memory=ESCALATING_MEMORY)
            runs.append((result, model.calls))
        for result, calls in runs:
            # Round 1 with memory, then a fresh plain draft, then its revision.
            assert [c["with_memory"] for c in result["candidates"]] == [
                True,
                False,
                False,
            ]
            assert [text_of(p[-1]) for p in calls] == [
                MAYA,
                MAYA,
                CRITIQUE_PROMPT,
                REVISE_PROMPT,
            ]
            assert [has_exemplar(p, "What is 1 + 1?") for p in calls] == [
                True,
                False,
                False,
                False,
            ]
            assert result["budget_used"] == 3
            assert result["usage"]["generations"] == 3
            assert result["usage"]["other_calls"] == 1  # one critique
            assert result["passed"] is True

    async def test_self_refine_without_samples_never_escalates(self) -> None:
        model = fake()
        memory = MemoryContext(exemplars=ESCALATING_MEMORY["exemplars"], precedents=[])
        result = SelfRefine(model, max_rounds=3).run(MAYA, memory=memory)
        assert all(c["with_memory"] for c in result["candidates"])
        assert [text_of(p[-1]) for p in model.calls] == [
            MAYA,
            CRITIQUE_PROMPT,
            REVISE_PROMPT,
            CRITIQUE_PROMPT,
            REVISE_PROMPT,
        ]

    async def test_tree_of_thoughts_paths_agree(self, is_async: bool) -> None:
        runs = []
        for via_graph in (False, True):
            model = fake()
            kwargs: dict[str, Any] = {"max_nodes": 3, "breadth": 1}
            if via_graph:
                graph = create_tree_of_thoughts_graph(model, **kwargs)
                state = {"messages": [HumanMessage(MAYA)], "memory": ESCALATING_MEMORY}
                result = (await invoke(graph, state, is_async))["tree_of_thoughts"]
            else:
                engine = TreeOfThoughts(model, **kwargs)
                result = (
                    await engine.arun(MAYA, memory=ESCALATING_MEMORY)
                    if is_async
                    else engine.run(MAYA, memory=ESCALATING_MEMORY)
                )
            runs.append((result, model.calls))
        for result, calls in runs:
            # One solution with memory, then the fresh root's, then none left:
            # the plain tree is exhausted too.
            assert result["budget_used"] == 2
            assert [c["with_memory"] for c in result["candidates"]] == [True, False]
            assert [has_exemplar(p, "What is 1 + 1?") for p in calls] == [True, False]
            assert result["passed"] is False
            assert result["score"] == pytest.approx(2 / 3)

    def test_tree_of_thoughts_does_not_escalate_after_a_pass(self) -> None:
        model = fake()
        memory = MemoryContext(
            exemplars=ESCALATING_MEMORY["exemplars"], precedents=[], samples=1
        )
        result = TreeOfThoughts(model, breadth=3).run(MAYA, memory=memory)
        assert result["budget_used"] == 1
        assert result["passed"] is True
        assert all(c["with_memory"] for c in result["candidates"])

    def test_zero_samples_keep_memory_out_and_never_escalate(self) -> None:
        memory = MemoryContext(
            exemplars=ESCALATING_MEMORY["exemplars"], precedents=[], samples=0
        )
        for engine_cls in (SelfRefine, TreeOfThoughts):
            model = fake()
            result = engine_cls(model).run(MAYA, memory=memory)
            assert not any(c["with_memory"] for c in result["candidates"])
            assert not any(has_exemplar(p, "What is 1 + 1?") for p in model.calls)


# -- configuration --------------------------------------------------------------------


class TestConfiguration:
    @pytest.mark.parametrize(
        "options",
        [
            pytest.param({"method": "beam_search"}, id="method=unknown"),
            pytest.param({"method": None}, id="method=None"),
            pytest.param({"method": 3}, id="method=int"),
            pytest.param({"budget": 0}, id="budget=0"),
            pytest.param({"budget": -4}, id="budget<0"),
            pytest.param({"budget": True}, id="budget=True"),
            pytest.param({"budget": 2.5}, id="budget=float"),
            pytest.param({"method": "self_refine", "n": 4}, id="n-for-self-refine"),
            pytest.param({"method": "long_cot", "n": 4}, id="n-for-long-cot"),
            pytest.param({"n": 4, "budget": 5}, id="n!=budget"),
            pytest.param(
                {"method": "tree_of_thoughts", "method_options": {"breadth": 0}},
                id="breadth=0",
            ),
            pytest.param(
                {"method": "tree_of_thoughts", "method_options": {"width": 2}},
                id="unknown-option",
            ),
            pytest.param(
                {"method": "best_of_n", "method_options": {"segment_tokens": 8}},
                id="other-methods-option",
            ),
            pytest.param(
                {"method": "long_cot", "method_options": {"max_tokens": 8}},
                id="budget-as-option",
            ),
            pytest.param(
                {"method": "self_refine", "method_options": {"mode": "static"}},
                id="shared-as-option",
            ),
            pytest.param({"method_options": ["breadth"]}, id="options-not-a-mapping"),
            pytest.param({"method": "self_refine", "mode": "fast"}, id="mode=fast"),
            pytest.param({"method": "long_cot", "threshold": 2.0}, id="threshold"),
        ],
    )
    def test_bad_options_raise_at_build(
        self, store: QdrantEpisodicStore, options: dict[str, Any]
    ) -> None:
        model = fake()
        with pytest.raises(ConfigurationError):
            BudgetRouter(model, store=store, embeddings=HashEmbeddings(), **options)
        with pytest.raises(ConfigurationError):
            create_speedup_graph(
                model, store=store, embeddings=HashEmbeddings(), **options
            )
        assert model.calls == []

    def test_n_stays_the_best_of_n_budget(self, store: QdrantEpisodicStore) -> None:
        model = fake()
        for options, expected in (
            ({}, 8),
            ({"n": 5}, 5),
            ({"budget": 5}, 5),
            ({"n": 5, "budget": 5}, 5),
        ):
            router = BudgetRouter(
                model, store=store, embeddings=HashEmbeddings(), **options
            )
            assert isinstance(router.engine, BestOfN)
            assert router.engine.n == router.budget == expected

    def test_engine_is_the_full_budget_engine(self, store: QdrantEpisodicStore) -> None:
        cases = {
            "best_of_n": BestOfN,
            "self_refine": SelfRefine,
            "tree_of_thoughts": TreeOfThoughts,
            "long_cot": LongCoT,
        }
        for method, cls in cases.items():
            router = make_router(fake(), store, method, budget=6, mode="static")
            assert type(router.engine) is cls
            assert router.engine.options.budget == 6
            assert router.engine.options.mode == "static"

    def test_method_options_reach_the_engine(self, store: QdrantEpisodicStore) -> None:
        router = make_router(
            fake(),
            store,
            "long_cot",
            budget=64,
            method_options={"segment_tokens": 16, "probe_tokens": 32},
        )
        assert isinstance(router.engine, LongCoT)
        assert router.engine.segment_tokens == 16
        assert router.engine.probe_tokens == 32


class TestCreateEngine:
    def test_builds_each_method_with_its_budget(self) -> None:
        model = fake()
        for method in METHODS:
            engine = create_engine(model, method, budget=5)
            assert engine.method == method
            assert engine.unit == UNITS[method]
            assert engine.options.budget == 5
            assert getattr(engine, BUDGET_OPTIONS[method]) == 5

    def test_defaults_and_options(self) -> None:
        engine = create_engine(fake(), "tree_of_thoughts", breadth=2, max_depth=3)
        assert isinstance(engine, TreeOfThoughts)
        assert engine.max_nodes == 10
        assert engine.breadth == 2
        assert engine.max_depth == 3
        assert engine.options.system_prompt == TREE_OF_THOUGHTS_SYSTEM_PROMPT

    def test_same_engine_as_the_class(self) -> None:
        model = fake()
        by_name = create_engine(model, "best_of_n", budget=3).as_graph()
        by_class = create_best_of_n_graph(model, n=3)
        assert by_name.get_graph().draw_mermaid() == by_class.get_graph().draw_mermaid()

    @pytest.mark.parametrize("method", ["", "BestOfN", "best-of-n", None, 1])
    def test_unknown_method(self, method: Any) -> None:
        with pytest.raises(ConfigurationError, match="method"):
            check_method(method)
        with pytest.raises(ConfigurationError, match="method"):
            create_engine(fake(), method)

    def test_unknown_option_names_the_valid_ones(self) -> None:
        with pytest.raises(ConfigurationError, match="breadth"):
            create_engine(fake(), "tree_of_thoughts", width=2)
