"""The engines under `QdrantStore`: the Qdrant engine in-process, or qdrant-client.

Both speak one small vocabulary: points with one optional named vector and a
JSON payload, and filters built from `Cond` tuples. Each operation returns a
`Call`, so the store's steps run the same code sync and async.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from langchain_speedup._internal import Call

__all__ = [
    "VECTOR",
    "ClientEngine",
    "Cond",
    "EdgeEngine",
    "Engine",
    "Filter",
    "Point",
    "Scored",
    "edge_available",
]

VECTOR = "embedding"
"""The name of the one vector a point may carry (named, so a point may have none)."""

_T = TypeVar("_T")

FieldType = Literal["keyword", "integer", "float", "bool"]


class Cond(NamedTuple):
    """One condition on a payload field.

    `kind` is `"match"` (equal to `value`, a string or an integer), `"any"`
    (equal to one of `value`, strings), `"range"` (`value` is a
    `(gt, gte, lt, lte)` tuple, any of them `None`) or `"vector"` (the point has
    the vector; `key` is ignored).
    """

    kind: Literal["match", "any", "range", "vector"]
    key: str
    value: Any = None


@dataclass(frozen=True)
class Filter:
    """Every `must` condition holds and no `must_not` condition does."""

    must: tuple[Cond, ...] = ()
    must_not: tuple[Cond, ...] = ()


@dataclass(frozen=True)
class Point:
    """A point to write: `vector` is `None` for a point without one."""

    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None


class Scored(NamedTuple):
    """A point found by a vector query."""

    payload: dict[str, Any]
    score: float


class Engine(Protocol):
    """What the store needs of an engine; every operation is one `Call`."""

    location: str

    def vector_size(self) -> int | None:
        """The size of the stored vectors, or `None` while no collection exists."""
        ...

    def prepare(self, size: int, indexes: dict[str, FieldType]) -> Call:
        """Create the collection (if missing) with these payload indexes."""
        ...

    def upsert(self, points: Sequence[Point]) -> Call:
        """Write points, replacing any of the same id."""
        ...

    def delete(self, ids: Sequence[str], where: Filter | None) -> Call:
        """Delete points by id, and those matching `where`."""
        ...

    def retrieve(self, ids: Sequence[str]) -> Call:
        """The payloads of the points that exist, by id (a `dict`)."""
        ...

    def query(
        self, vector: Sequence[float], where: Filter, limit: int, exact: bool
    ) -> Call:
        """The `limit` nearest points matching `where` (`list[Scored]`)."""
        ...

    def scroll(self, where: Filter, limit: int, order_by: str | None) -> Call:
        """Up to `limit` payloads matching `where`, newest `order_by` first."""
        ...

    def count(self, where: Filter) -> Call:
        """How many points match `where` (`int`)."""
        ...

    def facet(self, key: str, where: Filter) -> Call:
        """The distinct keyword values of `key` among matching points (`list`)."""
        ...

    def optimize(self) -> None:
        """Build the vector index of segments that outgrew the plain scan."""
        ...

    def close(self) -> None:
        """Release the engine (and the on-disk lock)."""
        ...


def edge_available() -> bool:
    """Whether `qdrant-edge-py` (the Qdrant engine in-process) is installed."""
    return importlib.util.find_spec("qdrant_edge") is not None


def _threaded(fn: Callable[[], _T], lock: threading.Lock) -> Call:
    """A `Call` for an in-process operation: async runs it in a worker thread."""

    def run() -> _T:
        with lock:
            return fn()

    return Call(run, lambda: asyncio.to_thread(run))


# Points written between two optimizer runs. Below it a plain scan of the
# newest segment is cheaper than the check.
_OPTIMIZE_EVERY = 2048

# Indexed segments merge up to this many vectors (or `index_after`, if more):
# one graph searched with a wide beam costs less than several searched with
# a narrower one, for the same agreement with exact search.
_MERGE_UP_TO = 131_072

# Candidates rescored with the float vectors, per result, after the search
# ran on int8 vectors.
_OVERSAMPLING = 2.0


@dataclass
class EdgeEngine:
    """One Qdrant shard in this process (`qdrant-edge-py`), on disk or in a temp dir.

    New points land in a plain (exactly scanned) appendable segment; once it
    holds about `index_after` vectors the optimizer turns it into an HNSW
    segment of its own, and merges indexed segments up to 128k vectors. So
    the index grows segment by segment: the write that crosses a threshold
    waits for one segment's build (a second or so), or for a merge (the
    graph of every vector merged is rebuilt: seconds at 100k), and no write
    rebuilds more than one segment. Searches walk the graph on int8 copies
    of the vectors, kept in RAM, and rescore the best with the float ones.
    """

    path: Path | None
    index_after: int = 4_096
    search_ef: int = 512
    location: str = field(init=False)
    _shard: Any = field(init=False, default=None)
    _temp: str | None = field(init=False, default=None)
    _size: int | None = field(init=False, default=None)
    _pending: int = field(init=False, default=0)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self.location = str(self.path) if self.path is not None else ":memory:"
        if self.path is None:
            # The engine needs a directory: in shared memory where there is
            # one (a tmpfs, so "in memory" holds), else a temporary one.
            shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
            self._temp = tempfile.mkdtemp(prefix="speedup-store-", dir=shm)
            # Removed with the engine even if it is never closed.
            weakref.finalize(self, shutil.rmtree, self._temp, True)
        elif (self.path / "edge_config.json").exists() or (
            self.path / "segments"
        ).exists():
            self._shard = qe.EdgeShard.load(str(self.path))
            self._size = self._read_size()

    def _read_size(self) -> int | None:
        config_file = Path(self._dir) / "edge_config.json"
        if config_file.exists():
            import json

            config = json.loads(config_file.read_text(encoding="utf-8"))
            vector = (config.get("vectors") or {}).get(VECTOR) or {}
            size = vector.get("size")
            return int(size) if size is not None else None
        return None

    @property
    def _dir(self) -> str:
        return str(self.path) if self.path is not None else str(self._temp)

    def vector_size(self) -> int | None:
        """The size of the stored vectors, or `None` before the shard exists."""
        return self._size

    def _config(self, size: int) -> Any:
        qe = self._qe
        in_ram = qe.Memory.Pinned
        # Thresholds are in KiB of vectors: convert the point counts.
        kib = max(1, self.index_after * size * 4 // 1024)
        merged = max(self.index_after, _MERGE_UP_TO) * size * 4 // 1024
        return qe.EdgeConfig(
            vectors={
                VECTOR: qe.EdgeVectorParams(
                    size=size, distance=qe.Distance.Cosine, memory=in_ram
                )
            },
            hnsw_config=qe.HnswIndexConfig(
                m=16, ef_construct=100, full_scan_threshold=kib // 2, memory=in_ram
            ),
            # The graph is walked on int8 vectors: a quarter of the memory
            # traffic, and a segment builds in about half the time.
            quantization_config=qe.ScalarQuantizationConfig(
                type=qe.ScalarType.Int8, quantile=0.99, memory=in_ram
            ),
            # Two segments: the indexed one and the one being filled. Left
            # to the engine, the count follows the CPUs, and every further
            # segment is one more graph each search walks.
            optimizers=qe.EdgeOptimizersConfig(
                indexing_threshold=kib,
                max_segment_size=merged,
                default_segment_number=2,
            ),
            payload_memory=qe.Memory.Cached,
        )

    def prepare(self, size: int, indexes: dict[str, FieldType]) -> Call:
        """Create the shard (if missing) with these payload indexes."""
        qe = self._qe
        # In RAM: a filtered search checks them at every point it visits.
        # Without graph links of their own (`enable_hnsw`): the engine would
        # build extra links for every value most points share (the
        # namespace, `verified`), tripling each segment's build and merge.
        kept = {"memory": qe.Memory.Pinned, "enable_hnsw": False}
        schema = {
            "keyword": qe.KeywordIndexParams(**kept),
            "integer": qe.IntegerIndexParams(lookup=True, range=True, **kept),
            "float": qe.FloatIndexParams(**kept),
            "bool": qe.BoolIndexParams(**kept),
        }

        def create() -> None:
            if self._shard is not None:
                return
            self._shard = qe.EdgeShard.create(self._dir, self._config(size))
            for name, kind in indexes.items():
                self._shard.update(
                    qe.UpdateOperation.create_field_index(name, schema[kind])
                )
            self._size = size

        return _threaded(create, self._lock)

    def _filter(self, where: Filter | None) -> Any:
        if where is None or not (where.must or where.must_not):
            return None
        return self._qe.Filter(
            must=[self._cond(c) for c in where.must] or None,
            must_not=[self._cond(c) for c in where.must_not] or None,
        )

    def _cond(self, cond: Cond) -> Any:
        qe = self._qe
        if cond.kind == "match":
            return qe.FieldCondition(key=cond.key, match=qe.MatchValue(cond.value))
        if cond.kind == "any":
            return qe.FieldCondition(key=cond.key, match=qe.MatchAny(list(cond.value)))
        if cond.kind == "range":
            gt, gte, lt, lte = cond.value
            return qe.FieldCondition(
                key=cond.key, range=qe.RangeFloat(gt=gt, gte=gte, lt=lt, lte=lte)
            )
        return qe.HasVectorCondition(VECTOR)

    def upsert(self, points: Sequence[Point]) -> Call:
        """Write points, replacing any of the same id."""
        qe = self._qe

        def write() -> None:
            batch = [
                qe.Point(p.id, {VECTOR: p.vector} if p.vector else {}, p.payload)
                for p in points
            ]
            self._shard.update(qe.UpdateOperation.upsert_points(batch))
            self._pending += len(batch)
            if self._pending >= _OPTIMIZE_EVERY:
                self._pending = 0
                # Indexes only a segment that crossed the threshold (seconds,
                # once per `index_after` points); otherwise returns at once.
                self._optimized()

        return _threaded(write, self._lock)

    def delete(self, ids: Sequence[str], where: Filter | None) -> Call:
        """Delete points by id, and those matching `where`."""
        qe = self._qe

        def remove() -> None:
            if self._shard is None:
                return
            if ids:
                self._shard.update(qe.UpdateOperation.delete_points(list(ids)))
            if where is not None:
                self._shard.update(
                    qe.UpdateOperation.delete_points_by_filter(self._filter(where))
                )

        return _threaded(remove, self._lock)

    def retrieve(self, ids: Sequence[str]) -> Call:
        """The payloads of the points that exist, by id."""

        def read() -> dict[str, dict[str, Any]]:
            if self._shard is None or not ids:
                return {}
            records = self._shard.retrieve(list(ids), True, False)
            return {str(r.id): dict(r.payload or {}) for r in records}

        return _threaded(read, self._lock)

    def query(
        self, vector: Sequence[float], where: Filter, limit: int, exact: bool
    ) -> Call:
        """The `limit` nearest points matching `where`."""
        qe = self._qe

        def search() -> list[Scored]:
            if self._shard is None or limit <= 0:
                return []
            request = qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(list(vector), using=VECTOR),
                filter=self._filter(where),
                with_payload=True,
                params=qe.SearchParams(
                    hnsw_ef=self.search_ef,
                    exact=exact,
                    quantization=qe.QuantizationSearchParams(
                        rescore=True, oversampling=_OVERSAMPLING
                    ),
                ),
            )
            return [
                Scored(dict(p.payload or {}), float(p.score))
                for p in self._shard.query(request)
            ]

        return _threaded(search, self._lock)

    def scroll(self, where: Filter, limit: int, order_by: str | None) -> Call:
        """Up to `limit` payloads matching `where`, newest `order_by` first."""
        qe = self._qe

        def read() -> list[dict[str, Any]]:
            if self._shard is None or limit <= 0:
                return []
            order = (
                qe.OrderBy(order_by, direction=qe.Direction.Desc) if order_by else None
            )
            records, _ = self._shard.scroll(
                qe.ScrollRequest(
                    limit=limit,
                    filter=self._filter(where),
                    with_payload=True,
                    order_by=order,
                )
            )
            return [dict(r.payload or {}) for r in records]

        return _threaded(read, self._lock)

    def count(self, where: Filter) -> Call:
        """How many points match `where`."""
        qe = self._qe

        def read() -> int:
            if self._shard is None:
                return 0
            return int(
                self._shard.count(
                    qe.CountRequest(filter=self._filter(where), exact=True)
                )
            )

        return _threaded(read, self._lock)

    def facet(self, key: str, where: Filter) -> Call:
        """The distinct keyword values of `key` among matching points."""
        qe = self._qe

        def read() -> list[Any]:
            if self._shard is None:
                return []
            request = qe.FacetRequest(
                key=key, limit=2**31 - 1, exact=True, filter=self._filter(where)
            )
            return [_facet_value(h.value) for h in self._shard.facet(request).hits]

        return _threaded(read, self._lock)

    def optimize(self) -> None:
        """Build the HNSW index of every segment over the threshold."""
        with self._lock:
            if self._shard is not None:
                self._optimized()
                self._pending = 0

    def _optimized(self) -> None:
        # The engine drops the segments a build or merge replaced only when
        # it flushes: until then each stays on disk and mapped in memory, so
        # a writer that never closed would grow by one segment per merge.
        if self._shard.optimize():
            self._shard.flush()

    def close(self) -> None:
        """Flush and close the shard; a temporary shard's files are removed."""
        with self._lock:
            if self._shard is not None:
                self._shard.close()
                self._shard = None
            if self._temp is not None:
                shutil.rmtree(self._temp, ignore_errors=True)
                self._temp = None


def _facet_value(value: Any) -> Any:
    # Edge wraps facet values (`Keyword("a")`); qdrant-client gives them bare.
    return value.value if hasattr(value, "value") else value


@dataclass
class ClientEngine:
    """A Qdrant collection through qdrant-client: a server, or its local mode.

    On a server the async forms use `AsyncQdrantClient`; local mode keeps its
    data inside one client object, so there they run the sync client in a
    worker thread.
    """

    client: Any
    collection: str
    location: str
    aclient: Any = None
    owns_client: bool = True
    remote: bool = False
    _size: int | None = field(init=False, default=None)
    _exists: bool = field(init=False, default=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        from qdrant_client import models

        self._m = models
        if self.client.collection_exists(self.collection):
            self._exists = True
            vectors = self.client.get_collection(self.collection).config.params.vectors
            if isinstance(vectors, dict) and VECTOR in vectors:
                self._size = int(vectors[VECTOR].size)

    def _call(self, name: str, /, **kwargs: Any) -> Call:
        sync = getattr(self.client, name)
        if self.aclient is None:
            return _threaded(lambda: sync(self.collection, **kwargs), self._lock)
        asyn = getattr(self.aclient, name)
        return Call(
            lambda: sync(self.collection, **kwargs),
            lambda: asyn(self.collection, **kwargs),
        )

    def vector_size(self) -> int | None:
        """The size of the stored vectors, or `None` before the collection exists."""
        return self._size

    def prepare(self, size: int, indexes: dict[str, FieldType]) -> Call:
        """Create the collection (if missing) with these payload indexes."""
        m = self._m

        def create() -> None:
            if self._exists:
                return
            if not self.client.collection_exists(self.collection):
                self.client.create_collection(
                    self.collection,
                    vectors_config={
                        VECTOR: m.VectorParams(size=size, distance=m.Distance.COSINE)
                    },
                )
                # Local mode has no payload indexes (it warns when asked).
                if self.remote:
                    for name, kind in indexes.items():
                        self.client.create_payload_index(
                            self.collection, name, m.PayloadSchemaType(kind)
                        )
            self._exists, self._size = True, size

        return _threaded(create, self._lock)

    def _filter(self, where: Filter | None) -> Any:
        if where is None or not (where.must or where.must_not):
            return None
        return self._m.Filter(
            must=[self._cond(c) for c in where.must] or None,
            must_not=[self._cond(c) for c in where.must_not] or None,
        )

    def _cond(self, cond: Cond) -> Any:
        m = self._m
        if cond.kind == "match":
            return m.FieldCondition(key=cond.key, match=m.MatchValue(value=cond.value))
        if cond.kind == "any":
            return m.FieldCondition(
                key=cond.key, match=m.MatchAny(any=list(cond.value))
            )
        if cond.kind == "range":
            gt, gte, lt, lte = cond.value
            return m.FieldCondition(
                key=cond.key, range=m.Range(gt=gt, gte=gte, lt=lt, lte=lte)
            )
        return m.HasVectorCondition(has_vector=VECTOR)

    def upsert(self, points: Sequence[Point]) -> Call:
        """Write points, replacing any of the same id."""
        m = self._m
        structs = [
            m.PointStruct(
                id=p.id,
                vector={VECTOR: p.vector} if p.vector else {},
                payload=p.payload,
            )
            for p in points
        ]
        return self._call("upsert", points=structs, wait=True)

    def delete(self, ids: Sequence[str], where: Filter | None) -> Call:
        """Delete points by id, and those matching `where`."""
        m = self._m
        conditions: list[Any] = []
        if ids:
            conditions.append(m.HasIdCondition(has_id=list(ids)))
        if where is not None:
            conditions.append(self._filter(where))
        selector = m.FilterSelector(filter=m.Filter(should=conditions))
        if not self._exists or not conditions:
            return Call(lambda: None, _none)
        return self._call("delete", points_selector=selector, wait=True)

    def retrieve(self, ids: Sequence[str]) -> Call:
        """The payloads of the points that exist, by id."""
        if not self._exists or not ids:
            return Call(dict, _empty_dict)
        call = self._call("retrieve", ids=list(ids), with_payload=True)
        return _mapped(
            call, lambda records: {str(r.id): dict(r.payload or {}) for r in records}
        )

    def query(
        self, vector: Sequence[float], where: Filter, limit: int, exact: bool
    ) -> Call:
        """The `limit` nearest points matching `where`."""
        if not self._exists or limit <= 0:
            return Call(list, _empty_list)
        call = self._call(
            "query_points",
            query=list(vector),
            using=VECTOR,
            query_filter=self._filter(where),
            limit=limit,
            with_payload=True,
            search_params=self._m.SearchParams(exact=True) if exact else None,
        )
        return _mapped(
            call,
            lambda r: [Scored(dict(p.payload or {}), float(p.score)) for p in r.points],
        )

    def scroll(self, where: Filter, limit: int, order_by: str | None) -> Call:
        """Up to `limit` payloads matching `where`, newest `order_by` first."""
        if not self._exists or limit <= 0:
            return Call(list, _empty_list)
        m = self._m
        order = (
            m.OrderBy(key=order_by, direction=m.Direction.DESC) if order_by else None
        )
        call = self._call(
            "scroll",
            scroll_filter=self._filter(where),
            limit=limit,
            with_payload=True,
            with_vectors=False,
            order_by=order,
        )
        return _mapped(call, lambda r: [dict(p.payload or {}) for p in r[0]])

    def count(self, where: Filter) -> Call:
        """How many points match `where`."""
        if not self._exists:
            return Call(int, _zero)
        call = self._call("count", count_filter=self._filter(where), exact=True)
        return _mapped(call, lambda r: int(r.count))

    def facet(self, key: str, where: Filter) -> Call:
        """The distinct keyword values of `key` among matching points."""
        if not self._exists:
            return Call(list, _empty_list)
        call = self._call(
            "facet",
            key=key,
            facet_filter=self._filter(where),
            limit=2**31 - 1,
            exact=True,
        )
        return _mapped(call, lambda r: [_facet_value(h.value) for h in r.hits])

    def optimize(self) -> None:
        """Nothing to do: a server indexes in the background, local mode never."""

    def close(self) -> None:
        """Close the clients this engine opened."""
        if self.owns_client:
            with self._lock:
                self.client.close()


def _mapped(call: Call, fn: Callable[[Any], Any]) -> Call:
    async def asyn() -> Any:
        return fn(await call.asyn())

    return Call(lambda: fn(call.sync()), asyn)


async def _none() -> None:
    return None


async def _empty_dict() -> dict[str, Any]:
    return {}


async def _empty_list() -> list[Any]:
    return []


async def _zero() -> int:
    return 0
