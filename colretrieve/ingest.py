"""Deciding what ingest does with a file, and storing its embedded pages.

Shared by the sequential Python API (``Index.add_document``) and the bulk, multi-process
pipeline in ``indexer/``: both plan with ``plan_ingest`` and store with ``store_pages``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from colretrieve.contracts import (
    DocumentRecord,
    MultiVectorStore,
    PageEmbedder,
    PageInput,
)
from colretrieve.ocr import OcrOptions, log_ocr_failures
from colretrieve.rasterize import RenderedPage, SourceInfo, inspect_source, render_pages


class Action(Enum):
    INDEX = "index"
    """Embed pages ``resume_from``..``page_count`` (a new, changed or interrupted file)."""
    UNCHANGED = "unchanged"
    """Already complete under this path and content."""
    DUPLICATE = "duplicate"
    """The same content is already indexed under another path."""


@dataclass(frozen=True)
class IngestPlan:
    source: SourceInfo
    record: DocumentRecord
    action: Action
    resume_from: int = 1
    replaces: tuple[str, ...] = ()
    duplicate_of: str = ""

    @property
    def pages_to_embed(self) -> int:
        if self.action is not Action.INDEX:
            return 0
        return self.source.page_count - self.resume_from + 1


def document_record(source: SourceInfo, tags: Sequence[str] = ()) -> DocumentRecord:
    return DocumentRecord(
        doc_id=source.sha256,
        path=str(source.path.resolve()),
        title=source.title,
        size_bytes=source.size_bytes,
        total_pages=source.page_count,
        tags=tuple(sorted(set(tags))),
    )


def plan_ingest(
    store: MultiVectorStore, source: SourceInfo, tags: Sequence[str] = ()
) -> IngestPlan:
    """Compare a file with the store: skip it, resume it, or (re-)index it.

    Documents are identified by content hash, so an unchanged file is skipped whatever its
    modification time, and a changed file gets a new id that replaces the old one atomically
    when its last page is stored.
    """
    record = document_record(source, tags)
    existing = store.get_document(record.doc_id)
    older_versions = tuple(
        doc.doc_id for doc in store.find_by_path(record.path) if doc.doc_id != record.doc_id
    )
    if existing is not None and existing.complete:
        if existing.path == record.path:
            return IngestPlan(source, record, Action.UNCHANGED, replaces=older_versions)
        return IngestPlan(source, record, Action.DUPLICATE, duplicate_of=existing.path)
    stored = existing.stored_pages if existing is not None else 0
    return IngestPlan(source, record, Action.INDEX, resume_from=stored + 1, replaces=older_versions)


def store_pages(
    store: MultiVectorStore,
    doc_id: str,
    pages: Sequence[RenderedPage],
    vectors: Sequence,
) -> None:
    """Store one embedded batch of a document's pages in a single atomic commit."""
    store.add_pages(
        doc_id,
        [
            PageInput(page.page, vecs, page.text, page.width, page.height, page.text_source)
            for page, vecs in zip(pages, vectors, strict=True)
        ],
    )


def ingest_file(
    store: MultiVectorStore,
    embedder: PageEmbedder,
    path: Path,
    *,
    dpi: int = 144,
    max_pixels: int = 4_000_000,
    batch_size: int = 4,
    tags: Sequence[str] = (),
    ocr: OcrOptions | None = None,
) -> IngestPlan:
    """Index one file in this process, page batch by page batch (resumable after a crash).

    ``ocr`` (default: OCR when Tesseract is installed) reads pages without a text layer.
    """
    ocr = (ocr or OcrOptions()).resolved()
    store.bind_model(embedder.info)
    plan = plan_ingest(store, inspect_source(path), tags)
    if plan.action is Action.DUPLICATE:
        return plan
    if plan.action is Action.INDEX:
        store.begin_document(plan.record)
        source = plan.source
        for first in range(plan.resume_from, source.page_count + 1, batch_size):
            last = min(first + batch_size - 1, source.page_count)
            pages = render_pages(source.path, source.kind, first, last, dpi, max_pixels, ocr)
            vectors = embedder.embed_images([page.image for page in pages])
            store_pages(store, plan.record.doc_id, pages, vectors)
            log_ocr_failures(source.path, pages)
    if plan.action is Action.INDEX or plan.replaces:
        store.finish_document(plan.record.doc_id, replaces=plan.replaces)
    return plan
