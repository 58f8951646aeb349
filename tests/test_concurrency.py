"""Concurrency: providers that refuse parallel calls (`max_concurrency=1`), and
concurrent identical questions, which the router solves once."""

from __future__ import annotations

import asyncio
import time
from asyncio import to_thread
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from langchain_speedup import (
    BestOfN,
    BudgetRouter,
    ModelError,
    TreeOfThoughts,
    question_key,
)
from langchain_speedup._flight import FLIGHTS
from tests.fakes import (
    FailingChatModel,
    FakeChatModel,
    Sequenced,
    boxed,
    episodes_in,
    new_store,
    sum_solver,
)


class SerialOnlyModel(FakeChatModel):
    """Raises when a call starts while another is still running, sync or async."""

    active: int = 0
    peak: int = 0

    def _enter(self, step: int) -> None:
        with self._lock:
            self.active += step
            self.peak = max(self.peak, self.active)
            overlapping = step > 0 and self.active > 1
        if overlapping:
            msg = "this provider rejects concurrent requests"
            raise RuntimeError(msg)

    def _generate(self, messages: list[BaseMessage], *_: Any, **__: Any) -> ChatResult:
        try:
            self._enter(1)
            time.sleep(0.01)  # long enough for a parallel call to overlap
            return self._result(messages)
        finally:
            self._enter(-1)

    async def _agenerate(
        self, messages: list[BaseMessage], *_: Any, **__: Any
    ) -> ChatResult:
        try:
            self._enter(1)
            await asyncio.sleep(0.01)
            return self._result(messages)
        finally:
            self._enter(-1)


def _model() -> SerialOnlyModel:
    return SerialOnlyModel(responder=lambda _: boxed(7))


async def test_the_fake_really_rejects_parallel_calls(is_async: bool) -> None:
    model, config = _model(), RunnableConfig(max_concurrency=4)
    prompts: Any = ["a", "b", "c", "d"]
    with pytest.raises(RuntimeError, match="concurrent"):
        await model.abatch(prompts, config) if is_async else model.batch(
            prompts, config
        )
    assert model.peak > 1


@pytest.mark.parametrize(
    ("solver", "used", "calls"),
    [
        # Static Best-of-N draws its whole budget in one batch.
        ("best_of_n", 4, 4),
        # One expansion proposes `breadth` steps in one batch; they agree.
        ("tree_of_thoughts", 1, 3),
        ("router", 4, 4),
    ],
)
async def test_batches_run_one_call_at_a_time(
    solver: str, used: int, calls: int, is_async: bool
) -> None:
    model = _model()
    config: Any = {"max_concurrency": 1}
    store = new_store()
    if solver == "tree_of_thoughts":
        engine: Any = TreeOfThoughts(model, budget=3, breadth=3)
    else:
        engine = BestOfN(model, budget=4, mode="static")
    run, arun = engine.run, engine.arun
    if solver == "router":
        router = BudgetRouter(engine, store=store)
        run, arun = router.solve, router.asolve
    out = await arun("7?", config=config) if is_async else run("7?", config=config)
    result = out.get("result", out)
    assert (result["budget_used"], result["final_answer"]) == (used, "7")
    assert len(model.calls) == calls
    assert model.peak == 1


# -- single flight: concurrent identical questions are solved once ---------------------


@pytest.fixture(autouse=True)
def no_flights_left() -> Iterator[None]:
    """A failing test's claims must not hold up the next test."""
    yield
    FLIGHTS.clear()


QUESTION = "Maya buys 3 pens at 4 dollars each. How many dollars does she spend?"


class SlowModel(FakeChatModel):
    """Takes a while to answer, so that concurrent questions overlap."""

    delay: float = 0.02

    def _generate(self, messages: list[BaseMessage], *_: Any, **__: Any) -> ChatResult:
        time.sleep(self.delay)
        return self._result(messages)

    async def _agenerate(
        self, messages: list[BaseMessage], *_: Any, **__: Any
    ) -> ChatResult:
        await asyncio.sleep(self.delay)
        return self._result(messages)


class SlowFailingModel(SlowModel, FailingChatModel):
    """A `SlowModel` whose `fail_on`-th call raises."""


async def at_once(
    times: int, sync: Callable[[], Any], asyn: Callable[[], Any], is_async: bool
) -> list[Any]:
    """Run `times` calls together (tasks, or threads); each outcome or its error."""
    if is_async:
        return await asyncio.gather(
            *(asyn() for _ in range(times)), return_exceptions=True
        )

    def outcome() -> Any:
        try:
            return sync()
        except Exception as e:  # noqa: BLE001 - returned to the test
            return e

    with ThreadPoolExecutor(times) as pool:
        return list(pool.map(lambda _: outcome(), range(times)))


def entry(
    router: BudgetRouter, how: str
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Ask `QUESTION` through `solve` / `asolve`, or through the speedup graph."""
    if how == "solve":
        return partial(router.solve, QUESTION), partial(router.asolve, QUESTION)
    graph, state = router.as_graph(), {"messages": [HumanMessage(QUESTION)]}

    async def ainvoke() -> Any:
        return (await graph.ainvoke(state))["speedup"]

    return lambda: graph.invoke(state)["speedup"], ainvoke


@pytest.mark.parametrize("how", ["solve", "graph"])
async def test_concurrent_identical_questions_are_solved_once(
    how: str, is_async: bool
) -> None:
    times, model = (50 if is_async else 32), SlowModel(responder=sum_solver)
    store = new_store()
    router = BudgetRouter(model, store=store)
    outcomes = await at_once(times, *entry(router, how), is_async)
    assert len(episodes_in(store, "default")) == 1
    assert {o["final_answer"] for o in outcomes} == {"7"}
    decisions = sorted(o["route"]["decision"] for o in outcomes)
    assert decisions == ["reuse"] * (times - 1) + ["scratch"]
    # One solve's generations (three agreeing samples), however many asked.
    assert len(model.calls) == sum(o["usage"]["generations"] for o in outcomes) == 3
    assert len(FLIGHTS) == 0


async def test_calls_waiting_for_a_failed_solve_solve_it_themselves(
    is_async: bool,
) -> None:
    model = SlowFailingModel(responder=sum_solver, fail_on=1)
    store = new_store()
    router = BudgetRouter(model, store=store)
    outcomes = await at_once(2, *entry(router, "solve"), is_async)
    [_] = [o for o in outcomes if isinstance(o, ModelError)]
    [solved] = [o for o in outcomes if not isinstance(o, Exception)]
    assert (solved["route"]["decision"], solved["final_answer"]) == (
        "scratch",
        "7",
    )
    assert len(episodes_in(store, "default")) == 1
    assert len(FLIGHTS) == 0  # the failed solve left no claim behind
    again = await (
        router.asolve(QUESTION) if is_async else to_thread(router.solve, QUESTION)
    )
    assert again["route"]["decision"] == "reuse"
    assert len(model.calls) == 4


async def test_calls_waiting_for_an_unverified_solve_solve_it_themselves(
    is_async: bool,
) -> None:
    # Every sample differs: no answer is verified, so none may be reused.
    model = SlowModel(responder=Sequenced([boxed(i) for i in range(100)]))
    store = new_store()
    engine = BestOfN(model, budget=4)
    router = BudgetRouter(engine, store=store)
    outcomes = await at_once(3, *entry(router, "solve"), is_async)
    assert len(episodes_in(store, "default")) == 3
    assert [o["route"]["decision"] for o in outcomes] == ["scratch"] * 3
    assert {o["result"]["passed"] for o in outcomes} == {False}
    assert len(model.calls) == 12
    assert len(FLIGHTS) == 0


async def test_a_stale_claim_is_waited_for_only_so_long(
    is_async: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("langchain_speedup._flight.WAIT_SECONDS", 0.05)
    model = FakeChatModel(responder=sum_solver)
    store = new_store()
    router = BudgetRouter(model, store=store)
    # A run abandoned after routing (a stream dropped part way) never lands.
    key = question_key(QUESTION)
    assert FLIGHTS.claim(store, router.namespace, key, "abandoned") is None
    started = time.monotonic()
    ask = router.asolve(QUESTION) if is_async else to_thread(router.solve, QUESTION)
    out = await ask
    assert time.monotonic() - started >= 0.05
    assert (out["route"]["decision"], out["final_answer"]) == ("scratch", "7")
    assert len(FLIGHTS) == 0  # taken over, then landed


async def test_a_cancelled_solve_leaves_no_claim() -> None:
    model = SlowModel(responder=sum_solver, delay=0.5)
    store = new_store()
    router = BudgetRouter(model, store=store)
    task = asyncio.create_task(router.asolve(QUESTION))
    while not model.calls:  # noqa: ASYNC110 - the model has no event to wait on
        await asyncio.sleep(0.01)
    assert len(FLIGHTS) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(FLIGHTS) == 0


def test_a_graph_with_static_interrupts_holds_no_claim() -> None:
    model = FakeChatModel(responder=sum_solver)
    store = new_store()
    router = BudgetRouter(model, store=store)
    graph = router.as_graph(
        checkpointer=InMemorySaver(), interrupt_before=["best_of_n"]
    )
    config: Any = {"configurable": {"thread_id": "t"}}
    graph.invoke({"messages": [HumanMessage(QUESTION)]}, config)
    assert len(FLIGHTS) == 0  # a run that may never resume blocks nobody
    assert router.solve(QUESTION)["route"]["decision"] == "scratch"
