"""A LexicalStore (the bm25 channel) on Qdrant sparse vectors: a server, or local mode.

Layout: a pages collection named by the caller (``<collection>_bm25`` beside a vector
store's ``<collection>``) with one named sparse vector, ``bm25``, configured with
``modifier=IDF``, plus the usual ``<name>__documents`` records (qdrant_catalog.py). Point ids
are ``uuid5(doc_id/page)``; payloads carry the filter fields (qdrant_schema.page_fields) and
``n_terms``.

Scoring is BM25 split in two. The client writes, for each page term, the BM25 saturation of
its count ``tf`` in the page of ``dl`` terms::

    tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))      k1 = 1.2, b = 0.75

and a query is the sparse vector of its distinct terms, each weighted 1. Qdrant multiplies
in ``idf = ln(1 + (N - n + 0.5) / (n + 0.5))`` at query time from its own live counts (N
pages having a ``bm25`` vector, n of them holding the term), so document frequencies are
never stale. ``avgdl`` cannot be live (values are written once), so it is a constant fixed
when the collection is created (``avg_page_terms``, default 300: the measured mean of the
reference corpus, 319 terms a page) and kept in the collection metadata; see docs/bm25.md.

Term ids are the first 31 bits of BLAKE2b of the UTF-8 term: stable across processes and
Python versions (unlike ``hash``), in any client's int range. Two of V distinct terms share
an id with probability about V / 2**31 per term (5e-5 for a 100K vocabulary, about two
colliding pairs in all); a collision only merges two terms' postings.

Atomicity is QdrantStore's: ``stored_pages`` moves only after every point of an
``add_texts`` call is written, retries overwrite, ``finish_document`` is three steps.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from colretrieve.contracts import IndexStats, PageText, SearchFilter, SearchHit
from colretrieve.errors import (
    AnalyzerMismatchError,
    DocumentNotFoundError,
    IndexNotFoundError,
    InvalidInputError,
)
from colretrieve.settings import Settings
from colretrieve.store import qdrant_schema as layout
from colretrieve.store.folder import folder_bytes
from colretrieve.store.lexical_base import LexicalStoreBase, page_terms
from colretrieve.store.qdrant_catalog import (
    HIT_PAYLOAD,
    QdrantCatalog,
    beside_location,
    connect,
    fetch_limit,
    settings_connection,
)
from colretrieve.text.analyzer import ANALYZER

SPARSE = "bm25"
K1 = 1.2
B = 0.75
AVG_PAGE_TERMS = 300.0
META_BM25 = "colretrieve_bm25"
UPSERT_TERMS = 200_000
"""Sparse entries per upsert request (a few MB of JSON)."""


def term_id(term: str) -> int:
    """The sparse-vector index of an analyser term (31 bits of BLAKE2b)."""
    digest = hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFF_FFFF


def page_vector(terms: Sequence[str], avgdl: float) -> tuple[list[int], list[float]]:
    """(indices, values) of a page: BM25 term-frequency saturation per term id, ids sorted.

    Terms whose ids collide are counted together."""
    counts = Counter(term_id(term) for term in terms)
    norm = K1 * (1 - B + B * len(terms) / avgdl)
    indices = sorted(counts)
    return indices, [counts[i] * (K1 + 1) / (counts[i] + norm) for i in indices]


def query_vector(terms: Sequence[str]) -> tuple[list[int], list[float]]:
    indices = sorted({term_id(term) for term in terms})
    return indices, [1.0] * len(indices)


class QdrantLexicalStore(LexicalStoreBase, QdrantCatalog):
    """The LexicalStore contract on a Qdrant sparse-vector collection (plus its documents)."""

    def __init__(
        self,
        client: Any,
        collection: str,
        location: str,
        local_path: Path | None,
        read_only: bool,
        avg_page_terms: float = AVG_PAGE_TERMS,
    ) -> None:
        # Use QdrantLexicalStore.open() or .beside(); this only wires the parts together.
        super().__init__(client, collection, location, local_path, read_only)
        self.avg_page_terms = float(avg_page_terms)
        """Used for a new collection; an existing one's own value replaces it on open."""

    @classmethod
    def open(
        cls,
        *,
        url: str | None = None,
        path: str | Path | None = None,
        collection: str = "colretrieve_bm25",
        api_key: str | None = None,
        verify_tls: bool = True,
        prefer_grpc: bool = False,
        timeout: int = 60,
        create: bool = False,
        read_only: bool = False,
        avg_page_terms: float = AVG_PAGE_TERMS,
    ) -> Self:
        """Connect to the server at ``url``, or run local mode at ``path`` (``":memory:"``).

        Without ``create`` the index must exist (IndexNotFoundError). Local mode allows one
        client per folder: to keep bm25 beside a QdrantStore in the same local folder, use
        :meth:`beside`. ``avg_page_terms`` is the BM25 length norm of a new collection.
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
        store = cls(client, collection, location, local_path, read_only, avg_page_terms)
        store._open_or_create(create)
        return store

    @classmethod
    def beside(
        cls,
        catalog: QdrantCatalog,
        collection: str | None = None,
        create: bool = False,
        avg_page_terms: float = AVG_PAGE_TERMS,
    ) -> Self:
        """The bm25 store next to another Qdrant store, on its client (one connection; the
        only way in local mode). ``collection`` defaults to ``<its collection>_bm25``.
        Closing this store leaves the shared client open."""
        name = collection or f"{catalog.collection}_bm25"
        location = beside_location(catalog, name, create)
        store = cls(
            catalog._client, name, location, catalog._local_path, catalog.read_only, avg_page_terms
        )
        store._beside(catalog, create)
        return store

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        collection: str | None = None,
        create: bool = False,
        read_only: bool = False,
    ) -> Self:
        """The bm25 collection ``<qdrant_collection>_bm25`` (or ``collection``) on the
        Qdrant that ``settings`` select."""
        return cls.open(
            **settings_connection(settings),
            collection=collection or f"{settings.qdrant_collection}_bm25",
            create=create,
            read_only=read_only,
        )

    # -- collection --------------------------------------------------------------------

    def _create_pages(self) -> None:
        m = self._models
        self._client.create_collection(
            self.collection,
            vectors_config={},
            sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            shard_number=self._shards,
            replication_factor=self._replication_factor,
            metadata={
                layout.META_LAYOUT: layout.LAYOUT_VERSION,
                META_BM25: {
                    "k1": K1,
                    "b": B,
                    "avg_page_terms": self.avg_page_terms,
                    "term_id": "blake2b-31",
                    "analyzer": ANALYZER,
                },
            },
        )
        self._index_payload(self.collection, layout.KEYWORD_FIELDS)

    def _check_pages(self) -> None:
        if not self._has_pages():
            raise IndexNotFoundError(self.location, "create it with create=True")
        metadata = self._client.get_collection(self.collection).config.metadata or {}
        if META_BM25 not in metadata:
            raise InvalidInputError(f"{self.location} is not a colretrieve bm25 collection")
        self.avg_page_terms = float(metadata[META_BM25]["avg_page_terms"])
        stored = metadata[META_BM25].get("analyzer", ANALYZER)
        if stored != ANALYZER:
            raise AnalyzerMismatchError(self.location, stored, ANALYZER)

    # -- writes ------------------------------------------------------------------------

    def add_texts(self, doc_id: str, pages: Sequence[PageText]) -> None:
        """Store the next pages of a begun document; its page count moves only once every
        point is written (batched upserts, idempotent ids). Only the first MAX_PAGE_CHARS
        characters of a page's text are indexed."""
        self._writer()
        record = self._record(doc_id)
        if record is None:
            raise DocumentNotFoundError(doc_id)
        if record["complete"]:
            raise InvalidInputError(f"document {doc_id} is complete; it takes no more pages")
        pages = list(pages)
        if not pages:
            return
        stored = int(record["stored_pages"])
        analysed = page_terms(pages, stored + 1, int(record["total_pages"]))
        info = layout.document_info(record)
        m = self._models
        batch: list[Any] = []
        entries = 0
        for page, terms in zip(pages, analysed, strict=True):
            indices, values = page_vector(terms, self.avg_page_terms)
            # An empty page gets no vector at all: stored, counted, never matched.
            vector = {SPARSE: m.SparseVector(indices=indices, values=values)} if indices else {}
            payload = {**layout.page_fields(info, page.page), "n_terms": len(terms)}
            batch.append(
                m.PointStruct(
                    id=layout.page_point_id(doc_id, page.page), vector=vector, payload=payload
                )
            )
            entries += len(indices) + 1
            if entries >= UPSERT_TERMS:
                self._upsert(batch)
                batch, entries = [], 0
        if batch:
            self._upsert(batch)
        self._set_record(doc_id, stored_pages=stored + len(pages))

    def _upsert(self, points: list[Any]) -> None:
        with self._calls():
            self._client.upsert(self.collection, points, wait=True)

    # -- reads -------------------------------------------------------------------------

    def stats(self) -> IndexStats:
        """Counts over all stored documents, incomplete ones included. ``bytes_on_disk`` is
        the local-mode folder's size (both collections, and any other in that folder); 0 on
        a server."""
        records = self._scroll_documents()
        return IndexStats(
            documents=len(records),
            incomplete_documents=sum(1 for r in records if not r["complete"]),
            pages=sum(int(r["stored_pages"]) for r in records),
            vectors=0,
            dim=None,
            model=None,
            bytes_on_disk=folder_bytes(self._local_path) if self._local_path else 0,
        )

    def _search_terms(
        self, queries: list[list[str]], k: int, filter: SearchFilter | None
    ) -> list[list[SearchHit]]:
        m = self._models
        query_filter = self._page_filter(filter)
        if query_filter is None:
            return [[] for _ in queries]
        asked = [terms for terms in queries if terms]
        requests = []
        for terms in asked:
            indices, values = query_vector(terms)
            requests.append(
                m.QueryRequest(
                    query=m.SparseVector(indices=indices, values=values),
                    using=SPARSE,
                    filter=query_filter,
                    limit=fetch_limit(k),
                    with_payload=HIT_PAYLOAD,
                )
            )
        with self._calls():
            responses = iter(self._client.query_batch_points(self.collection, requests))
        return [self._hits(next(responses).points, k) if terms else [] for terms in queries]
