"""Search over the embedded store: the in-memory page catalog and per-segment span scoring.

The catalog lists the pages of complete documents in (doc_id, page) order, so a page's
position in it is its tie-break rank whatever segment it lives in. A filter picks catalog
positions before any scoring. Within a segment the selected pages are scored as row spans of
the memory map with :func:`maxsim_concatenated`: when they cover most of the span it is
scored in one pass with the gaps (dead rows, other documents) as throw-away pseudo-pages,
otherwise each contiguous run is scored on its own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from colretrieve.contracts import SearchFilter, SearchHit
from colretrieve.errors import IndexCorruptError
from colretrieve.maxsim import BLOCK_ROWS, maxsim_concatenated, top_k
from colretrieve.store.base import doc_matches
from colretrieve.store.rows import all_segments
from colretrieve.store.schema import snapshot
from colretrieve.store.segments import SegmentReader, SegmentRecord


@dataclass(frozen=True)
class Catalog:
    """Searchable pages of one commit, as parallel arrays indexed by catalog position."""

    doc_ids: list[str]
    paths: list[str]
    titles: list[str]
    tags: list[tuple[str, ...]]
    page_doc: np.ndarray  # index into the doc lists
    page_no: np.ndarray
    page_segment: np.ndarray
    page_row: np.ndarray
    page_len: np.ndarray
    segments: dict[int, SegmentRecord]

    def select(self, filter: SearchFilter | None) -> np.ndarray:
        """Catalog positions of the pages the filter admits, ascending."""
        if filter is None:
            return np.arange(len(self.page_doc))
        keep = np.array(
            [
                doc_matches(doc_id, path, tags, filter)
                for doc_id, path, tags in zip(self.doc_ids, self.paths, self.tags, strict=True)
            ],
            dtype=bool,
        )
        if not keep.any():
            return np.empty(0, dtype=np.int64)
        return np.flatnonzero(keep[self.page_doc])

    def hit(self, position: int, score: float) -> SearchHit:
        doc = int(self.page_doc[position])
        return SearchHit(
            doc_id=self.doc_ids[doc],
            path=self.paths[doc],
            page=int(self.page_no[position]),
            score=float(score),
            title=self.titles[doc],
        )


def load_catalog(connection: sqlite3.Connection) -> Catalog:
    with snapshot(connection):
        docs = connection.execute(
            "SELECT doc_id, path, title, tags FROM documents WHERE complete = 1 ORDER BY doc_id"
        ).fetchall()
        pages = connection.execute(
            "SELECT p.doc_id, p.page, p.segment_id, p.row_start, p.n_vectors FROM pages p "
            "JOIN documents d ON d.doc_id = p.doc_id WHERE d.complete = 1 "
            "ORDER BY p.doc_id, p.page"
        ).fetchall()
        segments = {record.id: record for record in all_segments(connection)}
    index = {row[0]: i for i, row in enumerate(docs)}
    numbers = np.array([row[1:] for row in pages], dtype=np.int64).reshape(-1, 4)
    return Catalog(
        doc_ids=[row[0] for row in docs],
        paths=[row[1] for row in docs],
        titles=[row[2] for row in docs],
        tags=[tuple(json.loads(row[3])) for row in docs],
        page_doc=np.array([index[row[0]] for row in pages], dtype=np.int64),
        page_no=numbers[:, 0],
        page_segment=numbers[:, 1],
        page_row=numbers[:, 2],
        page_len=numbers[:, 3],
        segments=segments,
    )


def _pieces(
    starts: np.ndarray, lengths: np.ndarray
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Split sorted page spans of one segment into blocks to score.

    Yields ``(row_a, row_b, offsets, take, dest)``: score rows ``row_a:row_b`` with
    ``offsets`` (relative), keep units ``take`` and put them at pages ``dest``.
    """
    ends = starts + lengths
    if lengths.sum() * 2 >= ends[-1] - starts[0]:
        bounds = np.unique(np.concatenate([starts, ends]))
        runs = [(bounds, np.searchsorted(bounds, starts), np.arange(len(starts)))]
    else:
        breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1
        runs = [
            (np.append(starts[run], ends[run[-1]]), np.arange(len(run)), run)
            for run in np.split(np.arange(len(starts)), breaks)
        ]
    for bounds, unit_of_page, page_index in runs:
        n_units = len(bounds) - 1
        unit = 0
        while unit < n_units:
            # Whole units up to BLOCK_ROWS rows (at least one), as maxsim_concatenated does.
            end = int(np.searchsorted(bounds, bounds[unit] + BLOCK_ROWS, side="right")) - 1
            end = min(max(end, unit + 1), n_units)
            lo, hi = np.searchsorted(unit_of_page, [unit, end])
            yield (
                int(bounds[unit]),
                int(bounds[end]),
                bounds[unit : end + 1] - bounds[unit],
                unit_of_page[lo:hi] - unit,
                page_index[lo:hi],
            )
            unit = end


def score_pages(
    catalog: Catalog, reader: SegmentReader, queries: list[np.ndarray], selected: np.ndarray
) -> np.ndarray:
    """(n_queries, len(selected)) exact MaxSim scores of the selected catalog positions."""
    scores = np.empty((len(queries), len(selected)), dtype=np.float32)
    if len(selected) == 0:
        return scores
    segment_of = catalog.page_segment[selected]
    order = np.lexsort((catalog.page_row[selected], segment_of))
    cuts = np.flatnonzero(np.diff(segment_of[order])) + 1
    for group in np.split(order, cuts):
        record = catalog.segments[int(segment_of[group[0]])]
        starts = catalog.page_row[selected[group]]
        lengths = catalog.page_len[selected[group]]
        if starts[0] < 0 or (starts + lengths).max() > record.n_rows:
            raise IndexCorruptError(reader.folder.parent, f"pages overrun segment {record.file}")
        vectors = reader.vectors(record)
        for row_a, row_b, offsets, take, dest in _pieces(starts, lengths):
            # Convert once per block, not once per query: fp16 matmul is slow on CPUs.
            block = np.asarray(vectors[row_a:row_b], dtype=np.float32)
            for q, query in enumerate(queries):
                scores[q, group[dest]] = maxsim_concatenated(query, block, offsets)[take]
    return scores


def search_catalog(
    catalog: Catalog,
    reader: SegmentReader,
    queries: list[np.ndarray],
    k: int,
    filter: SearchFilter | None,
) -> list[list[SearchHit]]:
    selected = catalog.select(filter)
    scores = score_pages(catalog, reader, queries, selected)
    # top_k breaks ties by lower position, and positions follow (doc_id, page).
    return [[catalog.hit(int(selected[i]), row[i]) for i in top_k(row, k)] for row in scores]
