"""Methods work with providers that refuse parallel calls, given `max_concurrency=1`."""

from __future__ import annotations

import time
from typing import Any

import pytest

from langchain_speedup import best_of_n, create_best_of_n_graph, tree_of_thoughts
from tests.fakes import FakeChatModel, boxed


class SerialOnlyModel(FakeChatModel):
    """Raises when a call starts while another is still running."""

    active: int = 0
    peak: int = 0

    def _before_reply(self, call_number: int) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            overlapping = self.active > 1
        try:
            time.sleep(0.01)  # long enough for a parallel call to overlap
            if overlapping:
                msg = "this provider rejects concurrent requests"
                raise RuntimeError(msg)
        finally:
            with self._lock:
                self.active -= 1


def _model() -> SerialOnlyModel:
    return SerialOnlyModel(responder=lambda _: boxed(7))


def test_the_fake_really_rejects_parallel_calls() -> None:
    model = _model()
    with pytest.raises(RuntimeError, match="concurrent"):
        model.batch(["a", "b", "c", "d"], {"max_concurrency": 4})


@pytest.mark.parametrize("config", [{"max_concurrency": 1}])
def test_static_best_of_n_runs_sequentially(config: dict[str, Any]) -> None:
    model = _model()
    result = best_of_n(model, "7?", n=4, mode="static", config=config)
    assert result["budget_used"] == 4
    assert model.peak == 1


async def test_graph_runs_sequentially_async() -> None:
    model = _model()
    graph = create_best_of_n_graph(model, n=4, mode="static")
    out = await graph.ainvoke({"messages": [("user", "7?")]}, {"max_concurrency": 1})
    assert out["best_of_n"]["budget_used"] == 4
    assert model.peak == 1


def test_tree_of_thoughts_proposals_run_sequentially() -> None:
    model = _model()
    result = tree_of_thoughts(
        model, "7?", max_nodes=3, breadth=3, config={"max_concurrency": 1}
    )
    assert result["budget_used"] >= 1
    assert model.peak == 1
