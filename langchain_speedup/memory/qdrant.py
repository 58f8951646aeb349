"""`QdrantStore`: LangGraph's `BaseStore` on Qdrant, embedded or on a server.

Each item is one Qdrant point: its id derives from (namespace, key); its
payload holds the namespace, the key, the value and the timestamps, plus
mirrors that make every lookup an index hit (see `_payload`). An item with
several indexed texts gets one extra point per further text, found by vector
search only.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import uuid
import weakref
from collections.abc import Generator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
)

from langchain_speedup._internal import Call, adrive, drive
from langchain_speedup.errors import (
    ConfigurationError,
    EmbeddingSizeError,
    InvalidInputError,
    MemoryStoreError,
)
from langchain_speedup.memory._engines import (
    ClientEngine,
    Cond,
    EdgeEngine,
    Engine,
    FieldType,
    Filter,
    Point,
    Scored,
    edge_available,
)

__all__ = ["DEFAULT_INDEXED_FIELDS", "QdrantStore"]

logger = logging.getLogger(__name__)

DEFAULT_INDEXED_FIELDS: tuple[str, ...] = ("question_key", "verified")
"""Value fields indexed by default: the exact-key reuse lookup filters on them."""

STORE_COLLECTION = "speedup_store"
"""The collection `QdrantStore` keeps items in, on a server or in local mode."""

_ITEM_IDS = uuid.UUID("a3c1e9f4-2b7d-4c58-9e06-7f1d2b8c4a90")

# Payload layout. `ns` is the namespace as JSON; `ns_path` lists the JSON of
# every prefix of it, so a prefix search is one keyword match.
_NS, _NS_PATH, _KEY, _VALUE = "ns", "ns_path", "key", "value"
_CREATED, _UPDATED, _TS, _EXTRA, _BOOLS = "created_at", "updated_at", "ts", "extra", "b"
_ITEM = "item"  # JSON of (namespace..., key): names an item's extra vector points

_Engine = Literal["auto", "edge", "client"]


def _ns(namespace: Sequence[str]) -> str:
    return json.dumps(list(namespace), ensure_ascii=False)


def _point_id(namespace: Sequence[str], key: str, text: int = 0) -> str:
    name = json.dumps([*namespace, key], ensure_ascii=False)
    return str(uuid.uuid5(_ITEM_IDS, name if not text else f"{name}#{text}"))


def _bool_mirrors(value: Mapping[str, Any]) -> dict[str, Any]:
    """The bools of `value` (nested dicts too) as 0/1, at the same paths.

    qdrant-edge-py 0.9.0 never matches `MatchValue(True)` on a bool (it sends
    an integer): filters on bools match these integer mirrors instead.
    """
    found: dict[str, Any] = {}
    for name, item in value.items():
        if isinstance(item, bool):
            found[name] = int(item)
        elif isinstance(item, Mapping) and (nested := _bool_mirrors(item)):
            found[name] = nested
    return found


def _conditions(
    filter: Mapping[str, Any], prefix: str = ""
) -> tuple[list[Cond], list[Cond]]:
    """LangGraph's filter dict as (must, must_not) conditions.

    Raises:
        InvalidInputError: An operator or value the store cannot match exactly.
    """
    must: list[Cond] = []
    must_not: list[Cond] = []
    for name, wanted in filter.items():
        path = prefix + str(name)
        if isinstance(wanted, Mapping) and any(str(k).startswith("$") for k in wanted):
            for op, operand in wanted.items():
                if op in ("$eq", "$ne"):
                    (must if op == "$eq" else must_not).append(_equal(path, operand))
                elif op in ("$gt", "$gte", "$lt", "$lte"):
                    bound = _number(path, op, operand)
                    bounds = tuple(
                        bound if op == o else None
                        for o in ("$gt", "$gte", "$lt", "$lte")
                    )
                    must.append(Cond("range", f"{_VALUE}.{path}", bounds))
                else:
                    msg = f"unsupported filter operator {op!r} on {path!r}"
                    raise InvalidInputError(msg)
        elif isinstance(wanted, Mapping):
            nested_must, nested_not = _conditions(wanted, f"{path}.")
            must += nested_must
            must_not += nested_not
        else:
            must.append(_equal(path, wanted))
    return must, must_not


def _equal(path: str, wanted: Any) -> Cond:
    if isinstance(wanted, bool):
        return Cond("match", f"{_BOOLS}.{path}", int(wanted))
    if isinstance(wanted, str):
        return Cond("match", f"{_VALUE}.{path}", wanted)
    if isinstance(wanted, int | float):
        number = float(wanted)
        return Cond("range", f"{_VALUE}.{path}", (None, number, None, number))
    msg = (
        f"the filter on {path!r} compares with {type(wanted).__name__}: "
        "QdrantStore filters on strings, numbers and booleans"
    )
    raise InvalidInputError(msg)


def _number(path: str, op: str, operand: Any) -> float:
    if isinstance(operand, bool) or not isinstance(operand, int | float):
        msg = f"`{op}` on {path!r} needs a number, got {operand!r}"
        raise InvalidInputError(msg)
    return float(operand)


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    labels = namespace if condition.match_type == "prefix" else namespace[::-1]
    wanted = path if condition.match_type == "prefix" else path[::-1]
    return all(p in ("*", n) for n, p in zip(labels, wanted, strict=False))


def _item(payload: Mapping[str, Any], score: float | None = None) -> SearchItem:
    return SearchItem(
        namespace=tuple(json.loads(payload[_NS])),
        key=str(payload[_KEY]),
        value=dict(payload[_VALUE]),
        created_at=datetime.fromisoformat(payload[_CREATED]),
        updated_at=datetime.fromisoformat(payload[_UPDATED]),
        score=score,
    )


def _as_item(payload: Mapping[str, Any]) -> Item:
    found = _item(payload)
    return Item(
        value=found.value,
        key=found.key,
        namespace=found.namespace,
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


def _redact_url(url: str) -> tuple[str, list[str]]:
    """`url` without credentials or query, and the secrets it held."""
    parts = urlsplit(url)
    secrets = [s for s in (parts.password, *dict(parse_qsl(parts.query)).values()) if s]
    if "@" in parts.netloc:
        parts = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2])
    if parts.query:
        parts = parts._replace(query="***")
    return urlunsplit(parts), secrets


def _damaged(location: str, error: Exception) -> MemoryStoreError:
    text = str(error)
    if "WouldBlock" in text or "already accessed" in text:
        msg = (
            f"the store at {location!r} is open in another store or process: "
            "close that one first, or give another `path`"
        )
    else:
        msg = (
            f"the store at {location!r} cannot be opened ({text}): restore it from "
            "a backup, or move it away to start an empty store"
        )
    return MemoryStoreError(msg)


def _is_old_layout(path: Path) -> bool:
    """Whether `path` holds a 0.1.0 `QdrantEpisodicStore` (qdrant-client local mode)."""
    return (path / "meta.json").is_file() and (path / "collection").is_dir()


_open_stores: weakref.WeakSet[QdrantStore] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    # qdrant-client closes itself in `__del__`, which at interpreter exit runs
    # after imports are torn down and prints "Exception ignored in ...":
    # close every store still open while the interpreter is whole.
    for store in list(_open_stores):
        try:
            store.close()
        except Exception:
            logger.debug("a store failed to close at exit", exc_info=True)


class QdrantStore(BaseStore):
    """LangGraph's `BaseStore` on Qdrant: embedded in-process, or a server by URL.

    Setup:
        Embedded (default): the Qdrant engine runs in this process through
        `qdrant-edge-py` (`pip install "langchain-speedup[local]"`); without it,
        qdrant-client's local mode is the fallback (correct, but its filters
        are pure Python: slow past a few thousand items). `path=` keeps the
        items on disk (one store per path at a time). A server or cluster:
        `url=` and `api_key=`, or `QDRANT_URL` / `QDRANT_API_KEY` and
        `from_env`.

    Instantiate:
        ```python
        from langchain_speedup.local.embeddings import MiniLMEmbeddings

        store = QdrantStore(
            path="./speedup-memory",
            index={"dims": 384, "embed": MiniLMEmbeddings(), "fields": ["question"]},
        )
        ```

    Use:
        ```python
        store.put(("speedup", "t1", "episodes"), key, {"question": "2+2?", ...})
        store.search(("speedup", "t1", "episodes"), query="two plus two", limit=8)
        store.search(("speedup", "t1"), filter={"verified": True}, limit=1)
        ```

    Behaviour: as LangGraph's `InMemoryStore` for `get`, `put`, `delete`,
    `search` (prefix, `query`, `filter` with equality and `$eq`, `$ne`,
    `$gt`, `$gte`, `$lt`, `$lte` on strings, numbers and booleans, `limit`,
    `offset`) and `list_namespaces`; searches without `query` return the
    newest items first (as `PostgresStore`). Writing an item again resets its
    `created_at` (as `InMemoryStore`). TTL is not supported (`put(ttl=...)`
    raises `NotImplementedError`; `refresh_ttl` is ignored).

    Args:
        index: LangGraph's vector index config: `dims`, `embed` (LangChain
            `Embeddings` or a function of texts), `fields` (default the whole
            value).
        path: Directory for an embedded store on disk; without it the
            embedded store is a temporary directory removed at `close`.
        url: A Qdrant server or cluster URL (qdrant-client, sync and async).
        api_key: The server's API key.
        engine: `"auto"` (Qdrant in-process where `qdrant-edge-py` is
            installed, else qdrant-client's local mode), `"edge"` or
            `"client"`. A `url` always uses qdrant-client.
        indexed_fields: Value fields given a payload index, as names
            (keyword and boolean) or a mapping of name to `"keyword"`,
            `"integer"`, `"float"` or `"bool"`.
        collection: The collection name on a server or in local mode.
        index_after: Vectors a new segment takes before it gets its own
            HNSW index (embedded engine; indexed segments merge up to 128k
            vectors); below it a plain scan is used. Fixed when the store
            is created.
        search_ef: HNSW candidates kept per search (embedded engine): more
            is closer to exact search, and slower.

    Raises:
        ConfigurationError: The options contradict each other.
        MemoryStoreError: The store cannot be opened: locked by another
            store, damaged, or written by 0.1.0 (the message names
            `langchain-speedup migrate-store`).
        EmbeddingSizeError: The stored vectors have another size than
            `index["dims"]`.
    """

    supports_ttl = False

    def __init__(
        self,
        *,
        index: IndexConfig | None = None,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        api_key: str | None = None,
        engine: _Engine = "auto",
        indexed_fields: Sequence[str]
        | Mapping[str, FieldType] = DEFAULT_INDEXED_FIELDS,
        collection: str = STORE_COLLECTION,
        index_after: int = 4_096,
        search_ef: int = 512,
    ) -> None:
        if path is not None and url is not None:
            msg = "give at most one of `path` and `url`"
            raise ConfigurationError(msg)
        if engine not in ("auto", "edge", "client"):
            msg = f"`engine` must be 'auto', 'edge' or 'client', got {engine!r}"
            raise ConfigurationError(msg)
        if engine == "edge" and url is not None:
            msg = "`engine='edge'` runs in this process: leave out `url`"
            raise ConfigurationError(msg)
        self._secrets = [api_key] if api_key else []
        self.index_config = index
        self.embeddings: Embeddings | None = None
        self._fields: list[tuple[str, Any]] = []
        if index:
            dims = index.get("dims")
            if not isinstance(dims, int) or isinstance(dims, bool) or dims <= 0:
                msg = f"`index['dims']` must be a positive integer, got {dims!r}"
                raise ConfigurationError(msg)
            self.embeddings = ensure_embeddings(index.get("embed"))
            self._fields = [
                (p, tokenize_path(p) if p != "$" else p)
                for p in (index.get("fields") or ["$"])
            ]
        self._indexes = self._payload_indexes(indexed_fields)
        for name, number in (("index_after", index_after), ("search_ef", search_ef)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                msg = f"`{name}` must be a positive integer, got {number!r}"
                raise ConfigurationError(msg)
        self._engine = self._open(
            path, url, api_key, engine, collection, (index_after, search_ef)
        )
        self.location = self._engine.location
        self.engine_name = "edge" if isinstance(self._engine, EdgeEngine) else "client"
        stored = self._engine.vector_size()
        if index and stored is not None and stored != index["dims"]:
            self._engine.close()
            msg = (
                f"the index gives vectors of size {index['dims']}, but the store at "
                f"{self.location!r} holds vectors of size {stored}: use the "
                "embeddings it was filled with, or another `path`"
            )
            raise EmbeddingSizeError(msg, expected=stored, got=index["dims"])
        self._closed = False
        _open_stores.add(self)

    @staticmethod
    def _payload_indexes(
        fields: Sequence[str] | Mapping[str, FieldType],
    ) -> dict[str, FieldType]:
        indexes: dict[str, FieldType] = {
            _NS: "keyword",
            _NS_PATH: "keyword",
            _KEY: "keyword",
            _ITEM: "keyword",
            _TS: "float",
            _EXTRA: "integer",
        }
        if isinstance(fields, str):
            msg = "`indexed_fields` must be a sequence of names, not a string"
            raise ConfigurationError(msg)
        if isinstance(fields, Mapping):
            for name, kind in fields.items():
                if kind not in ("keyword", "integer", "float", "bool"):
                    msg = f"unknown index type {kind!r} for field {name!r}"
                    raise ConfigurationError(msg)
                target = f"{_BOOLS}.{name}" if kind == "bool" else f"{_VALUE}.{name}"
                indexes[target] = "integer" if kind == "bool" else kind
        else:
            for name in fields:
                indexes[f"{_VALUE}.{name}"] = "keyword"
                indexes[f"{_BOOLS}.{name}"] = "integer"
        return indexes

    def _open(
        self,
        path: str | os.PathLike[str] | None,
        url: str | None,
        api_key: str | None,
        engine: _Engine,
        collection: str,
        tuning: tuple[int, int],
    ) -> Engine:
        if url is not None:
            from qdrant_client import AsyncQdrantClient, QdrantClient

            location, secrets = _redact_url(url)
            self._secrets += secrets
            return self._guard(
                location,
                lambda: ClientEngine(
                    QdrantClient(url=url, api_key=api_key),
                    collection,
                    location,
                    aclient=AsyncQdrantClient(url=url, api_key=api_key),
                    remote=True,
                ),
            )
        target = Path(path) if path is not None else None
        if target is not None:
            if target.exists() and not target.is_dir():
                msg = f"the store path {str(target)!r} exists and is not a directory"
                raise MemoryStoreError(msg)
            if _is_old_layout(target) and engine != "client":
                msg = (
                    f"{str(target)!r} holds a store written by langchain-speedup "
                    "0.1.0: copy it into the new layout with `langchain-speedup "
                    f"migrate-store {target} NEW_PATH`, then open NEW_PATH"
                )
                raise MemoryStoreError(msg)
        if engine == "edge" or (engine == "auto" and edge_available()):
            if not edge_available():
                msg = (
                    "`engine='edge'` needs qdrant-edge-py: "
                    'pip install "langchain-speedup[local]"'
                )
                raise ConfigurationError(msg)
            where = str(target) if target else ":memory:"
            return self._guard(where, lambda: EdgeEngine(target, *tuning))
        from qdrant_client import QdrantClient

        where = str(target) if target else ":memory:"
        return self._guard(
            where,
            lambda: ClientEngine(
                QdrantClient(path=str(target)) if target else QdrantClient(":memory:"),
                collection,
                where,
            ),
        )

    def _guard(self, location: str, open_engine: Any) -> Engine:
        try:
            engine: Engine = open_engine()
        except (MemoryStoreError, ConfigurationError):
            raise
        except Exception as e:  # noqa: BLE001 - reported as MemoryStoreError
            raise self._redacted(_damaged(location, e), e) from None
        return engine

    def _redacted(self, error: MemoryStoreError, cause: Exception) -> MemoryStoreError:
        text = str(error)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        redacted = MemoryStoreError(text)
        if text == str(error):
            redacted.__cause__ = cause
        return redacted

    @classmethod
    def from_env(
        cls,
        *,
        index: IndexConfig | None = None,
        path: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Self:
        """A store on `QDRANT_URL` (with `QDRANT_API_KEY`) when set, else embedded.

        Args:
            index: LangGraph's vector index config.
            path: Directory of the embedded store when `QDRANT_URL` is unset.
            **options: Further `QdrantStore` options.
        """
        url = os.environ.get("QDRANT_URL")
        if url:
            api_key = os.environ.get("QDRANT_API_KEY")
            return cls(index=index, url=url, api_key=api_key, **options)
        return cls(index=index, path=path, **options)

    # -- LangGraph's BaseStore ---------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run operations in order; puts are written together, after the reads.

        Raises:
            InvalidInputError: An operation is malformed (an unsupported
                filter, a value that is not a dict).
            MemoryStoreError: The engine failed.
        """
        return drive(self._batch(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async form of `batch`: server calls use `AsyncQdrantClient`."""
        return await adrive(self._batch(list(ops)))

    def _batch(self, ops: list[Op]) -> Generator[Call, Any, list[Result]]:
        self._check_open()
        results: list[Result] = [None] * len(ops)
        # Writes are deduplicated by (namespace, key), the last one winning,
        # and applied after the reads, as InMemoryStore does.
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                found = yield self._io(
                    self._engine.retrieve([_point_id(op.namespace, op.key)])
                )
                payload = next(iter(found.values()), None)
                results[i] = _as_item(payload) if payload else None
            elif isinstance(op, SearchOp):
                results[i] = yield from self._search(op)
            elif isinstance(op, ListNamespacesOp):
                results[i] = yield from self._list_namespaces(op)
            elif isinstance(op, PutOp):
                if op.value is not None and not isinstance(op.value, Mapping):
                    msg = f"a value must be a dict, got {type(op.value).__name__}"
                    raise InvalidInputError(msg)
                puts[(tuple(op.namespace), str(op.key))] = op
            else:
                msg = f"unknown store operation {type(op).__name__}"
                raise InvalidInputError(msg)
        if puts:
            yield from self._write(list(puts.values()))
        return results

    def _io(self, call: Call) -> Call:
        """`call` with the engine's failures as `MemoryStoreError` (secrets redacted)."""

        def sync() -> Any:
            try:
                return call.sync()
            except Exception as e:  # noqa: BLE001 - reported as MemoryStoreError
                raise self._failure(e) from None

        async def asyn() -> Any:
            try:
                return await call.asyn()
            except Exception as e:  # noqa: BLE001 - reported as MemoryStoreError
                raise self._failure(e) from None

        return Call(sync, asyn)

    def _failure(self, error: Exception) -> MemoryStoreError:
        if isinstance(error, MemoryStoreError):
            return error
        msg = f"the store at {self.location!r} failed: {error}"
        return self._redacted(MemoryStoreError(msg), error)

    def _texts(self, op: PutOp) -> list[str]:
        if op.index is False or not self.embeddings or op.value is None:
            return []
        paths = (
            self._fields
            if op.index is None
            else [(p, tokenize_path(p)) for p in op.index]
        )
        texts: list[str] = []
        for _, tokens in paths:
            texts += [t for t in get_text_at_path(op.value, tokens) if t]
        return texts

    def _write(self, ops: list[PutOp]) -> Generator[Call, Any, None]:
        deleted = [op for op in ops if op.value is None]
        kept = [op for op in ops if op.value is not None]
        texts = [self._texts(op) for op in kept]
        flat = [t for ts in texts for t in ts]
        vectors: list[list[float]] = []
        if flat and self.embeddings:
            embeddings = self.embeddings
            vectors = yield Call(
                lambda: embeddings.embed_documents(flat),
                lambda: embeddings.aembed_documents(flat),
            )
            vectors = [self._checked(v) for v in vectors]
            if len(vectors) != len(flat):
                msg = f"the embeddings returned {len(vectors)} vectors for {len(flat)} texts"
                raise MemoryStoreError(msg)
        if self._engine.vector_size() is None and (kept or deleted):
            size = int(self.index_config["dims"]) if self.index_config else 1
            yield self._io(self._engine.prepare(size, self._indexes))
        # Earlier writes may have left extra vector points of these items.
        stale = [op for op in ops if op.index is not False and self.embeddings]
        where = None
        if stale:
            names = [
                json.dumps([*op.namespace, op.key], ensure_ascii=False) for op in stale
            ]
            where = Filter(must=(Cond("match", _EXTRA, 1), Cond("any", _ITEM, names)))
        gone = [_point_id(op.namespace, op.key) for op in deleted]
        if gone or where is not None:
            yield self._io(self._engine.delete(gone, where))
        now = datetime.now(UTC)
        points: list[Point] = []
        position = 0
        for op, item_texts in zip(kept, texts, strict=True):
            item_vectors = vectors[position : position + len(item_texts)]
            position += len(item_texts)
            payload = self._payload(op, now)
            points.append(
                Point(
                    _point_id(op.namespace, op.key),
                    payload,
                    item_vectors[0] if item_vectors else None,
                )
            )
            for n, vector in enumerate(item_vectors[1:], start=1):
                points.append(
                    Point(
                        _point_id(op.namespace, op.key, n),
                        {**payload, _EXTRA: 1},
                        vector,
                    )
                )
        if points:
            yield self._io(self._engine.upsert(points))

    def _checked(self, vector: Sequence[float]) -> list[float]:
        values = [float(x) for x in vector]
        dims = int(self.index_config["dims"]) if self.index_config else len(values)
        if len(values) != dims:
            msg = (
                f"the embeddings gave a vector of size {len(values)}, but the store's "
                f"index has `dims` {dims}"
            )
            raise EmbeddingSizeError(msg, expected=dims, got=len(values))
        return values

    @staticmethod
    def _payload(op: PutOp, now: datetime) -> dict[str, Any]:
        value = dict(op.value or {})
        return {
            _NS: _ns(op.namespace),
            _NS_PATH: [_ns(op.namespace[: i + 1]) for i in range(len(op.namespace))],
            _KEY: str(op.key),
            _ITEM: json.dumps([*op.namespace, op.key], ensure_ascii=False),
            _VALUE: value,
            _BOOLS: _bool_mirrors(value),
            _CREATED: now.isoformat(),
            _UPDATED: now.isoformat(),
            _TS: now.timestamp(),
            _EXTRA: 0,
        }

    def _where(self, op: SearchOp) -> Filter:
        must, must_not = _conditions(op.filter or {})
        if op.namespace_prefix:
            must.insert(0, Cond("match", _NS_PATH, _ns(op.namespace_prefix)))
        return Filter(must=tuple(must), must_not=tuple(must_not))

    def _search(self, op: SearchOp) -> Generator[Call, Any, list[SearchItem]]:
        if op.limit < 0 or op.offset < 0:
            msg = f"`limit` and `offset` must not be negative, got {op.limit}, {op.offset}"
            raise InvalidInputError(msg)
        where = self._where(op)
        wanted = op.offset + op.limit
        if not (op.query and self.embeddings):
            only_items = Filter((*where.must, Cond("match", _EXTRA, 0)), where.must_not)
            found = yield self._io(self._engine.scroll(only_items, wanted, _TS))
            return [_item(p) for p in found[op.offset :]]
        embeddings, query = self.embeddings, op.query
        vector = self._checked(
            (
                yield Call(
                    lambda: embeddings.embed_query(query),
                    lambda: embeddings.aembed_query(query),
                )
            )
        )
        # An item with several texts may hold several of the nearest points:
        # ask for enough to fill the page after keeping each item's best.
        scored: list[Scored] = yield self._io(
            self._engine.query(vector, where, wanted * (1 + self._spread()), False)
        )
        best: dict[str, SearchItem] = {}
        for hit in scored:
            name = hit.payload.get(_ITEM, "")
            if name not in best:
                best[name] = _item(hit.payload, hit.score)
        ranked = list(best.values())[op.offset : wanted]
        if len(ranked) < op.limit and len(best) < wanted:
            # As InMemoryStore: items without a vector fill the page, unscored.
            plain = Filter(
                (*where.must, Cond("match", _EXTRA, 0)),
                (*where.must_not, Cond("vector", "")),
            )
            rest = yield self._io(
                self._engine.scroll(plain, op.limit - len(ranked), _TS)
            )
            ranked += [_item(p) for p in rest]
        return ranked

    def _spread(self) -> int:
        # How many extra points an item may have beyond its first (a guess
        # from the configured fields; lists of texts can exceed it).
        return max(0, len(self._fields) - 1)

    def _list_namespaces(
        self, op: ListNamespacesOp
    ) -> Generator[Call, Any, list[tuple[str, ...]]]:
        must: list[Cond] = [Cond("match", _EXTRA, 0)]
        for condition in op.match_conditions or ():
            path = tuple(condition.path)
            if condition.match_type == "prefix" and path and "*" not in path:
                must.append(Cond("match", _NS_PATH, _ns(path)))
        values = yield self._io(self._engine.facet(_NS, Filter(must=tuple(must))))
        namespaces = [tuple(json.loads(v)) for v in values]
        namespaces = [
            ns
            for ns in namespaces
            if all(_matches(c, ns) for c in op.match_conditions or ())
        ]
        if op.max_depth is not None:
            namespaces = list({ns[: op.max_depth] for ns in namespaces})
        return sorted(namespaces)[op.offset : op.offset + op.limit]

    # -- lifecycle -----------------------------------------------------------

    def optimize(self) -> None:
        """Index every segment that outgrew the plain scan now, not at a later write."""
        self._check_open()
        self._engine.optimize()

    def _check_open(self) -> None:
        if self._closed:
            msg = f"the store at {self.location!r} is closed"
            raise MemoryStoreError(msg)

    def close(self) -> None:
        """Flush and release the store (and its on-disk lock). Idempotent."""
        if not getattr(self, "_closed", True):
            self._closed = True
            _open_stores.discard(self)
            self._engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
