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

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from colretrieve.contracts import (
    IndexStats,
    ModelInfo,
    PageInfo,
    PageInput,
    SearchFilter,
    SearchHit,
)
from colretrieve.errors import (
    DocumentNotFoundError,
    InvalidInputError,
    ModelMismatchError,
)
from colretrieve.settings import Settings
from colretrieve.store import qdrant_schema as layout
from colretrieve.store.base import StoreBase, check_pages
from colretrieve.store.folder import folder_bytes
from colretrieve.store.qdrant_catalog import (
    HIT_PAYLOAD,
    QdrantCatalog,
    beside_location,
    connect,
    fetch_limit,
    settings_connection,
)

LOCAL_MODE_WARN_PAGES = 1_000
"""Local mode is measured at ~9.5 s per query over 1K pages; warn from here on."""
UPSERT_FLOATS = 400_000
"""Floats per upsert request (~6 MB of JSON), under Qdrant's 32 MB request limit."""


@dataclass(frozen=True)
class QdrantOptions:
    prefetch_limit: int = 512
    pool_size: int = 16
    quantization: str = "none"
    shards: int = 1
    replication_factor: int = 1
    full_on_disk: bool = True


class QdrantStore(StoreBase, QdrantCatalog):
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
        super().__init__(
            client,
            collection,
            location,
            local_path,
            read_only,
            options.shards,
            options.replication_factor,
        )
        self.options = options
        self._model: ModelInfo | None = None
        self._pool_size = options.pool_size

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
        client, location, local_path = connect(
            url=url,
            path=path,
            collection=collection,
            api_key=api_key,
            verify_tls=verify_tls,
            prefer_grpc=prefer_grpc,
            timeout=timeout,
            create=create,
            read_only=read_only,
        )
        store = cls(client, collection, location, local_path, read_only, options or QdrantOptions())
        store._open_or_create(create)
        return store

    @classmethod
    def beside(cls, catalog: QdrantCatalog, collection: str, create: bool = False) -> Self:
        """Another vector store (a second channel) on ``catalog``'s client: one connection,
        the only way in local mode. Closing it leaves the shared client open."""
        location = beside_location(catalog, collection, create)
        options = getattr(catalog, "options", None) or QdrantOptions()
        store = cls(
            catalog._client, collection, location, catalog._local_path, catalog.read_only, options
        )
        store._beside(catalog, create)
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
        return cls.open(
            **settings_connection(settings),
            collection=settings.qdrant_collection,
            create=create,
            read_only=read_only,
            options=options,
        )

    def _check_pages(self) -> None:
        pages = self._client.count(self.collection).count if self._has_pages() else 0
        if self.is_local and pages > LOCAL_MODE_WARN_PAGES:
            warnings.warn(
                f"{self.location} holds {pages} pages in qdrant-client's local mode, which is "
                "pure Python (seconds per query at this size, slow to reopen); serve it from "
                "a Qdrant server instead (`colretrieve migrate`, docs/qdrant.md)",
                UserWarning,
                stacklevel=4,
            )

    def drop(self) -> None:
        """Delete both collections of this index: every page, document and the model."""
        super().drop()
        self._model = None

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

    # -- writes ------------------------------------------------------------------------

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

    # -- reads -------------------------------------------------------------------------

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
        query_filter = self._page_filter(filter)
        if query_filter is None:
            return [[] for _ in queries]
        fetch = fetch_limit(k)
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
                    with_payload=HIT_PAYLOAD,
                )
            )
        with self._calls():
            responses = self._client.query_batch_points(self.collection, requests)
        return [self._hits(response.points, k) for response in responses]
