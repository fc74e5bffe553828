"""The embedded default store: one folder, no server, crash-safe.

Layout of an index folder::

    index.sqlite (+ -wal, -shm)   catalog: meta, documents, pages, segments
    segments/seg-000001.npy ...   immutable float16 (rows, dim) vector files
    write.lock                    flock'ed by the single writer

One writer at a time holds ``write.lock``; a second writer gets IndexLockedError. Any number
of readers (``read_only=True``) may open alongside it and see the last commit. Every write
is one SQLite transaction; vectors reach disk (fsynced, renamed) before the rows that point
at them commit, so after a crash the store holds exactly the calls that returned, and
segment files no committed row mentions are deleted on the next writable open.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self, TypeVar

import numpy as np

from colretrieve.contracts import (
    DocumentRecord,
    IndexStats,
    ModelInfo,
    PageInfo,
    PageInput,
    SearchFilter,
    SearchHit,
)
from colretrieve.errors import (
    DocumentNotFoundError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidInputError,
    ModelMismatchError,
)
from colretrieve.store import rows, schema
from colretrieve.store.base import StoreBase, check_document, check_pages, check_replaces
from colretrieve.store.compaction import CompactionReport, compact_segments, plan
from colretrieve.store.fast import (
    FirstStage,
    SearchOptions,
    build_first_stage,
    search_fast,
    stage_from_postings,
)
from colretrieve.store.folder import DocumentReads, acquire_lock, folder_bytes, serialised
from colretrieve.store.schema import snapshot, transaction
from colretrieve.store.search import Catalog, load_catalog, search_catalog
from colretrieve.store.segments import (
    SEGMENT_DTYPE,
    SegmentReader,
    check_checksum,
    check_size,
    fsync_dir,
    segment_id_from_name,
    to_segment_dtype,
    write_segment,
)
from colretrieve.store.sketch import (
    Codebook,
    FileRecord,
    Postings,
    is_derived_file,
    read_codebook,
    read_postings,
    read_sketch,
)
from colretrieve.store.sketch_build import (
    current_codebook,
    current_postings,
    referenced_files,
    refresh_first_stage,
    sketch_records,
)

SEGMENTS_DIR = "segments"
LOCK_NAME = "write.lock"
T = TypeVar("T")
HALF_MAX = float(np.finfo(np.float16).max)


class EmbeddedStore(DocumentReads, StoreBase):
    """A MultiVectorStore in a local folder: SQLite catalog plus memory-mapped segments.

    Safe to share between threads (connection use is serialised; scoring runs unlocked).
    """

    def __init__(
        self,
        root: Path,
        connection: sqlite3.Connection,
        lock_fd: int | None,
        search_options: SearchOptions | None = None,
    ) -> None:
        # Use EmbeddedStore.open(); this only wires the parts together.
        self.root = root
        self.search_options = search_options or SearchOptions()
        """How searches run (fast or exact, candidate depth); may be replaced at any time."""
        self._connection = connection
        self._lock_fd = lock_fd
        self._lock = threading.RLock()
        self._segments = root / SEGMENTS_DIR
        self._reader = SegmentReader(self._segments)
        self._generation = 0  # bumped by our own commits; data_version covers others'
        # (data version, catalog, first stage, whether the first stage was loaded)
        self._catalog: tuple[tuple[int, int], Catalog, FirstStage | None, bool] | None = None
        self._codebooks: dict[tuple[int, FileRecord], Codebook] = {}
        self._sketches: dict[FileRecord, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._postings: tuple[FileRecord, Postings] | None = None
        self._next_segment_id = 1

    @classmethod
    def open(
        cls,
        path: Path | str,
        create: bool = False,
        read_only: bool = False,
        search: SearchOptions | None = None,
    ) -> Self:
        """Open the index at ``path``; with ``create``, make it if absent.

        ``search`` picks fast (default) or exact search and the fast path's knobs.

        A writable open takes the writer lock (IndexLockedError if another process holds
        it), deletes segment files no commit refers to (left by a crash) and checks that
        every committed segment file has its recorded size. Read-only opens take no lock
        and see the writer's last commit. No vectors are read: each segment is checksummed
        and memory-mapped on first use.
        """
        root = Path(path)
        if create and read_only:
            raise InvalidInputError("a read-only open cannot create an index")
        database = root / schema.DATABASE_NAME
        if not database.exists() and not create:
            raise IndexNotFoundError(root)
        if not read_only:
            (root / SEGMENTS_DIR).mkdir(parents=True, exist_ok=True)
        lock_fd = None if read_only else acquire_lock(root, LOCK_NAME)
        connection = None
        try:
            connection = schema.connect(database, read_only)
            if not read_only:
                schema.initialise(connection)
            elif not schema.has_schema(connection):
                raise IndexNotFoundError(root)
            schema.check_format(connection, root)
            store = cls(root, connection, lock_fd, search)
            if not read_only:
                store._remove_orphans()
            for record in rows.all_segments(connection):
                check_size(store._segments, record)
        except BaseException:
            if connection is not None:
                connection.close()
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return store

    @property
    def read_only(self) -> bool:
        return self._lock_fd is None

    @serialised
    def close(self) -> None:
        self._reader.forget()
        self._catalog = None
        self._sketches.clear()
        self._postings = None
        self._connection.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # -- writer bookkeeping ------------------------------------------------------------

    def _remove_orphans(self) -> None:
        """Delete segment files no committed row refers to (a crash between write and commit)."""
        referenced = {record.file for record in rows.all_segments(self._connection)}
        highest = int(schema.get_meta(self._connection, "next_segment_id") or 1) - 1
        removed = self._remove_unreferenced_derived()
        for name in os.listdir(self._segments):
            segment_id = segment_id_from_name(name)
            if segment_id is None:
                continue
            highest = max(highest, segment_id)
            if name not in referenced:
                (self._segments / name).unlink()
                removed = True
        if removed:
            fsync_dir(self._segments)
        self._next_segment_id = highest + 1

    def _remove_unreferenced_derived(self) -> bool:
        """Delete codebook and sketch files no commit refers to; say whether any went."""
        referenced = referenced_files(self._connection)
        removed = False
        for name in os.listdir(self._segments):
            if is_derived_file(name) and name not in referenced:
                (self._segments / name).unlink()
                removed = True
        return removed

    def _allocate_segment_id(self) -> int:
        segment_id = self._next_segment_id
        self._next_segment_id += 1
        return segment_id

    def _writer(self) -> sqlite3.Connection:
        if self.read_only:
            raise InvalidInputError("this store was opened read-only")
        return self._connection

    @serialised
    def _data_version(self) -> tuple[int, int]:
        row = self._connection.execute("PRAGMA data_version").fetchone()
        return int(row[0]), self._generation

    # -- model -------------------------------------------------------------------------

    @property
    def model(self) -> ModelInfo | None:
        with self._lock:
            return schema.load_model(self._connection)

    @serialised
    def bind_model(self, model: ModelInfo) -> None:
        """Record ``model`` on first use; refuse one from another embedding space."""
        connection = self._writer()
        if not isinstance(model, ModelInfo) or model.dim < 1:
            raise InvalidInputError(f"bind_model needs a ModelInfo with dim >= 1; got {model!r}")
        with transaction(connection):
            stored = schema.load_model(connection)
            if stored is None:
                schema.set_meta(connection, "model", json.dumps(model.to_dict()))
            elif not stored.same_embedding_space(model):
                raise ModelMismatchError(stored.label, model.label)
        self._generation += 1

    # -- writes ------------------------------------------------------------------------

    @serialised
    def begin_document(self, doc: DocumentRecord) -> int:
        """Register ``doc`` as incomplete; if it exists (same content), change nothing and
        return its stored page count, so ingest resumes at the next page."""
        connection = self._writer()
        check_document(doc)
        with transaction(connection):
            stored = rows.stored_pages(connection, doc.doc_id)
            if stored is None:
                rows.insert_document(connection, doc)
        self._generation += 1
        return stored or 0

    @serialised
    def add_pages(self, doc_id: str, pages: Sequence[PageInput]) -> None:
        """Store the next pages of a begun document: one new segment file, one commit."""
        connection = self._writer()
        model = schema.load_model(connection)
        if model is None:
            raise InvalidInputError("bind a model (bind_model) before adding pages")
        total_pages, next_page = rows.open_document(connection, doc_id)
        pages = list(pages)
        if not pages:
            return
        arrays = check_pages(pages, next_page, total_pages, model.dim)
        # One float16 block, each page cast straight into it (no per-page copies).
        block = np.empty((sum(len(a) for a in arrays), model.dim), dtype=SEGMENT_DTYPE)
        at = 0
        for array in arrays:  # finite float32 (check_pages); refuse what float16 cannot hold
            if array.max() > HALF_MAX or array.min() < -HALF_MAX:
                to_segment_dtype(array)  # raises the store's float16-range error
            block[at : at + len(array)] = array
            at += len(array)
        # The file is durable before the rows that name it commit; see segments.py.
        record = write_segment(self._segments, self._allocate_segment_id(), block)
        try:
            with transaction(connection):
                rows.insert_segment(connection, record)
                schema.set_meta(connection, "next_segment_id", str(self._next_segment_id))
                rows.insert_pages(connection, doc_id, record, pages, [len(a) for a in arrays])
        except BaseException:
            (self._segments / record.file).unlink(missing_ok=True)
            raise
        self._generation += 1

    @serialised
    def finish_document(self, doc_id: str, replaces: Sequence[str] = ()) -> None:
        """Mark ``doc_id`` complete and delete ``replaces`` in the same commit.

        All ``total_pages`` pages must be stored: a complete document is a whole one.
        """
        connection = self._writer()
        replaces = check_replaces(doc_id, replaces)
        with transaction(connection):
            rows.mark_complete(connection, doc_id)
            rows.delete_documents(connection, replaces)
        self._generation += 1

    @serialised
    def delete_documents(self, doc_ids: Sequence[str]) -> int:
        """Delete documents (all or none); return the number of pages removed.

        Their vectors stay in the segment files as dead rows until :meth:`compact`.
        """
        connection = self._writer()
        with transaction(connection):
            removed = rows.delete_documents(connection, list(dict.fromkeys(doc_ids)))
        self._generation += 1
        return removed

    @serialised
    def compact(
        self, min_dead_fraction: float = 0.25, merge_below_bytes: int = 16 * 1024 * 1024
    ) -> CompactionReport:
        """Rewrite segments at least ``min_dead_fraction`` dead (0 rewrites every one),
        merge segments smaller than ``merge_below_bytes``, drop fully dead ones; then bring
        the fast search's first stage up to date when the store searches in fast mode (see
        sketch_build.py)."""
        connection = self._writer()
        chosen = plan(rows.all_segments(connection), min_dead_fraction, merge_below_bytes)
        try:
            report = compact_segments(
                connection, self._segments, self._reader, chosen, self._allocate_segment_id
            )
            sketched = 0
            if self.search_options.mode == "fast":  # exact-mode users pay nothing for it
                sketched = refresh_first_stage(
                    connection, self._segments, self._reader, self.search_options.min_pages
                )
            if self._remove_unreferenced_derived():
                fsync_dir(self._segments)
            return dataclasses.replace(report, segments_sketched=sketched)
        finally:
            self._generation += 1

    # -- reads -------------------------------------------------------------------------

    def _retrying(self, read: Callable[[], T]) -> T:
        """Run ``read``; if it failed because a commit meanwhile unlinked a segment it was
        about to map (compaction), run it again against the new commit."""
        for _ in range(3):
            version = self._data_version()
            try:
                return read()
            except IndexCorruptError:
                if self._data_version() == version:
                    raise
        return read()

    @serialised
    def _current_catalog(self, first_stage: bool = True) -> tuple[Catalog, FirstStage | None]:
        """The catalog of the last commit and, when asked (fast mode), its first stage:
        exact searches never read the derived files."""
        version = self._data_version()
        if self._catalog is None or self._catalog[0] != version:
            self._catalog = (version, load_catalog(self._connection), None, False)
        if first_stage and not self._catalog[3]:
            stage = self._load_first_stage(self._catalog[1])
            self._catalog = (version, self._catalog[1], stage, True)
        return self._catalog[1], self._catalog[2]

    def _load_first_stage(self, catalog: Catalog) -> FirstStage | None:
        """Postings of ``catalog`` from the current codebook's sketches (None if none)."""
        known = current_codebook(self._connection)
        if known is None:
            return None
        codebook_id, codebook_file, _ = known
        key = (codebook_id, codebook_file)
        if key not in self._codebooks:
            self._codebooks = {key: read_codebook(self._segments, codebook_id, codebook_file)}
        stored = current_postings(self._connection)
        if stored is not None and stored[1] == codebook_id:
            # The persisted postings (memory-mapped, checksummed on first read).
            if self._postings is None or self._postings[0] != stored[0]:
                postings = read_postings(self._segments, stored[0])
                codebook = self._codebooks[key]
                if (postings.codebook_id, postings.n_cells) != (codebook.id, codebook.n_cells):
                    raise IndexCorruptError(self.root, f"{stored[0].file} is of another codebook")
                self._postings = (stored[0], postings)
                self._sketches.clear()
            return stage_from_postings(catalog, self._codebooks[key], self._postings[1])
        self._postings = None
        current = {
            segment_id: record
            for segment_id, (sketch_codebook, record) in sketch_records(self._connection).items()
            if sketch_codebook == codebook_id and segment_id in catalog.segments
        }
        wanted = set(current.values())
        self._sketches = {r: a for r, a in self._sketches.items() if r in wanted}
        for record in wanted - self._sketches.keys():
            self._sketches[record] = read_sketch(self._segments, record)
        sketches = {segment_id: self._sketches[record] for segment_id, record in current.items()}
        return build_first_stage(catalog, self._codebooks[key], sketches)

    def first_stage_bytes(self) -> int:
        """Resident bytes of the fast search's first stage (0 before a codebook exists)."""
        _, stage = self._retrying(self._current_catalog)
        return 0 if stage is None else stage.resident_bytes

    def _search_checked(
        self, queries: list[np.ndarray], k: int, filter: SearchFilter | None
    ) -> list[list[SearchHit]]:
        options = self.search_options

        def read() -> list[list[SearchHit]]:
            catalog, stage = self._current_catalog(options.mode == "fast")
            if options.mode == "exact" or stage is None:
                return search_catalog(catalog, self._reader, queries, k, filter)
            return search_fast(catalog, self._reader, stage, queries, k, filter, options)

        return self._retrying(read)

    @serialised
    def get_page(self, doc_id: str, page: int) -> PageInfo | None:
        return rows.get_page(self._connection, doc_id, page)

    def page_vectors(self, doc_id: str, page: int) -> np.ndarray:
        """The stored (n_vectors, dim) multi-vector of a page, as float32."""

        def read() -> np.ndarray:
            with self._lock:
                location = rows.page_location(self._connection, doc_id, page)
                if location is None:
                    if rows.stored_pages(self._connection, doc_id) is None:
                        raise DocumentNotFoundError(doc_id)
                    raise InvalidInputError(f"document {doc_id} has no stored page {page}")
            row_start, n_vectors, record = location
            vectors = self._reader.vectors(record)
            if row_start + n_vectors > len(vectors):
                raise IndexCorruptError(self.root, f"page {page} of {doc_id} overruns its segment")
            return np.array(vectors[row_start : row_start + n_vectors], dtype=np.float32)

        return self._retrying(read)

    @serialised
    def stats(self) -> IndexStats:
        """Counts over all stored documents; ``documents`` includes the incomplete ones,
        ``pages`` and ``vectors`` their pages too (not dead rows)."""
        with snapshot(self._connection) as connection:
            documents, incomplete, pages, vectors = rows.totals(connection)
            model = schema.load_model(connection)
        return IndexStats(
            documents=documents,
            incomplete_documents=incomplete,
            pages=pages,
            vectors=vectors,
            dim=None if model is None else model.dim,
            model=model,
            bytes_on_disk=self._own_bytes(),
        )

    def _own_bytes(self) -> int:
        """Bytes of the catalog and segments, not of other channels' stores nested here."""
        files = [entry.name for entry in os.scandir(self.root) if entry.is_file()]
        return folder_bytes(self.root, files) + folder_bytes(self._segments)

    def verify(self) -> int:
        """Check the catalog and every segment's checksum; return the segments checked.

        Raises IndexCorruptError on the first problem found. Reads every vector: slow on
        big indexes, meant for `colretrieve verify` and tests.
        """
        with self._lock, snapshot(self._connection) as connection:
            status = connection.execute("PRAGMA integrity_check").fetchone()[0]
            if status != "ok":
                raise IndexCorruptError(self.root, f"SQLite integrity check: {status}")
            segments = rows.all_segments(connection)
            misplaced = rows.misplaced_pages(connection)
        if misplaced:
            raise IndexCorruptError(self.root, f"{misplaced} pages point outside their segments")
        for record in segments:
            check_checksum(self._segments, record)
        return len(segments)
