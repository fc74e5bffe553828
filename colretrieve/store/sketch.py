"""First-stage data of the fast search path: a token codebook and per-page cell sets.

The codebook is a two-level spherical k-means over a sample of stored page vectors: up to
256 coarse centroids, each split into fine ones, at most 65,536 *cells* in all (uint16
codes). The sample, and with it the number of cells, grows with the number of stored
vectors (one sample row per 32 stored, 262,144 to 2,097,152 rows, about one cell per 16
sample rows), so a bigger index with a bigger vocabulary gets finer cells. Fine cells are
shared out between coarse groups in proportion to each group's quantisation error, not its
size: a tight group of near-duplicate background patches gets few cells, the spread-out
content groups get most of them. A token is assigned by its best coarse centroid, then its
best fine centroid within it (a few hundred dot products, not 65,536). A page's *sketch*
is the set of distinct cells its tokens fall in: near-duplicate background patches collapse
into a few cells, so a 750-vector page keeps a few hundred uint16 codes.

Sketches are derived state kept beside the segments they describe (``seg-N.sketch.npz``)
and, like segments, are immutable files written and fsynced before the commit that
records them. The codebook is one more immutable file (``codebook-N.npz``), and so is the
*postings file* (``postings-N.bin``): the cell -> pages lists of the whole catalog as of the
last ``compact()``, memory-mapped by searches so that opening an index does not rebuild
them from the sketches. A sketch made
with another codebook than the current one is ignored, and pages without a current sketch
are scored exactly, so a sketch can make search slower but never wrong or stale.
"""

from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from colretrieve.errors import IndexCorruptError
from colretrieve.store.segments import fsync_dir

COARSE = 256
MAX_CELLS = 65_536  # uint16 codes
FINE_MAX = 512  # cells of one coarse group: bounds the assignment cost per token
SAMPLE_PER_CELL = 16
SAMPLE_TOKENS = 262_144  # the smallest sample (a small index samples more rows per page)
MAX_SAMPLE_TOKENS = 2_097_152
VECTORS_PER_SAMPLE = 32  # one sample row per this many stored vectors, within the bounds
KMEANS_ITERATIONS = 8
KMEANS_CHUNK = 131_072
SEED_ROWS = 65_536
ASSIGN_CHUNK = 131_072
DTYPE = torch.float32

SKETCH_SUFFIX = ".sketch.npz"
CODEBOOK_PREFIX = "codebook-"


@dataclass(frozen=True)
class Codebook:
    """Cells of the first stage: ``fine`` (n_cells, dim) float32 unit rows, grouped by
    coarse centroid; group ``g`` holds cells ``bounds[g]:bounds[g + 1]``."""

    id: int
    coarse: np.ndarray
    fine: np.ndarray
    bounds: np.ndarray

    @property
    def n_cells(self) -> int:
        return len(self.fine)


@dataclass(frozen=True)
class FileRecord:
    """An immutable derived file as the catalog records it."""

    file: str
    byte_size: int
    crc32: int


def _normalise(rows: torch.Tensor) -> torch.Tensor:
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)


def sample_size(total_vectors: int) -> int:
    """Sample rows for a codebook of an index holding ``total_vectors`` vectors."""
    return int(min(MAX_SAMPLE_TOKENS, max(SAMPLE_TOKENS, total_vectors // VECTORS_PER_SAMPLE)))


def _labels(data: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best centroid of every row and its cosine, in chunks (no n x k matrix in memory)."""
    labels = torch.empty(len(data), dtype=torch.int64)
    best = torch.empty(len(data), dtype=data.dtype)
    for start in range(0, len(data), KMEANS_CHUNK):
        values, found = (data[start : start + KMEANS_CHUNK] @ centroids.T).max(dim=1)
        labels[start : start + KMEANS_CHUNK] = found
        best[start : start + KMEANS_CHUNK] = values
    return labels, best


def _seed_centroids(data: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding on a random subset of at most ``SEED_ROWS`` rows: each next seed
    is drawn with probability proportional to its distance (1 - cosine) to the nearest seed
    so far. Random seeding put many seeds on near-duplicate rows (background patches), which
    k-means never moves apart: those cells were wasted."""
    subset = data[torch.randperm(len(data), generator=generator)[: max(k, SEED_ROWS)]]
    chosen = [int(torch.randint(len(subset), (1,), generator=generator))]
    distance = (1 - subset @ subset[chosen[0]]).clamp_min(0)
    for _ in range(1, k):
        total = float(distance.sum())
        if total <= 0:  # fewer distinct rows than k: take any
            pick = int(torch.randint(len(subset), (1,), generator=generator))
        else:
            pick = int(torch.multinomial(distance, 1, generator=generator))
        chosen.append(pick)
        torch.minimum(distance, (1 - subset @ subset[pick]).clamp_min(0), out=distance)
    return subset[chosen].clone()


def spherical_kmeans(data: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """``k`` unit centroids of unit rows ``data`` (k <= len(data)), by inner product."""
    centroids = _seed_centroids(data, k, torch.Generator().manual_seed(seed))
    for _ in range(KMEANS_ITERATIONS):
        labels, _ = _labels(data, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, labels, data)
        counts = torch.bincount(labels, minlength=k)
        empty = counts == 0
        # An empty cluster keeps its old centroid rather than collapsing to zero.
        sums[empty] = centroids[empty]
        centroids = _normalise(sums)
    return centroids


def fine_budget(members: np.ndarray, error: np.ndarray, total: int) -> np.ndarray:
    """Fine cells per coarse group: ``total`` shared in proportion to each group's
    quantisation error (sum of 1 - cosine to its centroid), at least 1, at most
    min(FINE_MAX, members // SAMPLE_PER_CELL) (a group of near-duplicates needs few)."""
    cap = np.clip(members // SAMPLE_PER_CELL, 1, FINE_MAX).astype(np.int64)
    error = np.maximum(np.asarray(error, dtype=np.float64), 0.0)
    capped = np.zeros(len(members), dtype=bool)
    while True:  # water-filling: groups at their cap hand the rest to the others
        free = np.flatnonzero(~capped)
        left = total - int(cap[capped].sum())
        if len(free) == 0 or left <= 0:
            return np.where(capped, cap, 1)
        weight = error[free] / max(float(error[free].sum()), 1e-12)
        wanted = np.floor(left * weight).astype(np.int64)
        full = wanted >= cap[free]
        if not full.any():
            budget = np.where(capped, cap, 0)
            budget[free] = np.maximum(wanted, 1)
            return budget
        capped[free[full]] = True


def train_codebook(sample: np.ndarray, codebook_id: int, seed: int = 0) -> Codebook:
    """Two-level codebook of a (n, dim) float sample (n >= 1); may normalise ``sample``
    in place when it is float32."""
    data = torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32))
    data /= data.norm(dim=1, keepdim=True).clamp_min(1e-12)
    n = len(data)
    # fine_budget may give each coarse group one cell above its share: keep room for it.
    n_cells = int(min(MAX_CELLS - COARSE, max(1, n // SAMPLE_PER_CELL)))
    n_coarse = int(min(COARSE, max(1, round(n_cells**0.5))))
    coarse = spherical_kmeans(data, n_coarse, seed)
    labels, cosine = _labels(data, coarse)
    members = np.bincount(labels.numpy(), minlength=n_coarse)
    error = np.bincount(labels.numpy(), weights=(1 - cosine).double().numpy(), minlength=n_coarse)
    budget = fine_budget(members, error, n_cells)
    ordered = data[torch.argsort(labels)]
    del data, labels, cosine
    from colretrieve.store.fast import worker_pool

    ends = np.cumsum(members)

    def split(group: int) -> torch.Tensor:
        group_rows = ordered[int(ends[group] - members[group]) : int(ends[group])]
        if len(group_rows) == 0:
            return coarse[group : group + 1]
        return spherical_kmeans(group_rows, int(min(budget[group], len(group_rows))), seed)

    # Groups are independent: split them on the worker pool (one torch thread each).
    fine = list(worker_pool().map(split, range(n_coarse)))
    bounds = np.concatenate([[0], np.cumsum([len(cells) for cells in fine])])
    assert bounds[-1] <= MAX_CELLS, bounds[-1]
    return Codebook(
        id=codebook_id,
        coarse=coarse.numpy(),
        fine=torch.cat(fine).numpy(),
        bounds=np.array(bounds, dtype=np.int64),
    )


def assign(codebook: Codebook, vectors: np.ndarray) -> np.ndarray:
    """The cell (uint16) of every row of ``vectors``."""
    coarse = torch.from_numpy(codebook.coarse).to(DTYPE)
    fine = torch.from_numpy(codebook.fine).to(DTYPE)
    cells = np.empty(len(vectors), dtype=np.uint16)
    for start in range(0, len(vectors), ASSIGN_CHUNK):
        chunk = torch.from_numpy(np.array(vectors[start : start + ASSIGN_CHUNK])).to(DTYPE)
        group_of = (chunk @ coarse.T).argmax(dim=1)
        # Sort rows by coarse group so each group is one slice and one product.
        order = torch.argsort(group_of)
        ordered = chunk[order]
        found = torch.empty(len(chunk), dtype=torch.int64)
        at = 0
        for group, count in enumerate(torch.bincount(group_of, minlength=len(coarse)).tolist()):
            if count:
                lo, hi = int(codebook.bounds[group]), int(codebook.bounds[group + 1])
                rows = ordered[at : at + count]
                found[at : at + count] = (rows @ fine[lo:hi].T).argmax(dim=1) + lo
                at += count
        out = torch.empty_like(found)
        out[order] = found
        cells[start : start + len(chunk)] = out.numpy()
    return cells


def segment_sketches(
    codebook: Codebook, vectors: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct cells of each page ``vectors[starts[i]:starts[i] + lengths[i]]``.

    Returns ``(counts, codes)``: page ``i`` owns ``counts[i]`` codes, back to back. The
    covered row range is assigned in big chunks, then deduplicated with one sort.
    """
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int32), np.empty(0, dtype=np.uint16)
    order = np.argsort(starts)
    starts_o, lengths_o = starts[order], lengths[order]
    lo, hi = int(starts_o[0]), int((starts_o + lengths_o).max())
    cells = assign(codebook, vectors[lo:hi])
    # Dedupe per page with one sort: key = page * n_cells + cell.
    page_of_row = np.full(hi - lo, -1, dtype=np.int64)
    for rank, (start, length) in enumerate(zip(starts_o, lengths_o, strict=True)):
        page_of_row[start - lo : start - lo + length] = rank
    live = page_of_row >= 0
    keys = np.unique(page_of_row[live] * codebook.n_cells + cells[live])
    ranks = keys // codebook.n_cells
    counts_o = np.bincount(ranks, minlength=len(starts)).astype(np.int32)
    codes_o = (keys % codebook.n_cells).astype(np.uint16)
    # Back to the caller's page order.
    counts = np.empty_like(counts_o)
    counts[order] = counts_o
    bounds = np.concatenate([[0], np.cumsum(counts_o)])
    pieces = [codes_o[bounds[r] : bounds[r + 1]] for r in np.argsort(order).tolist()]
    # np.argsort(order)[i] is the rank of caller page i.
    return counts, (np.concatenate(pieces) if pieces else codes_o)


def _write_bytes(folder: Path, name: str, payload: bytes) -> FileRecord:
    temp = folder / (name + ".tmp")
    with open(temp, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, folder / name)
    fsync_dir(folder)
    return FileRecord(name, len(payload), zlib.crc32(payload))


def _read_bytes(folder: Path, record: FileRecord) -> bytes:
    try:
        payload = (folder / record.file).read_bytes()
    except FileNotFoundError:
        raise IndexCorruptError(folder.parent, f"{record.file} is missing") from None
    if len(payload) != record.byte_size or zlib.crc32(payload) != record.crc32:
        raise IndexCorruptError(folder.parent, f"{record.file} fails its size or checksum")
    return payload


def write_codebook(folder: Path, codebook: Codebook) -> FileRecord:
    buffer = io.BytesIO()
    np.savez(buffer, coarse=codebook.coarse, fine=codebook.fine, bounds=codebook.bounds)
    return _write_bytes(folder, f"{CODEBOOK_PREFIX}{codebook.id:06d}.npz", buffer.getvalue())


def is_derived_file(name: str) -> bool:
    """Whether ``name`` (final or temporary) is a codebook, sketch or postings file."""
    stem = name.removesuffix(".tmp")
    return (
        stem.endswith(SKETCH_SUFFIX)
        or (stem.startswith(CODEBOOK_PREFIX) and stem.endswith(".npz"))
        or (stem.startswith(POSTINGS_PREFIX) and stem.endswith(POSTINGS_SUFFIX))
    )


def read_codebook(folder: Path, codebook_id: int, record: FileRecord) -> Codebook:
    with np.load(io.BytesIO(_read_bytes(folder, record)), allow_pickle=False) as data:
        return Codebook(codebook_id, data["coarse"], data["fine"], data["bounds"])


def sketch_file_name(segment_file: str, codebook_id: int) -> str:
    return f"{segment_file}.c{codebook_id:06d}{SKETCH_SUFFIX}"


def write_sketch(
    folder: Path,
    segment_file: str,
    codebook_id: int,
    row_starts: np.ndarray,
    counts: np.ndarray,
    codes: np.ndarray,
) -> FileRecord:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        row_starts=np.asarray(row_starts, dtype=np.int64),
        counts=np.asarray(counts, dtype=np.int32),
        codes=np.asarray(codes, dtype=np.uint16),
    )
    return _write_bytes(folder, sketch_file_name(segment_file, codebook_id), buffer.getvalue())


def read_sketch(folder: Path, record: FileRecord) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row_starts, counts, codes) of a sketch file, checksum verified."""
    with np.load(io.BytesIO(_read_bytes(folder, record)), allow_pickle=False) as data:
        return data["row_starts"], data["counts"], data["codes"]


# -- the persisted first stage: one postings file per (codebook, catalog) --------------------

POSTINGS_PREFIX = "postings-"
POSTINGS_SUFFIX = ".bin"
POSTINGS_MAGIC = b"CRPOST01"
_HEADER_WORDS = 6  # codebook id, n_cells, n_segments, n_entries, n_postings, reserved
_ALIGN = 64


@dataclass(frozen=True)
class Postings:
    """The first stage of one catalog as stored: entry ``i`` is the page at
    ``(entry_segment[i], entry_row[i])`` — catalog position ``i`` when the file was written
    — and cell ``c`` lists the entries ``postings[starts[c]:starts[c + 1]]``. ``segments``
    holds (segment id, segment CRC-32) of every segment the entries point into."""

    codebook_id: int
    n_cells: int
    segments: np.ndarray  # (n_segments, 2) int64
    entry_segment: np.ndarray  # (n_entries,) int64
    entry_row: np.ndarray  # (n_entries,) int64
    covered: np.ndarray  # (n_entries,) uint8: the entry's page has postings
    starts: np.ndarray  # (n_cells + 1,) int64
    postings: np.ndarray  # (n_postings,) int32 entry ids, grouped by cell

    def arrays(self) -> list[np.ndarray]:
        return [
            self.segments,
            self.entry_segment,
            self.entry_row,
            self.covered,
            self.starts,
            self.postings,
        ]


_POSTINGS_DTYPES = [np.int64, np.int64, np.int64, np.uint8, np.int64, np.int32]


def _postings_layout(counts: list[int]) -> tuple[list[int], int]:
    """Byte offsets of the arrays (64-byte aligned, after the header) and the file size."""
    offsets, at = [], len(POSTINGS_MAGIC) + 8 * _HEADER_WORDS
    for count, dtype in zip(counts, _POSTINGS_DTYPES, strict=True):
        at = -(-at // _ALIGN) * _ALIGN
        offsets.append(at)
        at += count * np.dtype(dtype).itemsize
    return offsets, at


def _postings_counts(header: np.ndarray) -> list[int]:
    _, n_cells, n_segments, n_entries, n_postings, _ = (int(v) for v in header)
    return [2 * n_segments, n_entries, n_entries, n_entries, n_cells + 1, n_postings]


def postings_file_name(sequence: int) -> str:
    return f"{POSTINGS_PREFIX}{sequence:06d}{POSTINGS_SUFFIX}"


def postings_sequence(name: str) -> int:
    return int(name[len(POSTINGS_PREFIX) : -len(POSTINGS_SUFFIX)])


def write_postings(folder: Path, name: str, stored: Postings) -> FileRecord:
    """Write ``stored`` as an immutable file, fsynced and renamed into place."""
    arrays = [
        np.ascontiguousarray(a, dtype=d).ravel()
        for a, d in zip(stored.arrays(), _POSTINGS_DTYPES, strict=True)
    ]
    header = np.array(
        [
            stored.codebook_id,
            stored.n_cells,
            len(stored.segments),
            len(stored.entry_segment),
            len(stored.postings),
            0,
        ],
        dtype="<u8",
    )
    offsets, size = _postings_layout([len(a) for a in arrays])
    temp = folder / (name + ".tmp")
    crc, at = 0, 0
    with open(temp, "wb") as handle:
        for offset, payload in zip(
            [0, *offsets], [POSTINGS_MAGIC + header.tobytes(), *arrays], strict=True
        ):
            pad = b"\0" * (offset - at)
            data = memoryview(payload).cast("B") if isinstance(payload, np.ndarray) else payload
            handle.write(pad)
            handle.write(data)
            crc = zlib.crc32(data, zlib.crc32(pad, crc))
            at = offset + len(data)
        handle.flush()
        os.fsync(handle.fileno())
    assert at == size
    os.replace(temp, folder / name)
    fsync_dir(folder)
    return FileRecord(name, size, crc)


def read_postings(folder: Path, record: FileRecord) -> Postings:
    """Memory-map a postings file after checking its size and CRC-32 (read once)."""
    path = folder / record.file
    crc = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(8 * 1024 * 1024):
                crc = zlib.crc32(chunk, crc)
            size = handle.tell()
    except FileNotFoundError:
        raise IndexCorruptError(folder.parent, f"{record.file} is missing") from None
    if size != record.byte_size or crc != record.crc32:
        raise IndexCorruptError(folder.parent, f"{record.file} fails its size or checksum")
    with open(path, "rb") as handle:
        head = handle.read(len(POSTINGS_MAGIC) + 8 * _HEADER_WORDS)
    header = np.frombuffer(head[len(POSTINGS_MAGIC) :], dtype="<u8")
    counts = _postings_counts(header)
    offsets, expected = _postings_layout(counts)
    if head[: len(POSTINGS_MAGIC)] != POSTINGS_MAGIC or expected != size:
        raise IndexCorruptError(folder.parent, f"{record.file} has a bad header")
    arrays = [
        np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))
        for dtype, offset, count in zip(_POSTINGS_DTYPES, offsets, counts, strict=True)
    ]
    return Postings(int(header[0]), int(header[1]), arrays[0].reshape(-1, 2), *arrays[1:])
