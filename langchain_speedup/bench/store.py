"""`bench-store`: the episodic store's costs at 1k, 10k and 100k episodes.

Fills a `QdrantStore` with synthetic verified and unverified episodes whose
vectors come from a cheap deterministic generator (clusters of near
paraphrases), so filling needs no embedding model; then times the router's
store traffic and compares it with floors measured in the same run: one
embedding of a question, and exact search in numpy over the same vectors.
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
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langgraph.store.base import PutOp

from langchain_speedup.bench._report import ratio
from langchain_speedup.memory.qdrant import QdrantStore

# `_reuse_key` is the layout's key of a reuse pointer: the fill writes episodes
# and pointers in batches, as `EpisodicMemory.put` would one at a time.
from langchain_speedup.memory.store import EpisodicMemory, _reuse_key

__all__ = ["DEFAULT_SIZES", "QUICK_SIZES", "format_store_report", "run_store_bench"]

DEFAULT_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)

TENANT = "bench"
EPISODES = ("speedup", TENANT, "episodes")
REUSE = ("speedup", TENANT, "reuse")
_IDS = uuid.UUID("6f1c9a52-0d4e-4b7a-8e3f-2a9d5c7b1e40")
K = 8
_FILL_BATCH = 512
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


def _episode(i: int) -> dict[str, Any]:
    """Episode `i`, complete as the router writes it; every fifth unverified."""
    return {
        "id": _episode_id(i),
        "namespace": TENANT,
        "question": f"#{i} synthetic question {i}",
        "question_key": f"key-{i}",
        "answer": f"The answer is {i % 97}.",
        "final_answer": str(i % 97),
        "score": 1.0,
        "verified": i % 5 != 4,
        "method": "best_of_n",
        "mode": "adaptive",
        "budget_used": 3,
        "budget_unit": "generations",
        "stop_reason": "threshold",
        "decision": "scratch",
        "generations": 3,
        "total_tokens": 300,
        "seconds": 1.0,
        "created_at": float(i),
    }


def _writes(i: int) -> list[PutOp]:
    episode = _episode(i)
    ops = [PutOp(EPISODES, episode["id"], episode, index=["question"])]
    if episode["verified"]:
        pointer = {"episode_id": episode["id"], "created_at": episode["created_at"]}
        ops.append(PutOp(REUSE, _reuse_key(episode["question_key"]), pointer, False))
    return ops


def _percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1e3

    return {"p50_ms": at(0.5), "p95_ms": at(0.95)}


def _extra(n: int) -> Any:
    # A question the fill did not write: the generator's vectors end at `n`.
    extra = {**_episode(0), "id": str(uuid.uuid4()), "question_key": f"extra-{n}"}
    return {**extra, "verified": False}  # kept out of the searches timed later


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
from langchain_speedup.bench.store import TENANT, _rss_mb
from langchain_speedup.memory.qdrant import QdrantStore
from langchain_speedup.memory.store import EpisodicMemory

dims = int(sys.argv[2])
unit = [1.0] + [0.0] * (dims - 1)
index = {"dims": dims, "embed": lambda texts: [unit for _ in texts]}
with QdrantStore(path=sys.argv[1], index=index) as store:
    memory = EpisodicMemory(store)
    memory.outcomes(TENANT)
    for n in range(100):
        memory.search(TENANT, f"question {n}", limit=8)
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


def _route(memory: EpisodicMemory, query: str, key: str) -> None:
    """The router's memory reads for one question: similar episodes, exact key."""
    memory.search(TENANT, query, limit=K)
    memory.find(TENANT, key)


def _exact_top(
    matrix: np.ndarray, verified: np.ndarray, query: np.ndarray
) -> list[int]:
    scores = matrix @ query
    scores[~verified] = -np.inf
    top = np.argpartition(-scores, K)[:K]
    return [int(i) for i in top[np.argsort(-scores[top])]]


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
    started = time.perf_counter()
    for start in range(0, count, _FILL_BATCH):
        stop = min(count, start + _FILL_BATCH)
        store.batch([op for i in range(start, stop) for op in _writes(i)])
        progress(f"{count}: filled {min(count, start + _FILL_BATCH)}")
    store.optimize()
    result["fill_per_s"] = count / (time.perf_counter() - started)
    # One episode at a time through the package's memory, as the router
    # writes them (a read, then the episode, pointer and outcome totals).
    memory = EpisodicMemory(store)
    singles = _timed(lambda n: memory.put(_extra(count + n)), 50)
    result["put_one_per_s"] = 1 / statistics.median(singles)
    store.close()

    started = time.perf_counter()
    store = QdrantStore(path=path, index=index, engine=engine)  # type: ignore[arg-type]
    result["reopen_s"] = time.perf_counter() - started
    memory = EpisodicMemory(store)
    started = time.perf_counter()
    memory.outcomes(TENANT)  # a new router's gate calibrates from these
    _route(memory, f"?0 {0}", "key-0")
    result["first_question_s"] = time.perf_counter() - started

    texts = [f"?{q} question {int(picks[q])}" for q in range(queries)]
    keys = [f"key-{int(picks[q])}" for q in range(queries)]
    for q in range(min(10, queries)):  # warm caches
        _route(memory, texts[q], keys[q])
    route = _timed(
        lambda n: _route(memory, texts[n], keys[n]),
        queries,
    )
    result["route"] = _percentiles(route)
    reuse = _timed(
        lambda n: memory.find(TENANT, keys[n]),
        queries,
    )
    result["exact_reuse"] = _percentiles(reuse)

    verified = np.array([i % 5 != 4 for i in range(count)])
    same_top1 = same_set = same_top3 = 0
    recall = 0.0
    for q in range(queries):
        hits = memory.search(TENANT, texts[q], limit=K)
        got = [int(h["episode"]["question_key"].split("-")[1]) for h in hits]
        want = _exact_top(vectors.matrix, verified, query_vectors[q])
        same_top1 += bool(got) and got[0] == want[0]
        same_set += set(got) == set(want)
        same_top3 += set(got[:3]) == set(want[:3])
        recall += len(set(got) & set(want)) / K
    result["agreement"] = {
        "top1": same_top1 / queries,
        "top8_set": same_set / queries,
        "top3_set": same_top3 / queries,
        "recall_at_8": recall / queries,
    }

    if real is not None:
        store.embeddings = _SyntheticEmbeddings(vectors, query_vectors, real)
        with_embedding = _timed(
            lambda n: _route(memory, texts[n], keys[n]),
            queries,
        )
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
        row("route p50 / p95 ms (embedding excluded)", lat("route")),
        row("route p50 / p95 ms (embedding included)", lat("route_with_embedding")),
        row(
            "route p50 x one embedding",
            lambda s: f"{s.get('route_x_one_embedding', float('nan')):.2f}",
        ),
        row(
            "exact numpy search p50 ms (floor)",
            lambda s: f"{s['exact_numpy']['p50_ms']:.2f}",
        ),
        row("route p50 x exact numpy", lambda s: f"{s['route_x_exact_numpy']:.2f}"),
        row("exact-key reuse p50 / p95 ms", lat("exact_reuse")),
        row("first question after reopen s", lambda s: f"{s['first_question_s']:.3f}"),
        row("cold reopen s", lambda s: f"{s['reopen_s']:.3f}"),
        row("fill episodes/s (batches of 512)", lambda s: f"{s['fill_per_s']:,.0f}"),
        row("put one episode /s", lambda s: f"{s['put_one_per_s']:,.0f}"),
        row("top-1 = exact", lambda s: f"{s['agreement']['top1']:.0%}"),
        row("top-3 set = exact", lambda s: f"{s['agreement']['top3_set']:.0%}"),
        row("top-8 set = exact", lambda s: f"{s['agreement']['top8_set']:.0%}"),
        row("recall@8", lambda s: f"{s['agreement']['recall_at_8']:.3f}"),
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
