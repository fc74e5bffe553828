"""One store per channel, opened together: where each channel of an index lives.

Embedded layout: the index folder is the visual store (so indexes made before channels
existed open unchanged), ``text/`` is the text channel's multi-vector store and ``bm25/``
the lexical store. With Qdrant, the channels are the collections ``NAME`` (visual),
``NAME_text`` and ``NAME_bm25``, all through one client.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from colretrieve.channels import BM25, TEXT, VISUAL
from colretrieve.contracts import DocumentCatalog, LexicalStore, MultiVectorStore
from colretrieve.errors import InvalidInputError
from colretrieve.settings import Settings

if TYPE_CHECKING:
    from colretrieve.store.fast import SearchOptions

TEXT_FOLDER = "text"
BM25_FOLDER = "bm25"


@dataclass
class ChannelStores:
    """The stores of one index, by channel; ``text`` and ``bm25`` are None when absent."""

    visual: MultiVectorStore
    text: MultiVectorStore | None = None
    bm25: LexicalStore | None = None
    create: Callable[[str], DocumentCatalog] | None = field(default=None, repr=False)
    """Makes a missing text or bm25 store (None when opened read-only)."""

    def get(self, channel: str) -> DocumentCatalog | None:
        return {VISUAL: self.visual, TEXT: self.text, BM25: self.bm25}[channel]

    def ensure(self, channel: str) -> DocumentCatalog:
        """The store of ``channel``, created if the index does not have it yet."""
        store = self.get(channel)
        if store is not None:
            return store
        if self.create is None:
            raise InvalidInputError(f"this index has no {channel} channel (opened read-only)")
        store = self.create(channel)
        setattr(self, channel, store)
        return store

    def existing(self) -> tuple[str, ...]:
        """Channels with a store (visual: once a model is bound), in canonical order."""
        return tuple(
            channel
            for channel in (VISUAL, TEXT, BM25)
            if (self.visual.model is not None if channel == VISUAL else self.get(channel))
        )

    def present(self) -> tuple[str, ...]:
        """Channels holding at least one complete document, in canonical order."""
        found = []
        for channel in (VISUAL, TEXT, BM25):
            store = self.get(channel)
            if store is not None and any(doc.complete for doc in store.documents()):
                found.append(channel)
        return tuple(found)

    def close(self) -> None:
        for store in (self.bm25, self.text, self.visual):
            if store is not None:
                store.close()


def open_channel_stores(
    settings: Settings, *, create: bool = False, read_only: bool = False
) -> ChannelStores:
    """Open every channel store the index at ``settings`` has.

    The visual store is the index itself: opening it finds (with ``create``, makes) the
    index. A writable open can add the other channels later (``ChannelStores.ensure``).
    """
    if settings.store == "qdrant":
        from colretrieve.store.qdrant_channels import open_qdrant_channels

        return open_qdrant_channels(settings, create=create, read_only=read_only)
    return open_embedded_channels(
        Path(settings.index), create=create, read_only=read_only, options=settings.search_options()
    )


def open_embedded_channels(
    root: Path,
    *,
    create: bool = False,
    read_only: bool = False,
    options: SearchOptions | None = None,
) -> ChannelStores:
    from colretrieve.store import EmbeddedStore
    from colretrieve.store.lexical import EmbeddedLexicalStore

    def open_channel(channel: str, make: bool) -> DocumentCatalog:
        if channel == TEXT:
            return EmbeddedStore.open(
                root / TEXT_FOLDER, create=make, read_only=read_only, search=options
            )
        return EmbeddedLexicalStore.open(root / BM25_FOLDER, create=make, read_only=read_only)

    visual = EmbeddedStore.open(root, create=create, read_only=read_only, search=options)
    stores = ChannelStores(visual)
    try:
        for channel, folder in ((TEXT, TEXT_FOLDER), (BM25, BM25_FOLDER)):
            if (root / folder).is_dir():
                setattr(stores, channel, open_channel(channel, make=False))
    except BaseException:
        stores.close()
        raise
    if not read_only:
        stores.create = lambda channel: open_channel(channel, make=True)
    return stores


def drop_channel(settings: Settings, channel: str) -> bool:
    """Delete a text or bm25 channel and its storage; say whether there was one.

    The visual channel is the index itself: delete its documents instead.
    """
    if channel == VISUAL:
        raise InvalidInputError(
            "the visual channel is the index itself; delete its documents or the index folder"
        )
    if settings.store == "qdrant":
        from colretrieve.store.qdrant_channels import drop_qdrant_channel

        return drop_qdrant_channel(settings, channel)
    from colretrieve.store.embedded import LOCK_NAME
    from colretrieve.store.folder import acquire_lock

    root = Path(settings.index)
    folder = root / (TEXT_FOLDER if channel == TEXT else BM25_FOLDER)
    if not folder.is_dir():
        return False
    # Holding the index's writer lock keeps a concurrent ingest from writing into the folder.
    fd = acquire_lock(root, LOCK_NAME)
    try:
        shutil.rmtree(folder)
    finally:
        os.close(fd)
    return True
