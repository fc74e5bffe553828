"""The public Python API: one object to open an index, add to it, search it, delete from it.

    from colretrieve import Index

    with Index.open("my-index", create=True, model="vidore/colqwen2-v1.0") as index:
        index.add_document("report.pdf")
        for hit in index.search("total revenue in 2023", k=5):
            print(hit.path, hit.page, hit.score)

Bulk ingest of folders (worker processes, progress, resume) is ``colretrieve index`` /
``indexer.ingest``; this class is the in-process building block they share.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from colretrieve.contracts import (
    DocumentInfo,
    DocumentRecord,
    IndexStats,
    ModelInfo,
    MultiVectorStore,
    PageEmbedder,
    PageInput,
    SearchFilter,
    SearchHit,
)
from colretrieve.errors import DocumentNotFoundError, InvalidInputError
from colretrieve.ingest import IngestPlan, ingest_file
from colretrieve.ocr import OcrOptions
from colretrieve.search import SearchResult, check_k, check_query_text, check_same_model
from colretrieve.search import search as run_search
from colretrieve.settings import Settings


class Index:
    """A multi-vector index of document pages and, optionally, the model that embeds them."""

    def __init__(
        self,
        store: MultiVectorStore,
        embedder: PageEmbedder | None = None,
        *,
        model: str | None = None,
        device: str = "auto",
        max_visual_tokens: int | None = 768,
    ) -> None:
        self.store = store
        self._embedder = embedder
        self._model_name = model
        self._device = device
        self._max_visual_tokens = max_visual_tokens

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        create: bool = False,
        read_only: bool = False,
        embedder: PageEmbedder | None = None,
        model: str | None = None,
        device: str = "auto",
        max_visual_tokens: int | None = 768,
    ) -> Index:
        """Open (or with ``create=True``, create) the embedded on-disk index at ``path``.

        The model is loaded on first need: ``model`` if given, else the one the index was
        built with. Pass ``embedder`` to reuse an already loaded model.
        """
        from colretrieve.store import EmbeddedStore

        store = EmbeddedStore.open(Path(path), create=create, read_only=read_only)
        return cls(store, embedder, model=model, device=device, max_visual_tokens=max_visual_tokens)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        create: bool = False,
        read_only: bool = False,
        embedder: PageEmbedder | None = None,
        model: str | None = None,
    ) -> Index:
        """Open the store that ``settings`` select. The model, when needed, is ``model`` if
        given, else the index's own (``settings.model`` is the model for new indexes)."""
        from colretrieve.store import open_configured

        store = open_configured(settings, create=create, read_only=read_only)
        return cls(
            store,
            embedder,
            model=model,
            device=settings.device,
            max_visual_tokens=settings.max_visual_tokens,
        )

    @property
    def model(self) -> ModelInfo | None:
        """The model the index was built with (None while empty)."""
        return self.store.model

    @property
    def embedder(self) -> PageEmbedder:
        """The query/page model, loaded on first use and checked against the index's model."""
        if self._embedder is None:
            name = self._model_name or (self.model.name if self.model else None)
            if name is None:
                raise InvalidInputError(
                    "this index is empty and no model was given; pass model=NAME_OR_DIR"
                )
            from colretrieve.models import ColpaliEmbedder

            self._embedder = ColpaliEmbedder.load(
                name, device=self._device, max_visual_tokens=self._max_visual_tokens
            )
        check_same_model(self.model, self._embedder)
        return self._embedder

    def add_document(
        self,
        path: str | Path,
        *,
        dpi: int = 144,
        max_pixels: int = 4_000_000,
        batch_size: int = 4,
        tags: Sequence[str] = (),
        ocr: OcrOptions | None = None,
    ) -> IngestPlan:
        """Rasterize, embed and store one PDF or page image; skip it if already indexed.

        Pages without a text layer are OCRed when Tesseract is installed, unless ``ocr``
        says otherwise (``OcrOptions(mode="off")``).
        """
        return ingest_file(
            self.store,
            self.embedder,
            Path(path),
            dpi=dpi,
            max_pixels=max_pixels,
            batch_size=batch_size,
            tags=tags,
            ocr=ocr,
        )

    def add_page_vectors(
        self, document: DocumentRecord, pages: Sequence[PageInput], model: ModelInfo
    ) -> None:
        """Store multi-vectors embedded elsewhere, as one complete document.

        ``model`` describes the embedding space; it must match the index's model.
        """
        self.store.bind_model(model)
        stored = self.store.begin_document(document)
        self.store.add_pages(document.doc_id, list(pages)[stored:])
        self.store.finish_document(document.doc_id)

    def search(
        self,
        query: str | np.ndarray,
        k: int = 10,
        *,
        filter: SearchFilter | None = None,
    ) -> list[SearchHit]:
        """Top-k pages by exact MaxSim for a text query or a (n_tokens, dim) query multi-vector."""
        return self.search_timed(query, k, filter=filter).hits

    def search_timed(
        self, query: str | np.ndarray, k: int = 10, *, filter: SearchFilter | None = None
    ) -> SearchResult:
        """Like ``search``, with milliseconds spent per stage."""
        embedder = self.embedder if isinstance(query, str) else None
        return run_search(self.store, query, k, embedder=embedder, filter=filter)

    def search_many(
        self,
        queries: Sequence[str] | Sequence[np.ndarray],
        k: int = 10,
        *,
        filter: SearchFilter | None = None,
    ) -> list[list[SearchHit]]:
        """Top-k for many queries at once (text queries are encoded in batches)."""
        check_k(k)
        if queries and isinstance(queries[0], str):
            for text in queries:
                check_query_text(text)
            queries = self.embedder.embed_queries(list(queries))
        return self.store.search_batch(list(queries), k, filter)

    def resolve(self, ref: str) -> list[DocumentInfo]:
        """Documents named by ``ref``: a document id (or unique prefix) or a file path."""
        document = self.store.get_document(ref)
        if document is not None:
            return [document]
        by_path = self.store.find_by_path(str(Path(ref).resolve()))
        if by_path:
            return by_path
        if len(ref) >= 8:
            matches = [d for d in self.store.documents() if d.doc_id.startswith(ref)]
            if len(matches) == 1:
                return matches
        raise DocumentNotFoundError(ref)

    def delete(self, refs: Sequence[str]) -> list[DocumentInfo]:
        """Delete documents by id or path; return what was deleted. Unknown refs raise first."""
        documents = {doc.doc_id: doc for ref in refs for doc in self.resolve(ref)}
        self.store.delete_documents(list(documents))
        return list(documents.values())

    def documents(self) -> list[DocumentInfo]:
        return self.store.documents()

    def stats(self) -> IndexStats:
        return self.store.stats()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
