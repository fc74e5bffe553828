"""The embedded store's SQLite catalog: schema, connection settings, transactions, meta.

WAL mode lets readers in other processes keep reading the last commit while the single
writer works. ``synchronous=FULL`` fsyncs the WAL on every commit: the store promises that a
call which returned survives a crash, power loss included, and one fsync per page batch is
small next to embedding that batch on a GPU.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from colretrieve.contracts import ModelInfo
from colretrieve.errors import IndexCorruptError

FORMAT_VERSION = 1
DATABASE_NAME = "index.sqlite"

CATALOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    title TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    total_pages INTEGER NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL,
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_path ON documents (path);
"""
"""Meta and documents: the tables every SQLite-backed store shares (vector and bm25)."""

SCHEMA = (
    CATALOG_SCHEMA
    + """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    n_rows INTEGER NOT NULL,
    dim INTEGER NOT NULL,
    byte_size INTEGER NOT NULL,
    crc32 INTEGER NOT NULL,
    dead_rows INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pages (
    doc_id TEXT NOT NULL REFERENCES documents (doc_id) ON DELETE CASCADE,
    page INTEGER NOT NULL,
    segment_id INTEGER NOT NULL REFERENCES segments (id),
    row_start INTEGER NOT NULL,
    n_vectors INTEGER NOT NULL,
    text TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    PRIMARY KEY (doc_id, page)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pages_segment ON pages (segment_id, row_start);
CREATE TABLE IF NOT EXISTS sketches (
    segment_id INTEGER PRIMARY KEY REFERENCES segments (id) ON DELETE CASCADE,
    codebook_id INTEGER NOT NULL,
    file TEXT NOT NULL,
    byte_size INTEGER NOT NULL,
    crc32 INTEGER NOT NULL
);
"""
)


def connect(database: Path, read_only: bool) -> sqlite3.Connection:
    """Open the catalog in autocommit mode; writes go through :func:`transaction`."""
    connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 10000")
    connection.execute("PRAGMA foreign_keys = ON")
    if read_only:
        connection.execute("PRAGMA query_only = ON")
    else:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
    return connection


def initialise(
    connection: sqlite3.Connection, script: str = SCHEMA, version: int = FORMAT_VERSION
) -> None:
    """Create the tables of ``script`` if missing (idempotent, one transaction) and record
    ``version`` as the format of a new database. ``script`` must create the meta table."""
    with transaction(connection):
        for statement in script.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('format_version', ?)",
            (str(version),),
        )


def has_schema(connection: sqlite3.Connection) -> bool:
    row = connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    return bool(row[0])


def check_format(
    connection: sqlite3.Connection, root: Path, expected: int = FORMAT_VERSION
) -> None:
    version = get_meta(connection, "format_version")
    if version != str(expected):
        raise IndexCorruptError(
            root, f"index format version {version!r}; this colretrieve reads {expected}"
        )


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


@contextmanager
def snapshot(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction, so several SELECTs see one commit."""
    connection.execute("BEGIN")
    try:
        yield connection
    finally:
        connection.execute("COMMIT")


def get_meta(connection: sqlite3.Connection, key: str) -> str | None:
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(connection: sqlite3.Connection, key: str, value: str) -> None:
    connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def load_model(connection: sqlite3.Connection) -> ModelInfo | None:
    raw = get_meta(connection, "model")
    return None if raw is None else ModelInfo.from_dict(json.loads(raw))
