"""What one server process holds: its collections, the models (loaded once), jobs, keys."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from colretrieve.answer import Generator, load_generator
from colretrieve.contracts import ModelInfo, MultiVectorStore, PageEmbedder
from colretrieve.errors import GeneratorNotConfiguredError, NotFoundError
from colretrieve.index import Index
from colretrieve.settings import Settings
from colretrieve.store import EmbeddedStore, open_configured
from server.auth import KeyRing, Principal
from server.metrics import Metrics

DEFAULT_COLLECTION = "default"


class LockedEmbedder:
    """An embedder whose calls take the process-wide model lock (2 CPUs: one model call)."""

    def __init__(self, inner: PageEmbedder, lock: threading.Lock) -> None:
        self.inner = inner
        self._lock = lock

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    @property
    def processor(self) -> Any:
        return getattr(self.inner, "processor", None)

    def embed_images(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        with self._lock:
            return self.inner.embed_images(images)

    def embed_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        with self._lock:
            return self.inner.embed_queries(queries)


def open_collection_store(
    settings: Settings, name: str, path: Path, *, read_only: bool
) -> MultiVectorStore:
    """The default collection lives in the configured store (embedded, or Qdrant with
    ``store=qdrant``); extra named collections are embedded index folders."""
    if name == DEFAULT_COLLECTION:
        return open_configured(settings, create=not read_only, read_only=read_only)
    return EmbeddedStore.open(path, create=not read_only, read_only=read_only)


@dataclass
class Collection:
    name: str
    path: Path
    index: Index
    """Read-only: sees each writer's last commit. Writes open a writer briefly."""
    embedder: LockedEmbedder
    settings: Settings

    @property
    def uploads(self) -> Path:
        return self.path / "uploads"

    @contextmanager
    def writer(self) -> Iterator[MultiVectorStore]:
        store = open_collection_store(self.settings, self.name, self.path, read_only=False)
        try:
            yield store
        finally:
            store.close()


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

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.shutdown()
        for collection in self.collections.values():
            collection.index.close()


def collection_paths(settings: Settings) -> dict[str, Path]:
    paths = {DEFAULT_COLLECTION: settings.index}
    paths.update(settings.collections)
    return paths


def load_state(
    settings: Settings,
    *,
    embedder: PageEmbedder | None = None,
    generator: Generator | None = None,
) -> ServerState:
    """Open every collection (creating empty ones) and load each model once."""
    from colretrieve.models import ColpaliEmbedder
    from server.jobs import JobManager

    keys = KeyRing.from_settings(settings)
    lock = threading.Lock()
    embedders: dict[str, LockedEmbedder] = {}
    collections: dict[str, Collection] = {}
    for name, path in collection_paths(settings).items():
        open_collection_store(settings, name, path, read_only=False).close()  # create if new
        store = open_collection_store(settings, name, path, read_only=True)
        model_name = store.model.name if store.model else settings.model
        if embedder is not None:
            shared = embedders.setdefault("given", LockedEmbedder(embedder, lock))
        elif model_name not in embedders:
            loaded = ColpaliEmbedder.load(
                model_name, device=settings.device, max_visual_tokens=settings.max_visual_tokens
            )
            shared = embedders.setdefault(model_name, LockedEmbedder(loaded, lock))
        else:
            shared = embedders[model_name]
        index = Index(store, shared, device=settings.device)
        collections[name] = Collection(name, Path(path), index, shared, settings)
    if generator is None and settings.generator:
        generator = load_generator(settings)
    state = ServerState(settings, keys, collections, lock, generator)
    state.jobs = JobManager(state)
    return state
