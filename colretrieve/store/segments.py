"""Immutable vector segment files: atomic writes, cheap size checks, lazy checksummed maps.

A segment is a float16 ``.npy`` file of shape (rows, dim) holding the concatenated vectors of
one batch of pages. It is written under a temporary name, fsynced, renamed and the folder
fsynced before any database row refers to it, so a committed row never points at a partial
file. Files are never modified after the rename; compaction writes new ones.
"""

from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colretrieve.errors import IndexCorruptError, InvalidInputError

SEGMENT_DTYPE = np.float16
SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".npy"
TEMP_SUFFIX = ".tmp"
_READ_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class SegmentRecord:
    """A committed segment as the database records it."""

    id: int
    file: str
    n_rows: int
    dim: int
    byte_size: int
    crc32: int
    # Changes on deletes; left out of equality so a cached, verified map stays valid.
    dead_rows: int = field(default=0, compare=False)


def segment_file_name(segment_id: int) -> str:
    return f"{SEGMENT_PREFIX}{segment_id:06d}{SEGMENT_SUFFIX}"


def segment_id_from_name(name: str) -> int | None:
    """The id in a segment file name (final or temporary), or None for other files."""
    stem = name.removesuffix(TEMP_SUFFIX)
    if not (stem.startswith(SEGMENT_PREFIX) and stem.endswith(SEGMENT_SUFFIX)):
        return None
    digits = stem[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
    return int(digits) if digits.isdigit() else None


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def to_segment_dtype(vectors: np.ndarray) -> np.ndarray:
    """float16 copy of ``vectors``; refuse values outside float16's range."""
    # ColQwen2 vectors are unit-normalised (|x| <= 1), so float16 loses only sub-1e-3 detail.
    with np.errstate(over="ignore"):  # overflow becomes inf, refused just below
        half = np.ascontiguousarray(vectors, dtype=SEGMENT_DTYPE)
    if not np.isfinite(half).all():
        raise InvalidInputError("vectors exceed the float16 range (|x| > 65504) of the store")
    return half


def write_segment(folder: Path, segment_id: int, vectors: np.ndarray) -> SegmentRecord:
    """Write ``vectors`` (float16, C order) as a new segment file, durably, and describe it."""
    vectors = np.ascontiguousarray(vectors, dtype=SEGMENT_DTYPE)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(vectors))
    header_bytes = header.getvalue()
    data = memoryview(vectors).cast("B")
    name = segment_file_name(segment_id)
    temp = folder / (name + TEMP_SUFFIX)
    with open(temp, "wb") as handle:
        handle.write(header_bytes)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, folder / name)
    fsync_dir(folder)
    return SegmentRecord(
        id=segment_id,
        file=name,
        n_rows=int(vectors.shape[0]),
        dim=int(vectors.shape[1]),
        byte_size=len(header_bytes) + data.nbytes,
        crc32=zlib.crc32(data, zlib.crc32(header_bytes)),
    )


def check_size(folder: Path, record: SegmentRecord) -> None:
    """Cheap open-time check: the file exists and has its recorded size."""
    try:
        size = (folder / record.file).stat().st_size
    except FileNotFoundError:
        raise IndexCorruptError(folder.parent, f"segment {record.file} is missing") from None
    if size != record.byte_size:
        raise IndexCorruptError(
            folder.parent,
            f"segment {record.file} has {size} bytes, {record.byte_size} were committed",
        )


def check_checksum(folder: Path, record: SegmentRecord) -> None:
    """Read the whole file and compare its CRC-32 with the committed one."""
    check_size(folder, record)
    crc = 0
    with open(folder / record.file, "rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            crc = zlib.crc32(chunk, crc)
    if crc != record.crc32:
        raise IndexCorruptError(folder.parent, f"segment {record.file} fails its checksum")


class SegmentReader:
    """Memory-maps segments on first use, after verifying their checksum once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # Keyed by the whole record: an id reused after a crash never hits a stale entry.
        self._maps: dict[SegmentRecord, np.ndarray] = {}

    def vectors(self, record: SegmentRecord) -> np.ndarray:
        """The (n_rows, dim) float16 memory map of a verified segment."""
        cached = self._maps.get(record)
        if cached is not None:
            return cached
        check_checksum(self.folder, record)
        try:
            array = np.load(self.folder / record.file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise IndexCorruptError(
                self.folder.parent, f"segment {record.file} is unreadable: {error}"
            ) from None
        if array.dtype != SEGMENT_DTYPE or array.shape != (record.n_rows, record.dim):
            raise IndexCorruptError(
                self.folder.parent,
                f"segment {record.file} holds {array.dtype} {array.shape}, "
                f"expected float16 ({record.n_rows}, {record.dim})",
            )
        self._maps[record] = array
        return array

    def forget(self, keep: set[SegmentRecord] | None = None) -> None:
        """Drop maps of segments not in ``keep`` (all of them when None)."""
        if keep is None:
            self._maps.clear()
        else:
            self._maps = {r: a for r, a in self._maps.items() if r in keep}
