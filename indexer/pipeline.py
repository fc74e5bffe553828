"""Bulk ingest: files -> pages (worker processes) -> multi-vectors (the model) -> the store.

Every file ends with an outcome in the report: indexed, unchanged, duplicate or skipped with
its reason. Pages are committed one embedding batch at a time, so a run killed at any moment
is finished by the next one with no page lost or doubled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Protocol

from colretrieve.contracts import MultiVectorStore, PageEmbedder
from colretrieve.ingest import Action, IngestPlan, plan_ingest, store_pages
from colretrieve.ocr import OcrOptions, log_ocr_failures
from colretrieve.rasterize import RenderedPage
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
    store: MultiVectorStore,
    embedder: PageEmbedder,
    options: IngestOptions = IngestOptions(),
    listener: IngestListener | None = None,
) -> IngestReport:
    """Index every PDF and page image under ``paths`` into ``store``."""
    started = time.perf_counter()
    listener = listener or _Silent()
    report = IngestReport()
    options = replace(options, ocr=options.ocr.resolved())  # OcrUnavailableError if required

    def record(outcome: FileOutcome) -> None:
        report.outcomes.append(outcome)
        listener.file_done(outcome)

    store.bind_model(embedder.info)
    files, missing = discover_inputs(paths)
    for item in missing:
        record(FileOutcome(item.path, Status.SKIPPED, reason=item.reason))
    pool = RenderPool(options.worker_count())
    try:
        plans = _plan(pool, store, files, options, record)
        listener.planned(len(files), sum(plan.pages_to_embed for plan in plans))
        run = _EmbedRun(store, embedder, options, listener, record)
        report.pages_embedded = run.consume(
            ordered_map(pool, render, _render_tasks(plans, options), window=2 * pool.workers + 2)
        )
    finally:
        pool.shutdown()
    if report.pages_embedded or report.with_status(Status.INDEXED):
        store.compact()  # merge this run's small per-batch segments and drop replaced pages
    report.seconds = time.perf_counter() - started
    return report


def _plan(pool, store, files, options, record) -> list[IngestPlan]:
    """Probe every file (in the workers) and decide what to do with it."""
    plans: list[IngestPlan] = []
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
        plan = plan_ingest(store, result.source, options.tags)
        first_path = planned_ids.setdefault(plan.record.doc_id, path)
        if plan.action is Action.INDEX and first_path != path:
            record(FileOutcome(path, Status.DUPLICATE, reason=f"same content as {first_path}"))
        elif plan.action is Action.DUPLICATE:
            record(
                FileOutcome(path, Status.DUPLICATE, reason=f"same content as {plan.duplicate_of}")
            )
        elif plan.action is Action.UNCHANGED:
            if plan.replaces:  # a stale older version survived an interrupted run
                store.finish_document(plan.record.doc_id, replaces=plan.replaces)
            record(FileOutcome(path, Status.UNCHANGED, pages=plan.source.page_count))
        else:
            plans.append(plan)
    return plans


def _render_tasks(
    plans: Sequence[IngestPlan], options: IngestOptions
) -> Iterator[tuple[IngestPlan, tuple]]:
    """Chunks of each plan's remaining pages, in order, as (plan, render arguments)."""
    step = options.batch_size
    for plan in plans:
        source = plan.source
        for first in range(plan.resume_from, source.page_count + 1, step):
            last = min(first + step - 1, source.page_count)
            args = (source.path, source.kind, first, last, options.dpi, options.max_pixels)
            yield plan, (*args, options.ocr)


class _EmbedRun:
    """Consumes rendered chunks in order: embeds, stores, finishes or fails each document."""

    def __init__(self, store, embedder, options, listener, record) -> None:
        self.store = store
        self.embedder = embedder
        self.batch_size = options.batch_size
        self.listener = listener
        self.record = record
        self.failed: set[str] = set()
        self.begun: set[str] = set()
        self.embedded = 0

    def consume(self, chunks: Iterator[tuple[IngestPlan, RenderResult | None]]) -> int:
        for plan, result in chunks:
            doc_id = plan.record.doc_id
            if doc_id in self.failed:
                continue  # later chunks of a file that already failed
            if result is None or result.error:
                self._fail(plan, result.error if result else RENDERER_CRASHED)
                continue
            try:
                self._store(plan, result.pages)
            except Exception as error:  # one bad file must not end a bulk run
                self._fail(plan, f"embedding failed: {error!r}")
                continue
            if result.pages and result.pages[-1].page == plan.source.page_count:
                self.store.finish_document(doc_id, replaces=plan.replaces)
                self.record(FileOutcome(plan.source.path, Status.INDEXED, plan.source.page_count))
        return self.embedded

    def _store(self, plan: IngestPlan, pages: list[RenderedPage]) -> None:
        doc_id = plan.record.doc_id
        if doc_id not in self.begun:
            self.store.begin_document(plan.record)
            self.begun.add(doc_id)
        vectors = self.embedder.embed_images([page.image for page in pages])
        store_pages(self.store, doc_id, pages, vectors)
        log_ocr_failures(plan.source.path, pages)
        self.embedded += len(pages)
        self.listener.pages_done(len(pages))

    def _fail(self, plan: IngestPlan, reason: str) -> None:
        # Pages already committed stay, invisible to search, and a re-run resumes after them.
        self.failed.add(plan.record.doc_id)
        self.record(FileOutcome(plan.source.path, Status.SKIPPED, reason=reason))
