"""Compaction: rewrite segments with many dead rows, merge small ones, drop dead ones.

Same discipline as ingest: new segment files are written durably first, one transaction
repoints the pages at them and forgets the old segments, and only after that commit are the
old files unlinked. A crash at any point leaves either the old or the new layout, plus
unreferenced files that the next writable open deletes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colretrieve.store.rows import all_segments, insert_segment
from colretrieve.store.schema import set_meta, transaction
from colretrieve.store.segments import SegmentReader, SegmentRecord, fsync_dir, write_segment

# Output segments are cut at about this size; big enough that searches map few files.
TARGET_SEGMENT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class CompactionReport:
    segments_removed: int
    """Old segment files dropped (rewritten or fully dead)."""
    segments_written: int
    bytes_freed: int
    """Segment bytes before minus after; the SQLite file is not counted."""
    segments_sketched: int = 0
    """Segments given a first-stage sketch for fast search (see sketch_build.py)."""


def plan(
    segments: list[SegmentRecord], min_dead_fraction: float, merge_below_bytes: int
) -> list[SegmentRecord]:
    """The segments worth rewriting: mostly dead ones, plus small ones worth merging."""
    chosen = [s for s in segments if s.dead_rows / s.n_rows >= min_dead_fraction]
    small = [s for s in segments if s not in chosen and s.byte_size < merge_below_bytes]
    # Merging one small segment into nothing saves nothing; two or more save files.
    if chosen or len(small) >= 2:
        chosen += small
    if len(chosen) == 1 and chosen[0].dead_rows == 0:
        return []
    return chosen


def compact_segments(
    connection: sqlite3.Connection,
    folder: Path,
    reader: SegmentReader,
    chosen: list[SegmentRecord],
    allocate_id: Callable[[], int],
    target_bytes: int = TARGET_SEGMENT_BYTES,
) -> CompactionReport:
    """Rewrite the live pages of ``chosen`` into new segments and drop ``chosen``."""
    if not chosen:
        return CompactionReport(0, 0, 0)
    by_id = {record.id: record for record in chosen}
    marks = ",".join("?" * len(by_id))
    # (doc_id, page) order keeps each document contiguous, so filtered searches read spans.
    live = connection.execute(
        f"SELECT doc_id, page, segment_id, row_start, n_vectors FROM pages "
        f"WHERE segment_id IN ({marks}) ORDER BY doc_id, page",
        list(by_id),
    ).fetchall()
    written: list[SegmentRecord] = []
    moves: list[tuple[int, int, str, int]] = []
    buffer: list[np.ndarray] = []
    pending: list[tuple[int, str, int]] = []
    rows = 0

    def flush() -> None:
        nonlocal rows
        record = write_segment(folder, allocate_id(), np.concatenate(buffer))
        written.append(record)
        moves.extend((record.id, row, doc_id, page) for row, doc_id, page in pending)
        buffer.clear()
        pending.clear()
        rows = 0

    try:
        for doc_id, page, segment_id, row_start, n_vectors in live:
            source = reader.vectors(by_id[segment_id])  # verifies the checksum first
            buffer.append(np.array(source[row_start : row_start + n_vectors]))
            pending.append((rows, doc_id, page))
            rows += n_vectors
            if rows * source.shape[1] * source.itemsize >= target_bytes:
                flush()
        if buffer:
            flush()
        with transaction(connection):
            for record in written:
                insert_segment(connection, record)
            connection.executemany(
                "UPDATE pages SET segment_id = ?, row_start = ? WHERE doc_id = ? AND page = ?",
                moves,
            )
            connection.executemany("DELETE FROM segments WHERE id = ?", [(i,) for i in by_id])
            if written:
                set_meta(connection, "next_segment_id", str(written[-1].id + 1))
    except BaseException:
        for record in written:
            (folder / record.file).unlink(missing_ok=True)
        raise
    # Committed: nothing refers to the old files any more.
    reader.forget(set(all_segments(connection)))
    for record in chosen:
        (folder / record.file).unlink(missing_ok=True)
    fsync_dir(folder)
    return CompactionReport(
        segments_removed=len(chosen),
        segments_written=len(written),
        bytes_freed=sum(r.byte_size for r in chosen) - sum(r.byte_size for r in written),
    )
