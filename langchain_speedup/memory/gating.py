"""The similarity gate: when memory may enter a prompt, learnt from outcomes."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from typing_extensions import TypedDict

from langchain_speedup._internal import check_number
from langchain_speedup.errors import ConfigurationError

__all__ = ["BandStats", "GateVerdict", "SimilarityGate", "saving_of"]

DEFAULT_BANDS = (0.5, 0.6, 0.7, 0.8, 0.9)


class GateVerdict(TypedDict):
    """The gate's answer for one similarity."""

    admitted: bool
    """Whether memory at this similarity may enter the prompt."""
    band: str
    """The similarity band, such as `"0.70-0.80"`."""
    explored: bool
    """Admitted although the band is closed, to learn what memory does there."""
    reason: str


class BandStats(TypedDict):
    """What the gate knows about one band."""

    band: str
    lower: float
    """The band's lowest similarity (-1 for the first band)."""
    open: bool
    memory_outcomes: int
    """Questions of this band solved with memory."""
    memory_saving: float | None
    """Their mean saving; `None` before the first."""
    estimate: float
    """Memory's saving there as the gate estimates it, prior included."""
    baseline: float
    """The mean saving of questions solved without memory (all bands)."""


def saving_of(*, passed: bool, budget_used: int, budget: int) -> float:
    """The outcome the gate learns from: budget left unspent by a passing answer.

    Returns:
        `1 - budget_used / budget`, within [0, 1], when the answer passed;
        0 when it did not (or the budget is 0).
    """
    if not passed or budget <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - budget_used / budget))


def _check_bands(bands: object) -> tuple[float, ...]:
    if isinstance(bands, str) or not isinstance(bands, Sequence) or not bands:
        msg = f"`bands` must be a non-empty sequence of similarities, got {bands!r}"
        raise ConfigurationError(msg)
    edges = tuple(check_number("bands", edge, low=-1.0, high=1.0) for edge in bands)
    if any(b <= a for a, b in itertools.pairwise(edges)):
        msg = f"`bands` must be strictly increasing, got {list(bands)!r}"
        raise ConfigurationError(msg)
    return edges


@dataclass(slots=True)
class _Arm:
    """Running sum and count of savings."""

    count: int = 0
    total: float = 0.0

    def add(self, saving: float) -> None:
        self.count += 1
        self.total += saving

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


class SimilarityGate:
    """Admits memory per similarity band, calibrated from solved questions.

    Where memory stops helping and starts misleading depends on the
    embeddings, the domain and the solver, so the gate learns it per band of
    the closest verified episode's similarity (by default `<0.50`,
    `0.50-0.60`, ..., `>=0.90`). Each solved question is an outcome: its band,
    whether memory entered the prompt, and its saving (`saving_of`).
    Outcomes without memory are pooled over all bands into one baseline. A
    band is open while memory's mean saving there is at least the baseline;
    each band starts from a prior worth `prior_weight` outcomes,
    `prior_margin` above the baseline from `prior_gate` up and below it
    under. A share `explore` of a closed band's questions gets memory anyway
    (seeded, marked `explored`), so that a closed band still learns.

    The router feeds the gate, and replays the outcomes stored with past
    episodes when it starts (`observe_episodes`). One gate serves one router
    (one namespace); its methods are thread-safe. `SimilarityGate.fixed(0.7)`
    is a plain constant threshold.

    Example:
        ```python
        gate = SimilarityGate()  # prior: open from 0.7, learns from outcomes
        router = BudgetRouter(model, store=store, embeddings=emb, similarity_gate=gate)
        ...
        for band in gate.stats():
            print(band["band"], band["open"], band["memory_outcomes"])
        ```

    Args:
        prior_gate: Where the prior opens: bands from this similarity up are
            open until outcomes say otherwise, bands below closed. One of
            `bands`, or -1 to open every band.
        bands: The edges between similarity bands, strictly increasing.
        prior_weight: How many outcomes the prior is worth in each band, > 0.
        prior_margin: The prior's distance from the baseline saving, > 0.
        explore: The share of a closed band's questions that get memory
            anyway; 0 never reopens a band the prior closes.
        seed: Seeds the exploration draws.
        calibrate: Learn from outcomes; `False` keeps the prior forever
            (see `fixed`).

    Raises:
        ConfigurationError: An option is out of range.
    """

    def __init__(
        self,
        *,
        prior_gate: float = 0.7,
        bands: Sequence[float] = DEFAULT_BANDS,
        prior_weight: float = 2.0,
        prior_margin: float = 0.1,
        explore: float = 0.1,
        seed: int = 0,
        calibrate: bool = True,
    ) -> None:
        self.bands = _check_bands(bands)
        self.prior_gate = check_number("prior_gate", prior_gate, low=-1.0, high=1.0)
        if self.prior_gate != -1.0 and self.prior_gate not in self.bands:
            msg = (
                f"`prior_gate` ({prior_gate}) must be one of `bands` "
                f"{list(self.bands)}, or -1 to open every band"
            )
            raise ConfigurationError(msg)
        self.prior_weight = check_number(
            "prior_weight", prior_weight, low=0.0, high=1e6, above_low=True
        )
        # The prior must lean one way, open or closed.
        self.prior_margin = check_number(
            "prior_margin", prior_margin, low=0.0, high=1.0, above_low=True
        )
        self.explore = check_number("explore", explore, low=0.0, high=1.0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            msg = f"`seed` must be an integer, got {seed!r}"
            raise ConfigurationError(msg)
        if not isinstance(calibrate, bool):
            msg = f"`calibrate` must be a bool, got {calibrate!r}"
            raise ConfigurationError(msg)
        self.calibrate = calibrate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._baseline = _Arm()
        self._memory = [_Arm() for _ in range(len(self.bands) + 1)]

    @classmethod
    def fixed(cls, threshold: float) -> SimilarityGate:
        """A constant gate: memory enters at `threshold` and above, always.

        `SimilarityGate.fixed(-1.0)` admits every retrieved episode (no gate).
        """
        return cls(
            prior_gate=threshold, bands=(threshold,), explore=0.0, calibrate=False
        )

    # -- bands -------------------------------------------------------------------

    def _index(self, similarity: float) -> int:
        return sum(similarity >= edge for edge in self.bands)

    def _label(self, index: int) -> str:
        if index == 0:
            return f"<{self.bands[0]:.2f}"
        if index == len(self.bands):
            return f">={self.bands[-1]:.2f}"
        return f"{self.bands[index - 1]:.2f}-{self.bands[index]:.2f}"

    def _lower(self, index: int) -> float:
        return -1.0 if index == 0 else self.bands[index - 1]

    def band_of(self, similarity: float) -> str:
        """The label of the band holding `similarity`."""
        return self._label(self._index(similarity))

    # -- estimates ---------------------------------------------------------------

    def _baseline_mean(self) -> float:
        # Before any outcome without memory, the prior sits around 0.
        return self._baseline.mean or 0.0

    def _estimate(self, index: int, baseline: float) -> float:
        prior_open = self._lower(index) >= self.prior_gate
        prior = baseline + (self.prior_margin if prior_open else -self.prior_margin)
        arm = self._memory[index]
        if not self.calibrate:
            return prior
        return (arm.total + self.prior_weight * prior) / (arm.count + self.prior_weight)

    def _is_open(self, index: int, baseline: float) -> bool:
        if not self.calibrate:
            return self._lower(index) >= self.prior_gate
        return self._estimate(index, baseline) >= baseline

    def is_open(self, similarity: float) -> bool:
        """Whether memory at `similarity` is admitted (no exploration)."""
        with self._lock:
            return self._is_open(self._index(similarity), self._baseline_mean())

    def admit(self, similarity: float) -> GateVerdict:
        """Decide whether memory at `similarity` may enter the prompt.

        A closed band admits a share `explore` of its questions, drawn from
        the gate's seeded generator.
        """
        with self._lock:
            index = self._index(similarity)
            band = self._label(index)
            baseline = self._baseline_mean()
            if self.calibrate:
                evidence = (
                    f"memory's saving {self._estimate(index, baseline):.2f} "
                    f"({self._memory[index].count} outcome(s) and the prior) vs "
                    f"{baseline:.2f} without memory ({self._baseline.count})"
                )
            else:
                evidence = f"fixed gate at {self.prior_gate}"
            admitted = self._is_open(index, baseline)
            explored = (
                not admitted
                and self.explore > 0
                and self._random.random() < self.explore
            )
            state = "open" if admitted else "explored" if explored else "closed"
            return GateVerdict(
                admitted=admitted or explored,
                band=band,
                explored=explored,
                reason=f"band {band} {state}: {evidence}",
            )

    # -- learning ----------------------------------------------------------------

    def observe(
        self, *, similarity: float | None, with_memory: bool, saving: float
    ) -> None:
        """Learn from one solved question.

        Args:
            similarity: The closest verified episode's similarity when the
                question was routed; `None` when nothing was stored.
            with_memory: Whether memory entered the prompt.
            saving: The outcome, from `saving_of`.

        Raises:
            ConfigurationError: `saving` is not in [0, 1], or memory was
                used without a similarity.
        """
        saving = check_number("saving", saving, low=0.0, high=1.0)
        if with_memory and similarity is None:
            msg = "an outcome with memory needs the similarity it was admitted at"
            raise ConfigurationError(msg)
        with self._lock:
            if not with_memory:
                self._baseline.add(saving)
            elif similarity is not None:
                self._memory[self._index(similarity)].add(saving)

    def observe_episodes(self, episodes: Iterable[Mapping[str, Any]]) -> int:
        """Replay the outcomes stored with past episodes; returns how many.

        Episodes written before the gate existed (without `budget`) and
        answers reused from memory (no compute) are skipped.
        """
        replayed = 0
        for episode in episodes:
            budget = episode.get("budget")
            decision = episode.get("decision")
            if not isinstance(budget, int) or decision not in ("exemplars", "scratch"):
                continue
            similarity = episode.get("similarity")
            with_memory = decision == "exemplars"
            if with_memory and not isinstance(similarity, int | float):
                continue
            self.observe(
                similarity=None if similarity is None else float(similarity),
                with_memory=with_memory,
                saving=saving_of(
                    passed=bool(episode.get("verified")),
                    budget_used=int(episode.get("budget_used", budget)),
                    budget=budget,
                ),
            )
            replayed += 1
        return replayed

    def observe_totals(self, totals: Mapping[str, Sequence[float]]) -> int:
        """Replay outcome totals (`EpisodicMemory.outcomes`); returns how many outcomes.

        `totals` maps `"baseline"` (solved without memory) and similarity
        percents (`"70"`: similarities in [0.70, 0.71)) to `[count, total
        saving]`. A percent counts in the band its lower end falls in, so
        bands at whole percents replay exactly.
        """
        replayed = 0
        with self._lock:
            for key, (count, total) in totals.items():
                if key == "baseline":
                    arm = self._baseline
                else:
                    arm = self._memory[self._index(int(key) / 100)]
                arm.count += int(count)
                arm.total += float(total)
                replayed += int(count)
        return replayed

    def stats(self) -> list[BandStats]:
        """What the gate knows, band by band, lowest first."""
        with self._lock:
            baseline = self._baseline_mean()
            return [
                BandStats(
                    band=self._label(i),
                    lower=self._lower(i),
                    open=self._is_open(i, baseline),
                    memory_outcomes=arm.count,
                    memory_saving=None if arm.mean is None else round(arm.mean, 4),
                    estimate=round(self._estimate(i, baseline), 4),
                    baseline=round(baseline, 4),
                )
                for i, arm in enumerate(self._memory)
            ]

    def __repr__(self) -> str:
        opened = [s["band"] for s in self.stats() if s["open"]]
        kind = "calibrated" if self.calibrate else "fixed"
        return f"SimilarityGate({kind}, open bands: {', '.join(opened) or 'none'})"
