"""Multi-vector stores. ``EmbeddedStore`` is the default: a local folder, no server.

``EmbeddedLexicalStore`` keeps page texts for the bm25 channel (SQLite FTS5, docs/bm25.md);
its Qdrant twin is ``colretrieve.store.qdrant_lexical.QdrantLexicalStore``.

``QdrantStore`` (``store = "qdrant"`` in the settings) keeps the index in a Qdrant server or
cluster; it needs the optional ``qdrant-client`` and is imported only when selected.
"""

from __future__ import annotations

from pathlib import Path

from colretrieve.contracts import MultiVectorStore
from colretrieve.settings import Settings
from colretrieve.store.compaction import CompactionReport
from colretrieve.store.embedded import EmbeddedStore
from colretrieve.store.fast import SearchOptions
from colretrieve.store.lexical import EmbeddedLexicalStore


def open_store(path: Path | str, create: bool = False, read_only: bool = False) -> EmbeddedStore:
    """Open (or with ``create`` make) the embedded store at ``path``."""
    return EmbeddedStore.open(path, create=create, read_only=read_only)


def open_configured(
    settings: Settings, *, create: bool = False, read_only: bool = False
) -> MultiVectorStore:
    """The store that ``settings.store`` selects: the embedded store at ``settings.index``,
    or Qdrant at ``settings.qdrant_url`` (local mode at ``qdrant_path`` when no URL)."""
    if settings.store == "qdrant":
        from colretrieve.store.qdrant import QdrantStore

        return QdrantStore.from_settings(settings, create=create, read_only=read_only)
    return EmbeddedStore.open(
        settings.index, create=create, read_only=read_only, search=settings.search_options()
    )


__all__ = [
    "CompactionReport",
    "EmbeddedLexicalStore",
    "EmbeddedStore",
    "SearchOptions",
    "open_configured",
    "open_store",
]
