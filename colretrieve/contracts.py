"""The contracts the rest of colretrieve is written against.

A page embedder turns page images and query strings into multi-vectors; a multi-vector store
keeps page multi-vectors with their metadata and answers MaxSim searches. Results are frozen
dataclasses, never dicts, so every backend returns the same shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ModelInfo:
    """What an index records about the model that embedded it."""

    name: str
    """Hub name or local folder, as the user gave it."""
    revision: str
    """Hub commit hash, or a fingerprint of the local folder's files."""
    architecture: str
    """colpali-engine class name, e.g. ``ColQwen2``."""
    dim: int
    max_visual_tokens: int | None = None

    @property
    def label(self) -> str:
        return f"{self.architecture} {self.name!r} (revision {self.revision[:12]}, dim {self.dim})"

    def same_embedding_space(self, other: ModelInfo) -> bool:
        """True when query vectors of ``other`` can be scored against pages of ``self``.

        The name may differ (a hub checkpoint copied to a folder); the weights may not.
        """
        return (self.architecture, self.revision, self.dim) == (
            other.architecture,
            other.revision,
            other.dim,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(**data)


@dataclass(frozen=True)
class DocumentRecord:
    """A source document as ingest sees it, before its pages are stored."""

    doc_id: str
    """Hex SHA-256 of the file's bytes: the same content is the same document."""
    path: str
    title: str
    size_bytes: int
    total_pages: int
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentInfo:
    """A stored document."""

    doc_id: str
    path: str
    title: str
    size_bytes: int
    total_pages: int
    stored_pages: int
    complete: bool
    tags: tuple[str, ...]
    added_at: float


@dataclass(frozen=True)
class PageInput:
    """One page to store: its multi-vector and what ingest knows about it."""

    page: int
    """1-based page number within its document."""
    vectors: np.ndarray
    """(n_vectors, dim) float array, padding already stripped."""
    text: str = ""
    width: int = 0
    height: int = 0
    text_source: str = "layer"
    """Where ``text`` came from: ``layer`` (the PDF), ``ocr`` (Tesseract) or ``none``."""


@dataclass(frozen=True)
class PageInfo:
    doc_id: str
    page: int
    n_vectors: int
    text: str
    width: int
    height: int
    text_source: str = "layer"
    """Where ``text`` came from: ``layer`` (the PDF), ``ocr`` (Tesseract) or ``none``."""


@dataclass(frozen=True)
class SearchFilter:
    """Restricts a search to matching pages before MaxSim is computed (never after top-k)."""

    doc_ids: frozenset[str] | None = None
    path_prefix: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    """A page matches when its document carries every one of these tags."""


@dataclass(frozen=True)
class PageText:
    """One page's text for a lexical (BM25) channel."""

    page: int
    """1-based page number within its document."""
    text: str


@dataclass(frozen=True)
class ChannelMatch:
    """How one retrieval channel ranked a page that a fused search returns."""

    channel: str
    """``visual``, ``text`` or ``bm25``."""
    rank: int
    """1-based rank of the page in that channel's own result list."""
    score: float
    """The channel's own score (MaxSim, or BM25 where higher is better)."""


@dataclass(frozen=True)
class SearchHit:
    doc_id: str
    path: str
    page: int
    score: float
    title: str = ""
    matches: tuple[ChannelMatch, ...] = ()
    """Per-channel ranks and scores behind a fused hit (empty for a single-store search)."""


@dataclass(frozen=True)
class IndexStats:
    documents: int
    incomplete_documents: int
    pages: int
    vectors: int
    dim: int | None
    model: ModelInfo | None
    bytes_on_disk: int


@runtime_checkable
class PageEmbedder(Protocol):
    """Turns page images and queries into multi-vectors in one embedding space."""

    @property
    def info(self) -> ModelInfo: ...

    def embed_images(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """One (n_patches, dim) float32 array per image, padding stripped."""
        ...

    def embed_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        """One (n_tokens, dim) float32 array per query, padding stripped."""
        ...


@runtime_checkable
class TextEmbedder(Protocol):
    """Turns page texts and queries into token multi-vectors (the ``text`` channel)."""

    @property
    def info(self) -> ModelInfo: ...

    def embed_texts(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One (n_tokens, dim) float32 array per text; long texts are encoded in
        overlapping windows and their token vectors concatenated."""
        ...

    def embed_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        """One (n_tokens, dim) float32 array per query."""
        ...


@runtime_checkable
class DocumentCatalog(Protocol):
    """The document lifecycle every channel store shares (see MultiVectorStore)."""

    def begin_document(self, doc: DocumentRecord) -> int: ...

    def finish_document(self, doc_id: str, replaces: Sequence[str] = ()) -> None: ...

    def delete_documents(self, doc_ids: Sequence[str]) -> int: ...

    def get_document(self, doc_id: str) -> DocumentInfo | None: ...

    def find_by_path(self, path: str) -> list[DocumentInfo]: ...

    def documents(self) -> list[DocumentInfo]: ...

    def stats(self) -> IndexStats: ...

    def compact(self) -> object: ...

    def close(self) -> None: ...


@runtime_checkable
class LexicalStore(DocumentCatalog, Protocol):
    """Keeps page texts and answers BM25 searches (the ``bm25`` channel).

    Same document lifecycle and guarantees as MultiVectorStore: pages arrive in order, each
    call is atomic, only complete documents are searched, filters apply before ranking.
    ``stats().vectors`` is 0 and ``stats().model`` None.
    """

    def add_texts(self, doc_id: str, pages: Sequence[PageText]) -> None:
        """Store the next pages of a begun document, in order, all or nothing."""
        ...

    def search_text(
        self, query: str, k: int, filter: SearchFilter | None = None
    ) -> list[SearchHit]:
        """Top-k pages by BM25 (higher score is better); [] when no page shares a term."""
        ...

    def search_text_batch(
        self, queries: Sequence[str], k: int, filter: SearchFilter | None = None
    ) -> list[list[SearchHit]]: ...


@runtime_checkable
class MultiVectorStore(Protocol):
    """Keeps page multi-vectors and metadata; answers exact MaxSim searches.

    Writes are atomic per call: after a crash a store holds exactly the calls that returned.
    Searches see complete documents only, so a half-ingested or half-replaced document never
    shows up in results.
    """

    @property
    def model(self) -> ModelInfo | None: ...

    def bind_model(self, model: ModelInfo) -> None:
        """Record the model on first use; raise ModelMismatchError if another one is bound."""
        ...

    def begin_document(self, doc: DocumentRecord) -> int:
        """Register ``doc`` (idempotent); return how many of its pages are already stored."""
        ...

    def add_pages(self, doc_id: str, pages: Sequence[PageInput]) -> None:
        """Store the next pages of a begun document, in order, all or nothing."""
        ...

    def finish_document(self, doc_id: str, replaces: Sequence[str] = ()) -> None:
        """Mark ``doc_id`` complete and delete ``replaces`` in the same commit."""
        ...

    def delete_documents(self, doc_ids: Sequence[str]) -> int:
        """Delete documents and their pages; return the number of pages removed."""
        ...

    def get_document(self, doc_id: str) -> DocumentInfo | None: ...

    def find_by_path(self, path: str) -> list[DocumentInfo]: ...

    def documents(self) -> list[DocumentInfo]: ...

    def get_page(self, doc_id: str, page: int) -> PageInfo | None: ...

    def page_vectors(self, doc_id: str, page: int) -> np.ndarray: ...

    def search(
        self, query: np.ndarray, k: int, filter: SearchFilter | None = None
    ) -> list[SearchHit]:
        """Top-k pages by exact MaxSim for one (n_tokens, dim) query."""
        ...

    def search_batch(
        self, queries: Sequence[np.ndarray], k: int, filter: SearchFilter | None = None
    ) -> list[list[SearchHit]]: ...

    def stats(self) -> IndexStats: ...

    def compact(self) -> object:
        """Reclaim deleted space and merge small write batches (a no-op where the backend
        does this itself)."""
        ...

    def close(self) -> None: ...
