"""Memory mechanisms and the reflections they read: reflect, reflect-update, queue, node."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Annotated, Any, NotRequired

import pytest
from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.errors import GraphInterrupt
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.store.base import BaseStore, PutOp
from typing_extensions import TypedDict

from langchain_speedup import (
    BudgetRouter,
    ConfigurationError,
    EpisodeMatch,
    EpisodicMemory,
    InvalidInputError,
    Ledger,
    MemoryContext,
    ModelError,
    SpeedupResult,
    create_engine,
    create_speedup_graph,
)
from langchain_speedup._internal import LESSONS_HEADER, build_prompt
from langchain_speedup.memory import (
    InContextMemory,
    MemoryMechanism,
    MultiCaseReflectMemory,
    ReflectionQueue,
    ReflectionResult,
    ReflectMemory,
    ReflectUpdateMemory,
    areflect,
    areflect_update,
    create_reflection_update_node,
    precedents_of,
    reflect,
    reflect_update,
)
from langchain_speedup.memory.reflection import _trim_to_sentence
from langchain_speedup.tokens import count_tokens
from tests.fakes import (
    BAKE,
    MAYA,
    TRAIN,
    FailingChatModel,
    FakeChatModel,
    FaultyStore,
    HashEmbeddings,
    constant,
    make_episode,
    sum_solver,
)

MAYA_NEW = "Maya buys 5 pens at 2 dollars each. How many dollars does Maya spend?"


def says(text: str) -> FakeChatModel:
    return FakeChatModel(responder=constant(text))


def failing() -> FakeChatModel:
    return FailingChatModel(responder=constant("x"))


def interrupt(_: list[BaseMessage]) -> str:
    raise GraphInterrupt(())


def match(question: str, similarity: float, **fields: object) -> EpisodeMatch:
    episode = make_episode(question)
    episode.update(fields)  # type: ignore[typeddict-item]
    return EpisodeMatch(episode=episode, similarity=similarity)


MATCHES = [
    match(TRAIN, 0.71, reflection="Multiply rate by time."),
    match(MAYA, 0.93, reflection="Multiply the count by the unit price."),
    match(BAKE, 0.80, reflection="Subtract what is sold from what was made."),
]


@pytest.fixture
def episode(memory: EpisodicMemory, embeddings: HashEmbeddings) -> dict[str, Any]:
    """MAYA's verified episode, stored in `memory`."""
    stored = make_episode(MAYA, final_answer="12")
    memory.put(stored)
    return dict(stored)


async def build(
    mechanism: MemoryMechanism,
    memory: EpisodicMemory,
    is_async: bool = False,
    matches: Sequence[EpisodeMatch] = MATCHES,
    *,
    question: str = MAYA_NEW,
    namespace: str = "default",
) -> MemoryContext:
    if is_async:
        return await mechanism.abuild(
            question, matches, store=memory, namespace=namespace
        )
    return mechanism.build(question, matches, store=memory, namespace=namespace)


ASYNC_FORM = {reflect: areflect, reflect_update: areflect_update}


async def run(
    is_async: bool, reflection: Callable[..., ReflectionResult], *args: Any, **kw: Any
) -> ReflectionResult:
    """`reflection(*args, **kw)`, or its async form awaited."""
    if is_async:
        return await ASYNC_FORM[reflection](*args, **kw)
    return reflection(*args, **kw)


# -- the mechanisms ------------------------------------------------------------------


class DuckMechanism:
    def build(self, question: str, matches: Any, **kw: Any) -> MemoryContext:
        return MemoryContext(exemplars=[], precedents=[])

    async def abuild(self, question: str, matches: Any, **kw: Any) -> MemoryContext:
        return self.build(question, matches)


@pytest.mark.parametrize(
    "mechanism",
    [
        InContextMemory(),
        ReflectMemory(),
        MultiCaseReflectMemory(says("x.")),
        ReflectUpdateMemory(),
        DuckMechanism(),
    ],
    ids=type,
)
def test_every_mechanism_is_a_memory_mechanism(mechanism: object) -> None:
    assert isinstance(mechanism, MemoryMechanism)


def test_a_mechanism_needs_both_forms() -> None:
    class SyncOnly:
        def build(self, question: str, matches: Any, **kw: Any) -> MemoryContext:
            return MemoryContext(exemplars=[], precedents=[])

    assert not isinstance(SyncOnly(), MemoryMechanism)


class TestInContextMemory:
    async def test_most_similar_verified_episodes_most_similar_last(
        self, memory: EpisodicMemory, is_async: bool
    ) -> None:
        memory = await build(InContextMemory(max_exemplars=2), memory, is_async)
        assert [e["question"] for e in memory["exemplars"]] == [BAKE, MAYA]
        assert memory["exemplars"][-1]["solution"] == MATCHES[1]["episode"]["answer"]
        assert "lessons" not in memory
        assert memory["precedents"] == []

    async def test_unverified_matches_are_never_shown(
        self, memory: EpisodicMemory
    ) -> None:
        matches = [match(MAYA, 0.99, verified=False), match(TRAIN, 0.5)]
        memory = await build(InContextMemory(), memory, matches=matches)
        assert [e["question"] for e in memory["exemplars"]] == [TRAIN]

    async def test_token_budget_bounds_the_exemplars(
        self, memory: EpisodicMemory
    ) -> None:
        long = match("Long " * 400 + "question?", 0.99)
        short = MATCHES[1]
        cost = count_tokens(short["episode"]["question"]) + count_tokens(
            short["episode"]["answer"]
        )
        mechanism = InContextMemory(max_exemplars=3, max_tokens=cost)
        memory = await build(mechanism, memory, matches=[long, short, MATCHES[0]])
        # The too-long most similar one is skipped; only one fits the budget.
        assert [e["question"] for e in memory["exemplars"]] == [MAYA]
        shown = sum(
            count_tokens(e["question"]) + count_tokens(e["solution"])
            for e in memory["exemplars"]
        )
        assert shown <= cost

    async def test_precedents_are_the_routers_not_the_mechanisms(
        self, memory: EpisodicMemory
    ) -> None:
        reworded = "Maya buys 3 pens at 4 dollars each. How much does Maya spend?"
        matches = [
            match(MAYA, 0.95),
            match(MAYA, 0.9, final_answer="13"),
            match(TRAIN, 0.5),
        ]
        memory = await build(
            InContextMemory(), memory, matches=matches, question=reworded
        )
        assert memory["precedents"] == []
        # Only verified answers of the same problem reworded count.
        assert precedents_of(reworded, matches) == ["13", "42"]
        assert precedents_of(TRAIN, matches) == [matches[2]["episode"]["final_answer"]]

    @pytest.mark.parametrize("bad", [0, -1, True, "2"])
    def test_bad_bounds_are_rejected(self, bad: object) -> None:
        with pytest.raises(ConfigurationError, match="max_tokens"):
            InContextMemory(max_tokens=bad)  # type: ignore[arg-type]


class TestReflectMemory:
    async def test_reflections_of_similar_episodes_as_lessons(
        self, memory: EpisodicMemory, is_async: bool
    ) -> None:
        memory = await build(ReflectMemory(max_cases=2), memory, is_async)
        assert memory["exemplars"] == []
        assert memory["lessons"] == (
            "- Multiply the count by the unit price.\n"
            "- Subtract what is sold from what was made."
        )

    async def test_bounded_by_max_chars(self, memory: EpisodicMemory) -> None:
        memory = await build(ReflectMemory(max_chars=45), memory)
        assert len(memory["lessons"]) <= 45
        assert memory["lessons"] == "- Multiply the count by the unit price."

    async def test_no_reflections_no_lessons(self, memory: EpisodicMemory) -> None:
        memory = await build(ReflectMemory(), memory, matches=[match(MAYA, 0.9)])
        assert "lessons" not in memory


class TestMultiCaseReflectMemory:
    async def test_one_reflection_call_over_several_cases(
        self, memory: EpisodicMemory, is_async: bool
    ) -> None:
        model = says("Multiply count by price.")
        ledger = Ledger()
        mechanism = MultiCaseReflectMemory(model, max_cases=2, ledger=ledger)
        memory = await build(mechanism, memory, is_async)
        assert memory["lessons"] == "Multiply count by price."
        assert memory["exemplars"] == []
        [prompt] = model.calls
        text = prompt[-1].content
        assert MAYA in text
        assert BAKE in text
        assert TRAIN not in text
        assert MAYA_NEW in text
        usage = ledger.usage()
        assert usage["other_calls"] == 1
        assert usage["generations"] == 0

    async def test_reply_trimmed_at_a_sentence(self, memory: EpisodicMemory) -> None:
        memory = await build(
            MultiCaseReflectMemory(says("First lesson here. " * 20), max_chars=60),
            memory,
        )
        assert len(memory["lessons"]) <= 60
        assert memory["lessons"].endswith(".")

    async def test_no_matches_no_call(self, memory: EpisodicMemory) -> None:
        model = says("x.")
        memory = await build(MultiCaseReflectMemory(model), memory, matches=[])
        assert model.calls == []
        assert "lessons" not in memory

    @pytest.mark.parametrize(
        ("model", "logged"),
        [
            (FailingChatModel, "multi-case reflection failed"),
            (FakeChatModel, "returned no text"),
        ],
    )
    async def test_failure_goes_on_without_lessons(
        self,
        memory: EpisodicMemory,
        caplog: pytest.LogCaptureFixture,
        is_async: bool,
        model: type[FakeChatModel],
        logged: str,
    ) -> None:
        mechanism = MultiCaseReflectMemory(model(responder=constant("  ")))
        memory = await build(mechanism, memory, is_async)
        assert "lessons" not in memory
        assert logged in caplog.text

    async def test_strict_failure_raises_model_error(
        self, memory: EpisodicMemory, is_async: bool
    ) -> None:
        with pytest.raises(ModelError) as info:
            await build(
                MultiCaseReflectMemory(failing(), strict=True), memory, is_async
            )
        assert info.value.role == "reflection"

    async def test_interrupts_pass_through(
        self, memory: EpisodicMemory, is_async: bool
    ) -> None:
        mechanism = MultiCaseReflectMemory(FakeChatModel(responder=interrupt))
        with pytest.raises(GraphInterrupt):
            await build(mechanism, memory, is_async)


class TestReflectUpdateMemory:
    async def test_reads_the_namespace_lessons(
        self, memory: EpisodicMemory, episode: dict[str, Any], is_async: bool
    ) -> None:
        memory.put_lessons("default", "Always check the units.")
        context = await build(ReflectUpdateMemory(), memory, is_async)
        assert context == MemoryContext(
            exemplars=[], precedents=[], lessons="Always check the units."
        )
        other = await build(ReflectUpdateMemory(), memory, is_async, namespace="other")
        assert "lessons" not in other

    async def test_trimmed_to_max_chars(
        self, memory: EpisodicMemory, episode: dict[str, Any]
    ) -> None:
        await memory.aput_lessons("default", "Check units. Then add.")
        context = await build(ReflectUpdateMemory(max_chars=15), memory, matches=[])
        assert context["lessons"] == "Check units."

    async def test_needs_a_lessons_store(self, is_async: bool) -> None:
        class Plain:
            pass

        with pytest.raises(ConfigurationError, match="BaseStore"):
            await build(ReflectUpdateMemory(), Plain(), is_async)  # type: ignore[arg-type]


# -- the prompt and the router -------------------------------------------------------


def test_build_prompt_puts_lessons_in_the_system_message() -> None:
    prompt = build_prompt(
        [SystemMessage("Be terse."), HumanMessage(MAYA)],
        system_prompt="Solve it.",
        lessons="Check units.",
    )
    assert isinstance(prompt[0], SystemMessage)
    assert (
        prompt[0].content == f"Solve it.\n\n{LESSONS_HEADER}\nCheck units.\n\nBe terse."
    )
    assert len(prompt) == 2


def test_build_prompt_without_lessons_is_unchanged() -> None:
    assert build_prompt(
        [HumanMessage(MAYA)], system_prompt="Solve it.", lessons=None
    ) == build_prompt([HumanMessage(MAYA)], system_prompt="Solve it.")


def system_of(messages: Sequence[BaseMessage]) -> str:
    return str(messages[0].content) if isinstance(messages[0], SystemMessage) else ""


Router = Callable[..., BudgetRouter]


@pytest.fixture
def router(store: BaseStore, episode: dict[str, Any]) -> Router:
    """Builds a router whose gate admits MAYA_NEW's memory (the stored `episode`)."""

    def build(solver: Any = None, memory: Any = None) -> BudgetRouter:
        return BudgetRouter(
            solver or FakeChatModel(responder=sum_solver),
            store=store,
            similarity_gate=0.5,
            memory=memory,
        )

    return build


@pytest.mark.parametrize(
    "method", ["best_of_n", "self_refine", "tree_of_thoughts", "long_cot"]
)
async def test_router_shows_reflect_update_lessons(
    memory: EpisodicMemory, router: Router, method: str
) -> None:
    model = FakeChatModel(responder=sum_solver)
    engine = create_engine(model, method)  # type: ignore[arg-type]
    memory.put_lessons("default", "Multiply the count by the unit price.")
    answer = await router(engine, ReflectUpdateMemory()).asolve(MAYA_NEW)
    assert answer["route"]["decision"] == "exemplars"
    assert model.calls
    assert all(
        "Multiply the count by the unit price." in system_of(call)
        for call in model.calls
    )


async def test_router_counts_the_mechanisms_calls_in_the_answer(
    router: Router, is_async: bool
) -> None:
    reflector = says("Multiply count by price.")
    solver = router(memory=MultiCaseReflectMemory(reflector))
    answer = await solver.asolve(MAYA_NEW) if is_async else solver.solve(MAYA_NEW)
    route_usage = answer["route"]["usage"]
    assert len(reflector.calls) == 1
    assert route_usage["other_calls"] == 1
    assert route_usage["generations"] == 0
    result = answer["result"]
    assert result is not None
    assert answer["usage"]["other_calls"] == 1
    assert answer["usage"]["generations"] == result["usage"]["generations"]
    assert (
        answer["usage"]["total_tokens"]
        == result["usage"]["total_tokens"] + route_usage["total_tokens"]
    )
    assert route_usage["total_tokens"] > 0


def test_a_route_without_a_mechanism_costs_nothing(router: Router) -> None:
    answer = router().solve(MAYA_NEW)
    assert answer["route"]["decision"] == "exemplars"
    assert answer["route"]["usage"]["total_tokens"] == 0


def test_router_with_in_context_memory_limits_the_exemplars(router: Router) -> None:
    solver = router(memory=InContextMemory(max_tokens=1))
    route, memory, _ = solver.route(MAYA_NEW)
    assert route["decision"] == "exemplars"
    assert memory is not None
    assert memory["exemplars"] == []  # nothing fits one token
    assert memory["samples"] == solver.memory_samples


def test_router_rejects_a_non_mechanism(router: Router) -> None:
    with pytest.raises(ConfigurationError, match="MemoryMechanism"):
        router(memory="in-context")


# -- writing reflections -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Short.", 100, "Short."),
        ("One. Two. Three.", 10, "One. Two."),
        ("First line\nsecond line goes on", 15, "First line"),
        ("no sentence boundary here at all", 20, "no sentence"),
        ("x" * 50, 10, "x" * 10),
        # A list item's number is no sentence end; a number ending one is.
        (
            "Lessons:\n1. Read it twice.\n2. Check the units.",
            32,
            "Lessons:\n1. Read it twice.",
        ),
        ("It costs 12. Then more words", 20, "It costs 12."),
    ],
)
def test_trim_to_sentence(text: str, limit: int, expected: str) -> None:
    assert _trim_to_sentence(text, limit) == expected


class TestReflectUpdate:
    async def test_rewrites_the_lessons_from_old_lessons_and_episode(
        self, memory: EpisodicMemory, episode: dict[str, Any], is_async: bool
    ) -> None:
        memory.put_lessons("default", "Old lesson.")
        model = says("  New lesson. Check units.  ")
        ledger = Ledger()
        result = await run(
            is_async, reflect_update, model, episode, store=memory, ledger=ledger
        )
        assert result == ReflectionResult(
            kind="reflect_update",
            namespace="default",
            episode_id=episode["id"],
            updated=True,
            text="New lesson. Check units.",
            error=None,
        )
        assert memory.get_lessons("default") == "New lesson. Check units."
        prompt = model.calls[0][-1].content
        assert "Old lesson." in prompt
        assert MAYA in prompt
        assert "Outcome: verified" in prompt
        assert ledger.usage()["other_calls"] == 1
        assert ledger.usage()["generations"] == 0
        assert memory.episodes("default") == [episode]

    def test_first_lessons_and_an_explicit_namespace(
        self, memory: EpisodicMemory, episode: dict[str, Any]
    ) -> None:
        model = says("First lesson.")
        result = reflect_update(model, episode, store=memory, namespace="team")
        assert result["namespace"] == "team"
        assert memory.get_lessons("team") == "First lesson."
        assert memory.get_lessons("default") is None
        assert "Current lessons:\n(none yet)" in model.calls[0][-1].content

    def test_output_is_bounded(
        self, memory: EpisodicMemory, episode: dict[str, Any]
    ) -> None:
        model = says("A lesson sentence. " * 200)
        result = reflect_update(model, episode, store=memory, max_chars=100)
        assert result["updated"]
        text = memory.get_lessons("default")
        assert text is not None
        assert len(text) <= 100
        assert text.endswith(".")

    def test_unverified_episode_is_described_as_such(
        self, memory: EpisodicMemory, episode: dict[str, Any]
    ) -> None:
        model = says("Check twice.")
        reflect_update(model, episode | {"verified": False}, store=memory)
        assert "NOT verified" in model.calls[0][-1].content

    async def test_interrupts_pass_through_and_keep_the_lessons(
        self, memory: EpisodicMemory, episode: dict[str, Any], is_async: bool
    ) -> None:
        memory.put_lessons("default", "Old lesson.")
        model = FakeChatModel(responder=interrupt)
        with pytest.raises(GraphInterrupt):
            await run(is_async, reflect_update, model, episode, store=memory)
        assert memory.get_lessons("default") == "Old lesson."

    async def test_store_write_failure_is_reported(
        self, memory: EpisodicMemory, is_async: bool
    ) -> None:
        full = FaultyStore(
            memory.store,
            fails=lambda op: isinstance(op, PutOp),
            error=OSError("disk full"),
        )
        result = await run(
            is_async, reflect_update, says("Lesson."), make_episode(MAYA), store=full
        )
        assert not result["updated"]
        assert result["error"] is not None
        assert result["error"].startswith("writing the lessons failed")


class TestReflect:
    async def test_writes_the_reflection_onto_the_episode(
        self,
        memory: EpisodicMemory,
        embeddings: HashEmbeddings,
        episode: dict[str, Any],
        is_async: bool,
    ) -> None:
        model = says("Multiply count by price.")
        result = await run(is_async, reflect, model, episode, store=memory)
        assert result["updated"]
        assert result["text"] == "Multiply count by price."
        [stored] = memory.episodes("default")
        assert stored["reflection"] == "Multiply count by price."
        [found] = memory.search("default", MAYA)
        assert found["episode"]["reflection"] == "Multiply count by price."
        assert memory.get_lessons("default") is None


@pytest.mark.parametrize(
    ("reflection", "model", "namespace", "error"),
    [
        (reflect_update, failing, None, "the reflection model call failed"),
        (
            reflect_update,
            lambda: says("   "),
            None,
            "the reflection model returned no lessons text",
        ),
        (
            reflect_update,
            lambda: says("```\n```"),
            None,
            "the reflection model returned no lessons text",
        ),
        (reflect, failing, None, "the reflection model call failed"),
        (reflect, lambda: says(" "), None, "the reflection model returned no text"),
        (
            reflect,
            lambda: says("Lesson."),
            "other",
            "writing the reflection failed: no episode",
        ),
    ],
    ids=[
        "update-model-fails",
        "update-blank-reply",
        "update-empty-fence",
        "reflect-model-fails",
        "reflect-blank-reply",
        "reflect-other-namespace",
    ],
)
async def test_a_failed_reflection_keeps_the_lessons_and_the_episodes(
    memory: EpisodicMemory,
    episode: dict[str, Any],
    reflection: Callable[..., ReflectionResult],
    model: Callable[[], FakeChatModel],
    namespace: str | None,
    error: str,
    is_async: bool,
) -> None:
    memory.put_lessons("default", "Old lesson.")
    result = await run(
        is_async, reflection, model(), episode, store=memory, namespace=namespace
    )
    assert not result["updated"]
    assert result["error"] is not None
    assert result["error"].startswith(error)
    # The text in force: the previous lessons, or no reflection.
    assert result["text"] == ("Old lesson." if reflection is reflect_update else None)
    assert memory.get_lessons("default") == "Old lesson."
    assert memory.episodes("default") == [episode]


@pytest.mark.parametrize(
    ("reflection", "given", "options", "error", "message"),
    [
        (
            reflect_update,
            make_episode(MAYA),
            {"max_chars": 5},
            ConfigurationError,
            "max_chars",
        ),
        (
            reflect_update,
            make_episode(MAYA),
            {"max_char": 100},
            ConfigurationError,
            "`max_char`",
        ),
        (
            reflect_update,
            make_episode(MAYA),
            {"store": object()},
            ConfigurationError,
            "BaseStore",
        ),
        (reflect_update, {"answer": "1"}, {}, InvalidInputError, "question"),
        (
            reflect_update,
            make_episode(MAYA),
            {"namespace": " "},
            InvalidInputError,
            "namespace",
        ),
        (reflect, {"question": MAYA, "answer": "1"}, {}, InvalidInputError, "no `id`"),
        (
            reflect,
            make_episode(MAYA),
            {"store": object()},
            ConfigurationError,
            "BaseStore",
        ),
    ],
)
def test_bad_arguments_raise_before_any_call(
    memory: EpisodicMemory,
    reflection: Callable[..., ReflectionResult],
    given: dict[str, Any],
    options: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    model = says("x")
    with pytest.raises(error, match=message):
        reflection(model, given, **{"store": memory, **options})
    assert model.calls == []


@pytest.mark.parametrize(
    "create",
    [
        lambda memory: reflect_update("gpt-4", make_episode(MAYA), store=memory),
        lambda memory: reflect("gpt-4", make_episode(MAYA), store=memory),
        lambda memory: ReflectionQueue("gpt-4", store=memory),
        lambda memory: create_reflection_update_node("gpt-4", store=memory),
        lambda memory: MultiCaseReflectMemory("gpt-4"),
    ],
    ids=["reflect_update", "reflect", "queue", "node", "multi-case"],
)
def test_the_model_must_be_a_runnable(
    memory: EpisodicMemory, create: Callable[[EpisodicMemory], object]
) -> None:
    with pytest.raises(ConfigurationError, match="model"):
        create(memory)


# -- the background queue ------------------------------------------------------------


class GatedModel(FakeChatModel):
    """Waits for `gate` before answering, so a test can see work pending."""

    gate: Any = None

    def _before_reply(self, call_number: int) -> None:
        assert self.gate.wait(10)


class TestReflectionQueue:
    def test_submit_returns_before_the_update_and_flush_waits(
        self, memory: EpisodicMemory, episode: dict[str, Any]
    ) -> None:
        gate = threading.Event()
        model = GatedModel(responder=constant("Queued lesson."), gate=gate)
        with ReflectionQueue(model, store=memory) as queue:
            queue.submit(episode)
            assert queue.pending == 1
            assert memory.get_lessons("default") is None
            assert not queue.flush(timeout=0.05)
            gate.set()
            assert queue.flush(timeout=10)
            assert queue.pending == 0
            assert queue.completed == 1
            assert queue.failed == 0
            assert memory.get_lessons("default") == "Queued lesson."

    def test_updates_run_in_order(
        self, memory: EpisodicMemory, episode: dict[str, Any]
    ) -> None:
        def grow(messages: list[BaseMessage]) -> str:
            text = str(messages[-1].content)
            old = text.split("Current lessons:\n")[1].split("\n\nNew case")[0]
            return "L." if old == "(none yet)" else f"{old} L."

        with ReflectionQueue(FakeChatModel(responder=grow), store=memory) as queue:
            for _ in range(3):
                queue.submit(episode)
            assert queue.flush(timeout=10)
        assert memory.get_lessons("default") == "L. L. L."

    def test_failures_are_logged_and_counted(
        self,
        memory: EpisodicMemory,
        episode: dict[str, Any],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        memory.put_lessons("default", "Old lesson.")
        queue = ReflectionQueue(failing(), store=memory, max_results=1)
        queue.submit(episode)
        assert queue.flush(timeout=10)
        assert (queue.failed, queue.completed) == (1, 0)
        [result] = queue.results
        assert result["error"] is not None
        assert "reflect_update for episode" in caplog.text
        assert memory.get_lessons("default") == "Old lesson."
        assert memory.episodes("default") == [episode]
        queue.submit(episode)  # the model fails only its first call
        assert queue.close(timeout=10)
        assert (queue.failed, queue.completed) == (1, 1)
        [result] = queue.results  # only the latest is kept
        assert result["updated"]
        with pytest.raises(InvalidInputError, match="closed"):
            queue.submit(episode)

    def test_reflect_mode(
        self, memory: EpisodicMemory, episode: dict[str, Any]
    ) -> None:
        with ReflectionQueue(says("Per case."), store=memory, mode="reflect") as queue:
            queue.submit(episode)
            assert queue.flush(timeout=10)
        assert memory.episodes("default")[0]["reflection"] == "Per case."
        assert memory.get_lessons("default") is None

    def test_bad_input_is_rejected_at_once(self, memory: EpisodicMemory) -> None:
        model = says("x")
        with pytest.raises(ConfigurationError, match="mode"):
            ReflectionQueue(model, store=memory, mode="other")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="max_chars"):
            ReflectionQueue(model, store=memory, max_chars=5)
        with pytest.raises(ConfigurationError, match="max_results"):
            ReflectionQueue(model, store=memory, max_results=0)
        with ReflectionQueue(model, store=memory, mode="reflect") as queue:
            with pytest.raises(InvalidInputError, match="question"):
                queue.submit({"answer": "1"})
            with pytest.raises(InvalidInputError, match="no `id`"):
                queue.submit({"question": MAYA, "answer": "1"})
            assert queue.pending == 0
            assert queue.flush(timeout=0)
        assert model.calls == []

    async def test_aflush(
        self, memory: EpisodicMemory, episode: dict[str, Any]
    ) -> None:
        queue = ReflectionQueue(says("A."), store=memory)
        queue.submit(episode)
        assert await queue.aflush(timeout=10)
        assert memory.get_lessons("default") == "A."
        assert queue.close(timeout=10)


# -- the node ------------------------------------------------------------------------


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    speedup: NotRequired[SpeedupResult]
    reflection: NotRequired[ReflectionResult]


def parent_graph(memory: EpisodicMemory, node: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node(
        "speedup",
        create_speedup_graph(FakeChatModel(responder=sum_solver), store=memory.store),
    )
    builder.add_node("reflect", node)
    builder.add_edge(START, "speedup")
    builder.add_edge("speedup", "reflect")
    return builder.compile()


class TestReflectionUpdateNode:
    async def test_updates_the_lessons_after_an_answer(
        self, memory: EpisodicMemory, embeddings: HashEmbeddings, is_async: bool
    ) -> None:
        reflector = says("Add the numbers.")
        node = create_reflection_update_node(reflector, store=memory)
        graph = parent_graph(memory, node)
        inputs = {"messages": [("user", MAYA)]}
        out = await graph.ainvoke(inputs) if is_async else graph.invoke(inputs)
        assert out["reflection"]["updated"]
        assert out["reflection"]["episode_id"] == out["speedup"]["episode_id"]
        assert memory.get_lessons("default") == "Add the numbers."
        assert len(memory.episodes("default")) == 1
        assert "verified (its answer" in reflector.calls[0][-1].content

    async def test_a_reused_answer_updates_nothing(
        self, memory: EpisodicMemory, embeddings: HashEmbeddings
    ) -> None:
        reflector = says("Add the numbers.")
        node = create_reflection_update_node(reflector, store=memory)
        graph = parent_graph(memory, node)
        first = await graph.ainvoke({"messages": [("user", MAYA)]})
        assert first["reflection"]["updated"]
        again = await graph.ainvoke({"messages": [("user", MAYA)]})
        assert again["speedup"]["route"]["decision"] == "reuse"
        assert "reflection" not in again
        assert len(reflector.calls) == 1

    def test_failure_keeps_the_answer_and_the_episode(
        self, memory: EpisodicMemory, embeddings: HashEmbeddings
    ) -> None:
        node = create_reflection_update_node(failing(), store=memory)
        out = parent_graph(memory, node).invoke({"messages": [("user", MAYA)]})
        assert out["messages"][-1].content.endswith("\\boxed{7}.")
        assert not out["reflection"]["updated"]
        assert len(memory.episodes("default")) == 1

    def test_with_a_queue(
        self, memory: EpisodicMemory, embeddings: HashEmbeddings
    ) -> None:
        reflector = says("Queued.")
        with ReflectionQueue(reflector, store=memory) as queue:
            node = create_reflection_update_node(
                reflector, store=memory, queue=queue, namespace="team"
            )
            out = parent_graph(memory, node).invoke({"messages": [("user", TRAIN)]})
            assert "reflection" not in out
            assert queue.flush(timeout=10)
        assert memory.get_lessons("team") == "Queued."
        assert memory.get_lessons("default") is None

    async def test_without_a_store_it_uses_the_graphs_runtime_store(
        self, memory: EpisodicMemory, is_async: bool
    ) -> None:
        builder = StateGraph(State)
        builder.add_node(
            "speedup", create_speedup_graph(FakeChatModel(responder=sum_solver))
        )
        builder.add_node("reflect", create_reflection_update_node(says("Add.")))
        builder.add_edge(START, "speedup")
        builder.add_edge("speedup", "reflect")
        graph = builder.compile(store=memory.store)
        inputs = {"messages": [("user", MAYA)]}
        out = await graph.ainvoke(inputs) if is_async else graph.invoke(inputs)
        assert out["reflection"]["updated"]
        assert memory.get_lessons("default") == "Add."
        assert len(memory.episodes("default")) == 1

    def test_without_any_store_it_says_so(self) -> None:
        node = create_reflection_update_node(says("Add."))
        builder = StateGraph(State)
        builder.add_node("reflect", node)
        builder.add_edge(START, "reflect")
        graph = builder.compile()
        speedup = {"episode_id": make_episode(MAYA)["id"], "question": MAYA}
        state: Any = {"speedup": {**speedup, "answer": "7", "result": None}}
        with pytest.raises(ConfigurationError, match="no store"):
            graph.invoke(state)

    def test_bad_options(self, memory: EpisodicMemory) -> None:
        model = says("x")
        with pytest.raises(ConfigurationError, match="max_chars"):
            create_reflection_update_node(model, store=memory, max_chars=0)
        with pytest.raises(ConfigurationError, match="BaseStore"):
            create_reflection_update_node(model, store=object())  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="namespace"):
            create_reflection_update_node(model, store=memory, namespace="")
