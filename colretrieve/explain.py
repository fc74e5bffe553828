"""Why a page matched: per query token, its similarity to each of the page's patches.

For Qwen2-VL-based retrievers (ColQwen2, ColQwen2.5) the image patches are the page vectors
at the image-token positions, laid out as the merged patch grid ``(h / 2, w / 2)`` of
``image_grid_thw``; that layout is recovered by running the processor on a blank image of
the page's stored size. Other models get a flat map over all page vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

MAX_EXPLAIN_TOKENS = 32
"""Query tokens mapped per hit (the payload stays bounded)."""
MAX_EXPLAIN_PATCHES = 4_096


@dataclass(frozen=True)
class SimilarityMap:
    grid: tuple[int, int] | None
    """(rows, cols) of the patch grid, or None when the layout is unknown (flat maps)."""
    maps: np.ndarray
    """(n_tokens, n_patches) float32: query token i against page patch j."""


def similarity_map(
    processor: Any, query: np.ndarray, page: np.ndarray, page_size: tuple[int, int]
) -> SimilarityMap:
    """Per-token similarity over the page's patches (grid layout when it can be recovered)."""
    query = query[:MAX_EXPLAIN_TOKENS].astype(np.float32)
    page = page.astype(np.float32)
    layout = _image_layout(processor, page_size, len(page)) if processor is not None else None
    if layout is not None:
        positions, grid = layout
        patches = page[positions]
    else:
        grid, patches = None, page[:MAX_EXPLAIN_PATCHES]
    return SimilarityMap(grid, query @ patches.T)


def _image_layout(
    processor: Any, page_size: tuple[int, int], n_vectors: int
) -> tuple[np.ndarray, tuple[int, int]] | None:
    width, height = page_size
    if width <= 0 or height <= 0:
        return None
    try:
        positions, grid = _cached_layout(processor, width, height)
    except Exception:  # a processor without the Qwen2-VL layout: fall back to a flat map
        return None
    if positions is None or len(positions) == 0 or positions.max() >= n_vectors:
        return None
    return positions, grid


@lru_cache(maxsize=256)
def _cached_layout(processor: Any, width: int, height: int) -> tuple[Any, tuple[int, int]]:
    from PIL import Image

    batch = processor.process_images([Image.new("RGB", (width, height), "white")])
    if "image_grid_thw" not in batch:
        return None, (0, 0)
    _, h, w = (int(v) for v in batch["image_grid_thw"][0])
    merge = int(getattr(processor.image_processor, "merge_size", 2))
    token_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    ids = batch["input_ids"][0]
    ids = ids[batch["attention_mask"][0].bool()]
    positions = np.flatnonzero(ids.numpy() == token_id)
    grid = (h // merge, w // merge)
    if len(positions) != grid[0] * grid[1]:
        return None, (0, 0)
    return positions, grid
