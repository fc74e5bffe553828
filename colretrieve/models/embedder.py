"""``ColpaliEmbedder``: the ``PageEmbedder`` backed by a colpali-engine retriever."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from colretrieve.contracts import ModelInfo
from colretrieve.errors import InvalidInputError
from colretrieve.models.loading import LoadedModel, load_model
from colretrieve.settings import Settings

T = TypeVar("T")


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class ColpaliEmbedder:
    """Embeds page images and queries as padding-free float32 multi-vectors.

    Build it with :meth:`load`. Inputs are processed ``batch_size`` at a time under
    ``torch.inference_mode()``.
    """

    def __init__(self, loaded: LoadedModel, batch_size: int = 4) -> None:
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1; got {batch_size}")
        self._loaded = loaded
        self.batch_size = batch_size

    @classmethod
    def load(
        cls,
        name_or_dir: str,
        device: str = "auto",
        max_visual_tokens: int | None = 768,
        batch_size: int = 4,
    ) -> ColpaliEmbedder:
        """Load a checkpoint (hub id in the local cache, or a folder); see ``load_model``."""
        return cls(load_model(name_or_dir, device, max_visual_tokens), batch_size)

    @classmethod
    def from_settings(cls, settings: Settings, name_or_dir: str | None = None) -> ColpaliEmbedder:
        """Load ``name_or_dir`` (default ``settings.model``) with the settings' device, budget
        and batch size."""
        return cls.load(
            name_or_dir or settings.model,
            device=settings.device,
            max_visual_tokens=settings.max_visual_tokens,
            batch_size=settings.batch_size,
        )

    @property
    def info(self) -> ModelInfo:
        return self._loaded.info

    @property
    def device(self) -> Any:
        """The ``torch.device`` the model runs on."""
        return self._loaded.device

    @property
    def model(self) -> Any:
        return self._loaded.model

    @property
    def processor(self) -> Any:
        return self._loaded.processor

    def embed_images(self, images: Iterable[Image.Image]) -> list[np.ndarray]:
        """One (n_vectors, dim) float32 array per image; accepts any iterable of PIL images."""
        out: list[np.ndarray] = []
        for batch in _batches(images, self.batch_size):
            for image in batch:
                if not isinstance(image, Image.Image):
                    raise InvalidInputError(f"expected PIL images; got {type(image).__name__}")
            out.extend(self._run(self.processor.process_images(batch)))
        return out

    def embed_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        """One (n_tokens, dim) float32 array per query; empty or blank queries are refused."""
        if isinstance(queries, str):
            raise InvalidInputError("embed_queries takes a list of strings, not one string")
        for query in queries:
            if not isinstance(query, str) or not query.strip():
                raise InvalidInputError(f"queries must be non-empty strings; got {query!r}")
        out: list[np.ndarray] = []
        for batch in _batches(queries, self.batch_size):
            out.extend(self._run(self.processor.process_queries(batch)))
        return out

    def _run(self, inputs: Any) -> list[np.ndarray]:
        import torch

        inputs = inputs.to(self.device)
        with torch.inference_mode():
            embeddings = self.model(**inputs)
        # The processors pad on the left and SDPA leaves NaN rows there: keep masked rows only.
        mask = inputs["attention_mask"].bool()
        return [
            np.ascontiguousarray(row[keep].float().cpu().numpy(), dtype=np.float32)
            for row, keep in zip(embeddings, mask, strict=True)
        ]
