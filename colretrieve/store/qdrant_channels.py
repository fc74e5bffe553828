"""The channels of a Qdrant index: collections ``NAME`` (visual), ``NAME_text`` and
``NAME_bm25``, all on the visual store's client (one connection; in local mode, where a
folder admits a single client, the only way)."""

from __future__ import annotations

from colretrieve.channels import BM25, TEXT
from colretrieve.channels.stores import ChannelStores
from colretrieve.contracts import DocumentCatalog
from colretrieve.errors import IndexNotFoundError
from colretrieve.settings import Settings
from colretrieve.store.qdrant import QdrantStore
from colretrieve.store.qdrant_lexical import QdrantLexicalStore


def channel_collection(settings: Settings, channel: str) -> str:
    return f"{settings.qdrant_collection}_{channel}"


def open_qdrant_channels(
    settings: Settings, *, create: bool = False, read_only: bool = False
) -> ChannelStores:
    visual = QdrantStore.from_settings(settings, create=create, read_only=read_only)

    def open_channel(channel: str, make: bool) -> DocumentCatalog:
        name = channel_collection(settings, channel)
        if channel == TEXT:
            return QdrantStore.beside(visual, name, create=make)
        return QdrantLexicalStore.beside(visual, name, create=make)

    stores = ChannelStores(visual)
    try:
        for channel in (TEXT, BM25):
            try:
                setattr(stores, channel, open_channel(channel, make=False))
            except IndexNotFoundError:
                continue  # this index has no such channel (yet)
    except BaseException:
        stores.close()
        raise
    if not read_only:
        stores.create = lambda channel: open_channel(channel, make=True)
    return stores


def drop_qdrant_channel(settings: Settings, channel: str) -> bool:
    """Delete the collections of a text or bm25 channel; say whether there were any."""
    stores = open_qdrant_channels(settings)
    try:
        store = stores.get(channel)
        if store is None:
            return False
        store.drop()
        return True
    finally:
        stores.close()
