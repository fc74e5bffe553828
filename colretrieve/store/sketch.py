"""First-stage data of the fast search path: a token codebook and per-page cell sets.

The codebook is a two-level spherical k-means over a sample of stored page vectors: up to
128 coarse centroids, each split into up to 128 fine ones, so at most 16,384 *cells* (uint16
codes). A token is assigned by its best coarse centroid, then its best fine centroid within
it (256 dot products, not 16,384). A page's *sketch* is the set of distinct cells its tokens
fall in: near-duplicate background patches collapse into a few cells, so a 750-vector page
keeps a few hundred uint16 codes.

Sketches are derived state kept beside the segments they describe (``seg-N.sketch.npz``)
and, like segments, are immutable files written and fsynced before the commit that
records them. The codebook is one more immutable file (``codebook-N.npy``). A sketch made
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

COARSE = 128
FINE = 128
SAMPLE_TOKENS = 262_144
KMEANS_ITERATIONS = 8
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


def spherical_kmeans(data: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """``k`` unit centroids of unit rows ``data`` (k <= len(data)), by inner product."""
    generator = torch.Generator().manual_seed(seed)
    centroids = data[torch.randperm(len(data), generator=generator)[:k]].clone()
    for _ in range(KMEANS_ITERATIONS):
        labels = (data @ centroids.T).argmax(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, labels, data)
        counts = torch.bincount(labels, minlength=k)
        empty = counts == 0
        # An empty cluster keeps its old centroid rather than collapsing to zero.
        sums[empty] = centroids[empty]
        centroids = _normalise(sums)
    return centroids


def train_codebook(sample: np.ndarray, codebook_id: int, seed: int = 0) -> Codebook:
    """Two-level codebook of a (n, dim) float sample (n >= 1)."""
    data = _normalise(torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32)))
    n = len(data)
    n_coarse = int(min(COARSE, max(1, round((n / 16) ** 0.5))))
    coarse = spherical_kmeans(data, n_coarse, seed)
    labels = (data @ coarse.T).argmax(dim=1)
    fine, bounds = [], [0]
    for group in range(n_coarse):
        members = data[labels == group]
        if len(members) == 0:
            cells = coarse[group : group + 1]
        else:
            cells = spherical_kmeans(members, int(min(FINE, max(1, len(members) // 16))), seed)
        fine.append(cells)
        bounds.append(bounds[-1] + len(cells))
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
    """Whether ``name`` (final or temporary) is a codebook or sketch file."""
    stem = name.removesuffix(".tmp")
    return stem.endswith(SKETCH_SUFFIX) or (
        stem.startswith(CODEBOOK_PREFIX) and stem.endswith(".npz")
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
