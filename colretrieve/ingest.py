"""Deciding what ingest does with a file, and storing its embedded pages.

Shared by the sequential Python API (``Index.add_document``) and the bulk, multi-process
pipeline in ``indexer/``: both plan with ``plan_file`` and write with ``DocumentWriter``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from colretrieve.contracts import DocumentCatalog, DocumentRecord
from colretrieve.ocr import OcrOptions, log_ocr_failures
from colretrieve.rasterize import RenderedPage, SourceInfo, inspect_source, render_pages

if TYPE_CHECKING:
    from colretrieve.channels.writers import ChannelWriter


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


def plan_ingest(store: DocumentCatalog, source: SourceInfo, tags: Sequence[str] = ()) -> IngestPlan:
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


@dataclass(frozen=True)
class FilePlan:
    """What ingest does with one file across every channel being written."""

    source: SourceInfo
    record: DocumentRecord
    channels: dict[str, IngestPlan]
    """The plan of each channel, from that channel's own store."""

    @property
    def action(self) -> Action:
        actions = {plan.action for plan in self.channels.values()}
        # Content indexed under another path stays there, for every channel: one document,
        # one path. Re-index that path to fill in a channel added since.
        for action in (Action.DUPLICATE, Action.INDEX):
            if action in actions:
                return action
        return Action.UNCHANGED

    @property
    def duplicate_of(self) -> str:
        return next((p.duplicate_of for p in self.channels.values() if p.duplicate_of), "")

    @property
    def resume_from(self) -> int:
        """The first page some channel still needs (past the end when none does)."""
        starts = [p.resume_from for p in self.channels.values() if p.action is Action.INDEX]
        return min(starts, default=self.source.page_count + 1)

    @property
    def pages_to_embed(self) -> int:
        if self.action is not Action.INDEX:
            return 0
        return self.source.page_count - self.resume_from + 1

    def needs_images(self, writers: dict[str, ChannelWriter], last_page: int) -> bool:
        """Whether pages up to ``last_page`` must be rasterized for some channel."""
        return any(
            writers[name].needs_images and plan.resume_from <= last_page
            for name, plan in self.channels.items()
            if plan.action is Action.INDEX
        )


def plan_file(
    writers: dict[str, ChannelWriter], source: SourceInfo, tags: Sequence[str] = ()
) -> FilePlan:
    """Plan ``source`` against every channel's store."""
    plans = {name: plan_ingest(writer.store, source, tags) for name, writer in writers.items()}
    return FilePlan(source, document_record(source, tags), plans)


class DocumentWriter:
    """Feeds one file's page batches, in page order, to every channel that needs them.

    Each channel begins the document before its first batch, stores each batch in one
    commit, and finishes the document (deleting the versions it replaces) with its last
    page, so every channel is resumable on its own after a crash.
    """

    def __init__(self, plan: FilePlan, writers: dict[str, ChannelWriter]) -> None:
        self.plan = plan
        self.writers = writers
        self._begun: set[str] = set()
        self._pending = {name for name, p in plan.channels.items() if p.action is Action.INDEX}

    @property
    def finished(self) -> bool:
        return not self._pending

    def start(self) -> None:
        """Settle what needs no pages: stale older versions of unchanged files, and
        channels whose pages were all stored by an interrupted run."""
        for name, channel_plan in self.plan.channels.items():
            if channel_plan.action is Action.UNCHANGED and channel_plan.replaces:
                self.writers[name].store.finish_document(
                    self.plan.record.doc_id, replaces=channel_plan.replaces
                )
            elif name in self._pending and channel_plan.resume_from > self.plan.source.page_count:
                self._finish(name)

    def write(self, pages: Sequence[RenderedPage]) -> None:
        doc_id = self.plan.record.doc_id
        for name in sorted(self._pending):
            channel_plan = self.plan.channels[name]
            wanted = [page for page in pages if page.page >= channel_plan.resume_from]
            if not wanted:
                continue
            self._begin(name)
            self.writers[name].write(doc_id, wanted)
            if wanted[-1].page == self.plan.source.page_count:
                self._finish(name)

    def _begin(self, name: str) -> None:
        if name not in self._begun:
            self.writers[name].store.begin_document(self.plan.record)
            self._begun.add(name)

    def _finish(self, name: str) -> None:
        self._begin(name)
        self.writers[name].store.finish_document(
            self.plan.record.doc_id, replaces=self.plan.channels[name].replaces
        )
        self._pending.discard(name)


def ingest_file(
    writers: dict[str, ChannelWriter],
    path: Path,
    *,
    dpi: int = 144,
    max_pixels: int = 4_000_000,
    batch_size: int = 4,
    tags: Sequence[str] = (),
    ocr: OcrOptions | None = None,
) -> FilePlan:
    """Index one file into every channel of ``writers``, in this process, batch by batch
    (resumable after a crash).

    ``ocr`` (default: OCR when Tesseract is installed) reads pages without a text layer.
    """
    ocr = (ocr or OcrOptions()).resolved()
    for writer in writers.values():
        writer.bind()
    plan = plan_file(writers, inspect_source(path), tags)
    if plan.action is Action.DUPLICATE:
        return plan
    document = DocumentWriter(plan, writers)
    document.start()
    source = plan.source
    for first in range(plan.resume_from, source.page_count + 1, batch_size):
        last = min(first + batch_size - 1, source.page_count)
        images = plan.needs_images(writers, last)
        pages = render_pages(source.path, source.kind, first, last, dpi, max_pixels, ocr, images)
        document.write(pages)
        log_ocr_failures(source.path, pages)
    return plan
