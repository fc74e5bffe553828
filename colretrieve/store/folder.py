"""What every folder-backed store shares: the writer's flock, one connection serialised
across threads, and the folder's size on disk.

Used by the embedded vector store and the embedded lexical (bm25) store, which may share a
folder: each names its own lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from colretrieve.contracts import DocumentInfo
from colretrieve.errors import IndexLockedError
from colretrieve.store import rows

P = ParamSpec("P")
T = TypeVar("T")


class _HasLock(Protocol):
    _lock: threading.RLock


S = TypeVar("S", bound=_HasLock)


def acquire_lock(root: Path, name: str) -> int:
    """Take the single-writer lock ``root/name`` (an flock, released when the fd closes or
    the process dies); IndexLockedError if another writer holds it."""
    fd = os.open(root / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise IndexLockedError(root) from None
    return fd


def serialised(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Serialise a method's use of the shared SQLite connection across threads
    (holds ``self._lock``, an RLock, for the call)."""

    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


def folder_bytes(root: Path, names: Iterable[str] | None = None) -> int:
    """Bytes of the files under ``root`` (only top-level ``names`` when given)."""
    if names is not None:
        paths = [root / name for name in names]
    else:
        paths = [Path(folder, name) for folder, _, files in os.walk(root) for name in files]
    total = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # a WAL checkpoint or compaction raced us
            total += path.stat().st_size
    return total


class DocumentReads:
    """The document lookups of a store whose catalog is ``rows``' SQLite schema (the
    embedded vector store and the embedded bm25 store)."""

    _connection: sqlite3.Connection
    _lock: threading.RLock

    @serialised
    def get_document(self, doc_id: str) -> DocumentInfo | None:
        found = rows.documents(self._connection, "WHERE d.doc_id = ?", (doc_id,))
        return found[0] if found else None

    @serialised
    def find_by_path(self, path: str) -> list[DocumentInfo]:
        return rows.documents(self._connection, "WHERE d.path = ?", (path,))

    @serialised
    def documents(self) -> list[DocumentInfo]:
        """Every document, incomplete ones included, sorted by path then id."""
        return rows.documents(self._connection)
