"""Row-level SQL of the embedded store's catalog: documents, pages and segments.

Functions take a connection and leave transactions to the caller, so one commit can combine
several of them (finish a document and delete the one it replaces).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence

from colretrieve.contracts import DocumentInfo, DocumentRecord, PageInfo, PageInput
from colretrieve.errors import DocumentNotFoundError, InvalidInputError
from colretrieve.store.segments import SegmentRecord

DOCUMENT_COLUMNS = (
    "d.doc_id, d.path, d.title, d.size_bytes, d.total_pages, "
    "(SELECT count(*) FROM pages p WHERE p.doc_id = d.doc_id), d.complete, d.tags, d.added_at"
)
SEGMENT_COLUMNS = ("id", "file", "n_rows", "dim", "byte_size", "crc32", "dead_rows")


def _document(row: tuple) -> DocumentInfo:
    doc_id, path, title, size_bytes, total_pages, stored, complete, tags, added_at = row
    return DocumentInfo(
        doc_id=doc_id,
        path=path,
        title=title,
        size_bytes=size_bytes,
        total_pages=total_pages,
        stored_pages=stored,
        complete=bool(complete),
        tags=tuple(json.loads(tags)),
        added_at=added_at,
    )


def documents(
    connection: sqlite3.Connection, where: str = "", args: tuple = ()
) -> list[DocumentInfo]:
    """Documents matching an optional ``where`` clause on ``d``, sorted by path then id."""
    rows = connection.execute(
        f"SELECT {DOCUMENT_COLUMNS} FROM documents d {where} ORDER BY d.path, d.doc_id", args
    )
    return [_document(row) for row in rows]


def stored_pages(connection: sqlite3.Connection, doc_id: str) -> int | None:
    """Pages stored for ``doc_id``, or None if there is no such document."""
    row = connection.execute(
        "SELECT (SELECT count(*) FROM pages WHERE doc_id = ?) FROM documents WHERE doc_id = ?",
        (doc_id, doc_id),
    ).fetchone()
    return None if row is None else int(row[0])


def insert_document(connection: sqlite3.Connection, doc: DocumentRecord) -> None:
    connection.execute(
        "INSERT INTO documents (doc_id, path, title, size_bytes, total_pages, complete, tags,"
        " added_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
        (
            doc.doc_id,
            doc.path,
            doc.title,
            doc.size_bytes,
            doc.total_pages,
            json.dumps(sorted(set(doc.tags))),
            time.time(),
        ),
    )


def open_document(connection: sqlite3.Connection, doc_id: str) -> tuple[int, int]:
    """``(total_pages, next_page)`` of a begun, incomplete document; raise otherwise."""
    row = connection.execute(
        "SELECT total_pages, complete FROM documents WHERE doc_id = ?", (doc_id,)
    ).fetchone()
    if row is None:
        raise DocumentNotFoundError(doc_id)
    total_pages, complete = row
    if complete:
        raise InvalidInputError(f"document {doc_id} is complete; it takes no more pages")
    return total_pages, (stored_pages(connection, doc_id) or 0) + 1


def mark_complete(connection: sqlite3.Connection, doc_id: str) -> None:
    """Mark a document complete; it must exist and have all its pages stored."""
    row = connection.execute(
        "SELECT total_pages FROM documents WHERE doc_id = ?", (doc_id,)
    ).fetchone()
    if row is None:
        raise DocumentNotFoundError(doc_id)
    stored = stored_pages(connection, doc_id)
    if stored != row[0]:
        raise InvalidInputError(
            f"document {doc_id} has {stored} of its {row[0]} pages stored; "
            "add the rest before finishing it"
        )
    connection.execute("UPDATE documents SET complete = 1 WHERE doc_id = ?", (doc_id,))


def all_segments(connection: sqlite3.Connection) -> list[SegmentRecord]:
    rows = connection.execute(f"SELECT {', '.join(SEGMENT_COLUMNS)} FROM segments ORDER BY id")
    return [SegmentRecord(*row) for row in rows]


def insert_segment(connection: sqlite3.Connection, record: SegmentRecord) -> None:
    connection.execute(
        f"INSERT INTO segments ({', '.join(SEGMENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, 0)",
        (record.id, record.file, record.n_rows, record.dim, record.byte_size, record.crc32),
    )


def insert_pages(
    connection: sqlite3.Connection,
    doc_id: str,
    segment: SegmentRecord,
    pages: Sequence[PageInput],
    lengths: Sequence[int],
) -> None:
    """Rows for ``pages``, whose vectors lie back to back from row 0 of ``segment``."""
    rows = []
    start = 0
    for page, length in zip(pages, lengths, strict=True):
        location = (doc_id, page.page, segment.id, start, length)
        rows.append((*location, page.text, page.width, page.height, page.text_source))
        start += length
    connection.executemany(
        "INSERT INTO pages (doc_id, page, segment_id, row_start, n_vectors, text, width,"
        " height, text_source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def get_page(connection: sqlite3.Connection, doc_id: str, page: int) -> PageInfo | None:
    query = "SELECT doc_id, page, n_vectors, text, width, height, {} FROM pages "
    query += "WHERE doc_id = ? AND page = ?"
    try:
        row = connection.execute(query.format("text_source"), (doc_id, page)).fetchone()
    except sqlite3.OperationalError as error:
        if "text_source" not in str(error):
            raise
        # An index written before the column, opened read-only: all its text is the layer's.
        row = connection.execute(query.format("'layer'"), (doc_id, page)).fetchone()
    return None if row is None else PageInfo(*row)


def page_location(
    connection: sqlite3.Connection, doc_id: str, page: int
) -> tuple[int, int, SegmentRecord] | None:
    """(row_start, n_vectors, segment) of a stored page."""
    columns = ", ".join("s." + column for column in SEGMENT_COLUMNS)
    row = connection.execute(
        f"SELECT p.row_start, p.n_vectors, {columns} FROM pages p "
        "JOIN segments s ON s.id = p.segment_id WHERE p.doc_id = ? AND p.page = ?",
        (doc_id, page),
    ).fetchone()
    return None if row is None else (row[0], row[1], SegmentRecord(*row[2:]))


def delete_documents(connection: sqlite3.Connection, doc_ids: Sequence[str]) -> int:
    """Delete documents and pages, counting their rows dead; return pages removed."""
    for doc_id in doc_ids:
        if stored_pages(connection, doc_id) is None:
            raise DocumentNotFoundError(doc_id)
    removed = 0
    for doc_id in doc_ids:
        dead = connection.execute(
            "SELECT segment_id, count(*), sum(n_vectors) FROM pages WHERE doc_id = ? "
            "GROUP BY segment_id",
            (doc_id,),
        ).fetchall()
        connection.executemany(
            "UPDATE segments SET dead_rows = dead_rows + ? WHERE id = ?",
            [(rows, segment_id) for segment_id, _, rows in dead],
        )
        removed += sum(count for _, count, _ in dead)
        connection.execute("DELETE FROM pages WHERE doc_id = ?", (doc_id,))
        connection.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
    return removed


def totals(connection: sqlite3.Connection) -> tuple[int, int, int, int]:
    """(documents, incomplete documents, pages, vectors)."""
    documents, incomplete = connection.execute(
        "SELECT count(*), coalesce(sum(1 - complete), 0) FROM documents"
    ).fetchone()
    pages, vectors = connection.execute(
        "SELECT count(*), coalesce(sum(n_vectors), 0) FROM pages"
    ).fetchone()
    return documents, incomplete, pages, vectors


def misplaced_pages(connection: sqlite3.Connection) -> int:
    """Pages whose segment is missing or too short for them."""
    return connection.execute(
        "SELECT count(*) FROM pages p LEFT JOIN segments s ON s.id = p.segment_id "
        "WHERE s.id IS NULL OR p.row_start + p.n_vectors > s.n_rows"
    ).fetchone()[0]
