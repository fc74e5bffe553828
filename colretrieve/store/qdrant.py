"""A MultiVectorStore over Qdrant: a server or cluster by URL, or qdrant-client's local mode.

Search is one ``query_points`` call per query: a prefetch on the compact ``pooled`` vectors
(HNSW) picks ``prefetch_limit`` candidate pages, which Qdrant reranks by exact MaxSim on the
``full`` page multi-vectors. With ``prefetch_limit`` at least the number of pages passing the
filter, results equal exact search. See :mod:`colretrieve.store.qdrant_schema` for the layout.

What is atomic: one ``add_pages`` call is all or nothing *as the contract sees it* (the
document's ``stored_pages`` moves only after every point is written; a failed call leaves
invisible points that the retry overwrites, ids being derived from (document, page)).
``finish_document`` is not one transaction: it marks the new pages searchable, marks the
document complete, then deletes ``replaces``, so for a moment (or after a crash in between,
until the next ingest run finishes the swap) both versions can be found; on a cluster the
new pages become searchable shard by shard. Nothing is ever missing from search.

The local mode is pure Python: fine for tests and tiny indexes, seconds per query beyond
a thousand pages; opening a big one warns.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from colretrieve.contracts import (
    DocumentInfo,
    DocumentRecord,
    IndexStats,
    ModelInfo,
    PageInfo,
    PageInput,
    SearchFilter,
    SearchHit,
)
from colretrieve.errors import (
    ColretrieveError,
    DocumentNotFoundError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidInputError,
    ModelMismatchError,
    StoreUnavailableError,
)
from colretrieve.settings import Settings
from colretrieve.store import qdrant_schema as layout
from colretrieve.store.base import StoreBase, check_document, check_pages, check_replaces
from colretrieve.store.folder import folder_bytes

LOCAL_MODE_WARN_PAGES = 1_000
"""Local mode is measured at ~9.5 s per query over 1K pages; warn from here on."""
UPSERT_FLOATS = 400_000
"""Floats per upsert request (~6 MB of JSON), under Qdrant's 32 MB request limit."""
SCROLL_PAGE = 1_000
INSTALL_HINT = 'the Qdrant store needs qdrant-client: pip install "colretrieve[qdrant]"'


@dataclass(frozen=True)
class QdrantOptions:
    prefetch_limit: int = 512
    pool_size: int = 16
    quantization: str = "none"
    shards: int = 1
    replication_factor: int = 1
    full_on_disk: bool = True


def _models() -> Any:
    try:
        from qdrant_client import models
    except ImportError:
        raise ColretrieveError(INSTALL_HINT) from None
    return models


class QdrantStore(StoreBase):
    """The MultiVectorStore contract on a Qdrant collection pair (pages, documents)."""

    def __init__(
        self,
        client: Any,
        collection: str,
        location: str,
        local_path: Path | None,
        read_only: bool,
        options: QdrantOptions,
    ) -> None:
        # Use QdrantStore.open(); this only wires the parts together.
        self._client = client
        self.collection = collection
        self.documents_collection = collection + layout.DOCS_SUFFIX
        self.location = location
        self._local_path = local_path
        self._read_only = read_only
        self.options = options
        self._model: ModelInfo | None = None
        self._pool_size = options.pool_size
        self._models = _models()

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        *,
        url: str | None = None,
        path: str | Path | None = None,
        collection: str = "colretrieve",
        api_key: str | None = None,
        verify_tls: bool = True,
        prefer_grpc: bool = False,
        timeout: int = 60,
        create: bool = False,
        read_only: bool = False,
        options: QdrantOptions | None = None,
    ) -> Self:
        """Connect to the server at ``url``, or run local mode at ``path`` (``":memory:"``).

        Without ``create`` the index must exist (IndexNotFoundError). Local mode allows one
        open client per folder: a second open raises IndexLockedError.
        """
        if create and read_only:
            raise InvalidInputError("a read-only open cannot create an index")
        if (url is None) == (path is None):
            raise InvalidInputError("give exactly one of a Qdrant url or a local-mode path")
        try:
            from qdrant_client import QdrantClient
        except ImportError:
            raise ColretrieveError(INSTALL_HINT) from None
        local_path = None
        if url is not None:
            location = f"{url.rstrip('/')}/{collection}"
            extra = {} if verify_tls else {"verify": False}
            with _translated(location):
                client = QdrantClient(
                    url=url,
                    api_key=api_key,
                    prefer_grpc=prefer_grpc,
                    timeout=timeout,
                    check_compatibility=False,
                    **extra,
                )
        elif str(path) == ":memory:":
            location = f"qdrant local :memory:/{collection}"
            client = QdrantClient(location=":memory:")
        else:
            local_path = Path(path)
            location = f"qdrant local {local_path}/{collection}"
            if not create and not local_path.exists():
                raise IndexNotFoundError(location, _CREATE_HINT)
            try:
                client = QdrantClient(path=str(local_path))
            except RuntimeError as error:
                if "already accessed" in str(error):
                    raise IndexLockedError(local_path) from None
                raise StoreUnavailableError(location, str(error)) from None
        store = cls(client, collection, location, local_path, read_only, options or QdrantOptions())
        try:
            store._check_or_create(create)
        except BaseException:
            client.close()
            raise
        return store

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = False, read_only: bool = False):
        options = QdrantOptions(
            prefetch_limit=settings.qdrant_prefetch_limit,
            pool_size=settings.qdrant_pool_size,
            quantization=settings.qdrant_quantization,
            shards=settings.qdrant_shards,
            replication_factor=settings.qdrant_replication_factor,
        )
        key = settings.qdrant_api_key
        return cls.open(
            url=settings.qdrant_url,
            path=None if settings.qdrant_url else (settings.qdrant_path or settings.index),
            collection=settings.qdrant_collection,
            api_key=key.get_secret_value() if key else None,
            verify_tls=settings.qdrant_verify_tls,
            prefer_grpc=settings.qdrant_prefer_grpc,
            timeout=settings.qdrant_timeout,
            create=create,
            read_only=read_only,
            options=options,
        )

    @property
    def is_local(self) -> bool:
        return "qdrant local" in self.location

    def _check_or_create(self, create: bool) -> None:
        with self._calls():
            exists = self._client.collection_exists(self.documents_collection)
            if not exists and not create:
                raise IndexNotFoundError(self.location, _CREATE_HINT)
            if not exists:
                self._client.create_collection(
                    self.documents_collection,
                    vectors_config={},
                    shard_number=self.options.shards,
                    replication_factor=self.options.replication_factor,
                )
                self._index_payload(self.documents_collection, ("doc_id", "path", "dirs"))
            pages = self._client.count(self.collection).count if self._has_pages() else 0
        if self.is_local and pages > LOCAL_MODE_WARN_PAGES:
            warnings.warn(
                f"{self.location} holds {pages} pages in qdrant-client's local mode, which is "
                "pure Python (seconds per query at this size, slow to reopen); serve it from "
                "a Qdrant server instead (`colretrieve migrate`, docs/qdrant.md)",
                UserWarning,
                stacklevel=3,
            )

    def _index_payload(self, collection: str, keywords: Sequence[str]) -> None:
        if self.is_local:
            return  # local mode ignores payload indexes (and warns about them)
        m = self._models
        for name in keywords:
            self._client.create_payload_index(collection, name, m.PayloadSchemaType.KEYWORD)
        self._client.create_payload_index(collection, "complete", m.PayloadSchemaType.BOOL)

    def _has_pages(self) -> bool:
        return bool(self._client.collection_exists(self.collection))

    @contextlib.contextmanager
    def _calls(self) -> Iterator[None]:
        with _translated(self.location):
            yield

    def _writer(self) -> None:
        if self._read_only:
            raise InvalidInputError("this store was opened read-only")

    @property
    def read_only(self) -> bool:
        return self._read_only

    def drop(self) -> None:
        """Delete both collections of this index: every page, document and the model."""
        self._writer()
        with self._calls():
            self._client.delete_collection(self.collection)
            self._client.delete_collection(self.documents_collection)
        self._model = None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    # -- model -------------------------------------------------------------------------

    @property
    def model(self) -> ModelInfo | None:
        if self._model is None:  # once bound, a model never changes: cache it
            with self._calls():
                if not self._has_pages():
                    return None
                metadata = self._client.get_collection(self.collection).config.metadata or {}
            if layout.META_MODEL in metadata:
                self._model = ModelInfo.from_dict(metadata[layout.META_MODEL])
                self._pool_size = int(metadata.get(layout.META_POOL, self._pool_size))
        return self._model

    def bind_model(self, model: ModelInfo) -> None:
        """Record ``model`` on first use (creating the pages collection for its dimension);
        refuse one from another embedding space."""
        self._writer()
        if not isinstance(model, ModelInfo) or model.dim < 1:
            raise InvalidInputError(f"bind_model needs a ModelInfo with dim >= 1; got {model!r}")
        stored = self.model
        if stored is None:
            m = self._models
            with self._calls():
                self._client.create_collection(
                    self.collection,
                    vectors_config=layout.pages_vectors_config(
                        m, model.dim, self.options.quantization, self.options.full_on_disk
                    ),
                    shard_number=self.options.shards,
                    replication_factor=self.options.replication_factor,
                    metadata={
                        layout.META_MODEL: model.to_dict(),
                        layout.META_LAYOUT: layout.LAYOUT_VERSION,
                        layout.META_POOL: self.options.pool_size,
                    },
                )
                self._index_payload(self.collection, layout.KEYWORD_FIELDS)
            self._model = model
            self._pool_size = self.options.pool_size
        elif not stored.same_embedding_space(model):
            raise ModelMismatchError(stored.label, model.label)

    # -- documents collection ------------------------------------------------------------

    def _record(self, doc_id: str) -> dict[str, Any] | None:
        with self._calls():
            found = self._client.retrieve(
                self.documents_collection, [layout.doc_point_id(doc_id)], with_payload=True
            )
        return found[0].payload if found else None

    def _scroll_documents(self, conditions: list[Any] | None = None) -> list[dict[str, Any]]:
        m = self._models
        query_filter = m.Filter(must=conditions) if conditions else None
        payloads: list[dict[str, Any]] = []
        offset = None
        with self._calls():
            while True:
                points, offset = self._client.scroll(
                    self.documents_collection,
                    scroll_filter=query_filter,
                    limit=SCROLL_PAGE,
                    offset=offset,
                    with_payload=True,
                    with_vectors=False,
                )
                payloads.extend(point.payload for point in points)
                if offset is None:
                    return payloads

    def _set_record(self, doc_id: str, **fields: Any) -> None:
        with self._calls():
            self._client.set_payload(
                self.documents_collection, fields, points=[layout.doc_point_id(doc_id)], wait=True
            )

    def _doc_filter(self, doc_ids: Sequence[str]) -> Any:
        m = self._models
        return m.FilterSelector(filter=m.Filter(must=[layout.match_any(m, "doc_id", doc_ids)]))

    # -- writes ------------------------------------------------------------------------

    def begin_document(self, doc: DocumentRecord) -> int:
        """Register ``doc`` as incomplete; if it exists, change nothing and return its
        stored page count, so ingest resumes at the next page."""
        self._writer()
        check_document(doc)
        record = self._record(doc.doc_id)
        if record is not None:
            return int(record["stored_pages"])
        m = self._models
        point = m.PointStruct(
            id=layout.doc_point_id(doc.doc_id),
            vector={},
            payload=layout.document_payload(doc, time.time()),
        )
        with self._calls():
            self._client.upsert(self.documents_collection, [point], wait=True)
        return 0

    def add_pages(self, doc_id: str, pages: Sequence[PageInput]) -> None:
        """Store the next pages of a begun document; its page count moves only once every
        point is written (batched upserts, idempotent ids)."""
        self._writer()
        model = self.model
        if model is None:
            raise InvalidInputError("bind a model (bind_model) before adding pages")
        record = self._record(doc_id)
        if record is None:
            raise DocumentNotFoundError(doc_id)
        if record["complete"]:
            raise InvalidInputError(f"document {doc_id} is complete; it takes no more pages")
        pages = list(pages)
        if not pages:
            return
        stored = int(record["stored_pages"])
        arrays = check_pages(pages, stored + 1, int(record["total_pages"]), model.dim)
        # Stored as float16-rounded values, like the embedded store: same vectors, same scores.
        arrays = [a.astype(np.float16).astype(np.float32) for a in arrays]
        info = layout.document_info(record)
        m = self._models
        batch: list[Any] = []
        floats = 0
        for page, array in zip(pages, arrays, strict=True):
            payload = layout.page_payload(
                info, page.page, len(array), page.text, page.width, page.height
            )
            payload["text_source"] = page.text_source
            vectors = {
                layout.FULL: array.tolist(),
                layout.POOLED: layout.pooled(array, self._pool_size).tolist(),
            }
            batch.append(
                m.PointStruct(
                    id=layout.page_point_id(doc_id, page.page), vector=vectors, payload=payload
                )
            )
            floats += array.size
            if floats >= UPSERT_FLOATS:
                self._upsert(batch)
                batch, floats = [], 0
        if batch:
            self._upsert(batch)
        self._set_record(
            doc_id,
            stored_pages=stored + len(pages),
            stored_vectors=int(record["stored_vectors"]) + sum(len(a) for a in arrays),
        )

    def _upsert(self, points: list[Any]) -> None:
        with self._calls():
            self._client.upsert(self.collection, points, wait=True)

    def finish_document(self, doc_id: str, replaces: Sequence[str] = ()) -> None:
        """Mark ``doc_id``'s pages searchable and the document complete, then delete
        ``replaces`` (three steps, not one transaction: see the module docstring)."""
        self._writer()
        replaces = check_replaces(doc_id, replaces)
        record = self._record(doc_id)
        if record is None:
            raise DocumentNotFoundError(doc_id)
        stored, total = int(record["stored_pages"]), int(record["total_pages"])
        if stored != total:
            raise InvalidInputError(
                f"document {doc_id} has {stored} of its {total} pages stored; "
                "add the rest before finishing it"
            )
        for old in replaces:
            if self._record(old) is None:
                raise DocumentNotFoundError(old)
        if total and self._has_pages():
            with self._calls():
                self._client.set_payload(
                    self.collection,
                    {"complete": True},
                    points=self._doc_filter([doc_id]),
                    wait=True,
                )
        self._set_record(doc_id, complete=True)
        if replaces:
            self._delete(replaces)

    def delete_documents(self, doc_ids: Sequence[str]) -> int:
        """Delete documents (every id must exist, else nothing is deleted); return the number
        of pages removed."""
        self._writer()
        doc_ids = list(dict.fromkeys(doc_ids))
        records = [self._record(doc_id) for doc_id in doc_ids]
        for doc_id, record in zip(doc_ids, records, strict=True):
            if record is None:
                raise DocumentNotFoundError(doc_id)
        if doc_ids:
            self._delete(doc_ids)
        return sum(int(record["stored_pages"]) for record in records if record)

    def _delete(self, doc_ids: list[str]) -> None:
        # Pages first: a crash in between leaves a record a re-run deletes, never pages
        # without a record.
        with self._calls():
            if self._has_pages():
                self._client.delete(self.collection, self._doc_filter(doc_ids), wait=True)
            self._client.delete(
                self.documents_collection,
                [layout.doc_point_id(doc_id) for doc_id in doc_ids],
                wait=True,
            )

    def compact(self) -> None:
        """Nothing to do: Qdrant's optimizers vacuum deleted points and merge segments."""
        self._writer()

    # -- reads -------------------------------------------------------------------------

    def get_document(self, doc_id: str) -> DocumentInfo | None:
        record = self._record(doc_id)
        return None if record is None else layout.document_info(record)

    def find_by_path(self, path: str) -> list[DocumentInfo]:
        found = self._scroll_documents([layout.match(self._models, "path", path)])
        return sorted((layout.document_info(p) for p in found), key=lambda d: d.doc_id)

    def documents(self) -> list[DocumentInfo]:
        """Every document, incomplete ones included, sorted by path then id."""
        found = [layout.document_info(p) for p in self._scroll_documents()]
        return sorted(found, key=lambda d: (d.path, d.doc_id))

    def _stored_page(self, doc_id: str, page: int, vectors: bool) -> Any | None:
        """The point of a stored page (None past the document's stored pages)."""
        record = self._record(doc_id)
        if record is None:
            raise DocumentNotFoundError(doc_id)
        if not isinstance(page, int | np.integer) or not 1 <= page <= record["stored_pages"]:
            return None
        with self._calls():
            found = self._client.retrieve(
                self.collection,
                [layout.page_point_id(doc_id, int(page))],
                with_payload=True,
                with_vectors=[layout.FULL] if vectors else False,
            )
        return found[0] if found else None

    def get_page(self, doc_id: str, page: int) -> PageInfo | None:
        try:
            point = self._stored_page(doc_id, page, vectors=False)
        except DocumentNotFoundError:
            return None
        if point is None:
            return None
        p = point.payload
        source = p.get("text_source", "layer")  # points stored before the field: layer text
        return PageInfo(
            doc_id, p["page"], p["n_vectors"], p["text"], p["width"], p["height"], source
        )

    def page_vectors(self, doc_id: str, page: int) -> np.ndarray:
        """The stored (n_vectors, dim) multi-vector of a page, as float32."""
        point = self._stored_page(doc_id, page, vectors=True)
        if point is None:
            raise InvalidInputError(f"document {doc_id} has no stored page {page}")
        return np.asarray(point.vector[layout.FULL], dtype=np.float32)

    def stats(self) -> IndexStats:
        """Counts over all stored documents, incomplete ones included. ``bytes_on_disk`` is
        the local-mode folder's size; 0 on a server (see the collection's telemetry)."""
        records = self._scroll_documents()
        model = self.model
        return IndexStats(
            documents=len(records),
            incomplete_documents=sum(1 for r in records if not r["complete"]),
            pages=sum(int(r["stored_pages"]) for r in records),
            vectors=sum(int(r["stored_vectors"]) for r in records),
            dim=None if model is None else model.dim,
            model=model,
            bytes_on_disk=folder_bytes(self._local_path) if self._local_path else 0,
        )

    # -- search ------------------------------------------------------------------------

    def _search_checked(
        self, queries: list[np.ndarray], k: int, filter: SearchFilter | None
    ) -> list[list[SearchHit]]:
        m = self._models
        nothing: list[list[SearchHit]] = [[] for _ in queries]
        if filter is not None and filter.doc_ids is not None and not filter.doc_ids:
            return nothing
        prefix_ids = None
        if layout.needs_prefix_resolution(filter):
            assert filter is not None and filter.path_prefix is not None
            prefix_ids = self._resolve_prefix(filter.path_prefix)
            if not prefix_ids:
                return nothing
        query_filter = m.Filter(must=layout.page_conditions(m, filter, prefix_ids))
        # Over-fetch so that pages tied at the k-th score are all seen, then order ties by
        # (doc_id, page) like every other store.
        fetch = k + max(16, k // 4)
        prefetch_limit = max(self.options.prefetch_limit, fetch)
        requests = []
        for query in queries:
            vectors = query.tolist()
            prefetch = m.Prefetch(
                query=vectors, using=layout.POOLED, filter=query_filter, limit=prefetch_limit
            )
            requests.append(
                m.QueryRequest(
                    query=vectors,
                    using=layout.FULL,
                    prefetch=prefetch,
                    filter=query_filter,
                    limit=fetch,
                    with_payload=["doc_id", "page", "path", "title"],
                )
            )
        with self._calls():
            responses = self._client.query_batch_points(self.collection, requests)
        results = []
        for response in responses:
            hits = [
                SearchHit(
                    doc_id=p.payload["doc_id"],
                    path=p.payload["path"],
                    page=int(p.payload["page"]),
                    score=float(np.float32(p.score)),
                    title=p.payload["title"],
                )
                for p in response.points
            ]
            hits.sort(key=lambda h: (-h.score, h.doc_id, h.page))
            results.append(hits[:k])
        return results

    def _resolve_prefix(self, prefix: str) -> frozenset[str]:
        """Complete documents whose path starts with ``prefix`` (narrowed on ``dirs``)."""
        m = self._models
        folder = prefix[: prefix.rfind("/") + 1]
        conditions = [layout.match(m, "complete", True)]
        if folder:
            conditions.append(layout.match(m, "dirs", folder))
        found = self._scroll_documents(conditions)
        return frozenset(p["doc_id"] for p in found if p["path"].startswith(prefix))


_CREATE_HINT = (
    "create it with `colretrieve index PATH --store qdrant ...` or copy one there with "
    "`colretrieve migrate`"
)


@contextlib.contextmanager
def _translated(location: str) -> Iterator[None]:
    """Turn qdrant-client's and its transports' exceptions into colretrieve's own."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except ColretrieveError:
        raise
    except UnexpectedResponse as error:
        if error.status_code == 404:
            raise IndexNotFoundError(location, _CREATE_HINT) from None
        detail = error.content.decode(errors="replace")[:300]
        raise StoreUnavailableError(location, f"HTTP {error.status_code}: {detail}") from None
    except ValueError as error:  # local mode's way of saying "no such collection"
        if "not found" in str(error):
            raise IndexNotFoundError(location, _CREATE_HINT) from None
        raise StoreUnavailableError(location, str(error)) from None
    except (ResponseHandlingException, OSError) as error:
        raise StoreUnavailableError(location, repr(error)) from None
    except Exception as error:
        # grpc.RpcError, httpx transport errors: anything else the client lets through.
        if type(error).__module__.split(".")[0] in {"grpc", "httpx", "httpcore", "qdrant_client"}:
            raise StoreUnavailableError(location, repr(error)) from None
        raise
