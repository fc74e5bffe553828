"""The embedded bm25 store: page texts in a local folder, ranked by SQLite FTS5.

Layout (files of their own, so the folder may be the vector index's)::

    bm25.sqlite (+ -wal, -shm)   meta, documents, pages, page_terms (FTS5)
    bm25.lock                    flock'ed by the single writer

``page_terms`` holds each page's analysed terms (colretrieve.text.analyzer), space-joined,
under FTS5's ``ascii`` tokenizer with ``_`` as a token character: analyser terms are runs of
``\\w`` characters, so every term passes through as one token, unchanged (non-ASCII
characters are token characters to that tokenizer; ASCII case is already folded). The FTS
rowid is ``pages.id``. The page's original text is not kept: the vector store has it.

Scores are ``-bm25(page_terms)``: FTS5's BM25 (k1 = 1.2, b = 0.75), negated so higher is
better. Its statistics (page count, average length, document frequency) cover every stored
page, incomplete documents included, and are exact at every commit.

Durability is the embedded vector store's: WAL, ``synchronous=FULL``, every call one
transaction, one flock'ed writer (IndexLockedError), read-only openers take no lock and see
the last commit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from colretrieve.contracts import (
    DocumentRecord,
    IndexStats,
    PageText,
    SearchFilter,
    SearchHit,
)
from colretrieve.errors import (
    AnalyzerMismatchError,
    DocumentNotFoundError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidInputError,
)
from colretrieve.store import rows, schema
from colretrieve.store.base import check_document, check_replaces
from colretrieve.store.folder import DocumentReads, acquire_lock, folder_bytes, serialised
from colretrieve.store.lexical_base import LexicalStoreBase, page_terms
from colretrieve.store.schema import snapshot, transaction
from colretrieve.text.analyzer import ANALYZER

DATABASE_NAME = "bm25.sqlite"
LOCK_NAME = "bm25.lock"
FORMAT_VERSION = 1
TOKENIZER = "ascii tokenchars '_'"

SCHEMA = (
    schema.CATALOG_SCHEMA
    + f"""
CREATE TABLE IF NOT EXISTS pages (
    id INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL REFERENCES documents (doc_id) ON DELETE CASCADE,
    page INTEGER NOT NULL,
    n_terms INTEGER NOT NULL,
    UNIQUE (doc_id, page)
);
CREATE VIRTUAL TABLE IF NOT EXISTS page_terms USING fts5(terms, tokenize = "{TOKENIZER}");
"""
)

SEARCH = """
SELECT p.doc_id, p.page, -bm25(page_terms) AS score, d.path, d.title
FROM page_terms
JOIN pages p ON p.id = page_terms.rowid
JOIN documents d ON d.doc_id = p.doc_id
WHERE page_terms MATCH ? AND d.complete = 1 {conditions}
ORDER BY score DESC, p.doc_id, p.page
LIMIT ?
"""


@dataclass(frozen=True)
class LexicalCompactionReport:
    bytes_before: int
    bytes_after: int
    vacuumed: bool


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 query matching any of ``terms``: each one quoted, so nothing in it is syntax
    (analysed terms are word characters only; quotes are doubled all the same)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def filter_conditions(filter: SearchFilter | None) -> tuple[str, list[object]]:
    """SQL conditions on ``p`` (pages) and ``d`` (documents) for ``filter``, and their
    arguments: applied in the same query as the match, so before ranking."""
    if filter is None:
        return "", []
    sql, args = [], []
    if filter.doc_ids is not None:
        sql.append("p.doc_id IN (SELECT value FROM json_each(?))")
        args.append(json.dumps(sorted(filter.doc_ids)))
    if filter.path_prefix is not None:
        sql.append("substr(d.path, 1, ?) = ?")
        args += [len(filter.path_prefix), filter.path_prefix]
    if filter.tags:
        sql.append(
            "NOT EXISTS (SELECT 1 FROM json_each(?) f "
            "WHERE f.value NOT IN (SELECT value FROM json_each(d.tags)))"
        )
        args.append(json.dumps(sorted(filter.tags)))
    return "".join(" AND " + condition for condition in sql), args


class EmbeddedLexicalStore(DocumentReads, LexicalStoreBase):
    """A LexicalStore in a local folder (SQLite FTS5). Safe to share between threads."""

    def __init__(self, root: Path, connection: sqlite3.Connection, lock_fd: int | None) -> None:
        # Use EmbeddedLexicalStore.open(); this only wires the parts together.
        self.root = root
        self._connection = connection
        self._lock_fd = lock_fd
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: Path | str, create: bool = False, read_only: bool = False) -> Self:
        """Open the bm25 index in folder ``path``; with ``create``, make it if absent.

        A writable open takes the writer lock (IndexLockedError if another process holds
        it); read-only opens take none and see the writer's last commit.
        """
        root = Path(path)
        if create and read_only:
            raise InvalidInputError("a read-only open cannot create an index")
        database = root / DATABASE_NAME
        if not database.exists() and not create:
            raise IndexNotFoundError(root)
        if not read_only:
            root.mkdir(parents=True, exist_ok=True)
        lock_fd = None if read_only else acquire_lock(root, LOCK_NAME)
        connection = None
        try:
            connection = schema.connect(database, read_only)
            if not read_only:
                schema.initialise(connection, SCHEMA, FORMAT_VERSION)
                with transaction(connection):
                    if schema.get_meta(connection, "analyzer") is None:
                        schema.set_meta(connection, "analyzer", ANALYZER)
            elif not schema.has_schema(connection):
                raise IndexNotFoundError(root)
            schema.check_format(connection, root, FORMAT_VERSION)
            stored = schema.get_meta(connection, "analyzer") or ANALYZER
            if stored != ANALYZER:
                raise AnalyzerMismatchError(str(root), stored, ANALYZER)
        except BaseException:
            if connection is not None:
                connection.close()
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return cls(root, connection, lock_fd)

    @property
    def read_only(self) -> bool:
        return self._lock_fd is None

    @serialised
    def close(self) -> None:
        self._connection.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _writer(self) -> sqlite3.Connection:
        if self.read_only:
            raise InvalidInputError("this store was opened read-only")
        return self._connection

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
        return stored or 0

    @serialised
    def add_texts(self, doc_id: str, pages: Sequence[PageText]) -> None:
        """Store the next pages of a begun document, in order, in one commit.

        Only the first MAX_PAGE_CHARS characters of a page's text are indexed.
        """
        connection = self._writer()
        total_pages, next_page = rows.open_document(connection, doc_id)
        pages = list(pages)
        if not pages:
            return
        analysed = page_terms(pages, next_page, total_pages)
        with transaction(connection):
            for page, terms in zip(pages, analysed, strict=True):
                cursor = connection.execute(
                    "INSERT INTO pages (doc_id, page, n_terms) VALUES (?, ?, ?)",
                    (doc_id, page.page, len(terms)),
                )
                connection.execute(
                    "INSERT INTO page_terms (rowid, terms) VALUES (?, ?)",
                    (cursor.lastrowid, " ".join(terms)),
                )

    @serialised
    def finish_document(self, doc_id: str, replaces: Sequence[str] = ()) -> None:
        """Mark ``doc_id`` complete and delete ``replaces`` in the same commit.

        All ``total_pages`` pages must be stored: a complete document is a whole one.
        """
        connection = self._writer()
        replaces = check_replaces(doc_id, replaces)
        with transaction(connection):
            rows.mark_complete(connection, doc_id)
            _delete(connection, replaces)

    @serialised
    def delete_documents(self, doc_ids: Sequence[str]) -> int:
        """Delete documents (every id must exist, else nothing is deleted); return the
        number of pages removed."""
        connection = self._writer()
        with transaction(connection):
            return _delete(connection, list(dict.fromkeys(doc_ids)))

    @serialised
    def compact(self, min_free_fraction: float = 0.25) -> LexicalCompactionReport:
        """Merge the FTS5 index's b-trees into one (faster queries), then VACUUM the file
        when at least ``min_free_fraction`` of it is free pages (after deletes)."""
        connection = self._writer()
        before = self._bytes()
        with transaction(connection):
            connection.execute("INSERT INTO page_terms (page_terms) VALUES ('optimize')")
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        total = connection.execute("PRAGMA page_count").fetchone()[0]
        vacuumed = bool(total) and free / total >= min_free_fraction
        if vacuumed:
            connection.execute("VACUUM")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return LexicalCompactionReport(before, self._bytes(), vacuumed)

    # -- reads -------------------------------------------------------------------------

    @serialised
    def stats(self) -> IndexStats:
        """Counts over all stored documents, incomplete ones included."""
        with snapshot(self._connection) as connection:
            documents, incomplete = connection.execute(
                "SELECT count(*), coalesce(sum(1 - complete), 0) FROM documents"
            ).fetchone()
            pages = connection.execute("SELECT count(*) FROM pages").fetchone()[0]
        return IndexStats(
            documents=documents,
            incomplete_documents=incomplete,
            pages=pages,
            vectors=0,
            dim=None,
            model=None,
            bytes_on_disk=self._bytes(),
        )

    def _bytes(self) -> int:
        names = [DATABASE_NAME + suffix for suffix in ("", "-wal", "-shm")]
        return folder_bytes(self.root, names)

    @serialised
    def _search_terms(
        self, queries: list[list[str]], k: int, filter: SearchFilter | None
    ) -> list[list[SearchHit]]:
        conditions, args = filter_conditions(filter)
        sql = SEARCH.format(conditions=conditions)
        results = []
        with snapshot(self._connection) as connection:  # every query sees one commit
            for terms in queries:
                if not terms:
                    results.append([])
                    continue
                found = connection.execute(sql, [match_expression(terms), *args, k])
                results.append(
                    [
                        SearchHit(doc_id=d, path=path, page=page, score=score, title=title)
                        for d, page, score, path, title in found
                    ]
                )
        return results

    @serialised
    def verify(self) -> None:
        """Check SQLite's and FTS5's integrity and that every page has its terms row.

        Raises IndexCorruptError on the first problem found."""
        connection = self._connection
        status = connection.execute("PRAGMA integrity_check").fetchone()[0]
        if status != "ok":
            raise IndexCorruptError(self.root, f"SQLite integrity check: {status}")
        try:
            # FTS5's own check; a write, so only on the writer (it changes nothing).
            if not self.read_only:
                connection.execute("INSERT INTO page_terms (page_terms) VALUES ('integrity-check')")
        except sqlite3.DatabaseError as error:
            raise IndexCorruptError(self.root, f"FTS5 integrity check: {error}") from None
        unpaired = connection.execute(
            "SELECT (SELECT count(*) FROM pages WHERE id NOT IN (SELECT rowid FROM page_terms))"
            " + (SELECT count(*) FROM page_terms WHERE rowid NOT IN (SELECT id FROM pages))"
        ).fetchone()[0]
        if unpaired:
            raise IndexCorruptError(self.root, f"{unpaired} pages and FTS rows do not pair up")


def _delete(connection: sqlite3.Connection, doc_ids: Sequence[str]) -> int:
    """Delete documents with their pages and terms (inside the caller's transaction)."""
    for doc_id in doc_ids:
        if rows.stored_pages(connection, doc_id) is None:
            raise DocumentNotFoundError(doc_id)
    removed = 0
    for doc_id in doc_ids:
        connection.execute(
            "DELETE FROM page_terms WHERE rowid IN (SELECT id FROM pages WHERE doc_id = ?)",
            (doc_id,),
        )
        removed += connection.execute("DELETE FROM pages WHERE doc_id = ?", (doc_id,)).rowcount
        connection.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
    return removed
