"""The similarity gate: bands, prior, calibration from outcomes, exploration, replay."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.store.base import BaseStore

from langchain_speedup import (
    BestOfN,
    BudgetRouter,
    ConfigurationError,
    create_speedup_graph,
)
from langchain_speedup.memory import SimilarityGate, saving_of
from tests.fakes import (
    FakeChatModel,
    HashEmbeddings,
    episodes_in,
    make_episode,
    sum_solver,
)

MAYA = (
    "Maya buys 3 pens at 4 dollars each and 2 notebooks at 5 dollars each. "
    "How many dollars does Maya spend in total?"
)
NEW_NUMBERS = MAYA.replace("3 pens", "7 pens")
UNRELATED = "A train travels 60 miles per hour for 3 hours. How far does the train go?"


def similarity(a: str, b: str) -> float:
    embeddings = HashEmbeddings()
    va, vb = embeddings.embed_query(a), embeddings.embed_query(b)
    return sum(x * y for x, y in zip(va, vb, strict=True))


def teach(
    gate: SimilarityGate, sim: float | None, memory: bool, *savings: float
) -> None:
    for saving in savings:
        gate.observe(similarity=sim, with_memory=memory, saving=saving)


# -- outcomes and bands ----------------------------------------------------------------


def test_saving_is_the_unspent_share_of_a_passing_answer() -> None:
    assert saving_of(passed=True, budget_used=2, budget=8) == 0.75
    assert saving_of(passed=True, budget_used=8, budget=8) == 0.0
    assert saving_of(passed=False, budget_used=1, budget=8) == 0.0
    assert saving_of(passed=True, budget_used=0, budget=0) == 0.0
    assert saving_of(passed=True, budget_used=9, budget=8) == 0.0


def test_bands_are_labelled_by_their_edges() -> None:
    gate = SimilarityGate()
    assert gate.band_of(0.3) == "<0.50"
    assert gate.band_of(0.5) == "0.50-0.60"
    assert gate.band_of(0.75) == "0.70-0.80"
    assert gate.band_of(0.95) == ">=0.90"
    assert [s["band"] for s in gate.stats()] == [
        "<0.50",
        "0.50-0.60",
        "0.60-0.70",
        "0.70-0.80",
        "0.80-0.90",
        ">=0.90",
    ]


def test_the_prior_opens_at_the_prior_gate() -> None:
    gate = SimilarityGate()
    assert [s["open"] for s in gate.stats()] == [False, False, False, True, True, True]
    assert not gate.is_open(0.69)
    assert gate.is_open(0.7)


# -- calibration -----------------------------------------------------------------------


def test_memory_that_saves_less_than_no_memory_closes_its_band() -> None:
    gate = SimilarityGate(explore=0.0)
    teach(gate, None, False, 0.5, 0.5, 0.5, 0.5)
    assert gate.is_open(0.75)
    teach(gate, 0.75, True, 0.0)
    # One bad outcome against a prior worth two: (0 + 2 * 0.6) / 3 = 0.4 < 0.5.
    assert not gate.is_open(0.75)
    verdict = gate.admit(0.75)
    assert verdict == {
        "admitted": False,
        "band": "0.70-0.80",
        "explored": False,
        "reason": verdict["reason"],
    }
    assert "closed" in verdict["reason"]
    # Other bands keep their prior.
    assert gate.is_open(0.85)


def test_memory_that_saves_more_opens_a_band_the_prior_closed() -> None:
    gate = SimilarityGate(explore=0.0)
    teach(gate, None, False, 0.25, 0.25)
    assert not gate.is_open(0.65)
    teach(gate, 0.65, True, 0.875)
    # (0.875 + 2 * 0.15) / 3 = 0.39 >= 0.25.
    assert gate.is_open(0.65)
    stats = {s["band"]: s for s in gate.stats()}["0.60-0.70"]
    assert stats["memory_outcomes"] == 1
    assert stats["memory_saving"] == 0.875
    assert stats["baseline"] == 0.25
    assert stats["open"] is True


def test_outcomes_without_memory_are_pooled_over_bands() -> None:
    gate = SimilarityGate()
    teach(gate, 0.3, False, 1.0)
    teach(gate, None, False, 0.0)
    teach(gate, 0.95, False, 0.5)
    assert {s["baseline"] for s in gate.stats()} == {0.5}
    assert all(s["memory_outcomes"] == 0 for s in gate.stats())


def test_more_outcomes_outweigh_the_prior() -> None:
    gate = SimilarityGate(explore=0.0, prior_weight=2)
    teach(gate, None, False, 0.5)
    teach(gate, 0.85, True, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4)
    estimate = {s["band"]: s for s in gate.stats()}["0.80-0.90"]["estimate"]
    assert estimate == pytest.approx((8 * 0.4 + 2 * 0.6) / 10)
    assert not gate.is_open(0.85)


# -- exploration -----------------------------------------------------------------------


def test_a_closed_band_explores_a_share_of_its_questions() -> None:
    gate = SimilarityGate(explore=0.25, seed=7)
    verdicts = [gate.admit(0.3) for _ in range(400)]
    explored = [v for v in verdicts if v["explored"]]
    assert all(v["admitted"] for v in explored)
    assert 60 <= len(explored) <= 140
    assert all("explored" in v["reason"] for v in explored)
    again = SimilarityGate(explore=0.25, seed=7)
    assert [again.admit(0.3)["explored"] for _ in range(400)] == [
        v["explored"] for v in verdicts
    ]


def test_open_bands_never_count_as_explored() -> None:
    gate = SimilarityGate(explore=1.0)
    verdict = gate.admit(0.8)
    assert verdict["admitted"] is True
    assert verdict["explored"] is False


def test_no_exploration_keeps_closed_bands_closed() -> None:
    gate = SimilarityGate(explore=0.0)
    assert not any(gate.admit(0.3)["admitted"] for _ in range(50))


# -- fixed gates ---------------------------------------------------------------------


def test_a_fixed_gate_ignores_outcomes() -> None:
    gate = SimilarityGate.fixed(0.7)
    teach(gate, None, False, 1.0, 1.0)
    teach(gate, 0.8, True, 0.0, 0.0, 0.0)
    assert gate.is_open(0.8)
    assert not gate.is_open(0.69)
    assert not gate.admit(0.1)["admitted"]
    assert "fixed gate at 0.7" in gate.admit(0.8)["reason"]


def test_a_fixed_gate_at_minus_one_admits_everything() -> None:
    gate = SimilarityGate.fixed(-1.0)
    assert gate.admit(-1.0)["admitted"]
    assert gate.admit(0.0)["admitted"]
    assert "fixed" in repr(gate)


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"bands": (0.5, 0.5)}, id="bands-not-increasing"),
        pytest.param({"bands": ()}, id="bands-empty"),
        pytest.param({"bands": "0.5"}, id="bands-str"),
        pytest.param({"bands": (0.5, 1.5)}, id="band-out-of-range"),
        pytest.param({"prior_gate": 0.65}, id="prior-gate-between-edges"),
        pytest.param({"prior_gate": 2.0}, id="prior-gate-out-of-range"),
        pytest.param({"prior_weight": 0}, id="prior-weight-0"),
        pytest.param({"prior_margin": 0}, id="prior-margin-0"),
        pytest.param({"explore": 1.5}, id="explore-above-1"),
        pytest.param({"explore": float("nan")}, id="explore-nan"),
        pytest.param({"seed": True}, id="seed-bool"),
        pytest.param({"calibrate": "yes"}, id="calibrate-str"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any]) -> None:
    [name] = options
    with pytest.raises(ConfigurationError, match=f"`{name}`"):
        SimilarityGate(**options)


def test_a_prior_gate_of_minus_one_opens_every_band() -> None:
    gate = SimilarityGate(prior_gate=-1.0)
    assert all(s["open"] for s in gate.stats())


def test_bad_outcomes_are_rejected_and_not_counted() -> None:
    gate = SimilarityGate()
    with pytest.raises(ConfigurationError, match="saving"):
        gate.observe(similarity=0.8, with_memory=True, saving=1.5)
    with pytest.raises(ConfigurationError, match="similarity"):
        gate.observe(similarity=None, with_memory=True, saving=0.5)
    assert all(s["memory_outcomes"] == 0 for s in gate.stats())
    assert gate.stats()[0]["baseline"] == 0.0


# -- replaying stored episodes --------------------------------------------------------


def episode(
    decision: str, *, similarity: float | None, used: int, verified: bool = True
) -> dict[str, Any]:
    found: dict[str, Any] = dict(make_episode("Q?", verified=verified))
    found.update(decision=decision, similarity=similarity, budget=8, budget_used=used)
    return found


def test_replay_learns_from_stored_outcomes_and_skips_the_rest() -> None:
    old = dict(make_episode("Q?"))  # written before the gate: no budget
    episodes = [
        episode("scratch", similarity=None, used=4),
        episode("scratch", similarity=0.3, used=8, verified=False),
        episode("exemplars", similarity=0.75, used=1),
        episode("reuse", similarity=None, used=0),
        episode("exemplars", similarity=None, used=1),  # malformed
        old,
    ]
    gate = SimilarityGate()
    assert gate.observe_episodes(episodes) == 3
    stats = {s["band"]: s for s in gate.stats()}
    assert stats["0.70-0.80"]["memory_outcomes"] == 1
    assert stats["0.70-0.80"]["memory_saving"] == 0.875
    assert stats["<0.50"]["baseline"] == 0.25  # (0.5 + 0) / 2


# -- through the router ---------------------------------------------------------------


def router_with(store: BaseStore, gate: SimilarityGate) -> BudgetRouter:
    solver = BestOfN(FakeChatModel(responder=sum_solver), budget=4)
    return BudgetRouter(solver, store=store, similarity_gate=gate)


async def test_the_router_records_band_and_learns_each_outcome(
    store: BaseStore, is_async: bool
) -> None:
    gate = SimilarityGate(explore=0.0)
    router = router_with(store, gate)
    first = await router.asolve(MAYA) if is_async else router.solve(MAYA)
    assert first["route"]["decision"] == "scratch"
    assert first["route"]["band"] is None
    second = await router.asolve(NEW_NUMBERS) if is_async else router.solve(NEW_NUMBERS)
    sim = similarity(MAYA, NEW_NUMBERS)
    assert second["route"]["decision"] == "exemplars"
    assert second["route"]["band"] == gate.band_of(sim)
    assert second["route"]["explored"] is False
    assert "open" in second["route"]["reason"]
    stats = {s["band"]: s for s in gate.stats()}
    assert stats[gate.band_of(sim)]["memory_outcomes"] == 1
    # The scratch question is the baseline: 3 agreeing of 4 generations.
    assert stats["<0.50"]["baseline"] == 0.25
    stored = {e["question"]: e for e in episodes_in(store, "default")}
    assert stored[NEW_NUMBERS]["similarity"] == pytest.approx(sim, abs=1e-6)
    assert stored[NEW_NUMBERS]["budget"] == 4
    assert stored[MAYA]["similarity"] is None


async def test_a_band_closed_by_outcomes_keeps_memory_out(
    store: BaseStore, is_async: bool
) -> None:
    gate = SimilarityGate(explore=0.0)
    sim = similarity(MAYA, NEW_NUMBERS)
    teach(gate, sim, True, 0.0, 0.0, 0.0, 0.0)
    router = router_with(store, gate)
    router.solve(MAYA)
    out = await router.asolve(NEW_NUMBERS) if is_async else router.solve(NEW_NUMBERS)
    assert out["route"]["decision"] == "scratch"
    assert out["route"]["band"] == gate.band_of(sim)
    assert "closed" in out["route"]["reason"]
    assert out["route"]["exemplar_ids"] == []


def test_an_explored_band_admits_its_episodes(store: BaseStore) -> None:
    gate = SimilarityGate(bands=(0.5, 0.99), prior_gate=0.99, explore=1.0)
    sim = similarity(MAYA, NEW_NUMBERS)
    assert 0.5 <= sim < 0.99
    router = router_with(store, gate)
    router.solve(MAYA)
    out = router.solve(NEW_NUMBERS)
    assert out["route"]["decision"] == "exemplars"
    assert out["route"]["explored"] is True
    assert len(out["route"]["exemplar_ids"]) == 1
    assert "explored" in out["route"]["reason"]


async def test_a_new_router_replays_the_stored_outcomes(store: BaseStore) -> None:
    router = router_with(store, SimilarityGate())
    router.solve(MAYA)
    router.solve(NEW_NUMBERS)
    router.solve(NEW_NUMBERS)  # reused: no outcome
    learnt = router.gate.stats()
    fresh = router_with(store, SimilarityGate())
    await fresh.asolve(UNRELATED)
    replayed = fresh.gate.stats()
    sim_band = SimilarityGate().band_of(similarity(MAYA, NEW_NUMBERS))
    before = {s["band"]: s for s in learnt}
    after = {s["band"]: s for s in replayed}
    assert (
        after[sim_band]["memory_outcomes"] == before[sim_band]["memory_outcomes"] == 1
    )
    # The replayed baseline holds MAYA's outcome and the new question's.
    assert sum(s["memory_outcomes"] for s in replayed) == 1
    assert after["<0.50"]["baseline"] == 0.25


def test_a_number_is_a_fixed_gate(store: BaseStore) -> None:
    router = BudgetRouter(
        FakeChatModel(responder=sum_solver),
        store=store,
        similarity_gate=0.5,
    )
    assert router.gate.calibrate is False
    assert router.gate.is_open(0.5)
    assert not router.gate.is_open(0.49)


async def test_the_speedup_graph_feeds_the_gate(store: BaseStore) -> None:
    gate = SimilarityGate(explore=0.0)
    graph = create_speedup_graph(
        BestOfN(FakeChatModel(responder=sum_solver), budget=4),
        store=store,
        similarity_gate=gate,
    )
    await graph.ainvoke({"messages": [("user", MAYA)]})
    out = await graph.ainvoke({"messages": [("user", NEW_NUMBERS)]})
    route = out["speedup"]["route"]
    assert route["decision"] == "exemplars"
    assert route["band"] == gate.band_of(similarity(MAYA, NEW_NUMBERS))
    assert sum(s["memory_outcomes"] for s in gate.stats()) == 1


def test_outcome_totals_replay_into_the_band_of_their_lower_end() -> None:
    gate = SimilarityGate()
    totals = {"70": [2, 1.0], "69": [1, 0.0], "-3": [1, 0.25], "baseline": [2, 0.5]}
    assert gate.observe_totals(totals) == 6
    stats = {s["band"]: s for s in gate.stats()}
    assert (
        stats["0.70-0.80"]["memory_outcomes"],
        stats["0.70-0.80"]["memory_saving"],
    ) == (2, 0.5)
    assert (
        stats["0.60-0.70"]["memory_outcomes"],
        stats["0.60-0.70"]["memory_saving"],
    ) == (1, 0.0)
    assert stats["<0.50"]["memory_outcomes"] == 1
    assert stats["<0.50"]["baseline"] == 0.25
