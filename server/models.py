"""The server's models, each loaded once and shared by every collection that needs it.

Model calls take one process-wide lock (2 CPUs: one model call at a time). The visual model
is optional, as for ``colretrieve index``: when it cannot load (no GPU checkpoint, no hub
access) the server serves the text channels and says why; asked for explicitly
(``COLRETRIEVE_CHANNELS`` naming visual, or ``--model``), it must load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from colretrieve.channels import TEXT, VISUAL, parse_channels
from colretrieve.contracts import ModelInfo, PageEmbedder, TextEmbedder
from colretrieve.errors import ModelLoadError
from colretrieve.settings import Settings

log = logging.getLogger("colretrieve.server")


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


class LockedTextEncoder:
    """The text channel's encoder behind the same process-wide model lock."""

    def __init__(self, inner: TextEmbedder, lock: threading.Lock) -> None:
        self.inner = inner
        self._lock = lock

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    def embed_texts(self, texts: Sequence[str]) -> list[np.ndarray]:
        with self._lock:
            return self.inner.embed_texts(texts)

    def embed_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        with self._lock:
            return self.inner.embed_queries(queries)


class ModelPool:
    """Loads each visual and text model at most once, by name; remembers failures."""

    def __init__(
        self,
        settings: Settings,
        lock: threading.Lock,
        embedder: PageEmbedder | None = None,
        text_encoder: TextEmbedder | None = None,
    ) -> None:
        self.settings = settings
        self.lock = lock
        self.requested = parse_channels(settings.channels) if settings.channels else None
        self._given_visual = LockedEmbedder(embedder, lock) if embedder is not None else None
        self._given_text = LockedTextEncoder(text_encoder, lock) if text_encoder else None
        self._visual: dict[str, LockedEmbedder | str] = {}
        self._text: dict[str, LockedTextEncoder] = {}

    def wants(self, channel: str) -> bool:
        """Whether this server serves ``channel`` at all (``settings.channels``, else all)."""
        return self.requested is None or channel in self.requested

    def visual(self, name: str) -> tuple[LockedEmbedder | None, str]:
        """The visual model ``name`` (or the one given), or None and why it could not load."""
        if not self.wants(VISUAL):
            return None, ""  # left out on purpose: nothing to warn about
        if self._given_visual is not None:
            return self._given_visual, ""
        if name not in self._visual:
            from colretrieve.models import ColpaliEmbedder

            settings = self.settings
            try:
                loaded = ColpaliEmbedder.load(
                    name, device=settings.device, max_visual_tokens=settings.max_visual_tokens
                )
                self._visual[name] = LockedEmbedder(loaded, self.lock)
            except ModelLoadError as error:
                explicit = self.requested is not None or "model" in settings.model_fields_set
                if explicit:
                    raise
                self._visual[name] = f"visual model {name!r} not available ({error.reason})"
                log.warning("visual channel left out: %s", self._visual[name])
        found = self._visual[name]
        return (found, "") if isinstance(found, LockedEmbedder) else (None, found)

    def text(self, name: str) -> LockedTextEncoder | None:
        """The text encoder ``name`` (or the one given); None when text is not served."""
        if not self.wants(TEXT):
            return None
        if self._given_text is not None:
            return self._given_text
        if name not in self._text:
            from colretrieve.text.encoder import TokenTextEncoder

            loaded = TokenTextEncoder.load(name, device=self.settings.device)
            self._text[name] = LockedTextEncoder(loaded, self.lock)
        return self._text[name]
