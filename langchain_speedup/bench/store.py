"""`bench-store`: the episodic store's costs at 1k, 10k and 100k episodes.

Fills a `QdrantStore` with synthetic verified and unverified episodes, one
`EpisodicMemory.put` each (as the router writes them), whose vectors come
from a cheap deterministic generator (clusters of near paraphrases), so
filling needs no embedding model; then times the router's decision
(`BudgetRouter.route`, which reads the store and calls no model) and
compares it with floors measured in the same run: one embedding of a
question, and exact search in numpy over the same vectors. The router's
decisions and exemplars are compared with the ones it makes from exact
search.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from langchain_speedup.bench._report import ratio
from langchain_speedup.memory.qdrant import QdrantStore
from langchain_speedup.memory.store import EpisodicMemory
from langchain_speedup.router import BudgetRouter
from langchain_speedup.types import Episode, EpisodeMatch

__all__ = ["DEFAULT_SIZES", "QUICK_SIZES", "format_store_report", "run_store_bench"]

DEFAULT_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)

TENANT = "bench"
_IDS = uuid.UUID("6f1c9a52-0d4e-4b7a-8e3f-2a9d5c7b1e40")
K = 8
GATE = 0.7
"""The bench router's fixed similarity gate (the default gate's prior), so
that its decisions on the store and on exact search compare exactly."""
_SEED = 20_261_127


class _Vectors:
    """Deterministic unit vectors in clusters of 16.

    Episode `i` is a paraphrase of its cluster's centre, as questions from
    one template are.
    """

    def __init__(self, count: int, dims: int, seed: int = _SEED) -> None:
        rng = np.random.default_rng(seed)
        clusters = max(1, count // 16)
        centres = rng.standard_normal((clusters, dims)).astype(np.float32)
        noise = rng.standard_normal((count, dims)).astype(np.float32)
        raw = centres[np.arange(count) % clusters] + 0.6 * noise
        self.matrix: np.ndarray = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        self._rng = rng

    def near(self, index: int) -> np.ndarray:
        """A new unit vector close to episode `index` (a question reworded)."""
        dims = self.matrix.shape[1]
        noise = self._rng.standard_normal((dims,)).astype(np.float32) / math.sqrt(dims)
        noisy = self.matrix[index] + 0.3 * noise
        unit: np.ndarray = noisy / np.linalg.norm(noisy)
        return unit


class _SyntheticEmbeddings(Embeddings):
    """Looks texts up instead of embedding them.

    `"#<n> ..."` is episode n's vector, `"?<n> ..."` query n's. With `real`,
    each query is also embedded by it (and the result dropped), so its cost
    is counted.
    """

    def __init__(
        self, vectors: _Vectors, queries: np.ndarray, real: Embeddings | None
    ) -> None:
        self.vectors, self.queries, self.real = vectors, queries, real

    def _lookup(self, text: str) -> list[float]:
        number = int(text[1:].split(" ", 1)[0])
        table = self.vectors.matrix if text[0] == "#" else self.queries
        return [float(x) for x in table[number]]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._lookup(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        if self.real is not None:
            self.real.embed_query(text.split(" ", 1)[1])
        return self._lookup(text)


def _episode_id(i: int) -> str:
    return str(uuid.uuid5(_IDS, str(i)))


def _episode(i: int) -> Episode:
    """Episode `i`, complete as the router writes it; every fifth unverified."""
    return Episode(
        id=_episode_id(i),
        namespace=TENANT,
        question=f"#{i} synthetic question {i}",
        question_key=f"key-{i}",
        answer=f"The answer is {i % 97}.",
        final_answer=str(i % 97),
        score=1.0,
        verified=i % 5 != 4,
        method="best_of_n",
        mode="adaptive",
        budget_used=3,
        budget_unit="generations",
        stop_reason="threshold",
        decision="scratch",
        generations=3,
        total_tokens=300,
        seconds=1.0,
        created_at=float(i),
    )


def _percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1e3

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99)}


def _extra(n: int) -> Episode:
    # A question the fill did not write: the generator's vectors end at `n`.
    extra = {**_episode(0), "id": str(uuid.uuid4()), "question_key": f"extra-{n}"}
    return cast(Episode, {**extra, "verified": False})  # kept out of the searches


def _timed(fn: Callable[[int], object], repeat: int) -> list[float]:
    """Seconds taken by `fn(0)`, `fn(1)`, ... `fn(repeat - 1)`."""
    samples = []
    for n in range(repeat):
        started = time.perf_counter()
        fn(n)
        samples.append(time.perf_counter() - started)
    return samples


def _rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_REOPENED = """
import sys
from langchain_speedup.bench.store import TENANT, _router, _rss_mb
from langchain_speedup.memory.qdrant import QdrantStore
from langchain_speedup.memory.store import EpisodicMemory

dims = int(sys.argv[2])
unit = [1.0] + [0.0] * (dims - 1)
index = {"dims": dims, "embed": lambda texts: [unit for _ in texts]}
with QdrantStore(path=sys.argv[1], index=index) as store:
    memory, router = EpisodicMemory(store), _router(store)
    for n in range(100):
        router.route(f"question {n}")
        memory.find(TENANT, f"key-{n}")
    print(_rss_mb())
"""


def _reopened_rss_mb(path: Path, dims: int) -> float:
    """The RSS of a fresh process that opens the store and routes 100 questions.

    The benchmark's own process also holds the generator's vectors and the
    embedding model; this is what an app pays for the store.
    """
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _REOPENED, str(path), str(dims)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(done.stdout.strip().splitlines()[-1])


def _disk_mb(path: Path) -> float:
    # Blocks in use: the engine's files are sparse (preallocated, mostly holes).
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 1e6


def _router(store: QdrantStore) -> BudgetRouter:
    """A new router on `store`: `route` reads the store and decides, calling no model."""
    model = FakeListChatModel(responses=["The answer is 1."])
    return BudgetRouter(model, store=store, namespace=TENANT, similarity_gate=GATE)


def _exact_top(
    matrix: np.ndarray, verified: np.ndarray, query: np.ndarray
) -> tuple[list[int], list[float]]:
    """The `K` verified episodes nearest `query` by exact search, and their scores."""
    scores = matrix @ query
    scores[~verified] = -np.inf
    top = np.argpartition(-scores, K)[:K]
    ranked = top[np.argsort(-scores[top])]
    return [int(i) for i in ranked], [float(scores[i]) for i in ranked]


def _decision(route: Any) -> tuple[str, list[str]]:
    return route["decision"], list(route["exemplar_ids"])


def _agreement(
    router: BudgetRouter,
    memory: EpisodicMemory,
    texts: Sequence[str],
    exact: Sequence[tuple[list[int], list[float]]],
) -> dict[str, float]:
    """How often the store gives what exact search gives.

    `decision`: the router's decision and exemplars (the nearest similarity
    decides; the `max_exemplars` most similar admitted episodes are shown)
    equal those it decides from exact search. The rest compare a search for
    the `K` nearest.
    """
    same_decision = same_top1 = same_set = 0
    recall = 0.0
    for text, (want, scores) in zip(texts, exact, strict=True):
        matches = [
            EpisodeMatch(episode=_episode(i), similarity=score)
            for i, score in zip(want, scores, strict=True)
        ]
        from_exact = router.decide(text, None, matches)[0]
        same_decision += _decision(router.route(text)[0]) == _decision(from_exact)
        hits = memory.search(TENANT, text, limit=K)
        got = [int(h["episode"]["question_key"].split("-")[1]) for h in hits]
        same_top1 += bool(got) and got[0] == want[0]
        same_set += set(got) == set(want)
        recall += len(set(got) & set(want)) / K
    return {
        "decision": same_decision / len(texts),
        "top1": same_top1 / len(texts),
        "top8_set": same_set / len(texts),
        "recall_at_8": recall / len(texts),
    }


def bench_size(
    count: int,
    *,
    directory: Path,
    dims: int,
    real: Embeddings | None,
    engine: str = "auto",
    queries: int = 100,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Fill a fresh store on disk with `count` episodes and time its operations."""
    vectors = _Vectors(count, dims)
    picks = np.random.default_rng(_SEED + count).integers(0, count, size=queries)
    query_vectors = np.stack([vectors.near(int(i)) for i in picks])
    synthetic = _SyntheticEmbeddings(vectors, query_vectors, None)
    path = directory / f"store-{count}"
    shutil.rmtree(path, ignore_errors=True)
    index: Any = {"dims": dims, "embed": synthetic, "fields": ["question"]}
    result: dict[str, Any] = {"episodes": count}

    store = QdrantStore(path=path, index=index, engine=engine)  # type: ignore[arg-type]
    result["engine"] = store.engine_name
    memory = EpisodicMemory(store)
    puts: list[float] = []
    started = time.perf_counter()
    for i in range(count):
        # One episode per write, as the router writes them: a write that
        # crosses a segment threshold waits for that segment's index.
        began = time.perf_counter()
        memory.put(_episode(i))
        puts.append(time.perf_counter() - began)
        if i % 1000 == 999:
            progress(f"{count}: filled {i + 1}")
    store.optimize()
    result["fill_per_s"] = count / (time.perf_counter() - started)
    result["put"] = {**_percentiles(puts), "max_ms": max(puts) * 1e3}
    singles = _timed(lambda n: memory.put(_extra(count + n)), 50)
    result["put_one_per_s"] = 1 / statistics.median(singles)
    store.close()

    started = time.perf_counter()
    store = QdrantStore(path=path, index=index, engine=engine)  # type: ignore[arg-type]
    result["reopen_s"] = time.perf_counter() - started
    memory = EpisodicMemory(store)
    texts = [f"?{q} question {int(picks[q])}" for q in range(queries)]
    keys = [f"key-{int(picks[q])}" for q in range(queries)]
    router = _router(store)
    started = time.perf_counter()
    router.route(texts[0])  # a new router calibrates its gate, then routes
    result["first_question_s"] = time.perf_counter() - started

    for q in range(min(10, queries)):  # warm caches
        router.route(texts[q])
    result["route"] = _percentiles(_timed(lambda n: router.route(texts[n]), queries))
    result["search_k"] = _percentiles(
        _timed(lambda n: memory.search(TENANT, texts[n], limit=K), queries)
    )
    reuse = _timed(lambda n: memory.find(TENANT, keys[n]), queries)
    result["exact_reuse"] = _percentiles(reuse)

    verified = np.array([i % 5 != 4 for i in range(count)])
    exact = [_exact_top(vectors.matrix, verified, v) for v in query_vectors]
    result["agreement"] = _agreement(router, memory, texts, exact)

    if real is not None:
        store.embeddings = _SyntheticEmbeddings(vectors, query_vectors, real)
        with_embedding = _timed(lambda n: router.route(texts[n]), queries)
        result["route_with_embedding"] = _percentiles(with_embedding)
    store.close()

    result["exact_numpy"] = _percentiles(
        _timed(
            lambda n: _exact_top(vectors.matrix, verified, query_vectors[n]),
            min(queries, 30),
        )
    )
    result["rss_mb"] = _rss_mb()
    result["store_rss_mb"] = _reopened_rss_mb(path, dims)
    result["disk_mb"] = _disk_mb(path)
    return result


def run_store_bench(
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    embeddings: Embeddings | None = None,
    dims: int = 384,
    directory: str | os.PathLike[str] | None = None,
    engine: str = "auto",
    queries: int = 100,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the storage benchmark; every figure comes with its floors.

    Args:
        sizes: Episode counts, each filled into a fresh on-disk store.
        embeddings: The real embeddings (MiniLM in the command) for the
            "embedding included" figures and the one-embedding floor; leave
            out to skip them.
        dims: The vector size (MiniLM's 384).
        directory: Where the stores are written (a temporary directory,
            removed afterwards, by default).
        engine: `QdrantStore`'s engine: `"auto"`, `"edge"` or `"client"`.
        queries: Questions timed per size.
        progress: Print progress on stderr.

    Returns:
        The report: one entry per size, and the floors.
    """
    import sys

    report: dict[str, Any] = {"dims": dims, "k": K, "queries": queries, "sizes": []}
    if embeddings is not None:
        probe = "A train travels 60 miles per hour for 3 hours. How far does it go?"
        embeddings.embed_query(probe)
        report["one_embedding"] = _percentiles(
            _timed(lambda _: embeddings.embed_query(probe), 30)
        )

    def say(text: str) -> None:
        if progress:
            sys.stderr.write(f"\r{text:<60}")

    temporary = directory is None
    root = Path(tempfile.mkdtemp(prefix="bench-store-") if temporary else directory)  # type: ignore[arg-type]
    root.mkdir(parents=True, exist_ok=True)
    try:
        for count in sizes:
            entry = bench_size(
                count,
                directory=root,
                dims=dims,
                real=embeddings,
                engine=engine,
                queries=queries,
                progress=say,
            )
            embed = report.get("one_embedding", {}).get("p50_ms")
            numpy_floor = entry["exact_numpy"]["p50_ms"]
            entry["route_x_exact_numpy"] = ratio(entry["route"]["p50_ms"], numpy_floor)
            if embed:
                entry["route_x_one_embedding"] = ratio(entry["route"]["p50_ms"], embed)
            report["sizes"].append(entry)
    finally:
        if progress:
            sys.stderr.write("\n")
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    return report


def format_store_report(report: dict[str, Any]) -> str:
    """The report as a Markdown table, one column per size."""
    sizes = report["sizes"]
    embed = report.get("one_embedding", {}).get("p50_ms")

    def row(name: str, cell: Callable[[dict[str, Any]], str]) -> str:
        return "| " + name + " | " + " | ".join(cell(s) for s in sizes) + " |"

    def lat(key: str) -> Callable[[dict[str, Any]], str]:
        return lambda s: (
            f"{s[key]['p50_ms']:.2f} / {s[key]['p95_ms']:.2f}" if key in s else "-"
        )

    lines = [
        "| episodes | " + " | ".join(f"{s['episodes']:,}" for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
        row("engine", lambda s: str(s["engine"])),
        row("route decision p50 / p95 ms (embedding excluded)", lat("route")),
        row(
            "route decision p50 / p95 ms (embedding included)",
            lat("route_with_embedding"),
        ),
        row(
            "route p50 x one embedding",
            lambda s: f"{s.get('route_x_one_embedding', float('nan')):.2f}",
        ),
        row(
            "exact numpy search p50 ms (floor)",
            lambda s: f"{s['exact_numpy']['p50_ms']:.2f}",
        ),
        row("route p50 x exact numpy", lambda s: f"{s['route_x_exact_numpy']:.2f}"),
        row(f"search of {report['k']} p50 / p95 ms", lat("search_k")),
        row("exact-key reuse p50 / p95 ms", lat("exact_reuse")),
        row("first question after reopen s", lambda s: f"{s['first_question_s']:.3f}"),
        row("cold reopen s", lambda s: f"{s['reopen_s']:.3f}"),
        row("fill episodes/s (one put each)", lambda s: f"{s['fill_per_s']:,.0f}"),
        row(
            "put during fill p50 / p99 / max ms",
            lambda s: (
                f"{s['put']['p50_ms']:.2f} / {s['put']['p99_ms']:.2f} / "
                f"{s['put']['max_ms']:,.0f}"
            ),
        ),
        row("put one episode /s (after fill)", lambda s: f"{s['put_one_per_s']:,.0f}"),
        row(
            "decision + exemplars = exact",
            lambda s: f"{s['agreement']['decision']:.0%}",
        ),
        row(
            f"top-1 of {report['k']} = exact", lambda s: f"{s['agreement']['top1']:.0%}"
        ),
        row(
            f"top-{report['k']} set = exact",
            lambda s: f"{s['agreement']['top8_set']:.0%}",
        ),
        row(f"recall@{report['k']}", lambda s: f"{s['agreement']['recall_at_8']:.3f}"),
        row(
            "RSS MB, app process (reopen + 100 routes)",
            lambda s: f"{s['store_rss_mb']:.0f}",
        ),
        row("RSS MB, benchmark process", lambda s: f"{s['rss_mb']:.0f}"),
        row("disk MB", lambda s: f"{s['disk_mb']:.0f}"),
    ]
    if embed:
        lines.append(f"\none embedding (MiniLM, floor): {embed:.2f} ms p50")
    return "\n".join(lines)
