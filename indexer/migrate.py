"""``colretrieve migrate``: copy an index between stores without re-embedding.

Pages, multi-vectors and metadata are read through the store contract and written in
batches, so any pair of backends works (embedded folder -> Qdrant and back). A killed run is
finished by the next one: documents already complete at the destination are skipped, a
half-copied one resumes at its next page (``begin_document`` reports how many are stored,
and Qdrant point ids derive from (document, page), so nothing is doubled). The run ends by
checking counts and that sampled stored pages, used as queries, get identical top-k.

Locations: a folder is an embedded index; ``qdrant://HOST[:PORT]/COLLECTION`` a Qdrant
server over http (``qdrants://`` for https); ``qdrant-local://FOLDER/COLLECTION`` Qdrant's
local mode (tests, tiny indexes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from colretrieve.contracts import (
    DocumentInfo,
    DocumentRecord,
    MultiVectorStore,
    PageInput,
    SearchFilter,
)
from colretrieve.errors import ColretrieveError, InvalidInputError
from colretrieve.settings import Settings

DEFAULT_QDRANT_PORT = 6333


class MigrationMismatchError(ColretrieveError):
    """The destination does not answer like the source after a migration."""

    code = "migration_mismatch"

    def __init__(self, problems: Sequence[str]) -> None:
        shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if problems[5:] else "")
        super().__init__(
            f"migration verification failed: {shown}. Re-run the same command to finish an "
            "interrupted copy; if counts agree but rankings differ, raise "
            "COLRETRIEVE_QDRANT_PREFETCH_LIMIT so the first stage hands every page to the rerank"
        )
        self.problems = list(problems)


@dataclass(frozen=True)
class Location:
    """Where an index lives: ``kind`` is "embedded" or "qdrant"."""

    kind: str
    path: Path | None = None
    url: str | None = None
    collection: str | None = None

    def __str__(self) -> str:
        if self.kind == "embedded":
            return str(self.path)
        where = self.url or f"local {self.path}"
        return f"qdrant {where} collection {self.collection}"


def parse_location(text: str) -> Location:
    """A folder, ``qdrant[s]://HOST[:PORT]/COLLECTION`` or ``qdrant-local://FOLDER/COLLECTION``."""
    for scheme, http in (("qdrant://", "http"), ("qdrants://", "https")):
        if text.startswith(scheme):
            host, _, collection = text[len(scheme) :].partition("/")
            if not host or not collection or "/" in collection.strip("/"):
                raise InvalidInputError(f"expected {scheme}HOST[:PORT]/COLLECTION; got {text!r}")
            if ":" not in host:
                host = f"{host}:{DEFAULT_QDRANT_PORT}"
            return Location("qdrant", url=f"{http}://{host}", collection=collection.strip("/"))
    if text.startswith("qdrant-local://"):
        folder, _, collection = text[len("qdrant-local://") :].rstrip("/").rpartition("/")
        if not folder or not collection:
            raise InvalidInputError(f"expected qdrant-local://FOLDER/COLLECTION; got {text!r}")
        return Location("qdrant", path=Path(folder), collection=collection)
    if "://" in text:
        raise InvalidInputError(
            f"unknown index location {text!r}: give a folder, qdrant://HOST:PORT/COLLECTION, "
            "qdrants://HOST:PORT/COLLECTION or qdrant-local://FOLDER/COLLECTION"
        )
    return Location("embedded", path=Path(text))


def open_location(
    location: Location, settings: Settings, *, create: bool = False, read_only: bool = False
) -> MultiVectorStore:
    """Open ``location``; Qdrant connection options (API key, TLS, ...) come from settings."""
    from colretrieve.store import open_configured

    if location.kind == "embedded":
        update = {"store": "embedded", "index": location.path}
    else:
        update = {
            "store": "qdrant",
            "qdrant_url": location.url,
            "qdrant_path": None if location.path is None else str(location.path),
            "qdrant_collection": location.collection,
        }
    return open_configured(settings.model_copy(update=update), create=create, read_only=read_only)


class MigrateListener(Protocol):
    def planned(self, documents: int, pages: int) -> None: ...
    def pages_done(self, count: int) -> None: ...


class _Silent:
    def planned(self, documents: int, pages: int) -> None:
        pass

    def pages_done(self, count: int) -> None:
        pass


@dataclass
class MigrationReport:
    documents: int = 0
    """Complete source documents (the ones copied)."""
    copied: int = 0
    resumed: int = 0
    already_there: int = 0
    incomplete_in_source: int = 0
    """Half-ingested source documents, not copied (finish them with `colretrieve index`)."""
    pages_copied: int = 0
    queries_verified: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def pages_per_second(self) -> float:
        return self.pages_copied / self.seconds if self.seconds else 0.0


def migrate(
    source: MultiVectorStore,
    dest: MultiVectorStore,
    *,
    batch_pages: int = 16,
    verify_queries: int = 8,
    k: int = 10,
    seed: int = 0,
    listener: MigrateListener | None = None,
) -> MigrationReport:
    """Copy every complete document of ``source`` into ``dest``, then verify.

    Raises MigrationMismatchError if the verification finds a difference.
    """
    if batch_pages < 1:
        raise InvalidInputError(f"batch_pages must be >= 1; got {batch_pages}")
    started = time.perf_counter()
    listener = listener or _Silent()
    report = MigrationReport()
    model = source.model
    if model is None:
        raise InvalidInputError("the source index is empty: nothing to migrate")
    dest.bind_model(model)  # ModelMismatchError if dest holds another model's vectors
    everything = source.documents()
    docs = [d for d in everything if d.complete]
    report.documents = len(docs)
    report.incomplete_in_source = len(everything) - len(docs)
    source_ids = {d.doc_id for d in docs}
    todo: list[tuple[DocumentInfo, DocumentInfo | None]] = []
    for doc in docs:
        there = dest.get_document(doc.doc_id)
        if there is not None and there.complete:
            report.already_there += 1
        else:
            todo.append((doc, there))
    listener.planned(len(todo), sum(d.total_pages - (t.stored_pages if t else 0) for d, t in todo))
    for doc, _ in todo:
        record = DocumentRecord(
            doc.doc_id, doc.path, doc.title, doc.size_bytes, doc.total_pages, doc.tags
        )
        stored = dest.begin_document(record)
        report.resumed += stored > 0
        report.copied += stored == 0
        for first in range(stored + 1, doc.total_pages + 1, batch_pages):
            last = min(first + batch_pages - 1, doc.total_pages)
            dest.add_pages(
                doc.doc_id, [_page(source, doc.doc_id, n) for n in range(first, last + 1)]
            )
            report.pages_copied += last - first + 1
            listener.pages_done(last - first + 1)
        # An older version of this file at the destination that the source no longer has.
        stale = [
            d.doc_id
            for d in dest.find_by_path(doc.path)
            if d.doc_id != doc.doc_id and d.doc_id not in source_ids
        ]
        dest.finish_document(doc.doc_id, replaces=stale)
    report.problems = verify(source, dest, docs, verify_queries, k, seed)
    report.queries_verified = min(verify_queries, sum(d.total_pages for d in docs))
    report.seconds = time.perf_counter() - started
    if report.problems:
        raise MigrationMismatchError(report.problems)
    return report


def _page(source: MultiVectorStore, doc_id: str, page: int) -> PageInput:
    info = source.get_page(doc_id, page)
    if info is None:
        raise InvalidInputError(f"source document {doc_id} has no stored page {page}")
    return PageInput(
        page=page,
        vectors=source.page_vectors(doc_id, page),
        text=info.text,
        width=info.width,
        height=info.height,
        text_source=info.text_source,
    )


def verify(
    source: MultiVectorStore,
    dest: MultiVectorStore,
    docs: list[DocumentInfo],
    queries: int,
    k: int,
    seed: int,
) -> list[str]:
    """Problems found: per-document counts, then top-k of sampled stored pages as queries."""
    problems = []
    for doc in docs:
        there = dest.get_document(doc.doc_id)
        if there is None or not there.complete:
            problems.append(f"{doc.path} ({doc.doc_id[:12]}) is missing or incomplete")
        elif (there.stored_pages, there.path, there.tags) != (doc.stored_pages, doc.path, doc.tags):
            problems.append(f"{doc.path} ({doc.doc_id[:12]}) differs in pages, path or tags")
    if problems or not docs:
        return problems
    ids = frozenset(d.doc_id for d in docs)
    extra = {d.doc_id for d in dest.documents() if d.complete} - ids
    # Only the source's documents take part if the destination also holds others.
    search_filter = SearchFilter(doc_ids=ids) if extra else None
    rng = np.random.default_rng(seed)
    pages = [(d.doc_id, n) for d in docs for n in range(1, d.total_pages + 1)]
    for i in rng.permutation(len(pages))[:queries]:
        doc_id, page = pages[int(i)]
        query = source.page_vectors(doc_id, page)[:32]
        want = source.search(query, k, search_filter)
        got = dest.search(query, k, search_filter)
        same = [(h.doc_id, h.page) for h in want] == [(h.doc_id, h.page) for h in got]
        if not same or not np.allclose(
            [h.score for h in want], [h.score for h in got], atol=1e-3, rtol=1e-4
        ):
            problems.append(f"top-{k} differs for the query made of page {page} of {doc_id[:12]}")
    return problems


def report_dict(report: MigrationReport) -> dict[str, object]:
    return {
        "documents": report.documents,
        "copied": report.copied,
        "resumed": report.resumed,
        "already_there": report.already_there,
        "incomplete_in_source": report.incomplete_in_source,
        "pages_copied": report.pages_copied,
        "pages_per_second": round(report.pages_per_second, 2),
        "queries_verified": report.queries_verified,
        "seconds": round(report.seconds, 2),
    }


def run_migrate(
    source_text: str, dest_text: str, settings: Settings, batch_pages: int, verify_queries: int
) -> MigrationReport:
    """The CLI's migrate: open both ends, copy with a progress bar, print the outcome."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from indexer.console import console

    source_at, dest_at = parse_location(source_text), parse_location(dest_text)
    if source_at == dest_at:
        raise InvalidInputError("--from and --to name the same index")
    source = open_location(source_at, settings, read_only=True)
    try:
        dest = open_location(dest_at, settings, create=True)
        try:
            progress = Progress(
                TextColumn("[bold]copying pages"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )
            task = progress.add_task("pages", total=None)

            class Listener:
                def planned(self, documents: int, pages: int) -> None:
                    progress.update(task, total=pages)
                    console.print(f"{source_at} -> {dest_at}: {documents} documents to copy")

                def pages_done(self, count: int) -> None:
                    progress.advance(task, count)

            with progress:
                report = migrate(
                    source,
                    dest,
                    batch_pages=batch_pages,
                    verify_queries=verify_queries,
                    listener=Listener(),
                )
        finally:
            dest.close()
    finally:
        source.close()
    console.print(
        f"copied {report.copied} documents, resumed {report.resumed}, "
        f"{report.already_there} already there; {report.pages_copied} pages in "
        f"{report.seconds:.1f} s ({report.pages_per_second:.1f} pages/s); verified counts and "
        f"top-10 of {report.queries_verified} sampled pages"
    )
    if report.incomplete_in_source:
        console.print(
            f"[yellow]{report.incomplete_in_source} half-ingested source documents were not "
            "copied; finish them with `colretrieve index` and migrate again"
        )
    return report
