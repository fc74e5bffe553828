"""Exact MaxSim: the reference every faster path and every store is tested against.

score(query, page) = sum over query tokens of the max dot product with any page vector.
Pages are held concatenated, ``vectors[offsets[i]:offsets[i + 1]]`` being page ``i``, so one
matrix product scores a whole block of pages and ``np.maximum.reduceat`` takes the per-page
maxima. Vectors may be stored as float16; they are converted to float32 block by block,
because half-precision matmul is 15-30x slower than float32 on CPUs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from colretrieve.errors import InvalidInputError

# Rows per matrix product: bounds the float32 copy and the (rows, n_tokens) score block.
BLOCK_ROWS = 262_144


def check_query(query: np.ndarray, dim: int) -> np.ndarray:
    """Return ``query`` as a C-contiguous float32 (n_tokens, dim) array or raise."""
    array = np.asarray(query)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != dim:
        raise InvalidInputError(
            f"a query multi-vector must have shape (n_tokens >= 1, {dim}); got {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise InvalidInputError(f"a query multi-vector must be floating point; got {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InvalidInputError("a query multi-vector contains NaN or infinite values")
    return array


def maxsim_concatenated(query: np.ndarray, vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """MaxSim of one query against every page of a concatenated block.

    ``offsets`` has one more entry than there are pages, starts at 0 and ends at
    ``len(vectors)``; every page must have at least one vector. Returns float32 scores.
    """
    n_pages = len(offsets) - 1
    scores = np.empty(n_pages, dtype=np.float32)
    if n_pages == 0:
        return scores
    query_t = np.ascontiguousarray(query, dtype=np.float32).T
    page = 0
    while page < n_pages:
        # Take whole pages until the block would exceed BLOCK_ROWS (at least one page).
        start = offsets[page]
        end_page = int(np.searchsorted(offsets, start + BLOCK_ROWS, side="right")) - 1
        end_page = min(max(end_page, page + 1), n_pages)
        block = np.asarray(vectors[start : offsets[end_page]], dtype=np.float32)
        similarities = block @ query_t  # (rows, n_tokens)
        per_page_max = np.maximum.reduceat(similarities, offsets[page:end_page] - start, axis=0)
        scores[page:end_page] = per_page_max.sum(axis=1)
        page = end_page
    return scores


def maxsim_lists(queries: Sequence[np.ndarray], pages: Sequence[np.ndarray]) -> np.ndarray:
    """(n_queries, n_pages) MaxSim scores for lists of ragged multi-vectors."""
    if not pages:
        return np.zeros((len(queries), 0), dtype=np.float32)
    lengths = np.array([len(p) for p in pages], dtype=np.int64)
    if (lengths == 0).any():
        raise InvalidInputError("every page multi-vector needs at least one vector")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    vectors = np.concatenate([np.asarray(p, dtype=np.float32) for p in pages])
    return np.stack([maxsim_concatenated(q, vectors, offsets) for q in queries])


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first; ties broken by lower index."""
    k = min(k, len(scores))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    candidates = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order]
