"""What one server process holds: its collections, the models (loaded once), jobs, keys."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colretrieve.answer import Generator, load_generator
from colretrieve.channels import ALL_CHANNELS, BM25, TEXT, TEXT_CHANNELS, VISUAL, parse_channels
from colretrieve.channels.stores import open_channel_stores
from colretrieve.contracts import DocumentInfo, PageEmbedder, TextEmbedder
from colretrieve.errors import GeneratorNotConfiguredError, InvalidInputError, NotFoundError
from colretrieve.index import Index
from colretrieve.settings import Settings
from server.auth import KeyRing, Principal
from server.metrics import Metrics
from server.models import LockedEmbedder, LockedTextEncoder, ModelPool

__all__ = [
    "DEFAULT_COLLECTION",
    "Collection",
    "LockedEmbedder",
    "LockedTextEncoder",
    "ServerState",
    "load_state",
]

log = logging.getLogger("colretrieve.server")

DEFAULT_COLLECTION = "default"


def collection_settings(settings: Settings, name: str, path: Path) -> Settings:
    """Where a collection's stores live: the default collection in the configured store
    (embedded, or Qdrant with ``store=qdrant``); extra named collections are embedded
    index folders."""
    if name == DEFAULT_COLLECTION:
        return settings
    return settings.model_copy(update={"index": Path(path), "store": "embedded"})


@dataclass
class Collection:
    name: str
    path: Path
    index: Index
    """Read-only: sees each writer's last commit. Writes open a writer briefly."""
    embedder: LockedEmbedder | None
    """The visual model; None when it is not served (see ``visual_note``)."""
    settings: Settings
    store_settings: Settings
    text_encoder: LockedTextEncoder | None = None
    served: tuple[str, ...] = ALL_CHANNELS
    """Channels this server can search and write here (their models are loaded)."""
    ingest_channels: tuple[str, ...] = TEXT_CHANNELS
    """Channels an upload writes."""
    visual_note: str = ""
    """Why the visual model could not load, when it could not."""

    @property
    def uploads(self) -> Path:
        return self.path / "uploads"

    @property
    def channels(self) -> tuple[str, ...]:
        """Searchable channels: they hold a complete document and are served."""
        return tuple(c for c in self.index.channels if c in self.served)

    def search_channels(self, requested: Sequence[str] | None) -> tuple[str, ...]:
        """``requested`` when the collection can search each; by default every searchable
        channel (none for an empty collection)."""
        available = self.channels
        if requested is None:
            return available
        wanted = parse_channels(requested)
        missing = [c for c in wanted if c not in available]
        if not missing:
            return wanted
        have = ", ".join(available) or "no searchable channel yet"
        reasons = []
        for channel in missing:
            if channel == VISUAL and self.visual_note:
                reasons.append(self.visual_note)
            elif channel not in self.served:
                reasons.append(
                    f"this server serves only the channels {self.settings.channels} "
                    "(its channels setting)"
                )
        why = f" ({'; '.join(dict.fromkeys(reasons))})" if reasons else ""
        raise InvalidInputError(
            f"collection {self.name!r} has no searchable {', '.join(missing)} channel{why}; "
            f"it has: {have}. Leave `channels` out to search every channel it has."
        )

    def documents(self, doc_id: str) -> list[tuple[str, DocumentInfo]]:
        """``doc_id`` as each channel store holds it, by channel."""
        found = []
        for channel in ALL_CHANNELS:
            store = self.index.stores.get(channel)
            document = store.get_document(doc_id) if store is not None else None
            if document is not None:
                found.append((channel, document))
        return found

    def find_document(self, doc_id: str) -> DocumentInfo | None:
        """The document in whichever channel has it, complete copies first."""
        found = [document for _, document in self.documents(doc_id)]
        return next((d for d in found if d.complete), found[0] if found else None)

    def document_channels(self) -> dict[str, list[str]]:
        """Per document id, the channels that hold it (complete or not)."""
        held: dict[str, list[str]] = {}
        for channel in ALL_CHANNELS:
            store = self.index.stores.get(channel)
            for document in store.documents() if store is not None else ():
                held.setdefault(document.doc_id, []).append(channel)
        return held

    def search_index(self, method: str | None, weights: dict[str, float] | None) -> Index:
        """The read-only index, or a view of its stores with other fusion options."""
        if method is None and weights is None:
            return self.index
        fusion = self.index.fusion
        options = type(fusion)(
            method or fusion.method,
            {**fusion.weights, **(weights or {})},
            fusion.depth,
        )
        return Index(
            self.index.stores,
            self.embedder,
            text_encoder=self.text_encoder,
            device=self.settings.device,
            fusion=options,
        )

    @contextmanager
    def writer(self) -> Iterator[Index]:
        """A writable index on this collection's stores (missing channels are created on
        first write), with the server's shared models."""
        stores = open_channel_stores(self.store_settings, create=True)
        index = Index(
            stores,
            self.embedder,
            device=self.settings.device,
            max_visual_tokens=self.settings.max_visual_tokens,
            text_encoder=self.text_encoder,
            text_model=self.settings.text_model,
            fusion=self.index.fusion,
        )
        try:
            yield index
        finally:
            created = [
                c
                for c in (TEXT, BM25)
                if stores.get(c) is not None and self.index.stores.get(c) is None
            ]
            index.close()
            if created:
                self._open_new_channels(created)

    def _open_new_channels(self, channels: Sequence[str]) -> None:
        """Give the reader the channel stores a writer has just created."""
        fresh = open_channel_stores(self.store_settings, read_only=True)
        try:
            for channel in channels:
                store = fresh.get(channel)
                if store is not None:
                    setattr(fresh, channel, None)
                    setattr(self.index.stores, channel, store)
        finally:
            fresh.close()


@dataclass
class ServerState:
    settings: Settings
    keys: KeyRing
    collections: dict[str, Collection]
    model_lock: threading.Lock
    generator: Generator | None
    metrics: Metrics = field(default_factory=Metrics)
    jobs: Any = None  # server.jobs.JobManager

    def collection(self, name: str, principal: Principal, write: bool = False) -> Collection:
        """The collection ``name`` if this key may use it; 404 otherwise (never a 403)."""
        allowed = principal.can_write(name) if write else principal.can_read(name)
        if name not in self.collections or not allowed:
            raise NotFoundError("collection", name)
        return self.collections[name]

    def readable(self, principal: Principal) -> list[str]:
        return [name for name in self.collections if principal.can_read(name)]

    def require_generator(self) -> Generator:
        if self.generator is None:
            raise GeneratorNotConfiguredError()
        return self.generator

    @property
    def warnings(self) -> list[str]:
        """What the server runs without, e.g. the visual channel when its model cannot load."""
        notes = {c.visual_note for c in self.collections.values() if c.visual_note}
        return sorted(f"visual channel left out: {note}" for note in notes)

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.shutdown()
        for collection in self.collections.values():
            collection.index.close()


def collection_paths(settings: Settings) -> dict[str, Path]:
    paths = {DEFAULT_COLLECTION: settings.index}
    paths.update(settings.collections)
    return paths


def open_collection(settings: Settings, name: str, path: Path, models: ModelPool) -> Collection:
    """Open every channel store of one collection (creating an empty index if new) and pick
    its models from the shared pool."""
    where = collection_settings(settings, name, path)
    open_channel_stores(where, create=True).close()  # create if new
    stores = open_channel_stores(where, read_only=True)
    try:
        visual_model = stores.visual.model.name if stores.visual.model else settings.model
        embedder, note = models.visual(visual_model)
        text_bound = stores.text.model if stores.text is not None else None
        text_encoder = models.text(text_bound.name if text_bound else settings.text_model)
    except BaseException:
        stores.close()
        raise
    served = tuple(
        c
        for c, ok in (
            (VISUAL, embedder is not None),
            (TEXT, text_encoder is not None),
            (BM25, models.wants(BM25)),
        )
        if ok
    )
    ingest = models.requested or (((VISUAL,) if embedder else ()) + TEXT_CHANNELS)
    index = Index(
        stores,
        embedder,
        device=settings.device,
        max_visual_tokens=settings.max_visual_tokens,
        text_encoder=text_encoder,
        text_model=settings.text_model,
        fusion=settings.fusion_options(),
    )
    collection = Collection(
        name, Path(path), index, embedder, settings, where, text_encoder, served, ingest, note
    )
    log.info(
        "collection %s: searchable channels %s; uploads write %s",
        name,
        ", ".join(collection.channels) or "none yet",
        ", ".join(ingest),
    )
    return collection


def load_state(
    settings: Settings,
    *,
    embedder: PageEmbedder | None = None,
    generator: Generator | None = None,
    text_encoder: TextEmbedder | None = None,
) -> ServerState:
    """Open every collection (creating empty ones) and load each model once.

    ``embedder``/``text_encoder`` reuse already loaded models (tests)."""
    from server.jobs import JobManager

    keys = KeyRing.from_settings(settings)
    lock = threading.Lock()
    models = ModelPool(settings, lock, embedder, text_encoder)
    collections: dict[str, Collection] = {}
    try:
        for name, path in collection_paths(settings).items():
            collections[name] = open_collection(settings, name, Path(path), models)
        if generator is None and settings.generator:
            generator = load_generator(settings)
    except BaseException:
        for collection in collections.values():
            collection.index.close()
        raise
    state = ServerState(settings, keys, collections, lock, generator)
    state.jobs = JobManager(state)
    return state
