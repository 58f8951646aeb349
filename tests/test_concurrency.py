"""Methods and the router work with providers that refuse parallel calls, given `max_concurrency=1`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableConfig

from langchain_speedup import BestOfN, BudgetRouter, QdrantEpisodicStore, TreeOfThoughts
from tests.fakes import FakeChatModel, HashEmbeddings, boxed


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
    with QdrantEpisodicStore() as store:
        if solver == "tree_of_thoughts":
            engine: Any = TreeOfThoughts(model, budget=3, breadth=3)
        else:
            engine = BestOfN(model, budget=4, mode="static")
        run, arun = engine.run, engine.arun
        if solver == "router":
            router = BudgetRouter(engine, store=store, embeddings=HashEmbeddings())
            run, arun = router.solve, router.asolve
        out = await arun("7?", config=config) if is_async else run("7?", config=config)
    result = out.get("result", out)
    assert (result["budget_used"], result["final_answer"]) == (used, "7")
    assert len(model.calls) == calls
    assert model.peak == 1
