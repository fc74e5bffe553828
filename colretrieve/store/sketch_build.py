"""Write side of the first stage: train the codebook, sketch segments, commit, clean up.

Runs at the end of ``compact()`` under the writer lock. Same discipline as segments: every
new file is written and fsynced first, one transaction records them, and only after that
commit are replaced files unlinked (a crash leaves unreferenced files that the next
writable open deletes).
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from concurrent.futures import wait
from pathlib import Path

import numpy as np

from colretrieve.store.schema import get_meta, set_meta, transaction
from colretrieve.store.segments import SegmentReader
from colretrieve.store.sketch import (
    Codebook,
    FileRecord,
    postings_file_name,
    postings_sequence,
    read_codebook,
    read_sketch,
    sample_size,
    segment_sketches,
    train_codebook,
    write_codebook,
    write_postings,
    write_sketch,
)

CODEBOOK_KEY = "codebook"
POSTINGS_KEY = "postings"
# Retrain once the index holds this many times the pages the codebook was trained on.
RETRAIN_GROWTH = 4


def current_codebook(connection: sqlite3.Connection) -> tuple[int, FileRecord, int] | None:
    """(codebook id, its file, pages it was trained on), or None."""
    raw = get_meta(connection, CODEBOOK_KEY)
    if raw is None:
        return None
    data = json.loads(raw)
    return data["id"], FileRecord(data["file"], data["byte_size"], data["crc32"]), data["pages"]


def current_postings(connection: sqlite3.Connection) -> tuple[FileRecord, int, int] | None:
    """(postings file, its codebook id, digest of the catalog it was written for), or None."""
    raw = get_meta(connection, POSTINGS_KEY)
    if raw is None:
        return None
    data = json.loads(raw)
    record = FileRecord(data["file"], data["byte_size"], data["crc32"])
    return record, data["codebook_id"], data["digest"]


def catalog_digest(keys: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(keys, dtype="<i8").tobytes())


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
    """About ``sample_size(stored vectors)`` stored vectors: random rows from many random
    pages (at least 32 a page; more when there are too few pages to fill the sample, so a
    small index still trains a fine codebook)."""
    size = sample_size(sum(page[2] for page in pages))
    per_page = max(32, -(-size // max(1, len(pages))))
    chosen = rng.choice(len(pages), size=min(len(pages), size // per_page), replace=False)
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
    """Train a codebook if due, sketch every segment lacking a current sketch, and write
    the postings file of the current catalog if it changed; return the number of segments
    sketched. All new files are durable before the one commit that records them."""
    from colretrieve.store.fast import catalog_keys, stored_postings, worker_pool
    from colretrieve.store.rows import all_segments
    from colretrieve.store.search import load_catalog

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
    fresh: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    postings_file: FileRecord | None = None
    try:

        def sketch(segment_id: int) -> None:
            spans = by_segment[segment_id]
            starts = np.array([s for s, _ in spans], dtype=np.int64)
            lengths = np.array([n for _, n in spans], dtype=np.int64)
            record = segments[segment_id]
            counts, codes = segment_sketches(codebook, reader.vectors(record), starts, lengths)
            sketch_file = write_sketch(folder, record.file, codebook.id, starts, counts, codes)
            written.append((segment_id, sketch_file))  # before anything can fail: cleanup
            fresh[segment_id] = (starts, counts, codes)

        due = [
            segment_id
            for segment_id in by_segment
            if (current := sketches.get(segment_id)) is None or current[0] != codebook.id
        ]
        # Segments are independent: sketch them on the worker pool (one torch thread each).
        # Wait for every task before raising, so the cleanup below sees all written files.
        tasks = [worker_pool().submit(sketch, segment_id) for segment_id in due]
        wait(tasks)
        for task in tasks:
            task.result()
        written.sort()
        # The postings file: what a search would otherwise rebuild from every sketch.
        catalog = load_catalog(connection)
        digest = catalog_digest(catalog_keys(catalog))
        previous = current_postings(connection)
        if previous is None or previous[1:] != (codebook.id, digest) or written:
            arrays = dict(fresh)
            for segment_id in np.unique(catalog.page_segment).tolist():
                current = sketches.get(segment_id)
                if segment_id not in arrays and current and current[0] == codebook.id:
                    arrays[segment_id] = read_sketch(folder, current[1])
            stored = stored_postings(catalog, codebook.n_cells, codebook.id, arrays)
            sequence = postings_sequence(previous[0].file) + 1 if previous else 1
            postings_file = write_postings(folder, postings_file_name(sequence), stored)
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
            if postings_file is not None:
                set_meta(
                    connection,
                    POSTINGS_KEY,
                    json.dumps(
                        {
                            "file": postings_file.file,
                            "byte_size": postings_file.byte_size,
                            "crc32": postings_file.crc32,
                            "codebook_id": codebook.id,
                            "digest": digest,
                        }
                    ),
                )
    except BaseException:
        # Nothing committed refers to the new files (their names carry the codebook id).
        for _, record in written:
            (folder / record.file).unlink(missing_ok=True)
        if new_codebook is not None:
            (folder / new_codebook[1].file).unlink(missing_ok=True)
        if postings_file is not None:
            (folder / postings_file.file).unlink(missing_ok=True)
        raise
    return len(written)


def referenced_files(connection: sqlite3.Connection) -> set[str]:
    """Derived files the catalog refers to (codebook, sketches, postings)."""
    names = {record.file for _, record in sketch_records(connection).values()}
    known = current_codebook(connection)
    if known is not None:
        names.add(known[1].file)
    postings = current_postings(connection)
    if postings is not None:
        names.add(postings[0].file)
    return names
