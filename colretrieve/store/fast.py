"""The fast search path: a cell-probing first stage, then exact MaxSim of the candidates.

First stage (PLAID-style centroid interaction, see sketch.py for the cells): each query
token scores every cell once, probes its ``probe`` best cells and gives every page listed
under a probed cell that cell's score; a page the token's probes miss gets the lowest
probed score. The approximate page score is the sum over query tokens, as in MaxSim.

The postings come from the memory-mapped postings file that ``compact()`` writes (remapped
once when the catalog changed since), or, for indexes without one, from the sketches.

Second stage: the ``candidates`` best pages by approximate score, plus every selected page
the first stage does not cover (new since the last ``compact()``), are scored by exact
MaxSim: their float16 rows are gathered in cache-sized chunks, converted to float32 and
multiplied with the query's tokens (on CUDA when torch sees a GPU). On the CPU the chunks of
one query, or the queries of a batch, run on a pool of single-torch-thread workers. A batch
shares the cell scoring (one product and top-k for all queries) but each query reranks its
own candidates.

Filters pick catalog positions before either stage; the first stage only ranks pages the
filter admits. Exact search (``mode="exact"``) stays the reference and the fallback.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from colretrieve import timing
from colretrieve.contracts import SearchFilter, SearchHit
from colretrieve.maxsim import top_k
from colretrieve.store.search import Catalog
from colretrieve.store.segments import SegmentReader
from colretrieve.store.sketch import Codebook, Postings

DEFAULT_CANDIDATES = 256
DEFAULT_PROBE = 32
DEFAULT_MIN_PAGES = 512
BATCH_WORKERS = 8  # at most; a batch uses one thread per core up to this


@dataclass(frozen=True)
class SearchOptions:
    """How the embedded store searches. Approximation is a setting, never silent."""

    mode: Literal["fast", "exact"] = "fast"
    """``fast`` (default) reranks first-stage candidates exactly (measured recall@10 vs
    exhaustive in docs/search.md); ``exact`` scores every selected page."""
    candidates: int = DEFAULT_CANDIDATES
    """Pages per query scored exactly after the first stage (the recall/latency knob)."""
    probe: int = DEFAULT_PROBE
    """Cells each query token probes in the first stage (of up to 65,536)."""
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
    """Postings of one catalog: for each cell, the catalog positions whose sketch has it.

    ``postings`` may be a read-only memory map of the persisted postings file."""

    cells: torch.Tensor  # (n_cells, dim) float32 on the search device
    covered: np.ndarray  # (n_positions,) bool: the page has postings
    starts: np.ndarray  # (n_cells + 1,) bounds into ``postings``
    postings: np.ndarray  # int32 catalog positions, grouped by cell

    @property
    def resident_bytes(self) -> int:
        return (
            self.cells.numel() * 4 + self.covered.nbytes + self.starts.nbytes + self.postings.nbytes
        )


def postings_of(
    catalog: Catalog,
    n_cells: int,
    sketches: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(covered, starts, postings)`` of ``catalog`` from per-segment sketches
    ``{segment_id: (row_starts, counts, codes)}``; pages of other segments are uncovered."""
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
    counts_per_cell = np.bincount(cells_of, minlength=n_cells)
    starts = np.concatenate([[0], np.cumsum(counts_per_cell)]).astype(np.int64)
    return covered, starts, positions_of[order]


def build_first_stage(
    catalog: Catalog,
    codebook: Codebook,
    sketches: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> FirstStage:
    """Postings for ``catalog`` built from per-segment sketches (no postings file)."""
    covered, starts, postings = postings_of(catalog, codebook.n_cells, sketches)
    return FirstStage(_cells(codebook), covered, starts, postings)


def _cells(codebook: Codebook) -> torch.Tensor:
    return torch.from_numpy(codebook.fine).to(device())


def catalog_keys(catalog: Catalog) -> np.ndarray:
    """One int64 per catalog position naming its stored rows: (segment id, first row)."""
    return (catalog.page_segment.astype(np.int64) << 32) | catalog.page_row.astype(np.int64)


def stored_postings(
    catalog: Catalog,
    n_cells: int,
    codebook_id: int,
    sketches: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> Postings:
    """What compact() persists: the postings of ``catalog`` with its pages as entries."""
    covered, starts, postings = postings_of(catalog, n_cells, sketches)
    used = np.unique(catalog.page_segment[covered])
    segments = np.array(
        [[int(s), catalog.segments[int(s)].crc32] for s in used], dtype=np.int64
    ).reshape(-1, 2)
    return Postings(
        codebook_id=codebook_id,
        n_cells=n_cells,
        segments=segments,
        entry_segment=catalog.page_segment.astype(np.int64),
        entry_row=catalog.page_row.astype(np.int64),
        covered=covered.astype(np.uint8),
        starts=starts,
        postings=postings,
    )


def stage_from_postings(catalog: Catalog, codebook: Codebook, stored: Postings) -> FirstStage:
    """The first stage of ``catalog`` from a persisted postings file.

    When the catalog still lists the file's entries position for position (nothing was
    added, deleted or moved since the compact() that wrote it), the memory-mapped postings
    are used as they are. Otherwise each entry is matched to the catalog position holding
    the same stored rows (entries of deleted pages, or of segments no longer current, are
    dropped) and the postings are remapped once; pages the file does not list are
    uncovered, so they are reranked exactly."""
    n = len(catalog.page_doc)
    live_segments = np.array(
        [
            int(sid)
            for sid, crc in stored.segments.tolist()
            if (record := catalog.segments.get(int(sid))) is not None and record.crc32 == crc
        ],
        dtype=np.int64,
    )
    keys = catalog_keys(catalog)
    entries = (np.asarray(stored.entry_segment) << 32) | np.asarray(stored.entry_row)
    starts = np.asarray(stored.starts)
    if (
        len(entries) == n
        and len(live_segments) == len(stored.segments)
        and np.array_equal(entries, keys)
    ):
        return FirstStage(
            _cells(codebook), np.asarray(stored.covered).astype(bool), starts, stored.postings
        )
    # Catalog keys are unique (one page per stored row range); match entries to positions.
    order = np.argsort(keys, kind="stable")
    at = np.minimum(np.searchsorted(keys[order], entries), max(n - 1, 0))
    position_of = np.full(len(entries), -1, dtype=np.int32)
    if n:
        match = (keys[order][at] == entries) & (np.asarray(stored.covered) != 0)
        match &= np.isin(np.asarray(stored.entry_segment), live_segments)
        position_of[match] = order[at[match]]
    mapped = position_of[np.asarray(stored.postings)]
    keep = mapped >= 0
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    covered = np.zeros(n, dtype=bool)
    covered[position_of[position_of >= 0]] = True
    return FirstStage(_cells(codebook), covered, kept_before[starts], mapped[keep])


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(starts[i], starts[i] + lengths[i])``."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return shift + np.arange(total, dtype=np.int64)


def approximate_scores(stage: FirstStage, cell_scores: torch.Tensor, probe: int) -> torch.Tensor:
    """(n_positions,) first-stage scores for one query's (n_tokens, n_cells) cell scores."""
    values, cells = probed_cells(cell_scores, probe)
    return probed_scores(stage, values, cells)


def probed_cells(cell_scores: torch.Tensor, probe: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each token's ``probe`` best cells and their scores, best first (on the CPU)."""
    return torch.topk(cell_scores.cpu(), min(probe, cell_scores.shape[1]), dim=1)


def probed_scores(stage: FirstStage, values: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """(n_positions,) first-stage scores of one query from its tokens' probed cells."""
    n_tokens, probe = cells.shape
    n = len(stage.covered)
    floor = values[:, -1]
    dense = floor[:, None].expand(n_tokens, n).contiguous()
    cells_np = cells.numpy()
    lengths = (stage.starts[cells_np + 1] - stage.starts[cells_np]).ravel()
    index = _ranges(stage.starts[cells_np].ravel(), lengths)
    positions = torch.from_numpy(stage.postings[index].astype(np.int64))
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


class _Buffers(threading.local):
    """Per-thread rerank buffers, reused across calls (fresh big arrays cost page faults)."""

    rows = 0
    width = 0
    staging: np.ndarray
    converted: torch.Tensor
    products: torch.Tensor

    def get(self, rows: int, dim: int, width: int, target: torch.device):
        if (
            rows > self.rows
            or width > self.width
            or self.staging.shape[1] != dim
            or self.converted.device != target
        ):
            self.rows, self.width = max(rows, self.rows), max(width, self.width)
            self.staging = np.empty((self.rows, dim), dtype=np.float16)
            self.converted = torch.empty((self.rows, dim), dtype=torch.float32, device=target)
            self.products = torch.empty(self.rows * self.width, dtype=torch.float32, device=target)
        return self.staging, self.converted, self.products


_buffers = _Buffers()


def _chunks(lengths: np.ndarray, chunk_rows: int) -> list[tuple[int, int, int]]:
    """(first, last, rows): runs of whole pages of at most ``chunk_rows`` rows each."""
    out, first = [], 0
    ends = np.cumsum(lengths)
    while first < len(lengths):
        base = ends[first - 1] if first else 0
        last = max(first + 1, int(np.searchsorted(ends, base + chunk_rows, side="right")))
        out.append((first, last, int(ends[last - 1] - base)))
        first = last
    return out


def rerank(
    catalog: Catalog,
    reader: SegmentReader,
    queries: list[np.ndarray],
    positions: np.ndarray,
    pool: ThreadPoolExecutor | None = None,
) -> np.ndarray:
    """(n_queries, len(positions)) exact float32 MaxSim of the pages at ``positions``.

    Pages are gathered from the float16 memory maps in chunks of about RERANK_CHUNK_ROWS
    rows; each chunk is converted to float32 once and multiplied with all the queries'
    tokens in one product, and its per-page maxima are taken while it is in cache. With a
    ``pool`` the chunks run on its threads (each chunk's result is independent)."""
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
    per_page = np.empty((len(ordered), len(tokens)), dtype=np.float32)

    def chunk(span: tuple[int, int, int]) -> None:
        first, last, rows = span
        staging, converted, products = _buffers.get(chunk_rows, dim, len(tokens), target)
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
        out = products[: rows * len(tokens)].view(rows, len(tokens))
        torch.mm(block, tokens.T, out=out)
        starts = np.concatenate([[0], np.cumsum(lengths[first:last])[:-1]])
        per_page[first:last] = np.maximum.reduceat(out.cpu().numpy(), starts, axis=0)

    spans = _chunks(lengths, chunk_rows)
    if pool is None or len(spans) == 1:
        for span in spans:
            chunk(span)
    else:
        list(pool.map(chunk, spans))
    for q in range(len(queries)):
        scores[q, order] = per_page[:, bounds[q] : bounds[q + 1]].sum(axis=1)
    return scores


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _workers() -> int:
    return max(1, min(BATCH_WORKERS, os.cpu_count() or 1))


def worker_pool() -> ThreadPoolExecutor:
    """The shared threads of the fast path, one torch thread each (the OpenMP thread count
    is per calling thread). Work is split over them in Python (rerank chunks, a batch's
    queries) instead of splitting each small product over the cores with OpenMP: on a
    busy host OpenMP's spinning barriers made 2-thread products several times slower."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=_workers(),
                thread_name_prefix="colretrieve-search",
                initializer=torch.set_num_threads,
                initargs=(1,),
            )
        return _pool


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
    ranked = len(covered) > options.candidates
    with timing.stage("first_stage"):
        if ranked:  # shared by the batch: one product and one top-k for all its tokens
            tokens = torch.from_numpy(np.concatenate(queries)).to(stage.cells.device)
            values, cells = probed_cells(tokens @ stage.cells.T, options.probe)
    bounds = np.concatenate([[0], np.cumsum([len(q) for q in queries])])

    def one(q: int, pool: ThreadPoolExecutor | None) -> list[SearchHit]:
        with timing.stage("first_stage"):
            if ranked:
                span = slice(bounds[q], bounds[q + 1])
                approx = probed_scores(stage, values[span], cells[span]).numpy()[covered]
                best = np.argpartition(-approx, options.candidates - 1)[: options.candidates]
                chosen = np.union1d(covered[best], uncovered)
            else:
                chosen = np.union1d(covered, uncovered)
        # Each query reranks its own candidates: a union would make a query's hits depend
        # on the other queries of the call. chosen is sorted, so top_k's tie-break by
        # index is a tie-break by catalog position.
        with timing.stage("rerank"):
            row = rerank(catalog, reader, [queries[q]], chosen, pool)[0]
        return [catalog.hit(int(chosen[i]), row[i]) for i in top_k(row, k)]

    pool = worker_pool()
    if len(queries) == 1 or _workers() == 1:
        # One query: its rerank chunks run on the pool's threads.
        with _torch_threads(1):
            return [one(q, pool if _workers() > 1 else None) for q in range(len(queries))]
    # A batch: its queries run side by side on the pool's threads (the first stage's
    # product and top-k above were shared); every query's result is still its own.
    return list(pool.map(lambda q: one(q, None), range(len(queries))))


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch ops of the calling thread on ``n`` threads (a per-thread setting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
