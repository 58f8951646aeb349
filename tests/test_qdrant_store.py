"""QdrantStore behaves as LangGraph's InMemoryStore for what the package uses.

Every behaviour runs on the Qdrant engine in-process (in memory and on disk)
and on qdrant-client's local mode (the fallback), sync and async; where
InMemoryStore is the oracle, both stores get the same operations.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import BaseStore, PutOp
from langgraph.store.memory import InMemoryStore
from qdrant_client import QdrantClient, models

from langchain_speedup.errors import (
    EmbeddingSizeError,
    InvalidInputError,
    MemoryStoreError,
)
from langchain_speedup.memory.qdrant import QdrantStore
from tests.fakes import BAKE, MAYA, TRAIN, HashEmbeddings

EPISODES = ("speedup", "t1", "episodes")
DIMS = 64
KINDS = ["edge-memory", "edge-disk", "client-memory", "client-disk"]
# Behaviour tests put on-disk stores in shared memory where there is one:
# the same code path, without a filesystem sync per payload index. The tests
# of reopening, locks and damage use the real disk.
SHM = Path("/dev/shm")


def index(fields: list[str] | None = None) -> Any:
    return {
        "dims": DIMS,
        "embed": HashEmbeddings(DIMS),
        "fields": fields or ["question"],
    }


def open_store(
    kind: str, tmp_path: Path, *, shm: bool = False, **options: Any
) -> QdrantStore:
    engine, where = kind.split("-")
    path = None
    if where == "disk":
        base = Path(tempfile.mkdtemp(dir=SHM)) if shm and SHM.is_dir() else tmp_path
        path = base / "store"
    options.setdefault("index", index())
    return QdrantStore(engine=engine, path=path, **options)  # type: ignore[arg-type]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[QdrantStore]:
    with open_store(kind, tmp_path, shm=True) as s:
        yield s
    if s.location.startswith(str(SHM)):
        shutil.rmtree(Path(s.location).parent, ignore_errors=True)


@pytest.fixture
def oracle() -> InMemoryStore:
    return InMemoryStore(index=index())


async def call(
    store: BaseStore, is_async: bool, name: str, *args: Any, **kw: Any
) -> Any:
    """`store.name(...)`, or `await store.aname(...)` on the async path."""
    if is_async:
        return await getattr(store, f"a{name}")(*args, **kw)
    return getattr(store, name)(*args, **kw)


def episode(
    question: str, key: str, *, verified: bool = True, n: int = 0
) -> dict[str, Any]:
    return {"question": question, "question_key": key, "verified": verified, "n": n}


FILL = [
    (EPISODES, "e1", episode(MAYA, "maya", n=1)),
    (EPISODES, "e2", episode(TRAIN, "train", verified=False, n=2)),
    (EPISODES, "e3", episode(BAKE, "bake", n=3)),
    (("speedup", "t2", "episodes"), "e1", episode(MAYA, "maya", n=4)),
    (("speedup", "t1", "lessons"), "lessons", {"text": "check units", "n": 5}),
    (("other",), "x", {"question": "unrelated text", "n": 6, "tag": "a"}),
]


async def fill(stores: list[BaseStore], is_async: bool) -> None:
    for s in stores:
        for ns, key, value in FILL:
            idx = False if ns[-1] == "lessons" else None
            await call(s, is_async, "put", ns, key, value, index=idx)


async def test_put_get_round_trip(store: QdrantStore, is_async: bool) -> None:
    await call(store, is_async, "put", EPISODES, "e1", episode(MAYA, "maya"))
    item = await call(store, is_async, "get", EPISODES, "e1")
    assert item.namespace == EPISODES
    assert item.key == "e1"
    assert item.value == episode(MAYA, "maya")
    assert isinstance(item.created_at, datetime)
    assert item.updated_at >= item.created_at
    assert await call(store, is_async, "get", EPISODES, "missing") is None
    assert (
        await call(store, is_async, "get", ("speedup", "t2", "episodes"), "e1") is None
    )


async def test_overwrite_and_idempotent_writes(
    store: QdrantStore, is_async: bool
) -> None:
    for _ in range(3):
        await call(store, is_async, "put", EPISODES, "e1", episode(MAYA, "maya"))
    await call(store, is_async, "put", EPISODES, "e1", episode(MAYA, "maya", n=9))
    found = await call(store, is_async, "search", EPISODES, query=MAYA, limit=10)
    assert [(i.key, i.value["n"]) for i in found] == [("e1", 9)]
    assert (await call(store, is_async, "get", EPISODES, "e1")).value["n"] == 9


async def test_delete(store: QdrantStore, is_async: bool) -> None:
    await fill([store], is_async)
    await call(store, is_async, "delete", EPISODES, "e1")
    assert await call(store, is_async, "get", EPISODES, "e1") is None
    assert await call(store, is_async, "get", ("speedup", "t2", "episodes"), "e1")
    keys = {i.key for i in await call(store, is_async, "search", EPISODES, query=MAYA)}
    assert keys == {"e2", "e3"}
    await call(store, is_async, "delete", EPISODES, "never-stored")


async def test_namespaces_isolated(store: QdrantStore, is_async: bool) -> None:
    await fill([store], is_async)
    await call(
        store, is_async, "put", ("speedup", "t1x", "episodes"), "e9", episode(MAYA, "m")
    )
    t1 = await call(store, is_async, "search", ("speedup", "t1"), query=MAYA, limit=20)
    assert {(i.namespace, i.key) for i in t1} == {
        (EPISODES, "e1"),
        (EPISODES, "e2"),
        (EPISODES, "e3"),
        (("speedup", "t1", "lessons"), "lessons"),
    }
    found = await call(store, is_async, "search", ("speedup", "t2", "episodes"))
    assert [(i.key, i.value["n"]) for i in found] == [("e1", 4)]


LISTINGS: list[dict[str, Any]] = [
    {},
    {"prefix": ("speedup",)},
    {"prefix": ("speedup", "*", "episodes")},
    {"suffix": ("episodes",)},
    {"suffix": ("*", "lessons")},
    {"prefix": ("speedup",), "suffix": ("episodes",)},
    {"max_depth": 2},
    {"max_depth": 1},
    {"limit": 2, "offset": 1},
    {"prefix": ("nothing",)},
]


@pytest.mark.parametrize("options", LISTINGS, ids=str)
async def test_list_namespaces_as_in_memory(
    store: QdrantStore, oracle: InMemoryStore, is_async: bool, options: dict[str, Any]
) -> None:
    await fill([store, oracle], is_async)
    got = await call(store, is_async, "list_namespaces", **options)
    assert got == await call(oracle, is_async, "list_namespaces", **options)


FILTERS: list[dict[str, Any]] = [
    {"verified": True},
    {"verified": False},
    {"question_key": "maya"},
    {"verified": True, "question_key": "maya"},
    {"n": 3},
    {"n": {"$eq": 2}},
    {"n": {"$ne": 2}},
    {"n": {"$gt": 2}},
    {"n": {"$gte": 2}},
    {"n": {"$lt": 4}},
    {"n": {"$lte": 4, "$gt": 1}},
    {"verified": {"$ne": True}},
    {"tag": "a"},
    {"question_key": "nobody"},
]


@pytest.mark.parametrize("flt", FILTERS, ids=str)
async def test_filters_as_in_memory(
    store: QdrantStore, oracle: InMemoryStore, is_async: bool, flt: dict[str, Any]
) -> None:
    await fill([store, oracle], is_async)
    for prefix in ((), ("speedup",), EPISODES):
        got = await call(store, is_async, "search", prefix, filter=flt, limit=50)
        want = await call(oracle, is_async, "search", prefix, filter=flt, limit=50)
        assert {(i.namespace, i.key) for i in got} == {
            (i.namespace, i.key) for i in want
        }


async def test_nested_filters(store: QdrantStore, is_async: bool) -> None:
    await call(
        store, is_async, "put", ("n",), "a", {"meta": {"ok": True, "lang": "en"}}
    )
    await call(
        store, is_async, "put", ("n",), "b", {"meta": {"ok": False, "lang": "en"}}
    )
    got = await call(store, is_async, "search", ("n",), filter={"meta": {"ok": True}})
    assert [i.key for i in got] == ["a"]
    got = await call(store, is_async, "search", ("n",), filter={"meta": {"lang": "en"}})
    assert {i.key for i in got} == {"a", "b"}


async def test_vector_search_ranks_as_in_memory(
    store: QdrantStore, oracle: InMemoryStore, is_async: bool
) -> None:
    await fill([store, oracle], is_async)
    for query in (MAYA, "How far does a train go in 3 hours?", "cakes left"):
        got = await call(store, is_async, "search", ("speedup",), query=query, limit=3)
        want = await call(
            oracle, is_async, "search", ("speedup",), query=query, limit=3
        )
        # Equal scores (one question in two tenants) may come in any order.
        assert [i.score for i in got] == pytest.approx(
            [i.score for i in want], abs=1e-5
        )
        assert {(i.namespace, i.key, round(i.score, 4)) for i in got} == {
            (i.namespace, i.key, round(i.score, 4)) for i in want
        }
    best = (await call(store, is_async, "search", EPISODES, query=MAYA, limit=1))[0]
    assert best.key == "e1"
    assert best.score == pytest.approx(1.0, abs=1e-5)


async def test_search_with_filter_and_query(store: QdrantStore, is_async: bool) -> None:
    await fill([store], is_async)
    found = await call(
        store, is_async, "search", EPISODES, query=TRAIN, filter={"verified": True}
    )
    assert {i.key for i in found} == {"e1", "e3"}
    assert all(i.score is not None for i in found)


async def test_offset_and_limit(store: QdrantStore, is_async: bool) -> None:
    for n in range(7):
        q = "apples " * (7 - n) + "pears " * n  # distinct scores for "apples"
        await call(store, is_async, "put", ("p",), f"k{n}", episode(q, f"k{n}", n=n))
    everything = await call(store, is_async, "search", ("p",), query="apples", limit=7)
    pages = [
        await call(store, is_async, "search", ("p",), query="apples", limit=3, offset=o)
        for o in (0, 3, 6)
    ]
    assert [i.key for page in pages for i in page] == [i.key for i in everything]
    plain = await call(store, is_async, "search", ("p",), limit=4, offset=2)
    # Without a query: newest first, as PostgresStore.
    assert [i.key for i in plain] == ["k4", "k3", "k2", "k1"]


async def test_index_false_is_stored_but_unscored(
    store: QdrantStore, is_async: bool
) -> None:
    await call(store, is_async, "put", ("l",), "plain", {"question": MAYA}, index=False)
    await call(store, is_async, "put", ("l",), "vec", {"question": TRAIN})
    found = await call(store, is_async, "search", ("l",), query=MAYA, limit=5)
    assert [(i.key, i.score is None) for i in found] == [
        ("vec", False),
        ("plain", True),
    ]
    assert (await call(store, is_async, "get", ("l",), "plain")).value == {
        "question": MAYA
    }


async def test_index_fields_per_put(store: QdrantStore, is_async: bool) -> None:
    await call(
        store,
        is_async,
        "put",
        ("f",),
        "a",
        {"question": BAKE, "note": MAYA},
        index=["note"],
    )
    await call(store, is_async, "put", ("f",), "b", {"question": MAYA, "note": BAKE})
    found = await call(store, is_async, "search", ("f",), query=MAYA, limit=2)
    assert found[0].score == pytest.approx(1.0, abs=1e-5)
    assert {i.key for i in found} == {"a", "b"}


async def test_several_texts_per_item_found_once(
    kind: str, tmp_path: Path, is_async: bool
) -> None:
    with open_store(kind, tmp_path, index=index(["question", "aliases[*]"])) as store:
        value = {"question": BAKE, "aliases": [MAYA, TRAIN]}
        await call(store, is_async, "put", ("m",), "a", value)
        await call(store, is_async, "put", ("m",), "b", {"question": "apples"})
        found = await call(store, is_async, "search", ("m",), query=TRAIN, limit=5)
        assert [i.key for i in found] == ["a", "b"]
        assert found[0].score == pytest.approx(1.0, abs=1e-5)
        # Rewritten with one text: the old extra vectors are gone.
        await call(store, is_async, "put", ("m",), "a", {"question": BAKE})
        found = await call(store, is_async, "search", ("m",), query=TRAIN, limit=5)
        assert found[0].score < 0.99
        assert await call(store, is_async, "list_namespaces") == [("m",)]
        assert len(await call(store, is_async, "search", ("m",), limit=10)) == 2


async def test_rejects_what_it_cannot_match(store: QdrantStore, is_async: bool) -> None:
    with pytest.raises(InvalidInputError, match=r"\$in"):
        await call(store, is_async, "search", ("x",), filter={"n": {"$in": [1]}})
    with pytest.raises(InvalidInputError, match="list"):
        await call(store, is_async, "search", ("x",), filter={"tags": ["a"]})
    with pytest.raises(InvalidInputError, match="number"):
        await call(store, is_async, "search", ("x",), filter={"n": {"$gt": "3"}})
    with pytest.raises(NotImplementedError, match="TTL"):
        await call(store, is_async, "put", ("x",), "k", {"a": 1}, ttl=5)


async def test_closed_store_refuses(kind: str, tmp_path: Path, is_async: bool) -> None:
    store = open_store(kind, tmp_path)
    store.close()
    store.close()
    with pytest.raises(MemoryStoreError, match="closed"):
        await call(store, is_async, "get", ("x",), "k")


def test_engine_auto_is_the_qdrant_engine() -> None:
    with QdrantStore() as store:
        assert store.engine_name == "edge"
    with QdrantStore(engine="client") as store:
        assert store.engine_name == "client"


def test_indexed_segments_search_as_exact(tmp_path: Path) -> None:
    # Past `index_after` the engine searches HNSW graphs on int8 vectors and
    # rescores: each stored question still finds itself first, filters hold,
    # and a reopened store gives the same answers.
    rng = random.Random(7)
    lookup = {f"q{i}": [rng.gauss(0, 1) for _ in range(DIMS)] for i in range(600)}

    def embed(texts: list[str]) -> list[list[float]]:
        return [lookup[t] for t in texts]

    config: Any = {"dims": DIMS, "embed": embed, "fields": ["question"]}
    items = [
        PutOp(EPISODES, f"e{i}", {"question": f"q{i}", "verified": i % 3 != 0})
        for i in range(600)
    ]

    def nearest(store: QdrantStore, i: int) -> list[str]:
        found = store.search(EPISODES, query=f"q{i}", filter={"verified": True})
        return [item.key for item in found[:2]]

    with QdrantStore(path=tmp_path, index=config, index_after=128) as store:
        store.batch(items)
        store.optimize()
        assert store._engine._shard.info().indexed_vectors_count >= 512  # type: ignore[attr-defined]
        found = {i: nearest(store, i) for i in range(0, 600, 7)}
    for i, keys in found.items():
        assert (keys[0] == f"e{i}") == (i % 3 != 0)
        assert all(int(key[1:]) % 3 != 0 for key in keys)
    with QdrantStore(path=tmp_path, index=config) as store:
        assert {i: nearest(store, i) for i in found} == found


@pytest.mark.parametrize("engine", ["edge", "client"])
def test_on_disk_reopens_with_its_items(engine: str, tmp_path: Path) -> None:
    with QdrantStore(engine=engine, path=tmp_path, index=index()) as store:  # type: ignore[arg-type]
        store.put(EPISODES, "e1", episode(MAYA, "maya"))
        store.put(("speedup", "t1", "gate"), "stats", {"n": 3}, index=False)
    with QdrantStore(engine=engine, path=tmp_path, index=index()) as store:  # type: ignore[arg-type]
        assert store.get(EPISODES, "e1").value == episode(MAYA, "maya")  # type: ignore[union-attr]
        assert store.search(EPISODES, query=MAYA)[0].key == "e1"
        assert store.search(EPISODES, filter={"verified": True, "question_key": "maya"})
        assert store.list_namespaces(prefix=("speedup",)) == [
            EPISODES,
            ("speedup", "t1", "gate"),
        ]


@pytest.mark.parametrize(
    "engine",
    [
        "edge",
        # qdrant-client leaves its lock file open when the lock fails.
        pytest.param(
            "client",
            marks=pytest.mark.filterwarnings(
                "ignore::pytest.PytestUnraisableExceptionWarning"
            ),
        ),
    ],
)
def test_a_locked_path_is_refused(engine: str, tmp_path: Path) -> None:
    with QdrantStore(engine=engine, path=tmp_path, index=index()) as store:  # type: ignore[arg-type]
        store.put(("a",), "k", {"question": MAYA})
        with pytest.raises(MemoryStoreError, match="another store or process"):
            QdrantStore(engine=engine, path=tmp_path, index=index())  # type: ignore[arg-type]


def test_a_damaged_path_is_refused(tmp_path: Path) -> None:
    with QdrantStore(path=tmp_path, index=index()) as store:
        store.put(("a",), "k", {"question": MAYA})
    (tmp_path / "edge_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(MemoryStoreError, match=r"cannot be opened.*backup"):
        QdrantStore(path=tmp_path, index=index())
    file = tmp_path / "file"
    file.write_text("x", encoding="utf-8")
    with pytest.raises(MemoryStoreError, match="not a directory"):
        QdrantStore(path=file)


@pytest.mark.parametrize("engine", ["edge", "client"])
def test_wrong_vector_size_names_both(engine: str, tmp_path: Path) -> None:
    with QdrantStore(engine=engine, path=tmp_path, index=index()) as store:  # type: ignore[arg-type]
        store.put(("a",), "k", {"question": MAYA})
    other = {"dims": 32, "embed": HashEmbeddings(32)}
    with pytest.raises(EmbeddingSizeError, match=r"size 32.*size 64") as caught:
        QdrantStore(engine=engine, path=tmp_path, index=other)  # type: ignore[arg-type]
    assert (caught.value.expected, caught.value.got) == (64, 32)


def test_embeddings_of_another_size_are_refused(tmp_path: Path) -> None:
    wrong = {"dims": DIMS, "embed": HashEmbeddings(DIMS + 1)}
    with QdrantStore(index=wrong) as store:  # type: ignore[arg-type]
        with pytest.raises(EmbeddingSizeError):
            store.put(("a",), "k", {"question": MAYA})
        assert store.list_namespaces() == []


def test_an_old_store_names_the_migration(tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path))
    client.create_collection(
        "speedup_episodes",
        vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE),
    )
    client.close()
    with pytest.raises(MemoryStoreError, match="migrate-store"):
        QdrantStore(path=tmp_path)


def test_server_errors_hide_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on port 9: the open fails, and says so without secrets.
    monkeypatch.setenv("QDRANT_URL", "http://user:hunter2@127.0.0.1:9")
    monkeypatch.setenv("QDRANT_API_KEY", "sekret-key")
    with pytest.raises(MemoryStoreError) as caught:
        QdrantStore.from_env()
    text = str(caught.value)
    assert "***@127.0.0.1:9" in text
    assert "hunter2" not in text
    assert "sekret-key" not in text


def test_from_env_without_url_is_embedded(tmp_path: Path) -> None:
    with QdrantStore.from_env(path=tmp_path, index=index()) as store:
        assert store.location == str(tmp_path)
        assert store.engine_name == "edge"


@pytest.mark.parametrize("engine", ["edge", "client"])
def test_left_open_at_exit_closes_quietly(engine: str, tmp_path: Path) -> None:
    # Held in a reference cycle (as an app holds its store), the store is
    # collected only at shutdown, when qdrant-client's `__del__` used to print
    # "Exception ignored in: <function QdrantClient.__del__ ...>".
    script = textwrap.dedent(
        f"""
        from langchain_speedup.memory.qdrant import QdrantStore

        class App:
            pass

        app = App()
        app.store = QdrantStore(engine={engine!r}, path={str(tmp_path)!r})
        app.store.put(("a",), "k", {{"n": 1}})
        app.app = app
        print("written")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "written"
    assert done.stderr == ""
    with QdrantStore(engine=engine, path=tmp_path) as store:  # type: ignore[arg-type]
        assert store.get(("a",), "k").value == {"n": 1}  # type: ignore[union-attr]


def test_payload_keeps_unicode_and_json(store: QdrantStore) -> None:
    value = {"question": "Combien font 3 - 2 ? 三", "nested": {"list": [1, "a", None]}}
    store.put(("ü", "名前"), "clé", value)
    assert store.get(("ü", "名前"), "clé").value == value  # type: ignore[union-attr]
    assert store.list_namespaces() == [("ü", "名前")]
    assert json.dumps(value)
