"""Write side of the first stage: train the codebook, sketch segments, commit, clean up.

Runs at the end of ``compact()`` under the writer lock. Same discipline as segments: every
new file is written and fsynced first, one transaction records them, and only after that
commit are replaced files unlinked (a crash leaves unreferenced files that the next
writable open deletes).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from colretrieve.store.schema import get_meta, set_meta, transaction
from colretrieve.store.segments import SegmentReader
from colretrieve.store.sketch import (
    SAMPLE_TOKENS,
    Codebook,
    FileRecord,
    read_codebook,
    segment_sketches,
    train_codebook,
    write_codebook,
    write_sketch,
)

CODEBOOK_KEY = "codebook"
# Retrain once the index holds this many times the pages the codebook was trained on.
RETRAIN_GROWTH = 4


def current_codebook(connection: sqlite3.Connection) -> tuple[int, FileRecord, int] | None:
    """(codebook id, its file, pages it was trained on), or None."""
    raw = get_meta(connection, CODEBOOK_KEY)
    if raw is None:
        return None
    data = json.loads(raw)
    return data["id"], FileRecord(data["file"], data["byte_size"], data["crc32"]), data["pages"]


def sketch_records(connection: sqlite3.Connection) -> dict[int, tuple[int, FileRecord]]:
    """{segment_id: (codebook id, sketch file)}; empty for indexes from before sketches."""
    exists = connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sketches'"
    ).fetchone()[0]
    if not exists:
        return {}
    rows = connection.execute(
        "SELECT segment_id, codebook_id, file, byte_size, crc32 FROM sketches"
    )
    return {row[0]: (row[1], FileRecord(*row[2:])) for row in rows}


def _sample(
    reader: SegmentReader, segments: dict, pages: list[tuple], rng: np.random.Generator
) -> np.ndarray:
    """Up to SAMPLE_TOKENS stored vectors: random rows from many random pages (at least 32
    a page; more when there are too few pages to fill the sample, so a small index still
    trains a fine codebook)."""
    per_page = max(32, -(-SAMPLE_TOKENS // max(1, len(pages))))
    chosen = rng.choice(len(pages), size=min(len(pages), SAMPLE_TOKENS // per_page), replace=False)
    parts = []
    for i in sorted(chosen.tolist()):
        segment_id, row_start, n_vectors = pages[i]
        vectors = reader.vectors(segments[segment_id])
        rows = rng.choice(n_vectors, size=min(n_vectors, per_page), replace=False)
        parts.append(np.asarray(vectors[row_start + np.sort(rows)], dtype=np.float32))
    return np.concatenate(parts)


def refresh_first_stage(
    connection: sqlite3.Connection, folder: Path, reader: SegmentReader, min_pages: int
) -> int:
    """Train a codebook if due, sketch every segment lacking a current sketch; return the
    number of segments sketched."""
    from colretrieve.store.rows import all_segments

    segments = {record.id: record for record in all_segments(connection)}
    pages = connection.execute(
        "SELECT segment_id, row_start, n_vectors FROM pages ORDER BY segment_id, row_start"
    ).fetchall()
    if len(pages) < min_pages or not pages:
        return 0
    known = current_codebook(connection)
    sketches = sketch_records(connection)
    new_codebook: tuple[Codebook, FileRecord] | None = None
    if known is None or len(pages) >= RETRAIN_GROWTH * known[2]:
        codebook_id = (known[0] + 1) if known else 1
        sample = _sample(reader, segments, pages, np.random.default_rng(codebook_id))
        codebook = train_codebook(sample, codebook_id)
        new_codebook = (codebook, write_codebook(folder, codebook))
    else:
        codebook = read_codebook(folder, known[0], known[1])
    by_segment: dict[int, list[tuple[int, int]]] = {}
    for segment_id, row_start, n_vectors in pages:
        by_segment.setdefault(segment_id, []).append((row_start, n_vectors))
    written: list[tuple[int, FileRecord]] = []
    try:
        for segment_id, spans in by_segment.items():
            current = sketches.get(segment_id)
            if current is not None and current[0] == codebook.id:
                continue
            starts = np.array([s for s, _ in spans], dtype=np.int64)
            lengths = np.array([n for _, n in spans], dtype=np.int64)
            record = segments[segment_id]
            counts, codes = segment_sketches(codebook, reader.vectors(record), starts, lengths)
            written.append(
                (segment_id, write_sketch(folder, record.file, codebook.id, starts, counts, codes))
            )
        with transaction(connection):
            if new_codebook is not None:
                codebook_file = new_codebook[1]
                set_meta(
                    connection,
                    CODEBOOK_KEY,
                    json.dumps(
                        {
                            "id": codebook.id,
                            "file": codebook_file.file,
                            "byte_size": codebook_file.byte_size,
                            "crc32": codebook_file.crc32,
                            "pages": len(pages),
                        }
                    ),
                )
            connection.executemany(
                "INSERT OR REPLACE INTO sketches (segment_id, codebook_id, file, byte_size, crc32)"
                " VALUES (?, ?, ?, ?, ?)",
                [(s, codebook.id, r.file, r.byte_size, r.crc32) for s, r in written],
            )
    except BaseException:
        # Nothing committed refers to the new files (their names carry the codebook id).
        for _, record in written:
            (folder / record.file).unlink(missing_ok=True)
        if new_codebook is not None:
            (folder / new_codebook[1].file).unlink(missing_ok=True)
        raise
    return len(written)


def referenced_files(connection: sqlite3.Connection) -> set[str]:
    """Derived files the catalog refers to (codebook and sketches)."""
    names = {record.file for _, record in sketch_records(connection).values()}
    known = current_codebook(connection)
    if known is not None:
        names.add(known[1].file)
    return names
