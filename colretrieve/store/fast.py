"""The fast search path: a cell-probing first stage, then exact MaxSim of the candidates.

First stage (PLAID-style centroid interaction, see sketch.py for the cells): each query
token scores every cell once, probes its ``probe`` best cells and gives every page listed
under a probed cell that cell's score; a page the token's probes miss gets the lowest
probed score. The approximate page score is the sum over query tokens, as in MaxSim.

Second stage: the ``candidates`` best pages by approximate score, plus every selected page
without a current sketch (new since the last ``compact()``), are scored by exact MaxSim:
their float16 rows are gathered into one block, converted to float32 once and multiplied
with the query's tokens in one BLAS call (on CUDA when torch sees a GPU). A batch shares
the cell scoring (one product for all queries) but each query reranks its own candidates.

Filters pick catalog positions before either stage; the first stage only ranks pages the
filter admits. Exact search (``mode="exact"``) stays the reference and the fallback.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from colretrieve import timing
from colretrieve.contracts import SearchFilter, SearchHit
from colretrieve.maxsim import top_k
from colretrieve.store.search import Catalog
from colretrieve.store.segments import SegmentReader
from colretrieve.store.sketch import Codebook

DEFAULT_CANDIDATES = 256
DEFAULT_PROBE = 32
DEFAULT_MIN_PAGES = 512
BATCH_WORKERS = 2


@dataclass(frozen=True)
class SearchOptions:
    """How the embedded store searches. Approximation is a setting, never silent."""

    mode: Literal["fast", "exact"] = "fast"
    """``fast`` (default) reranks first-stage candidates exactly (measured recall@10 vs
    exhaustive in docs/search.md); ``exact`` scores every selected page."""
    candidates: int = DEFAULT_CANDIDATES
    """Pages per query scored exactly after the first stage (the recall/latency knob)."""
    probe: int = DEFAULT_PROBE
    """Cells each query token probes in the first stage (of up to 16,384)."""
    min_pages: int = DEFAULT_MIN_PAGES
    """Stored pages before ``compact()`` trains a codebook and sketches pages (fast mode
    only: a store opened in exact mode never builds the first stage)."""

    def __post_init__(self) -> None:
        from colretrieve.errors import InvalidInputError

        if self.mode not in ("fast", "exact"):
            raise InvalidInputError(f"search mode must be 'fast' or 'exact'; got {self.mode!r}")
        for name in ("candidates", "probe", "min_pages"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer; got {value!r}")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class FirstStage:
    """Postings of one catalog: for each cell, the catalog positions whose sketch has it."""

    cells: torch.Tensor  # (n_cells, dim) float32 on the search device
    covered: np.ndarray  # (n_positions,) bool: the page has a current sketch
    starts: np.ndarray  # (n_cells + 1,) bounds into ``postings``
    postings: torch.Tensor  # int32 catalog positions, grouped by cell

    @property
    def resident_bytes(self) -> int:
        return (
            self.cells.numel() * 4
            + self.covered.nbytes
            + self.starts.nbytes
            + self.postings.numel() * self.postings.element_size()
        )


def build_first_stage(
    catalog: Catalog,
    codebook: Codebook,
    sketches: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> FirstStage:
    """Postings for ``catalog`` from per-segment sketches ``{segment_id: (row_starts,
    counts, codes)}`` made with ``codebook``; pages of other segments are uncovered."""
    n = len(catalog.page_doc)
    covered = np.zeros(n, dtype=bool)
    cell_parts: list[np.ndarray] = []
    position_parts: list[np.ndarray] = []
    for segment_id, (row_starts, counts, codes) in sketches.items():
        positions = np.flatnonzero(catalog.page_segment == segment_id)
        if len(positions) == 0:
            continue
        rows = catalog.page_row[positions]
        entry = np.searchsorted(row_starts, rows)
        found = (entry < len(row_starts)) & (
            row_starts[np.minimum(entry, len(row_starts) - 1)] == rows
        )
        positions, entry = positions[found], entry[found]
        covered[positions] = True
        offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        lengths = counts[entry].astype(np.int64)
        index = _ranges(offsets[entry], lengths)
        cell_parts.append(codes[index])
        position_parts.append(np.repeat(positions.astype(np.int32), lengths))
    cells_of = np.concatenate(cell_parts) if cell_parts else np.empty(0, dtype=np.uint16)
    positions_of = np.concatenate(position_parts) if position_parts else np.empty(0, np.int32)
    order = np.argsort(cells_of, kind="stable")
    counts_per_cell = np.bincount(cells_of, minlength=codebook.n_cells)
    return FirstStage(
        cells=torch.from_numpy(codebook.fine).to(device()),
        covered=covered,
        starts=np.concatenate([[0], np.cumsum(counts_per_cell)]).astype(np.int64),
        postings=torch.from_numpy(positions_of[order]),
    )


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(starts[i], starts[i] + lengths[i])``."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return shift + np.arange(total, dtype=np.int64)


def approximate_scores(stage: FirstStage, cell_scores: torch.Tensor, probe: int) -> torch.Tensor:
    """(n_positions,) first-stage scores for one query's (n_tokens, n_cells) cell scores."""
    n_tokens, n_cells = cell_scores.shape
    n = len(stage.covered)
    probe = min(probe, n_cells)
    values, cells = torch.topk(cell_scores.cpu(), probe, dim=1)  # best first
    floor = values[:, -1]
    dense = floor[:, None].expand(n_tokens, n).contiguous()
    cells_np = cells.numpy()
    lengths = (stage.starts[cells_np + 1] - stage.starts[cells_np]).ravel()
    index = torch.from_numpy(_ranges(stage.starts[cells_np].ravel(), lengths))
    positions = stage.postings[index].long()
    lengths_t = torch.from_numpy(lengths)
    token = torch.repeat_interleave(
        torch.arange(n_tokens).repeat_interleave(probe), lengths_t, output_size=len(index)
    )
    value = torch.repeat_interleave(values.reshape(-1), lengths_t, output_size=len(index))
    dense.view(-1).scatter_reduce_(0, token * n + positions, value, reduce="amax")
    return dense.sum(dim=0)


RERANK_CHUNK_ROWS = 8192
"""Rows converted and multiplied at a time: the float32 chunk stays in cache, which makes the
float16 -> float32 conversion plus the product ~4x faster than one big block."""


def rerank(
    catalog: Catalog,
    reader: SegmentReader,
    queries: list[np.ndarray],
    positions: np.ndarray,
) -> np.ndarray:
    """(n_queries, len(positions)) exact float32 MaxSim of the pages at ``positions``.

    Pages are gathered from the float16 memory maps in chunks of about RERANK_CHUNK_ROWS
    rows; each chunk is converted to float32 once and multiplied with all the queries'
    tokens in one product, and its per-page maxima are taken while it is in cache."""
    scores = np.empty((len(queries), len(positions)), dtype=np.float32)
    if len(positions) == 0:
        return scores
    order = np.lexsort((catalog.page_row[positions], catalog.page_segment[positions]))
    ordered = positions[order]
    lengths = catalog.page_len[ordered].astype(np.int64)
    dim = len(queries[0][0])
    target = device()
    tokens = torch.from_numpy(np.concatenate(queries)).to(target)
    bounds = np.concatenate([[0], np.cumsum([len(q) for q in queries])])
    chunk_rows = max(RERANK_CHUNK_ROWS, int(lengths.max()))
    staging = np.empty((chunk_rows, dim), dtype=np.float16)
    converted = torch.empty((chunk_rows, dim), dtype=torch.float32, device=target)
    products = torch.empty((chunk_rows, len(tokens)), dtype=torch.float32, device=target)
    per_page = np.empty((len(ordered), len(tokens)), dtype=np.float32)
    first = 0
    while first < len(ordered):
        last, rows = first, 0
        while last < len(ordered) and rows + lengths[last] <= chunk_rows:
            rows += int(lengths[last])
            last += 1
        at = 0
        for position in ordered[first:last].tolist():
            vectors = reader.vectors(catalog.segments[int(catalog.page_segment[position])])
            row, length = int(catalog.page_row[position]), int(catalog.page_len[position])
            if row < 0 or row + length > len(vectors):
                from colretrieve.errors import IndexCorruptError

                raise IndexCorruptError(reader.folder.parent, "a page overruns its segment")
            staging[at : at + length] = vectors[row : row + length]
            at += length
        block = converted[:rows]
        block.copy_(torch.from_numpy(staging[:rows]))
        out = products[:rows]
        torch.mm(block, tokens.T, out=out)
        starts = np.concatenate([[0], np.cumsum(lengths[first:last])[:-1]])
        per_page[first:last] = np.maximum.reduceat(out.cpu().numpy(), starts, axis=0)
        first = last
    for q in range(len(queries)):
        scores[q, order] = per_page[:, bounds[q] : bounds[q + 1]].sum(axis=1)
    return scores


def search_fast(
    catalog: Catalog,
    reader: SegmentReader,
    stage: FirstStage,
    queries: list[np.ndarray],
    k: int,
    filter: SearchFilter | None,
    options: SearchOptions,
) -> list[list[SearchHit]]:
    selected = catalog.select(filter)
    if len(selected) == 0:
        return [[] for _ in queries]
    covered = selected[stage.covered[selected]]
    uncovered = selected[~stage.covered[selected]]
    with timing.stage("first_stage"):
        tokens = torch.from_numpy(np.concatenate(queries)).to(stage.cells.device)
        all_cell_scores = tokens @ stage.cells.T
    bounds = np.concatenate([[0], np.cumsum([len(q) for q in queries])])

    def one(q: int) -> list[SearchHit]:
        with timing.stage("first_stage"):
            if len(covered) > options.candidates:
                approx = approximate_scores(
                    stage, all_cell_scores[bounds[q] : bounds[q + 1]], options.probe
                ).numpy()[covered]
                best = np.argpartition(-approx, options.candidates - 1)[: options.candidates]
                chosen = np.union1d(covered[best], uncovered)
            else:
                chosen = np.union1d(covered, uncovered)
        # Each query reranks its own candidates: a union would make a query's hits depend
        # on the other queries of the call. chosen is sorted, so top_k's tie-break by
        # index is a tie-break by catalog position.
        with timing.stage("rerank"):
            row = rerank(catalog, reader, [queries[q]], chosen)[0]
        return [catalog.hit(int(chosen[i]), row[i]) for i in top_k(row, k)]

    workers = min(BATCH_WORKERS, len(queries), os.cpu_count() or 1)
    if workers <= 1:
        return [one(q) for q in range(len(queries))]
    # A batch runs queries on a few threads: the numpy gathers, maxima and first-stage
    # scatters of one query overlap another's; every query's result is its own.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(len(queries))))
