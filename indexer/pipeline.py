"""Bulk ingest: files -> pages (worker processes) -> every channel's writer -> its store.

Every file ends with an outcome in the report: indexed, unchanged, duplicate or skipped with
its reason. Pages are committed one batch at a time per channel, so a run killed at any
moment is finished by the next one with no page lost or doubled. Pages are rasterized only
when a channel that looks at images (visual) still needs them; the text channels read the
text layer alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Protocol

from colretrieve.channels.writers import ChannelWriter
from colretrieve.ingest import Action, DocumentWriter, FilePlan, plan_file
from colretrieve.ocr import OcrOptions, log_ocr_failures
from colretrieve.settings import Settings
from indexer.discover import discover_inputs
from indexer.ordered import ordered_map
from indexer.workers import RENDERER_CRASHED, RenderPool, RenderResult, probe, render

EXIT_OK = 0
EXIT_SKIPPED = 3


class Status(Enum):
    INDEXED = "indexed"
    UNCHANGED = "unchanged"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class FileOutcome:
    path: Path
    status: Status
    pages: int = 0
    reason: str = ""
    channels: tuple[str, ...] = ()
    """Channels this run wrote the file into (indexed files only)."""


@dataclass(frozen=True)
class IngestOptions:
    dpi: int = 144
    max_pixels: int = 4_000_000
    batch_size: int = 4
    workers: int = 0
    """Rasterizing processes; 0 = one per spare core (at least 1, at most 4)."""
    tags: tuple[str, ...] = ()
    ocr: OcrOptions = field(default_factory=OcrOptions)
    """OCR of pages without a text layer (default: when Tesseract is installed)."""

    @classmethod
    def from_settings(cls, settings: Settings, tags: Sequence[str] = ()) -> IngestOptions:
        return cls(
            dpi=settings.dpi,
            max_pixels=settings.max_page_pixels,
            batch_size=settings.batch_size,
            workers=settings.workers,
            tags=tuple(tags),
            ocr=OcrOptions.from_settings(settings),
        )

    def worker_count(self) -> int:
        if self.workers:
            return self.workers
        return max(1, min(4, (os.cpu_count() or 2) - 1))


@dataclass
class IngestReport:
    outcomes: list[FileOutcome] = field(default_factory=list)
    pages_embedded: int = 0
    seconds: float = 0.0

    def with_status(self, status: Status) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status is status]

    @property
    def exit_code(self) -> int:
        return EXIT_SKIPPED if self.with_status(Status.SKIPPED) else EXIT_OK

    def to_dict(self) -> dict:
        return {
            "files": [
                {
                    "path": str(o.path),
                    "status": o.status.value,
                    "pages": o.pages,
                    "reason": o.reason,
                    "channels": list(o.channels),
                }
                for o in self.outcomes
            ],
            "pages_embedded": self.pages_embedded,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
        }


class IngestListener(Protocol):
    def planned(self, files: int, pages: int) -> None: ...
    def pages_done(self, count: int) -> None: ...
    def file_done(self, outcome: FileOutcome) -> None: ...


class _Silent:
    def planned(self, files: int, pages: int) -> None:
        pass

    def pages_done(self, count: int) -> None:
        pass

    def file_done(self, outcome: FileOutcome) -> None:
        pass


def ingest(
    paths: Sequence[Path],
    writers: dict[str, ChannelWriter],
    options: IngestOptions = IngestOptions(),
    listener: IngestListener | None = None,
) -> IngestReport:
    """Index every PDF and page image under ``paths`` into every channel of ``writers``."""
    started = time.perf_counter()
    listener = listener or _Silent()
    report = IngestReport()
    options = replace(options, ocr=options.ocr.resolved())  # OcrUnavailableError if required

    def record(outcome: FileOutcome) -> None:
        report.outcomes.append(outcome)
        listener.file_done(outcome)

    for writer in writers.values():
        writer.bind()
    files, missing = discover_inputs(paths)
    for item in missing:
        record(FileOutcome(item.path, Status.SKIPPED, reason=item.reason))
    pool = RenderPool(options.worker_count())
    try:
        documents = _plan(pool, writers, files, options, record)
        listener.planned(len(files), sum(d.plan.pages_to_embed for d in documents))
        run = _EmbedRun(listener, record)
        tasks = _render_tasks(documents, writers, options)
        report.pages_embedded = run.consume(
            ordered_map(pool, render, tasks, window=2 * pool.workers + 2)
        )
    finally:
        pool.shutdown()
    if report.pages_embedded or report.with_status(Status.INDEXED):
        for writer in writers.values():  # merge small per-batch segments, drop replaced pages
            writer.store.compact()
    report.seconds = time.perf_counter() - started
    return report


def _plan(pool, writers, files, options, record) -> list[DocumentWriter]:
    """Probe every file (in the workers) and decide what to do with it; return a writer
    for each file with pages to process."""
    documents: list[DocumentWriter] = []
    planned_ids: dict[str, Path] = {}
    tasks = ((path, (path,)) for path in files)
    for path, result in ordered_map(pool, probe, tasks, window=4 * pool.workers):
        if result is None or result.error:
            record(
                FileOutcome(
                    path, Status.SKIPPED, reason=result.error if result else RENDERER_CRASHED
                )
            )
            continue
        plan = plan_file(writers, result.source, options.tags)
        first_path = planned_ids.setdefault(plan.record.doc_id, path)
        if plan.action is Action.INDEX and first_path != path:
            record(FileOutcome(path, Status.DUPLICATE, reason=f"same content as {first_path}"))
        elif plan.action is Action.DUPLICATE:
            record(
                FileOutcome(path, Status.DUPLICATE, reason=f"same content as {plan.duplicate_of}")
            )
        else:
            document = DocumentWriter(plan, writers)
            document.start()  # settles stale versions and fully stored, unfinished channels
            if plan.action is Action.UNCHANGED or document.finished:
                status = Status.UNCHANGED if plan.action is Action.UNCHANGED else Status.INDEXED
                record(FileOutcome(path, status, pages=plan.source.page_count))
            else:
                documents.append(document)
    return documents


def _render_tasks(
    documents: Sequence[DocumentWriter],
    writers: dict[str, ChannelWriter],
    options: IngestOptions,
) -> Iterator[tuple[DocumentWriter, tuple]]:
    """Chunks of each file's remaining pages, in order, as (its writer, render arguments)."""
    step = options.batch_size
    for document in documents:
        plan = document.plan
        source = plan.source
        for first in range(plan.resume_from, source.page_count + 1, step):
            last = min(first + step - 1, source.page_count)
            images = plan.needs_images(writers, last)
            args = (source.path, source.kind, first, last, options.dpi, options.max_pixels)
            args = (*args, options.ocr, images)
            yield document, args


class _EmbedRun:
    """Consumes rendered chunks in order: writes each to its file's channels, finishes or
    fails each document."""

    def __init__(self, listener, record) -> None:
        self.listener = listener
        self.record = record
        self.failed: set[str] = set()
        self.embedded = 0

    def consume(self, chunks: Iterator[tuple[DocumentWriter, RenderResult | None]]) -> int:
        for document, result in chunks:
            plan = document.plan
            if plan.record.doc_id in self.failed:
                continue  # later chunks of a file that already failed
            if result is None or result.error:
                self._fail(plan, result.error if result else RENDERER_CRASHED)
                continue
            try:
                document.write(result.pages)
                log_ocr_failures(plan.source.path, result.pages)
            except Exception as error:  # one bad file must not end a bulk run
                self._fail(plan, f"embedding failed: {error!r}")
                continue
            self.embedded += len(result.pages)
            self.listener.pages_done(len(result.pages))
            if document.finished:
                channels = tuple(
                    name for name, p in plan.channels.items() if p.action is Action.INDEX
                )
                self.record(
                    FileOutcome(
                        plan.source.path,
                        Status.INDEXED,
                        plan.source.page_count,
                        channels=channels,
                    )
                )
        return self.embedded

    def _fail(self, plan: FilePlan, reason: str) -> None:
        # Pages already committed stay, invisible to search, and a re-run resumes after them.
        self.failed.add(plan.record.doc_id)
        self.record(FileOutcome(plan.source.path, Status.SKIPPED, reason=reason))
